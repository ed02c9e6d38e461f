"""The ``variations`` job kind: images of a token (or any spec) from its own starting noise blended with
the noise of neighbouring seeds, as A1111's "variation seed / variation strength" does."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from aleaart.jobs.kind import Artifact, CliForm, Offer, Recipe, RunContext, option, register
from aleaart.jobs.render import Pixels, Sealing, graded, image_artifact
from aleaart.jobs.spec_kind import SpecRequest, SpecRoutes
from aleaart.memory import RenderSize
from aleaart.metadata import Derivation

MAX_COUNT = 8


def variation_seeds(seed: int, count: int) -> list[int]:
    """The neighbours whose noise variation i blends in: seed + 1 … seed + count (uint32, wrapping)."""
    return [(seed + i) % 2**32 for i in range(1, count + 1)]


@register
@dataclass(frozen=True)
class VariationsRequest(SpecRequest):
    """``count`` images from the image's parameters, their starting noise blended (``strength``) with the noise
    of seed + 1 … seed + count; a job whose ``results`` are the images, each stored under its source's key."""

    count: int = option(4, f"how many images, 1..{MAX_COUNT}", low=1, high=MAX_COUNT)
    strength: float = option(0.3, "0: the image itself; 1: another seed's image. Variation i blends in the noise "
                             "of seed + i", low=0, high=1, integer=False)

    kind: ClassVar[str] = "variations"
    operation: ClassVar[str] = "variation"
    routes: ClassVar[SpecRoutes] = SpecRoutes("/variations", "variations", "Variations")
    cli: ClassVar[CliForm] = CliForm("variations", "images near a token's: its noise blended with seed + i")
    offer: ClassVar[Offer] = Offer(
        "Variations", "Variations", "The same parameters, their starting noise blended 30 % toward seeds +1 … +4.",
        {"count": 4, "strength": 0.3}, order=1)

    def total_steps(self) -> int:
        return self.spec.steps  # the engine reports its passes as one count of this many steps

    def render_size(self) -> RenderSize:
        return RenderSize(self.spec.width, self.spec.height, self.count)  # one UNet batch, for most samplers

    def file_names(self) -> list[str]:
        return [str(i) for i in range(self.count)]

    def derivations(self, key: str, recipe: Recipe) -> list[Derivation]:
        """Each image's key (the job's key and its place) and how it derives from its source."""
        source = self.source_key(recipe)
        return [Derivation(key=self.file_key(key, str(i)), source=source, operation=self.operation,
                           settings={"seed": seed, "strength": self.strength, "index": i})
                for i, seed in enumerate(variation_seeds(self.spec.seed, self.count))]

    def render(self, context: RunContext) -> list[Pixels]:
        rendered = context.engine.generate_variations(self.spec, variation_seeds(self.spec.seed, self.count),
                                                      self.strength, on_step=context.on_step, cancel=context.cancel)
        return [Pixels(r.image, r.seconds) for r in rendered]

    def encode(self, rendered: list[Pixels], context: RunContext) -> list[Artifact]:
        engine = context.engine
        return [image_artifact(graded(pixels.image, self.spec), self.spec, token_id=self.token, key=derivation.key,
                               model=engine.model_name, recipe=engine.recipe, seconds=pixels.seconds,
                               derivation=derivation, sealing=Sealing.of(context))
                for pixels, derivation in zip(rendered, self.derivations(context.key, engine.recipe), strict=True)]
