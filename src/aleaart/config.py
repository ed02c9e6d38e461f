"""Settings, read once from ``ALEAART_*`` environment variables at the entry points."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from aleaart.palettes import PaletteMode
from aleaart.params import DEFAULT_PALETTE, PaletteChoice

DEFAULT_MODEL = "stable-diffusion-v1-5/stable-diffusion-v1-5"

Precision = Literal["f32", "bf16"]  # what OpenVINO computes in


def default_cache_dir() -> Path:
    return Path.home() / ".cache" / "aleaart"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ALEAART_", protected_namespaces=())

    model: str = Field(
        DEFAULT_MODEL,
        description="hub id, local diffusers folder, .safetensors/.ckpt file, or 'tiny'",
    )
    model_config_dir: Path | None = Field(
        None,
        validation_alias=AliasChoices("ALEAART_MODEL_CONFIG"),
        description="diffusers config folder for a single-file checkpoint (needed offline)",
    )
    device: str | None = Field(None, description="cuda, mps or cpu; default: the best available")
    threads: int | None = Field(None, ge=1, description="torch CPU threads; pin it for bit-exact images")
    backend: str = Field(
        "auto", min_length=1, description="what runs the UNet and VAE decoder, a runtime named in "
        "engine/runtime.py: openvino (CPU only) or torch; auto: openvino on the CPU, where it is faster (the "
        "README's Performance), torch on a GPU")
    openvino_precision: Precision | Literal["auto"] = Field(
        "auto", description="what the openvino backend computes in: f32, or bf16 on a CPU with native bf16 "
        "(AVX512_BF16 or AMX; refused elsewhere), about twice as fast; auto: bf16 where the CPU has it, else f32")
    openvino_shapes: int = Field(1, ge=1, le=16, description="input shapes (an aspect, a batch) the openvino backend "
                                 "keeps compiled per network; each holds its own copy of the UNet's weights (1.7 GB "
                                 "bf16, 3.4 GB f32 for SD 1.5), and another shape is compiled from the saved IR")
    max_rss_gb: float | None = Field(None, gt=0, description="refuse (507 insufficient_memory) a render whose size "
                                     "would take the process past this much resident memory, by the peaks measured "
                                     "at 512x512 and at the largest size when the model was first loaded")
    cache_dir: Path = Field(default_factory=default_cache_dir, description="where the tiny model is built")

    palette_mode: PaletteMode = Field(
        DEFAULT_PALETTE.mode, description="how a token's paletteId shows: grade (colour grade after decoding), "
        "prompt (colour words in the prompt) or off; a request's `palette` wins")
    palette_strength: float = Field(DEFAULT_PALETTE.strength, ge=0, le=1,
                                    description="the colour grade's strength, 0..1")

    # Content Credentials (C2PA): every stored file is signed
    c2pa_cert: Path | None = Field(None, description="PEM certificate chain, the signing certificate first; with "
                                   "ALEAART_C2PA_KEY. Unset: a local signing key made once in the cache folder")
    c2pa_key: Path | None = Field(None, description="the PEM private key of ALEAART_C2PA_CERT (EC, RSA or Ed25519)")
    c2pa_tsa_url: str | None = Field(None, description="an RFC 3161 timestamp authority for the signatures")
    c2pa_trust_anchors: Path | None = Field(
        None, validation_alias=AliasChoices("ALEAART_C2PA_TRUST_ANCHORS", "ALEAART_C2PA_TRUST", "c2pa_trust_anchors"),
        description="a PEM bundle of trust anchors: files signed by a certificate chaining to one are valid "
        "(signerTrusted), e.g. the C2PA trust list; unset, every signer is reported untrusted")

    # The HTTP service
    host: str = "0.0.0.0"
    port: int = Field(8000, ge=1, le=65535, validation_alias=AliasChoices("ALEAART_PORT", "PORT"),
                      description="ALEAART_PORT, or PORT as hosting platforms set it")
    images_dir: Path = Path("generated_images")
    db: Path | None = Field(None, description="SQLite index of stored images (derived: rebuilt from the PNGs when "
                            "it cannot be read); default: <images_dir>/index.db")
    journal_db: Path | None = Field(None, description="SQLite journal of what was accepted and is owed (jobs, "
                                    "webhooks, records, uploads, the chain watcher), kept apart from the index; "
                                    "default: <images_dir>/journal.db")
    collections_dir: Path = Field(Path("collections"), description="where collection exports are written")
    models_dir: Path | None = Field(None, description="uploaded checkpoints and LoRAs; default: <images_dir>/models")
    admin_key: str | None = Field(None, description="the key named env-admin, with every scope: uploads (POST/DELETE "
                                  "/models, sent as X-Admin-Key too) and /keys; without it or a key with the upload "
                                  "scope, uploads are off")
    max_upload_mb: int = Field(4096, ge=1, description="the largest weights file POST /models accepts (413 beyond)")
    max_loaded_models: int = Field(1, ge=1, description="pipelines kept loaded at once (the default model and "
                                   "uploaded checkpoints); the least recently used is unloaded first")
    max_queue: int = Field(32, ge=1, description="queued jobs beyond which requests get 429")
    min_free_mb: int = Field(100, ge=0, description="below this much free disk, new images are refused (507)")
    serve_cache_mb: int = Field(256, ge=0, description="memory for stored PNGs (and their base64) served often; "
                                "0 reads every one from disk")
    cors_origins: Annotated[list[str], NoDecode] = Field(
        ["http://localhost:3000", "http://127.0.0.1:3000", "http://localhost:8000", "http://127.0.0.1:8000"],
        description="comma-separated origins allowed to call the API from a browser",
    )
    api_key: str | None = Field(None, description="when set, generation and job endpoints need it (the key "
                                "named env: read, generate, admin); keys of their own: aleaart keys create")
    keyless_rate: str | None = Field(None, description="requests a client address may make without a key, where "
                                     "none is needed (120/min, 2/s, 1000/hour); unset: no limit")
    trusted_proxies: Annotated[list[str], NoDecode] = Field(
        [], description="comma-separated addresses or networks of reverse proxies whose X-Forwarded-For names the "
        "client (the keyless rate is per client address)")
    public_tokens: bool = Field(False, description="callers without a key may have a minted token's image rendered "
                                "(/tokens/{id}/..., and /generate-image with a body that is the token's): at most "
                                "one render per token, whatever they ask")
    public_reads: bool = Field(True, description="stored images, tokens, their metadata and the gallery need no key "
                               "(0: a key with the read scope, once any key exists)")
    max_body_bytes: int = Field(64 * 1024, ge=1024)
    preview_every: int = Field(2, ge=0, le=1000, description="a running job's preview every this many steps (0: "
                               "no previews)")
    preview_decoder: Literal["linear", "taesd"] = Field(
        "linear", description="linear (SD 1.x latent-to-RGB factors, at the latent's size: no cost) or taesd (a "
        "TAESD decoder, ALEAART_PREVIEW_TAESD, at the image's size)")
    preview_taesd: str | None = Field(None, description="a TAESD decoder's folder or hub id (diffusers' "
                                      "AutoencoderTiny, e.g. madebyollin/taesd), for ALEAART_PREVIEW_DECODER=taesd")
    verify_concurrency: int = Field(2, ge=1, le=64, description="files /verify checks at once (each decodes up to "
                                    "a 4096x4096 image); beyond, 429 busy with Retry-After")
    log_format: Literal["text", "json"] = Field("text", description="json: one JSON object a line")
    drain_seconds: float = Field(30, ge=0, description="on SIGTERM, how long the running job may take to finish "
                                 "before it is stopped and queued again for after the restart")
    keep_jobs_hours: float = Field(24, gt=0, description="how long finished jobs answer GET /jobs/{id}")

    header_timeout_seconds: float = Field(20.0, gt=0, le=300, description="a request whose head (request line and "
                                          "headers) has not arrived in this time gets 408 and is closed (slowloris)")
    keepalive_seconds: float = Field(5.0, ge=0, le=60, description="/generate-image sends a space this often "
                                     "while it waits, so clients and proxies see a live answer; 0 turns it off")

    # Many GPUs: GPU workers on Celery + Redis (off by default: one process renders in-process)
    broker_url: str | None = Field(None, description="redis://HOST:6379/0: the API hands jobs to `aleaart worker` "
                                   "processes through Celery instead of loading a model itself")
    worker_name: str | None = Field(None, description="this worker's name (default: host-pid)")
    heartbeat_seconds: float = Field(2.0, gt=0, le=60, description="how often a worker says it is alive; one "
                                     "silent for 5 heartbeats is gone and its claim on a job expires")
    redeliver_seconds: float = Field(300, gt=0, description="a job whose worker died is handed to another worker "
                                     "this long after it was delivered (Celery's visibility timeout on Redis)")
    result_hours: float = Field(24, gt=0, description="how long Redis keeps a result the API has not collected")

    # The AleaArt frontend's side effects: IPFS pinning and its MongoDB record (all off by default)
    pinata_jwt: str | None = Field(None, validation_alias=AliasChoices("PINATA_JWT", "ALEAART_PINATA_JWT"),
                                   description="pins every image with Pinata's pinFileToIPFS")
    pinata_api: str = Field("https://api.pinata.cloud", description="Pinata's API base URL")
    ipfs_api: str | None = Field(None, description="pins to a self-hosted IPFS node (kubo RPC), e.g. http://127.0.0.1:5001")
    ipfs_gateway: str = Field("https://gateway.pinata.cloud", description="the gateway in ipfsUrl")
    pin_timeout: float = Field(60, gt=0, description="seconds one pinning upload may take")
    retry_seconds: float = Field(30, gt=0, description="how often failed pins and MongoDB records are retried")
    mongodb_uri: str | None = Field(None, validation_alias=AliasChoices("MONGODB_URI", "ALEAART_MONGODB_URI"),
                                    description="records each user's image in aleart.generatedImages")
    mongodb_image_data: bool = Field(True, description="the record carries the PNG as a data URL (imageData), "
                                     "which the frontend's token card shows at once; 4/3 of the PNG's size")

    # Webhooks: a request's `webhook`, and the service's own events
    webhook_url: str | None = Field(None, description="where the service's own events go (a token rendered by the "
                                    "chain watcher, a collection finished), signed like a request's webhooks")
    webhook_secret: str | None = Field(None, description="whsec_… (base64 after the prefix): webhooks are signed per "
                                       "Standard Webhooks; unset, they are sent unsigned")
    webhook_allow_private: bool = Field(False, description="allow webhooks to loopback, private and link-local "
                                        "addresses (local setups and tests); off, only public addresses")
    webhook_retry_seconds: float = Field(5.0, gt=0, le=3600, description="the first retry's delay; each next one "
                                         "doubles (with jitter) up to an hour")
    webhook_horizon_hours: float = Field(24.0, gt=0, description="how long an event is retried before it is given up")
    webhook_timeout_seconds: float = Field(10.0, gt=0, le=60, description="one delivery attempt's time limit")

    @field_validator("webhook_secret")
    @classmethod
    def _secret_signs(cls, value: str | None) -> str | None:
        if value is not None:
            from standardwebhooks.webhooks import Webhook

            try:
                Webhook(value)
            except Exception as error:
                raise ValueError(f"not a Standard Webhooks secret (whsec_ and base64): {error}") from None
        return value

    # The chain: AleaArt's EntropyArtParamsV2 on Arbitrum Sepolia
    rpc_url: str = "https://sepolia-rollup.arbitrum.io/rpc"
    chain_id: int = 421614
    params_contract: str = "0x420D121aE08007Ef0A66E67D5D7BfFdC98AbECF0"
    chain_timeout: float = Field(5.0, gt=0, le=60, description="seconds before a chain read gives up")

    # Render on fulfilment: follow the contract's EntropyFulfilled events (`aleaart watch`, or inside serve)
    watch: bool = Field(False, description="serve also follows the contract's EntropyFulfilled events and has "
                        "each fulfilled token's image rendered, stored and pinned (as `aleaart watch` does alone)")
    watch_confirmations: int | None = Field(None, ge=0, le=10_000, description="blocks a fulfilment must be "
                                            "under before its token is rendered; default per chain: Arbitrum 20 "
                                            "(~5 s), Ethereum 12, OP-stack 10, anvil 0, others 12")
    watch_from_block: int | None = Field(None, ge=0, description="the first block a new watcher reads (backfill); "
                                         "default: the contract's deployment block. A kept cursor wins")
    watch_poll_seconds: float = Field(2.0, gt=0, le=300, description="how often the watcher asks for new blocks")
    watch_max_blocks: int = Field(10_000, ge=1, description="the most blocks one eth_getLogs asks for; halved "
                                  "while the RPC refuses a range")
    watch_ws_url: str | None = Field(None, description="a websocket endpoint of the same node or chain (ws:// or "
                                     "wss://): the watcher subscribes to new heads and fulfilments and reads as "
                                     "soon as one is confirmed instead of at the next poll; polling goes on")

    @field_validator("watch_ws_url")
    @classmethod
    def _websocket_url(cls, value: str | None) -> str | None:
        if not value:
            return None
        if urlsplit(value).scheme not in ("ws", "wss"):
            raise ValueError("a websocket URL starts with ws:// or wss://")
        return value

    @field_validator("keyless_rate")
    @classmethod
    def _valid_rate(cls, value: str | None) -> str | None:
        if value is not None:
            from aleaart.limits import Rate

            Rate.parse(value)  # InvalidParams is a ValueError: a bad variable exits 2 naming it
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _valid_networks(cls, value: list[str]) -> list[str]:
        import ipaddress

        for network in value:
            ipaddress.ip_network(network, strict=False)
        return value

    @field_validator("cors_origins", "trusted_proxies", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        return [o.strip() for o in value.split(",") if o.strip()] if isinstance(value, str) else value

    @property
    def palette_choice(self) -> PaletteChoice:
        return PaletteChoice(self.palette_mode, self.palette_strength)

    @property
    def db_path(self) -> Path:
        return self.db or self.images_dir / "index.db"

    @property
    def journal_path(self) -> Path:
        return self.journal_db or self.images_dir / "journal.db"

    @property
    def models_path(self) -> Path:
        return self.models_dir or self.images_dir / "models"
