"""The ``restyle`` kind: img2img of a stored image with its prompt's style modifier replaced."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, replace
from typing import Any, ClassVar

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
from aleaart.jobs.kind import CliForm, Offer, RunContext, option, register
from aleaart.jobs.render import Pixels
from aleaart.params import STYLES, RenderSpec, restyle_prompt

RESTYLE_STRENGTH = (0.2, 0.8)
DEFAULT_RESTYLE_STRENGTH = 0.5


@register
@dataclass(frozen=True)
class RestyleRequest(FromStoredImage):
    """The image redrawn (img2img at ``strength``) with its prompt's style modifier replaced by style
    ``styleIndex``'s; same seed, sampler and steps."""

    source: SourceImage
    style_index: int = option(dataclasses.MISSING, f"one of the {len(STYLES)} style modifiers: "
                              + ", ".join(f"{i} {s.name}" for i, s in enumerate(STYLES)),
                              low=0, high=len(STYLES) - 1, name="styleIndex")
    strength: float = option(DEFAULT_RESTYLE_STRENGTH, "img2img denoising strength: how much is redrawn",
                             low=RESTYLE_STRENGTH[0], high=RESTYLE_STRENGTH[1], integer=False)

    kind: ClassVar[str] = "restyle"
    operation: ClassVar[str] = "restyle"
    routes: ClassVar[ImageRoutes] = ImageRoutes("restyle", "Restyle")
    cli: ClassVar[CliForm] = CliForm("restyle", f"redraw a PNG aleaart made in another of the {len(STYLES)} styles",
                                     flags={"styleIndex": "--style"})
    offer: ClassVar[Offer] = Offer(
        "Restyle", "Restyled: {pick}", "Redrawn (img2img, strength 0.5) with the prompt's style replaced; same seed "
        "and sampler.", {"strength": 0.5}, pick="styleIndex", pick_table="styles", pick_label="Restyle style",
        order=3)

    def __post_init__(self) -> None:
        object.__setattr__(self, "strength", check_strength(self.strength, *RESTYLE_STRENGTH))
        spec = self.result_spec()  # checks styleIndex
        check_side(spec.width, spec.height, IMG2IMG_MAX_SIDE, "the restyled image")
        check_some_steps(spec.steps, self.strength)
        super().__post_init__()

    def settings(self) -> dict[str, Any]:
        return {"styleIndex": self.style_index, "strength": self.strength}

    def result_spec(self) -> RenderSpec:
        return replace(self.source.spec, prompt=restyle_prompt(self.source.spec.prompt, self.style_index))

    def total_steps(self) -> int:
        return img2img_steps(self.source.spec.steps, self.strength)

    def render(self, context: RunContext) -> Pixels:
        return self.transformed(self.source.pixels(context), self.strength, context)
