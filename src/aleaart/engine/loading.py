"""Where the weights come from: the device, a local model's identity, and loading a pipeline with errors a user
can act on."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import torch
from diffusers import StableDiffusionPipeline

from aleaart.config import Settings
from aleaart.engine.source import ModelSource

MODEL_HINT = (
    "set ALEAART_MODEL=tiny to run without weights, or ALEAART_MODEL to a local diffusers folder "
    "or a .safetensors/.ckpt file (with ALEAART_MODEL_CONFIG offline)"
)


def cuda_available() -> bool:
    return torch.cuda.is_available()


def pick_device(requested: str | None) -> torch.device:
    if requested:
        return torch.device(requested)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def model_fingerprint(source: ModelSource) -> str:
    """A cheap identity of a local model's files (names, sizes, mtimes): new weights, new images."""
    root = Path(source.location)
    if not root.exists():
        return "hub"  # a hub id names its weights by itself
    digest = hashlib.sha256()
    paths = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
    for path in paths:
        stat = path.stat()
        digest.update(f"{path.relative_to(root.parent)}:{stat.st_size}:{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


def load_pipeline(source: ModelSource, settings: Settings, dtype: torch.dtype) -> StableDiffusionPipeline:
    common: dict[str, Any] = dict(dtype=dtype, safety_checker=None, requires_safety_checker=False)
    if source.kind == "single_file":
        config = settings.model_config_dir
        return StableDiffusionPipeline.from_single_file(
            source.location,
            config=str(config) if config else None,
            local_files_only=config is not None,
            **common,
        )
    if source.kind == "hub":
        try:  # a copy already in the HF cache loads without touching the network
            return StableDiffusionPipeline.from_pretrained(source.location, local_files_only=True, **common)
        except OSError:
            return StableDiffusionPipeline.from_pretrained(source.location, **common)
    return StableDiffusionPipeline.from_pretrained(source.location, local_files_only=True, **common)


def load_failure(source: ModelSource, error: BaseException) -> str:
    """Why loading failed, in one line a user can act on."""
    if source.kind == "hub" and isinstance(error, OSError):
        return "it is not in the local Hugging Face cache and could not be downloaded (offline?)"
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0][:240] if lines else 'no details'}"
