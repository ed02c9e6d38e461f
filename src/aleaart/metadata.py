"""Text that travels with an image: PNG chunks readable by A1111/ComfyUI-era tools (pure)."""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass
from typing import Any

from PIL import Image, PngImagePlugin

from aleaart.params import RenderSpec

PARAMETERS_KEY = "parameters"  # the chunk A1111's "PNG Info" and most galleries read
JSON_KEY = "aleaart"


def render_key(spec: RenderSpec, recipe: dict[str, str], token_id: str | None) -> str:
    """The identity of one stored image: same key, same PNG bytes.

    The token id is part of it because it is written into the PNG's metadata.
    """
    payload = {"spec": spec.canonical(), "recipe": recipe, "tokenId": token_id}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def image_filename(token_id: str | None, key: str) -> str:
    """The seed's naming, ``art_token_<tokenId>_<key prefix>.png`` (``manual`` without a token)."""
    return f"art_token_{token_id if token_id is not None else 'manual'}_{key[:16]}.png"


@dataclass(frozen=True)
class ImageInfo:
    """What is written into a PNG beside its pixels."""

    spec: RenderSpec
    model: str
    version: str
    token_id: str | None = None
    key: str | None = None

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
        if self.token_id is not None:
            pairs["Token"] = self.token_id
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
        return json.dumps(data, sort_keys=True, separators=(",", ":"))


def encode_png(image: Image.Image, info: ImageInfo) -> bytes:
    """PNG bytes with the ``parameters`` and ``aleaart`` text chunks; same input, same bytes."""
    chunks = PngImagePlugin.PngInfo()
    chunks.add_text(PARAMETERS_KEY, info.parameters_text())
    chunks.add_text(JSON_KEY, info.json_text())
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", pnginfo=chunks)
    return buffer.getvalue()


def read_png_text(data: bytes) -> dict[str, str]:
    """The text chunks of a PNG, for tests and for tools that inspect stored images."""
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        return dict(image.text)
