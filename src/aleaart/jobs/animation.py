"""The ``animation`` job kind: a looping video of a token's world, its frames rendered by the same pipeline
with the token's prompt, sampler and steps while the starting noise walks through neighbour seeds and back
(or the prompt morphs to another style and back), stored as an H.264 MP4 and an animated WebP."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from PIL import Image

from aleaart.errors import InvalidParams
from aleaart.jobs.kind import Artifact, CliForm, Offer, RunContext, option, register
from aleaart.jobs.render import Sealing, graded, stored_artifact
from aleaart.jobs.spec_kind import SpecRequest, SpecRoutes
from aleaart.motion import (
    DEFAULT_FPS,
    DEFAULT_FRAMES,
    DEFAULT_NEIGHBOURS,
    FPS,
    FRAMES,
    NEIGHBOURS,
    Frame,
    noise_walk,
    style_morph,
)
from aleaart.params import STYLES, restyle_prompt
from aleaart.provenance.claim import pixel_hash

OPERATION = "animation"
FORMATS = ("mp4", "webp")  # the job's files, in this order


@register
@dataclass(frozen=True)
class AnimationRequest(SpecRequest):
    """A looping video of the image: frame 0 is the image, and the starting noise walks through ``neighbours``
    neighbour seeds and back (or the prompt morphs to ``morphStyle`` and back). A job whose ``results`` are the
    MP4 (H.264) and an animated WebP."""

    frames: int = option(DEFAULT_FRAMES, "frames in the loop", low=FRAMES[0], high=FRAMES[1])
    fps: int = option(DEFAULT_FPS, "frames per second", low=FPS[0], high=FPS[1])
    neighbours: int = option(DEFAULT_NEIGHBOURS, "the starting noise walks through seed + 1 … seed + neighbours and "
                             "back", low=NEIGHBOURS[0], high=NEIGHBOURS[1])
    morph_style: int | None = option(None, "instead of walking the noise, morph the prompt to this style and back: "
                                     + ", ".join(f"{i} {s.name}" for i, s in enumerate(STYLES)),
                                     low=0, high=len(STYLES) - 1, name="morphStyle")

    kind: ClassVar[str] = "animation"
    operation: ClassVar[str] = OPERATION
    routes: ClassVar[SpecRoutes] = SpecRoutes("/animations", "animation", "Animation")
    cli: ClassVar[CliForm] = CliForm("animation", "a looping MP4 and WebP of a token's world (its noise walked, or "
                                     "its prompt morphed)")
    offer: ClassVar[Offer] = Offer(
        "Animate", "Animation", "24 frames at 12 fps: the starting noise walks through three neighbour seeds and back, "
        "so the loop begins and ends on this image.", {"frames": 24, "fps": 12}, shows="video", order=4)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.morph_style is not None and self.morph_prompt() == self.spec.prompt:
            raise InvalidParams(f"morphStyle {self.morph_style} is the image's own style; pick another")

    def settings(self) -> dict[str, Any]:
        settings = {"frames": self.frames, "fps": self.fps}
        if self.morph_style is None:
            return {**settings, "neighbours": self.neighbours}
        return {**settings, "morphStyle": self.morph_style}

    def total_steps(self) -> int:
        return self.frames * self.spec.steps

    def morph_prompt(self) -> str | None:
        return restyle_prompt(self.spec.prompt, self.morph_style) if self.morph_style is not None else None

    def path(self) -> list[Frame]:
        if self.morph_style is not None:
            return style_morph(self.spec.seed, self.frames)
        return noise_walk(self.spec.seed, self.frames, self.neighbours)

    def file_names(self) -> list[str]:
        return list(FORMATS)

    def render(self, context: RunContext) -> tuple[list[Image.Image], float]:
        rendered = context.engine.animate(self.spec, self.path(), morph_prompt=self.morph_prompt(),
                                          on_step=context.on_step, cancel=context.cancel)
        return [r.image for r in rendered], sum(r.seconds for r in rendered)

    def encode(self, rendered: tuple[list[Image.Image], float], context: RunContext) -> list[Artifact]:
        from aleaart.video import encode_mp4, encode_webp, even_size  # PyAV, only where animations are encoded

        images, seconds = rendered
        frames = [graded(image, self.spec) for image in images]
        engine = context.engine
        source = self.source_key(engine.recipe)
        about = {"key": context.key, "tokenId": self.token, "spec": self.spec.canonical(), "model": engine.model_name,
                 "version": engine.recipe.get("aleaart", ""), "kind": OPERATION, "source": source,
                 "operation": self.settings()}
        files = {"mp4": (encode_mp4(frames, self.fps, about), even_size(*frames[0].size)),
                 "webp": (encode_webp(frames, self.fps), frames[0].size)}
        return [stored_artifact(data, extension, self.spec, token_id=self.token,
                                key=self.file_key(context.key, extension), model=engine.model_name, seconds=seconds,
                                size=size, kind=OPERATION, source=source, sealing=Sealing.of(context),
                                operation={**self.settings(), "frame0Sha256": pixel_hash(frames[0])})
                for extension, (data, size) in files.items()]
