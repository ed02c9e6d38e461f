"""Job kinds that start from a stored image: ``upscale`` (Lanczos, or hires: Lanczos then img2img with the
loaded model's own components) and ``restyle`` (img2img with the prompt's style modifier replaced)."""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass, replace
from typing import Any, ClassVar, Literal, get_args

from PIL import Image

from aleaart.errors import InvalidParams
from aleaart.jobs.kind import Artifact, JobRequest, Recipe, RunContext, register
from aleaart.jobs.render import Pixels, graded, image_artifact
from aleaart.metadata import JSON_KEY, Derivation, derived_key, read_png_text
from aleaart.params import RenderSpec, check_token_id, restyle_prompt
from aleaart.resample import lanczos, scaled_size
from aleaart.store import StoredImage

UpscaleMode = Literal["hires", "lanczos"]
MAX_SCALE: dict[str, int] = {"hires": 2, "lanczos": 4}
HIRES_STRENGTH = (0.1, 0.75)
DEFAULT_HIRES_STRENGTH = 0.35
RESTYLE_STRENGTH = (0.2, 0.8)
DEFAULT_RESTYLE_STRENGTH = 0.5
MAX_MODEL_SIDE = 2048  # the largest side img2img runs at (hires 2x of the largest aspect, 1024 → 2048)
MAX_LANCZOS_SIDE = 4096


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

    def pixels(self, context: RunContext) -> Image.Image:
        if context.read_png is None:
            raise RuntimeError("this job starts from a stored image, but it was run with no way to read one")
        with Image.open(io.BytesIO(context.read_png(self.key, self.sha256))) as image:
            return image.convert("RGB")


class FromStoredImage(JobRequest):
    """What ``upscale`` and ``restyle`` share: a source, a key derived from it, and a derived stored image."""

    source: SourceImage
    operation: ClassVar[str]

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

    def key(self, recipe: Recipe) -> str:
        return derived_key(self.source.key, self.operation, self.settings(), recipe)

    def artifact(self, image: Image.Image, seconds: float, context: RunContext) -> Artifact:
        engine = context.engine
        derivation = Derivation(key=context.key, source=self.source.key, operation=self.operation,
                                settings=self.settings())
        return image_artifact(image, self.result_spec(), token_id=self.token_id, key=context.key,
                              model=engine.model_name, recipe=engine.recipe, seconds=seconds, derivation=derivation)

    def encode(self, rendered: Pixels, context: RunContext) -> list[Artifact]:
        """img2img's pixels with the token's palette grade again (img2img drifts from it), as a stored image."""
        return [self.artifact(graded(rendered.image, self.result_spec()), rendered.seconds, context)]

    def transformed(self, image: Image.Image, strength: float, context: RunContext) -> Pixels:
        """img2img of ``image`` with the result's spec (its prompt, seed, sampler and steps)."""
        rendered = context.engine.transform(self.result_spec(), image, strength, on_step=context.on_step,
                                            cancel=context.cancel)
        return Pixels(rendered.image, rendered.seconds)


@register
@dataclass(frozen=True)
class UpscaleRequest(FromStoredImage):
    """``scale`` times larger: ``lanczos`` (pixels only, up to 4x) or ``hires`` (2x: Lanczos, then img2img at
    ``strength`` with the same prompt, seed and sampler, which redraws detail at the new size)."""

    source: SourceImage
    scale: int = 2
    mode: UpscaleMode = "hires"
    strength: float | None = None  # hires only; None there means DEFAULT_HIRES_STRENGTH

    kind: ClassVar[str] = "upscale"
    operation: ClassVar[str] = "upscale"

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
            return
        object.__setattr__(self, "strength", check_strength(
            DEFAULT_HIRES_STRENGTH if self.strength is None else self.strength, *HIRES_STRENGTH))
        check_side(spec.width, spec.height, MAX_MODEL_SIDE, "the hires image")
        check_some_steps(spec.steps, self.strength)

    def settings(self) -> dict[str, Any]:
        settings: dict[str, Any] = {"scale": self.scale, "mode": self.mode}
        if self.mode == "hires":
            settings["strength"] = self.strength
        return settings

    def to_json(self) -> dict[str, Any]:
        return {"source": self.source.to_json(), "scale": self.scale, "mode": self.mode, "strength": self.strength}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> UpscaleRequest:
        return cls(SourceImage.from_json(data["source"]), data["scale"], data["mode"], data.get("strength"))

    def result_spec(self) -> RenderSpec:
        width, height = scaled_size(self.source.spec.width, self.source.spec.height, self.scale)
        return replace(self.source.spec, width=width, height=height)

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


@register
@dataclass(frozen=True)
class RestyleRequest(FromStoredImage):
    """The image redrawn (img2img at ``strength``) with its prompt's style modifier replaced by style
    ``style_index``'s; same seed, sampler and steps."""

    source: SourceImage
    style_index: int
    strength: float = DEFAULT_RESTYLE_STRENGTH

    kind: ClassVar[str] = "restyle"
    operation: ClassVar[str] = "restyle"

    def __post_init__(self) -> None:
        object.__setattr__(self, "strength", check_strength(self.strength, *RESTYLE_STRENGTH))
        spec = self.result_spec()  # checks styleIndex
        check_side(spec.width, spec.height, MAX_MODEL_SIDE, "the restyled image")
        check_some_steps(spec.steps, self.strength)

    def settings(self) -> dict[str, Any]:
        return {"styleIndex": self.style_index, "strength": self.strength}

    def to_json(self) -> dict[str, Any]:
        return {"source": self.source.to_json(), "styleIndex": self.style_index, "strength": self.strength}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RestyleRequest:
        return cls(SourceImage.from_json(data["source"]), data["styleIndex"], data["strength"])

    def result_spec(self) -> RenderSpec:
        return replace(self.source.spec, prompt=restyle_prompt(self.source.spec.prompt, self.style_index))

    def total_steps(self) -> int:
        return img2img_steps(self.source.spec.steps, self.strength)

    def render(self, context: RunContext) -> Pixels:
        return self.transformed(self.source.pixels(context), self.strength, context)
