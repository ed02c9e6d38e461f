"""Which weights stay in memory: each PyTorch part of the default model (UNet, VAE, text encoder) is mapped from a
safetensors file, so its pages are the file's, read in when used, and a part is released when a job is done with
it (the text encoder once a new prompt is encoded, the UNet after its last step, the VAE after the decode; on
OpenVINO, which holds its own copy, the UNet and VAE once converted), so the kernel drops its pages from the
process, and the next use reads them in again from the page cache.

Released means mapped afresh: the part's tensors are replaced by new ones over a new mapping of the same file, and
the old mapping, the only holder of the pages read in, goes with the old tensors. No page is ever written, so
nothing is lost by it; a LoRA job's adapters are off by then (``shelf.applied``).

The file is the model's own where it is a diffusers folder whose safetensors hold exactly the part's tensors in
the engine's dtype, else a copy written once to the cache, keyed by the weights' identity.
"""

from __future__ import annotations

import gc
import hashlib
import logging
import os
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from aleaart.engine.pages import trim_heap
from aleaart.files import write_atomically

log = logging.getLogger(__name__)

PARTS = ("unet", "vae", "text_encoder")
# Where a diffusers folder keeps each part's weights (the layout from_pretrained reads).
FOLDER_FILES = {
    "unet": ("unet/diffusion_pytorch_model.safetensors",),
    "vae": ("vae/diffusion_pytorch_model.safetensors",),
    "text_encoder": ("text_encoder/model.safetensors",),
}


@dataclass(frozen=True)
class MappedWeights:
    """The safetensors file each part of one pipeline is mapped from."""

    files: dict[str, Path]

    def release(self, pipeline: object, parts: Iterable[str]) -> None:
        """Drop the pages ``parts`` read in: each is mapped afresh from its file."""
        for part in parts:
            map_module(getattr(pipeline, part), self.files[part])
        gc.collect()  # the old tensors may sit in a cycle (a module's hooks); their mapping goes with them
        trim_heap()  # and what the part's last use freed (its activations) goes back before the next phase's


def map_weights(pipeline: object, source: Path | None, cache: Path) -> MappedWeights:
    """Every part of ``pipeline`` mapped from its file: ``source``'s (a diffusers folder) where it holds exactly
    the part's tensors, else a copy written to ``cache`` once."""
    files = {}
    for part in PARTS:
        module = getattr(pipeline, part)
        state = module.state_dict()
        file, mapped = _matching(state, _candidates(source, part)) or _copy(state, cache / f"{part}.safetensors")
        module.load_state_dict(mapped, strict=True, assign=True)
        files[part] = file
    gc.collect()
    return MappedWeights(files)


def cache_folder(cache_dir: Path, identity: str, dtype: torch.dtype) -> Path:
    """Where copies of one model's weights go, by its identity and dtype."""
    key = f"{identity}|{dtype}"
    return cache_dir / "weights" / hashlib.sha256(key.encode()).hexdigest()[:16]


def kept_digest(path: Path, compute: Callable[[], str]) -> str:
    """The weights' digest kept in ``path`` by an earlier start, or computed (reading every weight) and kept."""
    try:
        if len(kept := path.read_text().strip()) == 64:
            return kept
    except OSError:
        pass
    digest = compute()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(path, digest.encode())
    except OSError as error:
        log.warning("could not keep the weights' digest in %s: %s", path, error)
    return digest


def map_module(module: torch.nn.Module, file: Path) -> None:
    """``module``'s tensors replaced by ``file``'s, mapped (read when touched, never copied)."""
    module.load_state_dict(load_file(file), strict=True, assign=True)


def _candidates(source: Path | None, part: str) -> list[Path]:
    if source is None or not source.is_dir():
        return []
    return [source / name for name in FOLDER_FILES[part] if (source / name).is_file()]


def _matching(state: dict[str, torch.Tensor], candidates: list[Path]) -> tuple[Path, dict[str, torch.Tensor]] | None:
    """The first file whose tensors have exactly ``state``'s names, shapes and dtypes, and its tensors, mapped
    (mapping reads no weight)."""
    for path in candidates:
        mapped = load_file(path)
        if mapped.keys() == state.keys() and all(
                mapped[name].shape == tensor.shape and mapped[name].dtype == tensor.dtype
                for name, tensor in state.items()):
            return path, mapped
    return None


def _copy(state: dict[str, torch.Tensor], path: Path) -> tuple[Path, dict[str, torch.Tensor]]:
    """``state`` saved to ``path`` (whole or not at all), unless an earlier start saved it, and its tensors, mapped."""
    if path.is_file():
        try:
            if (found := _matching(state, [path])) is not None:
                return found
        except Exception as error:  # safetensors raises its own error types for a damaged file
            log.warning("the weights copy %s is damaged (%s); writing it again", path, error)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, staging = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)
    os.close(fd)
    try:
        save_file({name: tensor.contiguous() for name, tensor in state.items()}, staging)
        os.replace(staging, path)
    finally:
        Path(staging).unlink(missing_ok=True)
    log.info("saved a mappable copy of the %s weights to %s", path.stem, path)
    return path, load_file(path)
