"""The ``upscale`` kind: ``scale`` times larger, by Lanczos (pixels only) or hires (Lanczos, then img2img with the
loaded model's own components, which redraws detail at the new size)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, ClassVar, Literal, get_args

from aleaart.errors import InvalidParams
from aleaart.jobs.image_kind import (
    IMG2IMG_MAX_SIDE,
    FromStoredImage,
    ImageRoutes,
    SourceImage,
    check_side,
    check_some_steps,
    check_strength,
    img2img_steps,
)
from aleaart.jobs.kind import Artifact, CliForm, Offer, RunContext, option, register
from aleaart.jobs.render import Pixels
from aleaart.memory import RenderSize
from aleaart.params import RenderSpec
from aleaart.resample import lanczos, scaled_size

UpscaleMode = Literal["hires", "lanczos"]
MAX_SCALE: dict[str, int] = {"hires": 2, "lanczos": 4}
HIRES_STRENGTH = (0.1, 0.75)
DEFAULT_HIRES_STRENGTH = 0.35
MAX_LANCZOS_SIDE = 4096


@register
@dataclass(frozen=True)
class UpscaleRequest(FromStoredImage):
    """``scale`` times larger: ``lanczos`` (pixels only, up to 4x) or ``hires`` (2x: Lanczos, then img2img at
    ``strength`` with the same prompt, seed and sampler, which redraws detail at the new size)."""

    source: SourceImage
    scale: int = option(2, f"2 with hires; up to {MAX_SCALE['lanczos']} with lanczos", low=2, high=MAX_SCALE["lanczos"])
    mode: UpscaleMode = option("hires", "hires: Lanczos, then img2img with the same model, prompt, seed and sampler "
                               "(redraws detail); lanczos: pixels only, fast", choices=get_args(UpscaleMode))
    strength: float | None = option(None, f"hires' denoising strength (default {DEFAULT_HIRES_STRENGTH}); not for "
                                    "lanczos", low=HIRES_STRENGTH[0], high=HIRES_STRENGTH[1], integer=False)

    kind: ClassVar[str] = "upscale"
    operation: ClassVar[str] = "upscale"
    action: ClassVar[str] = "c2pa.resized"
    routes: ClassVar[ImageRoutes] = ImageRoutes("upscale", "Upscale")
    cli: ClassVar[CliForm] = CliForm("upscale", "enlarge a PNG aleaart made: hires (img2img) or lanczos")
    offer: ClassVar[Offer] = Offer(
        "Upscale 2x", "Upscale 2x", "Lanczos to twice the size, then redrawn (img2img, strength 0.35) with the same "
        "prompt, seed and sampler.", {"scale": 2, "mode": "hires"}, order=2)

    def __post_init__(self) -> None:
        if self.mode not in MAX_SCALE:
            raise InvalidParams(f"mode must be one of {', '.join(get_args(UpscaleMode))}, got {self.mode!r}")
        limit = MAX_SCALE[self.mode]
        if isinstance(self.scale, bool) or not isinstance(self.scale, int) or not 2 <= self.scale <= limit:
            allowed = "2 with mode hires (2..4 with lanczos)" if self.mode == "hires" else f"2..{limit} with lanczos"
            raise InvalidParams(f"scale must be {allowed}, got {self.scale!r}")
        spec = self.result_spec()
        if self.mode == "lanczos":
            if self.strength is not None:
                raise InvalidParams("strength applies to mode hires only (lanczos does not redraw)")
            check_side(spec.width, spec.height, MAX_LANCZOS_SIDE, "the upscaled image")
        else:
            object.__setattr__(self, "strength", check_strength(
                DEFAULT_HIRES_STRENGTH if self.strength is None else self.strength, *HIRES_STRENGTH))
            check_side(spec.width, spec.height, IMG2IMG_MAX_SIDE, "the hires image")
            check_some_steps(spec.steps, self.strength)
        super().__post_init__()

    def settings(self) -> dict[str, Any]:
        settings: dict[str, Any] = {"scale": self.scale, "mode": self.mode}
        if self.mode == "hires":
            settings["strength"] = self.strength
        return settings

    def result_spec(self) -> RenderSpec:
        width, height = scaled_size(self.source.spec.width, self.source.spec.height, self.scale)
        return replace(self.source.spec, width=width, height=height)

    def render_size(self) -> RenderSize | None:
        return super().render_size() if self.mode == "hires" else None  # lanczos renders nothing

    def total_steps(self) -> int:
        return img2img_steps(self.source.spec.steps, self.strength) if self.strength is not None else 1

    def render(self, context: RunContext) -> Pixels:
        source = self.source.pixels(context)
        if self.mode == "lanczos":  # no model: the resize itself happens in encode, off the engine's thread
            return Pixels(source, 0.0, final=True)
        assert self.strength is not None
        return self.transformed(lanczos(source, self.scale), self.strength, context)

    def encode(self, rendered: Pixels, context: RunContext) -> list[Artifact]:
        if self.mode == "lanczos":
            return [self.artifact(lanczos(rendered.image, self.scale), rendered.seconds, context)]
        return super().encode(rendered, context)
