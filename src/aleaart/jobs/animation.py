"""The ``animation`` job kind: a looping video of a token's world, its frames rendered by the same pipeline
with the token's prompt, sampler and steps while the starting noise walks through neighbour seeds and back
(or the prompt morphs to another style and back), stored as an H.264 MP4 and an animated WebP."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, ClassVar

from PIL import Image

from aleaart.errors import InvalidParams
from aleaart.jobs.kind import Artifact, JobRequest, Recipe, RunContext, register
from aleaart.jobs.render import RenderRequest, graded
from aleaart.metadata import derived_key, image_filename, render_key
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
from aleaart.params import STYLES, RenderSpec, check_int, check_token_id, restyle_prompt
from aleaart.store import FindImage, StoredImage, new_record
from aleaart.video import encode_mp4, encode_webp, even_size

OPERATION = "animation"
FORMATS = ("mp4", "webp")  # the job's files, in this order


def file_key(job_key: str, extension: str) -> str:
    """The key of the job's file of one format."""
    return hashlib.sha256(f"{job_key}:{extension}".encode()).hexdigest()


@register
@dataclass(frozen=True)
class AnimationRequest(JobRequest):
    """``frames`` frames at ``fps``: a noise walk through ``neighbours`` seeds next to the spec's, or, with
    ``morph_style``, the spec's own noise while its prompt morphs to that style and back."""

    spec: RenderSpec
    token: str | None
    frames: int = DEFAULT_FRAMES
    fps: int = DEFAULT_FPS
    neighbours: int = DEFAULT_NEIGHBOURS
    morph_style: int | None = None

    kind: ClassVar[str] = "animation"

    def __post_init__(self) -> None:
        check_int("frames", self.frames, *FRAMES)
        check_int("fps", self.fps, *FPS)
        check_int("neighbours", self.neighbours, *NEIGHBOURS)
        if self.morph_style is not None:
            check_int("morphStyle", self.morph_style, 0, len(STYLES) - 1)
            if self.morph_prompt() == self.spec.prompt:
                raise InvalidParams(f"morphStyle {self.morph_style} is the image's own style; pick another")

    @classmethod
    def of(cls, image: RenderRequest, **options: Any) -> AnimationRequest:
        """An animation of the image ``image`` asks for."""
        return cls(image.spec, image.token, **options)

    @property
    def token_id(self) -> str | None:
        return self.token

    def settings(self) -> dict[str, Any]:
        settings = {"frames": self.frames, "fps": self.fps}
        if self.morph_style is None:
            return {**settings, "neighbours": self.neighbours}
        return {**settings, "morphStyle": self.morph_style}

    def to_json(self) -> dict[str, Any]:
        return {"spec": self.spec.canonical(), "tokenId": self.token, "frames": self.frames, "fps": self.fps,
                "neighbours": self.neighbours, "morphStyle": self.morph_style}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> AnimationRequest:
        return cls(spec=RenderSpec.from_canonical(data["spec"]), token=check_token_id(data.get("tokenId")),
                   frames=data["frames"], fps=data["fps"], neighbours=data["neighbours"],
                   morph_style=data.get("morphStyle"))

    def source_key(self, recipe: Recipe) -> str:
        """The key of the still image the animation starts from (its frame 0)."""
        return render_key(self.spec, recipe, self.token)

    def key(self, recipe: Recipe) -> str:
        return derived_key(self.source_key(recipe), OPERATION, self.settings(), recipe)

    def total_steps(self) -> int:
        return self.frames * self.spec.steps

    def morph_prompt(self) -> str | None:
        return restyle_prompt(self.spec.prompt, self.morph_style) if self.morph_style is not None else None

    def path(self) -> list[Frame]:
        if self.morph_style is not None:
            return style_morph(self.spec.seed, self.frames)
        return noise_walk(self.spec.seed, self.frames, self.neighbours)

    def stored(self, key: str, find: FindImage) -> tuple[StoredImage, ...] | None:
        files = [find(file_key(key, extension)) for extension in FORMATS]
        return tuple(files) if all(f is not None for f in files) else None  # type: ignore[arg-type]

    def render(self, context: RunContext) -> tuple[list[Image.Image], float]:
        rendered = context.engine.animate(self.spec, self.path(), morph_prompt=self.morph_prompt(),
                                          on_step=context.on_step, cancel=context.cancel)
        return [r.image for r in rendered], sum(r.seconds for r in rendered)

    def encode(self, rendered: tuple[list[Image.Image], float], context: RunContext) -> list[Artifact]:
        images, seconds = rendered
        frames = [graded(image, self.spec) for image in images]
        engine = context.engine
        source = self.source_key(engine.recipe)
        about = {"key": context.key, "tokenId": self.token, "spec": self.spec.canonical(), "model": engine.model_name,
                 "version": engine.recipe.get("aleaart", ""), "kind": OPERATION, "source": source,
                 "operation": self.settings()}
        files = {"mp4": encode_mp4(frames, self.fps, about), "webp": encode_webp(frames, self.fps)}
        width, height = even_size(*frames[0].size)
        return [self._artifact(file_key(context.key, extension), extension, files[extension], source, seconds,
                               (width, height) if extension == "mp4" else frames[0].size, engine.model_name)
                for extension in FORMATS]

    def _artifact(self, key: str, extension: str, data: bytes, source: str, seconds: float, size: tuple[int, int],
                  model: str) -> Artifact:
        spec = self.spec
        record = new_record(
            key=key, token_id=self.token, file=image_filename(self.token, key, extension), prompt=spec.prompt,
            params=spec.params.to_json() if spec.params else None, spec=spec.canonical(), sampler=spec.sampler,
            width=size[0], height=size[1], model=model, seconds=round(seconds, 3),
            sha256=hashlib.sha256(data).hexdigest(), kind=OPERATION, source=source,
        )
        return Artifact(record=record, data=data)
