"""The tiny model: a random-weight SD 1.x pipeline built offline from a fixed seed.

Same components and shapes of data as Stable Diffusion 1.5 (CLIP text encoder with the real
BPE tokenizer, UNet2DConditionModel, AutoencoderKL with the real 8x downscale), but a few MB,
so tests and first-time users can run the whole service without downloading weights.
"""

from __future__ import annotations

import gzip
import shutil
import tempfile
from importlib import resources
from pathlib import Path

import torch
from diffusers import AutoencoderKL, PNDMScheduler, StableDiffusionPipeline, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

# Bump when anything below changes the weights, so cached copies are rebuilt.
TINY_VERSION = "1"
WEIGHT_SEED = 20260
BOS, EOS = "<|startoftext|>", "<|endoftext|>"
MERGE_COUNT = 49152 - 256 - 2  # the merges CLIP actually uses from its BPE file

# Stable Diffusion 1.5's own noise schedule, so the samplers behave as on the real model.
SD15_SCHEDULER = dict(
    beta_start=0.00085,
    beta_end=0.012,
    beta_schedule="scaled_linear",
    num_train_timesteps=1000,
    set_alpha_to_one=False,
    skip_prk_steps=True,
    steps_offset=1,
)


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP's reversible byte → printable character table, in CLIP's order (printable first)."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    printable += list(range(ord("®"), ord("ÿ") + 1))
    table = {b: chr(b) for b in printable}
    extra = 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + extra)
            extra += 1
    return table


def clip_vocab_and_merges() -> tuple[dict[str, int], list[str]]:
    """CLIP's 49408-token vocabulary and its merges, from the BPE file shipped in the package."""
    bpe = resources.files("aleaart.engine").joinpath("data/bpe_simple_vocab_16e6.txt.gz")
    lines = gzip.decompress(bpe.read_bytes()).decode("utf-8").split("\n")
    merges = lines[1 : MERGE_COUNT + 1]
    chars = list(bytes_to_unicode().values())
    tokens = chars + [c + "</w>" for c in chars] + ["".join(m.split()) for m in merges] + [BOS, EOS]
    return {token: i for i, token in enumerate(tokens)}, merges


def build_tokenizer() -> CLIPTokenizer:
    vocab, merges = clip_vocab_and_merges()
    return CLIPTokenizer(
        vocab=vocab,
        merges=[tuple(m.split()) for m in merges],
        bos_token=BOS,
        eos_token=EOS,
        unk_token=EOS,
        pad_token=EOS,
        model_max_length=77,
    )


def build_text_encoder(vocab_size: int) -> CLIPTextModel:
    config = CLIPTextConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=77,
        bos_token_id=49406,
        eos_token_id=49407,
        pad_token_id=49407,
        projection_dim=32,
    )
    return CLIPTextModel(config)


def build_unet() -> UNet2DConditionModel:
    return UNet2DConditionModel(
        sample_size=64,
        in_channels=4,
        out_channels=4,
        layers_per_block=1,
        block_out_channels=(32, 64),
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32,
        attention_head_dim=8,
        norm_num_groups=8,
    )


def build_vae() -> AutoencoderKL:
    # Four blocks = three downsamples = SD's 8x latent scale; few channels keep it fast.
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        latent_channels=4,
        block_out_channels=(8, 8, 16, 16),
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        layers_per_block=1,
        norm_num_groups=4,
        sample_size=512,
    )


def build_tiny_pipeline() -> StableDiffusionPipeline:
    tokenizer = build_tokenizer()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(WEIGHT_SEED)
        text_encoder = build_text_encoder(len(tokenizer))
        unet = build_unet()
        vae = build_vae()
    return StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=PNDMScheduler(**SD15_SCHEDULER),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )


def tiny_variant(seed: int) -> StableDiffusionPipeline:
    """A tiny model of the same architecture with other random weights (an "uploaded checkpoint" in tests)."""
    pipeline = build_tiny_pipeline()
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(seed)
        for component in (pipeline.unet, pipeline.text_encoder):
            for parameter in component.parameters():
                parameter.add_(torch.randn_like(parameter) * 0.05)
    return pipeline


def write_tiny_lora(pipeline: StableDiffusionPipeline, path: Path, seed: int, rank: int = 4) -> Path:
    """A random LoRA for ``pipeline``'s UNet attention (PEFT, both halves random so it changes the pixels), saved
    as diffusers saves LoRAs: one .safetensors with ``unet.…lora_A/B.weight`` tensors."""
    from peft import LoraConfig, get_peft_model_state_dict

    unet = build_unet()
    unet.load_state_dict(pipeline.unet.state_dict())
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        unet.add_adapter(LoraConfig(r=rank, lora_alpha=rank, init_lora_weights=False,
                                    target_modules=["to_q", "to_k", "to_v", "to_out.0"]))
    folder = Path(tempfile.mkdtemp(prefix=".tiny-lora-", dir=Path(path).parent))
    try:
        StableDiffusionPipeline.save_lora_weights(folder, unet_lora_layers=get_peft_model_state_dict(unet),
                                                  safe_serialization=True)
        (folder / "pytorch_lora_weights.safetensors").replace(path)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return Path(path)


def make_tiny_model(folder: Path) -> Path:
    """Write the tiny model to ``folder`` (a diffusers folder), atomically; return the folder. Processes that
    build it at once (workers started together) keep the first whole copy: one may be loading it already."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".tiny-", dir=folder.parent))
    try:
        pipeline = build_tiny_pipeline()
        pipeline.save_pretrained(staging / "model", safe_serialization=True)
        if folder.exists() and not (folder / "model_index.json").exists():
            shutil.rmtree(folder)  # not a whole model: replaced
        try:
            (staging / "model").rename(folder)
        except OSError:  # another process's whole copy got there first
            if not (folder / "model_index.json").exists():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folder


def cached_tiny_model(cache_dir: Path) -> Path:
    """The tiny model's folder under ``cache_dir``, built on first use."""
    folder = Path(cache_dir) / f"tiny-model-v{TINY_VERSION}-torch{torch.__version__}"
    if not (folder / "model_index.json").exists():
        make_tiny_model(folder)
    return folder
