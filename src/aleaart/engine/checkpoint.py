"""Write an SD 1.x diffusers pipeline as one original-layout (LDM) .safetensors checkpoint.

The inverse of what ``from_single_file`` reads: model.diffusion_model.* (UNet),
first_stage_model.* (VAE) and cond_stage_model.transformer.* (CLIP text encoder). It lets
the tiny model exercise the single-file loading path that real A1111-style checkpoints take.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch
from diffusers import StableDiffusionPipeline
from safetensors.torch import save_file

from aleaart.weights import Architecture

UNET_PREFIX = "model.diffusion_model."
VAE_PREFIX = "first_stage_model."
CLIP_PREFIX = "cond_stage_model.transformer."

UNET_FIXED = {
    "time_embedding.linear_1.": "time_embed.0.",
    "time_embedding.linear_2.": "time_embed.2.",
    "conv_in.": "input_blocks.0.0.",
    "conv_norm_out.": "out.0.",
    "conv_out.": "out.2.",
}
UNET_RESNET = {
    "norm1": "in_layers.0",
    "conv1": "in_layers.2",
    "norm2": "out_layers.0",
    "conv2": "out_layers.3",
    "time_emb_proj": "emb_layers.1",
    "conv_shortcut": "skip_connection",
}
VAE_FIXED = {"conv_norm_out.": "norm_out."}
VAE_RESNET = {"conv_shortcut": "nin_shortcut"}
VAE_ATTENTION = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out"}


def _rename_inner(rest: str, table: dict[str, str]) -> str:
    for new, old in table.items():
        if rest.startswith(new + "."):
            return old + rest[len(new):]
    return rest


def unet_key(key: str, *, layers_per_block: int, up_has_attention: list[bool]) -> str:
    """The LDM name of one diffusers UNet weight."""
    for new, old in UNET_FIXED.items():
        if key.startswith(new):
            return old + key[len(new):]
    stride = layers_per_block + 1
    if m := re.match(r"down_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.(.*)", key):
        i, kind, j, rest = int(m[1]), m[2], int(m[3]), m[4]
        slot, rest = (0, _rename_inner(rest, UNET_RESNET)) if kind == "resnets" else (1, rest)
        return f"input_blocks.{i * stride + j + 1}.{slot}.{rest}"
    if m := re.match(r"down_blocks\.(\d+)\.downsamplers\.0\.conv\.(.*)", key):
        return f"input_blocks.{(int(m[1]) + 1) * stride}.0.op.{m[2]}"
    if m := re.match(r"mid_block\.resnets\.(\d+)\.(.*)", key):
        return f"middle_block.{2 * int(m[1])}.{_rename_inner(m[2], UNET_RESNET)}"
    if m := re.match(r"mid_block\.attentions\.0\.(.*)", key):
        return f"middle_block.1.{m[1]}"
    if m := re.match(r"up_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.(.*)", key):
        i, kind, j, rest = int(m[1]), m[2], int(m[3]), m[4]
        slot, rest = (0, _rename_inner(rest, UNET_RESNET)) if kind == "resnets" else (1, rest)
        return f"output_blocks.{i * stride + j}.{slot}.{rest}"
    if m := re.match(r"up_blocks\.(\d+)\.upsamplers\.0\.(.*)", key):
        i = int(m[1])
        return f"output_blocks.{i * stride + layers_per_block}.{2 if up_has_attention[i] else 1}.{m[2]}"
    raise ValueError(f"no LDM name for UNet weight {key!r}")


def vae_key(key: str, *, up_blocks: int) -> str:
    """The LDM name of one diffusers VAE weight."""
    for new, old in VAE_FIXED.items():
        key = key.replace(new, old)
    if m := re.match(r"(encoder|decoder)\.mid_block\.resnets\.(\d+)\.(.*)", key):
        return f"{m[1]}.mid.block_{int(m[2]) + 1}.{_rename_inner(m[3], VAE_RESNET)}"
    if m := re.match(r"(encoder|decoder)\.mid_block\.attentions\.0\.(.*)", key):
        return f"{m[1]}.mid.attn_1.{_rename_inner(m[2], VAE_ATTENTION)}"
    if m := re.match(r"encoder\.down_blocks\.(\d+)\.resnets\.(\d+)\.(.*)", key):
        return f"encoder.down.{m[1]}.block.{m[2]}.{_rename_inner(m[3], VAE_RESNET)}"
    if m := re.match(r"encoder\.down_blocks\.(\d+)\.downsamplers\.0\.(.*)", key):
        return f"encoder.down.{m[1]}.downsample.{m[2]}"
    if m := re.match(r"decoder\.up_blocks\.(\d+)\.resnets\.(\d+)\.(.*)", key):
        return f"decoder.up.{up_blocks - 1 - int(m[1])}.block.{m[2]}.{_rename_inner(m[3], VAE_RESNET)}"
    if m := re.match(r"decoder\.up_blocks\.(\d+)\.upsamplers\.0\.(.*)", key):
        return f"decoder.up.{up_blocks - 1 - int(m[1])}.upsample.{m[2]}"
    return key  # conv_in, conv_out, quant_conv, post_quant_conv keep their names


def _vae_tensor(ldm_key: str, tensor: torch.Tensor) -> torch.Tensor:
    # The LDM VAE's mid attention uses 1x1 convolutions where diffusers uses linear layers.
    if ".mid.attn_1." in ldm_key and ldm_key.endswith(".weight") and tensor.ndim == 2:
        return tensor[:, :, None, None]
    return tensor


def ldm_tensors(pipeline: StableDiffusionPipeline) -> dict[str, torch.Tensor]:
    """The pipeline's weights under their LDM names (views of the loaded tensors: nothing is copied)."""
    unet_config = pipeline.unet.config
    up_has_attention = ["CrossAttn" in name for name in unet_config.up_block_types]
    state: dict[str, torch.Tensor] = {}
    for key, tensor in pipeline.unet.state_dict().items():
        ldm = unet_key(key, layers_per_block=unet_config.layers_per_block, up_has_attention=up_has_attention)
        state[UNET_PREFIX + ldm] = tensor
    up_blocks = len(pipeline.vae.config.up_block_types)
    for key, tensor in pipeline.vae.state_dict().items():
        ldm = vae_key(key, up_blocks=up_blocks)
        state[VAE_PREFIX + ldm] = _vae_tensor(ldm, tensor)
    for key, tensor in pipeline.text_encoder.state_dict().items():
        # Original checkpoints nest the CLIP weights under text_model.; transformers 5 drops it.
        state[CLIP_PREFIX + (key if key.startswith("text_model.") else "text_model." + key)] = tensor
    return state


def ldm_state_dict(pipeline: StableDiffusionPipeline) -> dict[str, torch.Tensor]:
    return {key: tensor.detach().contiguous().cpu() for key, tensor in ldm_tensors(pipeline).items()}


def architecture(pipeline: StableDiffusionPipeline, name: str) -> Architecture:
    """What uploads are checked against: the single-file layout of ``pipeline`` and the weights a LoRA can adapt
    (the text encoder's under both of transformers' names, with and without ``text_model.``)."""
    modules: dict[str, tuple[int, int]] = {}
    for component in ("unet", "text_encoder"):
        for key, tensor in getattr(pipeline, component).state_dict().items():
            if key.endswith(".weight") and tensor.ndim == 2:
                module = key.removesuffix(".weight")
                modules[f"{component}.{module}"] = (tensor.shape[0], tensor.shape[1])
                if component == "text_encoder":
                    modules[f"{component}.text_model.{module.removeprefix('text_model.')}"] = modules[
                        f"{component}.{module}"]
    layout = {key: tuple(tensor.shape) for key, tensor in ldm_tensors(pipeline).items()}
    return Architecture(name=name, checkpoint=layout, modules=modules,
                        context_dim=int(pipeline.unet.config.cross_attention_dim))


def export_single_file(pipeline: StableDiffusionPipeline, path: Path) -> Path:
    """Save ``pipeline``'s weights as one LDM-layout .safetensors file at ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(ldm_state_dict(pipeline), str(path))
    return path
