"""The ``variations`` job kind: images of a token (or any spec) from its own starting noise blended with
the noise of neighbouring seeds, as A1111's "variation seed / variation strength" does."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, ClassVar

from aleaart.errors import InvalidParams
from aleaart.jobs.kind import Artifact, JobRequest, Recipe, RunContext, register
from aleaart.jobs.render import Pixels, RenderRequest, graded, image_artifact
from aleaart.metadata import Derivation, derived_key, render_key
from aleaart.params import RenderSpec, check_token_id
from aleaart.store import FindImage, StoredImage

MAX_COUNT = 8
OPERATION = "variation"


def image_key(job_key: str, index: int) -> str:
    """The key of the job's ``index``-th image: derived from the job's key, which is derived from the source
    key, the operation, its settings and the recipe."""
    return hashlib.sha256(f"{job_key}:{index}".encode()).hexdigest()


def variation_seeds(seed: int, count: int) -> list[int]:
    """The neighbours whose noise variation i blends in: seed + 1 … seed + count (uint32, wrapping)."""
    return [(seed + i) % 2**32 for i in range(1, count + 1)]


@register
@dataclass(frozen=True)
class VariationsRequest(JobRequest):
    """``count`` (1-8) images near ``spec``'s; ``strength`` 0 gives its own image, 1 another seed's."""

    spec: RenderSpec
    token: str | None
    count: int
    strength: float

    kind: ClassVar[str] = "variations"

    def __post_init__(self) -> None:
        if not 1 <= self.count <= MAX_COUNT:
            raise InvalidParams(f"count must be 1..{MAX_COUNT}, got {self.count}")
        if not 0 <= self.strength <= 1:
            raise InvalidParams(f"strength must be 0..1, got {self.strength}")

    @classmethod
    def of(cls, image: RenderRequest, count: int, strength: float) -> VariationsRequest:
        """Variations of the image ``image`` asks for."""
        return cls(image.spec, image.token, count, strength)

    @property
    def token_id(self) -> str | None:
        return self.token

    def to_json(self) -> dict[str, Any]:
        return {"spec": self.spec.canonical(), "tokenId": self.token, "count": self.count, "strength": self.strength}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> VariationsRequest:
        return cls(spec=RenderSpec.from_canonical(data["spec"]), token=check_token_id(data.get("tokenId")),
                   count=data["count"], strength=data["strength"])

    def source_key(self, recipe: Recipe) -> str:
        """The key of the image these are variations of."""
        return render_key(self.spec, recipe, self.token)

    def key(self, recipe: Recipe) -> str:
        return derived_key(self.source_key(recipe), OPERATION, {"count": self.count, "strength": self.strength},
                           recipe)

    def total_steps(self) -> int:
        return self.spec.steps  # the engine reports its passes as one count of this many steps

    def derivations(self, key: str, recipe: Recipe) -> list[Derivation]:
        """Each image's key (the job's key and its place) and how it derives from its source."""
        source = self.source_key(recipe)
        return [Derivation(key=image_key(key, i), source=source, operation=OPERATION,
                           settings={"seed": seed, "strength": self.strength, "index": i})
                for i, seed in enumerate(variation_seeds(self.spec.seed, self.count))]

    def stored(self, key: str, find: FindImage) -> tuple[StoredImage, ...] | None:
        images = [find(image_key(key, i)) for i in range(self.count)]
        return tuple(images) if all(image is not None for image in images) else None  # type: ignore[arg-type]

    def render(self, context: RunContext) -> list[Pixels]:
        rendered = context.engine.generate_variations(self.spec, variation_seeds(self.spec.seed, self.count),
                                                      self.strength, on_step=context.on_step, cancel=context.cancel)
        return [Pixels(r.image, r.seconds) for r in rendered]

    def encode(self, rendered: list[Pixels], context: RunContext) -> list[Artifact]:
        engine = context.engine
        return [image_artifact(graded(pixels.image, self.spec), self.spec, token_id=self.token, key=derivation.key,
                               model=engine.model_name, recipe=engine.recipe, seconds=pixels.seconds,
                               derivation=derivation)
                for pixels, derivation in zip(rendered, self.derivations(context.key, engine.recipe), strict=True)]
