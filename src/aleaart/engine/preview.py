"""Previews in the engine: the predicted clean latents (x0) of the step just taken, read from the scheduler's own
output without touching its state or its random streams, decoded to a small picture every N steps.

Decoders: ``linear`` (the 4x3 latent-to-RGB factors for SD 1.x latents that ComfyUI and A1111 use: no model, no
measurable cost, at the latent's resolution) or ``taesd`` (diffusers' AutoencoderTiny, a TAESD decoder from a
folder or the hub: 8x the latent's resolution). A TAESD that cannot be loaded is said at the start, and the
engine previews with the linear factors instead.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Protocol

import torch
from PIL import Image

from aleaart.previews import PreviewSink

log = logging.getLogger(__name__)

# SD 1.x latents to RGB in -1..1 (ComfyUI's latent_formats.SD15.latent_rgb_factors; no bias).
SD15_RGB = torch.tensor([[0.3512, 0.2297, 0.3227],
                         [0.3250, 0.4974, 0.2350],
                         [-0.2829, 0.1762, 0.2721],
                         [-0.2120, -0.2616, -0.7177]])

class Decoder(Protocol):
    name: str

    def decode(self, latents: torch.Tensor) -> list[Image.Image]:
        """(batch, 4, h, w) latents to RGB pictures."""
        ...


def to_pictures(rgb: torch.Tensor) -> list[Image.Image]:
    """(batch, 3, h, w) in -1..1 to PIL images."""
    pixels = ((rgb.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    return [Image.fromarray(frame) for frame in pixels]


class LinearDecoder:
    name = "linear"

    def decode(self, latents: torch.Tensor) -> list[Image.Image]:
        factors = SD15_RGB.to(latents.device, torch.float32)
        rgb = torch.einsum("bchw,cr->brhw", latents.float(), factors)
        return to_pictures(rgb)


class TaesdDecoder:
    name = "taesd"

    def __init__(self, source: str, device: torch.device) -> None:
        from diffusers import AutoencoderTiny

        self.model = AutoencoderTiny.from_pretrained(source).to(device).eval()
        if int(self.model.config.latent_channels) != 4:
            raise ValueError(f"it decodes {self.model.config.latent_channels}-channel latents, not SD 1.x's 4")
        # A preview's pixels need no precision: on a CPU, channels-last convolutions (a third faster here) and bf16
        # where the CPU has it natively (twice as fast again); the image itself is untouched by either.
        self.cpu = device.type == "cpu"
        if self.cpu:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.bf16 = self.cpu and native_bf16()

    def decode(self, latents: torch.Tensor) -> list[Image.Image]:
        latents = latents.to(self.model.dtype)
        if self.cpu:
            latents = latents.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16):
            rgb = self.model.decode(latents).sample
        return to_pictures(rgb.float())


def native_bf16() -> bool:
    try:
        from aleaart.engine.openvino import has_native_bf16
    except ImportError:  # OpenVINO not installed: no way to ask, so no bf16
        return False
    return has_native_bf16()


def load_decoder(kind: str, taesd: str | None, device: torch.device) -> Decoder:
    """The decoder the settings name; a TAESD that cannot be loaded is said, and the linear one used."""
    if kind != "taesd":
        return LinearDecoder()
    if not taesd:
        log.warning("ALEAART_PREVIEW_DECODER=taesd without ALEAART_PREVIEW_TAESD (a TAESD decoder's folder or hub "
                    "id): previews use the linear factors")
        return LinearDecoder()
    try:
        return TaesdDecoder(taesd, device)
    except Exception as error:  # a missing path, another model's weights, a hub id offline: all "not a TAESD"
        log.warning("ALEAART_PREVIEW_TAESD=%s is not a TAESD decoder that loads (%s): previews use the linear "
                    "factors", taesd, str(error).splitlines()[0][:200])
        return LinearDecoder()


def predicted_x0(scheduler: Any, output: Any) -> torch.Tensor | None:
    """The clean latents a scheduler's step predicted: its output's pred_original_sample (Euler, LMS, DPM++ SDE),
    or the converted model output DPM++ 2M keeps (its data prediction)."""
    if isinstance(output, tuple):
        if len(output) > 1 and isinstance(output[1], torch.Tensor):
            return output[1]
    elif getattr(output, "pred_original_sample", None) is not None:
        return output.pred_original_sample
    kept = getattr(scheduler, "model_outputs", None)
    return kept[-1] if kept and isinstance(kept[-1], torch.Tensor) else None


class Previews:
    """Every ``every`` steps (0: never), the step's x0 decoded and handed to the sink the running job set."""

    def __init__(self, every: int = 0, decoder: Decoder | None = None) -> None:
        self.every = every
        self.decoder = decoder or LinearDecoder()
        self._local = threading.local()  # the job on this thread: its sink and the x0 of its last step

    @contextmanager
    def watching(self, sink: PreviewSink | None) -> Iterator[None]:
        """Previews of the renders run on this thread inside the block go to ``sink``."""
        self._local.sink, self._local.x0 = sink, None
        try:
            yield
        finally:
            self._local.sink, self._local.x0 = None, None

    @property
    def active(self) -> bool:
        return self.every > 0 and getattr(self._local, "sink", None) is not None

    def tap(self, scheduler: Any) -> None:
        """Read each step's x0 as the step returns it: the scheduler computes exactly what it would anyway."""
        if not self.active:
            return
        step, local = scheduler.step, self._local

        # wraps: the pipeline reads step's signature to decide whether to pass it the generator (ancestral and SDE
        # noise); a bare (*args, **kwargs) would make it draw from the global random stream instead
        @functools.wraps(step)
        def observed(*args: Any, **kwargs: Any) -> Any:
            output = step(*args, **kwargs)
            local.x0 = predicted_x0(scheduler, output)
            return output

        scheduler.step = observed

    def after_step(self, step: int, steps: int) -> None:
        local = self._local
        if not self.active or step % self.every or step >= steps or local.x0 is None:  # the last: the image
            return
        latents = local.x0.detach()
        if latents.ndim == 5:  # an animation's (batch, channels, frames, h, w): its first frame now
            latents = latents[:, :, 0]
        local.sink(step, steps, self.decoder.decode(latents))
