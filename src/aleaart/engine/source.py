"""What ALEAART_MODEL names: the tiny model, a local folder or file, or a hub id (pure)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from aleaart.errors import ModelUnavailable

SINGLE_FILE_SUFFIXES = (".safetensors", ".ckpt")
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")

SourceKind = Literal["tiny", "folder", "single_file", "hub"]


@dataclass(frozen=True)
class ModelSource:
    kind: SourceKind
    location: str
    name: str


def resolve_source(model: str) -> ModelSource:
    """Classify ``model``; a local path that does not exist is an error, not a hub lookup."""
    if model == "tiny":
        return ModelSource("tiny", "tiny", name="aleaart-tiny")
    path = Path(model).expanduser()
    if path.exists():
        if path.is_file() and path.suffix.lower() in SINGLE_FILE_SUFFIXES:
            return ModelSource("single_file", str(path.resolve()), name=path.stem)
        if path.is_dir():
            return ModelSource("folder", str(path.resolve()), name=path.resolve().name)
        raise ModelUnavailable(
            f"model {model!r} is neither a diffusers folder nor a {'/'.join(SINGLE_FILE_SUFFIXES)} file"
        )
    if HUB_ID.match(model) and not model.startswith((".", "/", "~")):
        return ModelSource("hub", model, name=model)
    raise ModelUnavailable(
        f"model {model!r} not found: set ALEAART_MODEL to a local folder, a .safetensors file, "
        "a hub id like 'stable-diffusion-v1-5/stable-diffusion-v1-5', or ALEAART_MODEL=tiny to run without weights"
    )
