"""The base of job kinds that start from a stored image (upscale, restyle): one declaration per kind.

A kind subclasses ``FromStoredImage`` as a frozen dataclass with a ``source`` and its options declared with
``kind.option(...)``, and names its route with ``ImageRoutes``: POST /images/{key}/<path> with a body of those
options (``api/kinds.py`` builds it, and its OpenAPI). Its JSON form follows from the declaration; its key
derives from the source's key, the operation and its settings.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass
from typing import Any, ClassVar, Self

from PIL import Image

from aleaart.errors import InvalidParams
from aleaart.jobs.kind import Artifact, JobRequest, Recipe, RunContext
from aleaart.jobs.render import Pixels, Sealing, graded, image_artifact
from aleaart.memory import RenderSize
from aleaart.metadata import JSON_KEY, Derivation, derived_key, read_png_text
from aleaart.params import RenderSpec
from aleaart.provenance.claim import Parent
from aleaart.store import StoredImage
from aleaart.token_ids import check_token_id

IMG2IMG_MAX_SIDE = 2048  # the largest side img2img runs at (hires 2x of the largest aspect, 1024 → 2048)


def img2img_steps(steps: int, strength: float) -> int:
    """The denoising steps img2img runs: the last ``strength`` of the schedule (diffusers' rule)."""
    return min(int(steps * strength), steps)


def check_strength(strength: float, low: float, high: float) -> float:
    if isinstance(strength, bool) or not isinstance(strength, int | float) or not low <= strength <= high:
        raise InvalidParams(f"strength must be {low}..{high}, got {strength!r}")
    return float(strength)


def check_some_steps(steps: int, strength: float) -> None:
    if img2img_steps(steps, strength) < 1:
        raise InvalidParams(f"strength {strength} of {steps} steps is not one denoising step; ask for more")


def check_side(width: int, height: int, limit: int, what: str) -> None:
    if max(width, height) > limit:
        raise InvalidParams(f"{what} would be {width}x{height}, over {limit} pixels on a side")


@dataclass(frozen=True)
class ImageRoutes:
    """Where a kind is asked for over HTTP: POST /images/{key}/<path>; ``title`` names its body (<title>Body)."""

    path: str
    title: str


@dataclass(frozen=True)
class SourceImage:
    """The stored image a job starts from: its key, the sha256 of its PNG, and the spec it was made from."""

    key: str
    sha256: str
    spec: RenderSpec
    token: str | None

    @classmethod
    def of(cls, image: StoredImage) -> SourceImage:
        return cls(image.key, image.sha256, RenderSpec.from_canonical(image.spec), image.token_id)

    @classmethod
    def from_png(cls, data: bytes) -> SourceImage:
        """A PNG this service wrote (the CLI's input), from the metadata chunk every one of them carries."""
        try:
            meta = json.loads(read_png_text(data)[JSON_KEY])
            return cls(meta["key"], hashlib.sha256(data).hexdigest(), RenderSpec.from_canonical(meta["spec"]),
                       check_token_id(meta.get("tokenId")))
        except OSError:
            raise InvalidParams("not a PNG image") from None
        except (KeyError, TypeError, ValueError) as error:
            raise InvalidParams(f"not a PNG made by aleaart (no readable '{JSON_KEY}' metadata chunk: {error})") \
                from None

    def to_json(self) -> dict[str, Any]:
        return {"key": self.key, "sha256": self.sha256, "spec": self.spec.canonical(), "tokenId": self.token}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SourceImage:
        return cls(data["key"], data["sha256"], RenderSpec.from_canonical(data["spec"]),
                   check_token_id(data.get("tokenId")))

    def png(self, context: RunContext) -> bytes:
        if context.read_png is None:
            raise RuntimeError("this job starts from a stored image, but it was run with no way to read one")
        return context.read_png(self.key, self.sha256)

    def pixels(self, context: RunContext) -> Image.Image:
        with Image.open(io.BytesIO(self.png(context))) as image:
            return image.convert("RGB")


class FromStoredImage(JobRequest):
    """What ``upscale`` and ``restyle`` share: a source, a key derived from it, and a derived stored image."""

    source: SourceImage
    operation: ClassVar[str]
    routes: ClassVar[ImageRoutes]

    def to_json(self) -> dict[str, Any]:
        return {"source": self.source.to_json(), **{opt.name: getattr(self, f) for f, opt in self.options()}}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Self:
        options = {field: data[opt.name] for field, opt in cls.options() if opt.name in data}
        return cls(SourceImage.from_json(data["source"]), **options)  # type: ignore[call-arg]

    @property
    def token_id(self) -> str | None:
        return self.source.token

    def settings(self) -> dict[str, Any]:
        """The operation's settings: in the key, the PNG's chunks and the index row."""
        raise NotImplementedError

    def result_spec(self) -> RenderSpec:
        """The spec the result is described by (its size, and the prompt img2img ran with)."""
        raise NotImplementedError

    def sources(self) -> tuple[tuple[str, str], ...]:
        return ((self.source.key, self.source.sha256),)

    def render_size(self) -> RenderSize | None:
        spec = self.result_spec()
        return RenderSize(spec.width, spec.height)

    def key(self, recipe: Recipe) -> str:
        return derived_key(self.source.key, self.operation, self.settings(), recipe)

    def artifact(self, image: Image.Image, seconds: float, context: RunContext) -> Artifact:
        engine = context.engine
        derivation = Derivation(key=context.key, source=self.source.key, operation=self.operation,
                                settings=self.settings())
        # The source's file goes in whole: its own credentials travel inside this file's.
        parent = Parent(self.source.key, self.source.png(context)) if context.credentials is not None else None
        return image_artifact(image, self.result_spec(), token_id=self.token_id, key=context.key,
                              model=engine.model_name, recipe=engine.recipe, seconds=seconds, derivation=derivation,
                              sealing=Sealing.of(context, parent))

    def encode(self, rendered: Pixels, context: RunContext) -> list[Artifact]:
        """img2img's pixels with the token's palette grade again (img2img drifts from it), as a stored image."""
        return [self.artifact(graded(rendered.image, self.result_spec()), rendered.seconds, context)]

    def transformed(self, image: Image.Image, strength: float, context: RunContext) -> Pixels:
        """img2img of ``image`` with the result's spec (its prompt, seed, sampler and steps)."""
        rendered = context.engine.transform(self.result_spec(), image, strength, on_step=context.on_step,
                                            cancel=context.cancel)
        return Pixels(rendered.image, rendered.seconds)


