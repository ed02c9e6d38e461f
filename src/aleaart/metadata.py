"""Text that travels with an image: PNG chunks, image keys and ERC-721 metadata (pure)."""

from __future__ import annotations

import functools
import hashlib
import io
import json
from dataclasses import dataclass
from typing import Any

from PIL import Image, PngImagePlugin

from aleaart.cid import file_cid
from aleaart.params import RenderParams, RenderSpec, describe
from aleaart.provenance.claim import XMP

PARAMETERS_KEY = "parameters"  # the chunk A1111's "PNG Info" and most galleries read
JSON_KEY = "aleaart"
XMP_KEY = "XML:com.adobe.xmp"  # the iTXt keyword XMP readers look for in a PNG


def render_key(spec: RenderSpec, recipe: dict[str, str], token_id: str | None) -> str:
    """The identity of one stored image: the same key, the same pixels (and chunks).

    The token id is part of it because it is written into the PNG's metadata.
    """
    return _render_key(spec, tuple(sorted(recipe.items())), token_id)


@functools.lru_cache(maxsize=4096)  # a repeated request's key is its store hit's main cost otherwise
def _render_key(spec: RenderSpec, recipe: tuple[tuple[str, str], ...], token_id: str | None) -> str:
    payload = {"spec": spec.canonical(), "recipe": dict(recipe), "tokenId": token_id}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def pixel_key(spec: RenderSpec, recipe: dict[str, str]) -> str:
    """The identity of an image's pixels: requests with the same pixel key are rendered once,
    whatever token id or body shape they came with."""
    payload = {"pixels": spec.pixels(), "recipe": recipe}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def derived_key(source: str, operation: str, settings: dict[str, Any], recipe: dict[str, str]) -> str:
    """The identity of an image made from a stored one: its source's key, the operation, its settings and
    the recipe (asking twice for the same gives the stored result)."""
    payload = {"source": source, "operation": operation, "recipe": recipe, **settings}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def image_filename(token_id: str | None, key: str, extension: str = "png") -> str:
    """The seed's naming, ``art_token_<tokenId>_<key prefix>.png`` (``manual`` without a token); animations
    are named the same way with ``.mp4`` and ``.webp``."""
    return f"art_token_{token_id if token_id is not None else 'manual'}_{key[:16]}.{extension}"


@dataclass(frozen=True)
class Derivation:
    """How an image derives from a stored one: its own key, the source's key, the operation and its settings."""

    key: str
    source: str
    operation: str  # variation, upscale, restyle …
    settings: dict[str, Any]


# A1111's names for a variation's settings, so its "PNG Info" reads them.
A1111_SETTINGS = {
    ("variation", "seed"): "Variation seed",
    ("variation", "strength"): "Variation seed strength",
    ("upscale", "scale"): "Hires upscale",
    ("upscale", "strength"): "Denoising strength",
    ("restyle", "strength"): "Denoising strength",
}


@dataclass(frozen=True)
class ImageInfo:
    """What is written into a PNG beside its pixels."""

    spec: RenderSpec
    model: str
    version: str
    token_id: str | None = None
    key: str | None = None
    pixels: str | None = None
    derivation: Derivation | None = None
    backend: str | None = None  # the recipe's, where it is not PyTorch

    def parameters_text(self) -> str:
        """A1111's layout: the prompt, then one line of ``Key: value`` pairs."""
        spec = self.spec
        pairs = {
            "Steps": spec.steps,
            "Sampler": spec.sampler,
            "CFG scale": spec.guidance_scale,
            "Seed": spec.seed,
            "Size": f"{spec.width}x{spec.height}",
            "Model": self.model,
            "Version": f"aleaart {self.version}",
        }
        if self.backend is not None:
            pairs["Backend"] = self.backend
        if spec.model is not None:
            pairs["Model hash"] = spec.model[:10]  # A1111's short sha256 of the checkpoint
        if spec.loras:
            pairs["LoRAs"] = " ".join(f"{lora.sha256[:10]}:{lora.weight:g}" for lora in spec.loras)
        if self.token_id is not None:
            pairs["Token"] = self.token_id
        if (derived := self.derivation) is not None:
            pairs["Operation"] = f"{derived.operation} of {derived.source[:16]}"
            for name, value in derived.settings.items():
                pairs[A1111_SETTINGS.get((derived.operation, name), name.capitalize())] = value
        return spec.prompt + "\n" + ", ".join(f"{k}: {v}" for k, v in pairs.items())

    def json_text(self) -> str:
        data: dict[str, Any] = {
            "tokenId": self.token_id,
            "key": self.key,
            "renderParams": self.spec.params.to_json() if self.spec.params else None,
            "spec": self.spec.canonical(),
            "model": self.model,
            "version": self.version,
        }
        if self.pixels is not None:
            data["pixels"] = self.pixels
        if self.backend is not None:
            data["backend"] = self.backend
        if (derived := self.derivation) is not None:  # store._reindex reads kind and source back
            data.update(kind=derived.operation, source=derived.source, operation=derived.settings)
        return json.dumps(data, sort_keys=True, separators=(",", ":"))


def encode_png(image: Image.Image, info: ImageInfo) -> bytes:
    """PNG bytes with the ``parameters`` and ``aleaart`` text chunks and XMP; same input, same bytes."""
    chunks = PngImagePlugin.PngInfo()
    chunks.add_text(PARAMETERS_KEY, info.parameters_text())
    chunks.add_text(JSON_KEY, info.json_text())
    chunks.add_itxt(XMP_KEY, XMP)  # IPTC's DigitalSourceType, for readers that do not know C2PA
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", pnginfo=chunks)
    return buffer.getvalue()


def read_png_text(data: bytes) -> dict[str, str]:
    """The text chunks of a PNG, for tests and for tools that inspect stored images."""
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        return dict(image.text)


@dataclass(frozen=True)
class FileIds:
    """A stored PNG's sha256 and IPFS CID, computed once where the bytes are at hand."""

    sha256: str
    cid: str

    @classmethod
    def of(cls, data: bytes) -> FileIds:
        return cls(sha256=hashlib.sha256(data).hexdigest(), cid=file_cid(data))


def token_metadata(
    *,
    token_id: str,
    params: RenderParams,
    spec: RenderSpec,
    image_url: str,
    model: str | None,
    stored: FileIds | None,
    external_url: str | None = None,
    animation_url: str | None = None,
    provenance: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """ERC-721 / OpenSea metadata for a token rendered from ``spec``; ``stored`` (once its image is) adds the
    sha256 and IPFS CID, ``animation_url`` (once an animation of it is stored) the video, and ``provenance`` how
    to verify the image (its pixel hash and recipe class)."""
    named = describe(params)
    number = "number"
    metadata: dict[str, Any] = {
        "name": f"AleaArt #{token_id}",
        "description": (
            f"{named['prompt']} in a {named['style']} style, rendered with Stable Diffusion from on-chain "
            "parameters drawn by Pyth Entropy (EntropyArtParamsV2)."
        ),
        "image": image_url,
        "attributes": [
            {"trait_type": "Prompt", "value": named["prompt"]},
            {"trait_type": "Style", "value": named["style"]},
            {"trait_type": "Sampler", "value": named["sampler"]},
            {"trait_type": "Aspect", "value": named["aspect"]},
            {"trait_type": "Palette", "value": named["palette"]},
            {"trait_type": "Steps", "value": params.steps, "display_type": number},
            {"trait_type": "CFG", "value": params.guidance_scale, "display_type": number},
            {"trait_type": "Latent Seed", "value": params.latent_seed, "display_type": number},
        ],
        "generation": {
            "prompt": spec.prompt,
            "model": model,
            "sampler": spec.sampler,
            "seed": spec.seed,
            "sha256": stored.sha256 if stored is not None else None,
        },
    }
    if stored is not None:
        metadata["image_ipfs"] = "ipfs://" + stored.cid
    if external_url:
        metadata["external_url"] = external_url
    if animation_url:
        metadata["animation_url"] = animation_url
    if provenance is not None:
        metadata["provenance"] = provenance
    return metadata
