"""What an uploaded weights file is, from its safetensors header alone (pure: no torch, nothing loaded): a whole
SD 1.x checkpoint in the original (LDM) layout that A1111 and Civitai distribute, or a LoRA; and whether its
tensors' names and shapes fit the architecture of the model the service runs."""

from __future__ import annotations

import re
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

from safetensors import SafetensorError, safe_open

from aleaart.errors import InvalidModel

T = TypeVar("T")

ModelKind = Literal["checkpoint", "lora"]
Layout = Mapping[str, tuple[int, ...]]
"""Tensor names and their shapes."""

PICKLE_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin", ".pkl", ".pickle")
PICKLE_WARNING = ("pickle-based weights (.ckpt/.pt/.bin) are refused: loading one can run any code it carries; "
                  "convert it to .safetensors")
PICKLE_MAGIC = (b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05")  # pickle protocols 2-5
ZIP_MAGIC = b"PK\x03\x04"  # torch.save's zip (a pickle inside), or any other zip archive

# Names of LoRA tensors: diffusers/PEFT (…to_q.lora_A.weight) and kohya/A1111 (lora_unet_…to_q.lora_down.weight).
PEFT_LORA = re.compile(r"(?P<module>.+)\.lora_(?P<half>A|B)\.weight")
KOHYA_LORA = re.compile(r"(?P<module>lora_(?:unet|te\d?)_.+)\.(?:lora_(?P<half>down|up)\.weight|alpha)")
LORA_COMPONENTS = ("unet.", "text_encoder.")


@dataclass(frozen=True)
class Architecture:
    """What the service's model is, for checking uploads against it: its name, every tensor of its
    single-file checkpoint, and the (out, in) features of each weight a LoRA can adapt, by diffusers name
    (``unet.…to_q``, ``text_encoder.…q_proj``)."""

    name: str
    checkpoint: Layout
    modules: Mapping[str, tuple[int, int]]
    context_dim: int  # the UNet's cross-attention width: what tells SD 1.x (768), 2.x (1024) and XL (2048) apart


@dataclass(frozen=True)
class ModelFacts:
    kind: ModelKind
    base: str
    tensors: int


def refuse_pickle_name(filename: str) -> None:
    if filename.lower().endswith(PICKLE_SUFFIXES):
        raise InvalidModel(f"{filename!r}: {PICKLE_WARNING}")


def read_layout(path: Path) -> Layout:
    """The tensors a .safetensors file holds (its header), or InvalidModel saying what it is instead."""
    with open(path, "rb") as handle:
        start = handle.read(8)
    if start.startswith(PICKLE_MAGIC):
        raise InvalidModel(f"the file is a pickle, not safetensors: {PICKLE_WARNING}")
    if start.startswith(ZIP_MAGIC):
        raise InvalidModel(zip_said(path))
    return read_header(path, lambda tensor: tuple(tensor.get_shape()))


def zip_said(path: Path) -> str:
    """What a zip upload is: torch.save's format (a pickle inside), or some other archive."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError):
        return "the file starts like a zip archive but is not one, and is not safetensors"
    if any(name.endswith("data.pkl") for name in names):
        return f"the file is a PyTorch zip (torch.save: a pickle inside), not safetensors: {PICKLE_WARNING}"
    return (f"the file is a zip archive ({len(names)} entries), not safetensors: upload the .safetensors file "
            "itself, not an archive of it")


def read_dtypes(path: Path) -> dict[str, str]:
    """Each tensor's stored type (safetensors' names: F16, BF16, F32, I8 ...), from the header."""
    return read_header(path, lambda tensor: tensor.get_dtype())


def read_header(path: Path, fact: Callable[[Any], T]) -> dict[str, T]:
    """``fact`` of each tensor's header entry (a safetensors slice: no weights are read), by tensor name."""
    try:
        with safe_open(str(path), framework="numpy") as weights:
            return {name: fact(weights.get_slice(name)) for name in weights.keys()}  # noqa: SIM118
    except (SafetensorError, OSError, ValueError) as error:
        raise InvalidModel(f"the file is not a readable .safetensors file ({error})") from None


FLOAT_DTYPES = {"F16", "BF16", "F32", "F64"}


def what_it_is(layout: Layout) -> str:
    """The family its tensor names say it belongs to, for messages."""
    names = list(layout)
    if any(n.startswith("conditioner.embedders.") for n in names):
        return "an SDXL checkpoint"
    if any(n.startswith("cond_stage_model.model.") for n in names):
        return "an SD 2.x checkpoint"
    if names and all(PEFT_LORA.fullmatch(n) or KOHYA_LORA.fullmatch(n) for n in names):
        return "a LoRA"
    if any(n.startswith("model.diffusion_model.") for n in names):
        return "an SD 1.x checkpoint"
    if any(n.startswith(("down_blocks.", "unet.", "text_model.", "encoder.")) for n in names):
        return "diffusers-layout component weights, not a single-file checkpoint"
    shown = ", ".join(names[:3]) or "no tensors at all"
    return f"no Stable Diffusion tensors ({shown})"


def classify(layout: Layout, architecture: Architecture, claimed: ModelKind | None = None,
             dtypes: Mapping[str, str] | None = None) -> ModelFacts:
    """A checkpoint or a LoRA for ``architecture``, or InvalidModel naming what the file is and what does not fit."""
    found = what_it_is(layout)
    kind: ModelKind | None = "lora" if found == "a LoRA" else "checkpoint" if found == "an SD 1.x checkpoint" else None
    if kind is None:
        raise InvalidModel(f"the file holds {found}; only SD 1.x checkpoints (original layout) and LoRAs for "
                           f"{architecture.name} are accepted")
    if claimed is not None and claimed != kind:
        raise InvalidModel(f"the file was sent as a {claimed}, but it holds {found}")
    if kind == "checkpoint":
        check_checkpoint(layout, architecture)
    else:
        check_lora(layout, architecture, dtypes)
    return ModelFacts(kind=kind, base=architecture.name, tensors=len(layout))


def check_checkpoint(layout: Layout, architecture: Architecture) -> None:
    missing = [name for name in architecture.checkpoint if name not in layout]
    if missing:
        raise InvalidModel(f"the checkpoint lacks {len(missing)} of the {len(architecture.checkpoint)} tensors of "
                           f"{architecture.name}, e.g. {missing[0]}")
    for name, shape in architecture.checkpoint.items():
        if layout[name] != shape:
            raise InvalidModel(f"the checkpoint is another architecture than {architecture.name}: {name} is "
                               f"{list(layout[name])} where {architecture.name} has {list(shape)}")


def check_lora(layout: Layout, architecture: Architecture, dtypes: Mapping[str, str] | None = None) -> None:
    """What loading a LoRA needs, checked before it is kept (so no render of it fails later): weights stored as
    floats, each adapted weight with both halves of one rank above 0, a scalar alpha where there is one, and
    features that fit the base's weight of that name (kohya's names cannot be mapped back without diffusers: for
    those, the cross-attention width is checked)."""
    for name, dtype in (dtypes or {}).items():
        if dtype not in FLOAT_DTYPES:
            raise InvalidModel(f"LoRA tensor {name} is stored as {dtype}: quantized LoRAs cannot be loaded; "
                               "upload it in float16, bfloat16 or float32")
    halves: dict[str, dict[str, tuple[int, ...]]] = {}
    for name, shape in layout.items():
        matched = PEFT_LORA.fullmatch(name) or KOHYA_LORA.fullmatch(name)
        if matched is not None and matched["half"] is None and shape not in ((), (1,)):
            raise InvalidModel(f"the LoRA's {name} is a tensor of shape {list(shape)}; an alpha is one number")
        if matched is not None and matched["half"] is not None:
            halves.setdefault(matched["module"], {})[matched["half"].lower()] = shape
    for module, parts in halves.items():
        down = parts.get("a", parts.get("down"))
        up = parts.get("b", parts.get("up"))
        if down is None or up is None or len(down) < 2 or len(up) < 2 or down[0] != up[1]:
            raise InvalidModel(f"LoRA weight {module} is not a pair of low-rank matrices of one rank "
                               f"(down {down}, up {up})")
        if down[0] == 0:
            raise InvalidModel(f"LoRA weight {module} has rank 0: it adapts nothing and cannot be loaded")
        if module.startswith(LORA_COMPONENTS):
            fit_peft_module(module, (up[0], down[1]), architecture)
        elif re.search(r"attn2_to_[kv]$", module) and down[1] != architecture.context_dim:
            raise InvalidModel(f"the LoRA is for a model whose cross-attention is {down[1]} wide ({module}); "
                               f"{architecture.name}'s is {architecture.context_dim}")


def fit_peft_module(module: str, features: tuple[int, int], architecture: Architecture) -> None:
    base = architecture.modules.get(module)
    if base is None:
        raise InvalidModel(f"the LoRA adapts {module}, which {architecture.name} does not have")
    if base != features:
        raise InvalidModel(f"the LoRA's {module} maps {features[1]} → {features[0]} features; "
                           f"{architecture.name}'s maps {base[1]} → {base[0]}")


def display_name(filename: str | None, fallback: str) -> str:
    """A name to list an upload under: the file's own name without any folder (``../`` or ``C:\\``), printable,
    at most 100 characters; never used as a path."""
    name = re.split(r"[\\/]", filename or "")[-1]
    name = "".join(c for c in name if c.isprintable()).strip()[:100]
    return name or fallback
