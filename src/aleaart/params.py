"""The contract's RenderParams and the render spec they map to (pure: no torch, no I/O)."""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from aleaart.errors import InvalidParams
from aleaart.palettes import DEFAULT_STRENGTH, PALETTES, PaletteMode, palette


@dataclass(frozen=True)
class Named:
    """One row of a mapping table: the name people read and the text the prompt gets."""

    name: str
    text: str


@dataclass(frozen=True)
class Aspect:
    name: str
    width: int
    height: int
    words: str

    @property
    def label(self) -> str:
        return f"{self.name} {self.width}x{self.height}"


TEMPLATES: tuple[Named, ...] = (
    Named("Retrofuturism", "retrofuturism bodywear, primitive, vintage, intricate detail, digital art, "
          "digital painting, concept art, poster, award winning"),
    Named("Cyberpunk", "cyberpunk cityscape, neon lights, futuristic architecture, digital art, concept art, detailed"),
    Named("Fantasy", "fantasy landscape, magical forest, ethereal lighting, digital painting, concept art, detailed"),
    Named("Steampunk", "steampunk machinery, brass and copper, Victorian era, intricate detail, digital art"),
    Named("Space", "space exploration, cosmic landscapes, nebula, digital art, concept art, detailed"),
    Named("Underwater", "underwater world, marine life, bioluminescent, digital painting, concept art"),
    Named("Medieval", "medieval fantasy, castle, dragons, magical atmosphere, digital art, detailed"),
    Named("Post-Apocalyptic", "post-apocalyptic wasteland, ruins, desolate landscape, digital art, concept art"),
    Named("Alien", "alien planet, exotic flora and fauna, otherworldly, digital painting, detailed"),
    Named("Ancient", "ancient civilization, pyramids, desert, mystical atmosphere, digital art"),
    Named("Arctic", "arctic wilderness, aurora borealis, ice formations, digital painting, concept art"),
    Named("Tropical", "tropical paradise, lush vegetation, crystal clear water, digital art, detailed"),
)

STYLES: tuple[Named, ...] = (
    Named("Ultra Realistic", "max detail, 8k, ultra realistic"),
    Named("Painterly", "artistic, painterly, brush strokes"),
    Named("Minimalist", "minimalist, clean, simple"),
    Named("Baroque", "baroque, ornate, decorative"),
    Named("Impressionist", "impressionist, soft, dreamy"),
    Named("Expressionist", "expressionist, bold, dramatic"),
    Named("Surreal", "surreal, abstract, dreamlike"),
    Named("Photorealistic", "photorealistic, detailed, sharp"),
    Named("Watercolor", "watercolor, soft, flowing"),
    Named("Oil Painting", "oil painting, rich, textured"),
)

ASPECTS: tuple[Aspect, ...] = (
    Aspect("Square", 512, 512, "square, 1:1"),
    Aspect("Landscape", 1024, 576, "landscape, 16:9"),
    Aspect("Portrait", 768, 1024, "portrait, 9:16"),
    Aspect("Wide", 1024, 448, "wide, 21:9"),
    Aspect("Tall", 512, 683, "tall, 3:4"),
)

# Index = the contract's samplerIndex. The engine maps each name to a diffusers scheduler.
SAMPLERS: tuple[str, ...] = ("DPM++ 2M Karras", "DPM++ SDE Karras", "Euler a", "DPM++ 2M", "DPM++ SDE", "LMS")

PALETTE_COUNT = len(PALETTES)
PROMPT_SUFFIX = "max detail | 8k"


@dataclass(frozen=True)
class Field:
    """A RenderParams field: its attribute, its key in the contract's JSON and its range."""

    attr: str
    key: str
    low: int
    high: int


FIELDS: tuple[Field, ...] = (
    Field("prompt_index", "promptIndex", 0, len(TEMPLATES) - 1),
    Field("style_index", "styleIndex", 0, len(STYLES) - 1),
    Field("sampler_index", "samplerIndex", 0, len(SAMPLERS) - 1),
    Field("aspect_index", "aspectIndex", 0, len(ASPECTS) - 1),
    Field("steps", "steps", 18, 64),
    Field("cfg", "cfg", 70, 180),
    Field("latent_seed", "latentSeed", 0, 2**32 - 1),
    Field("palette_id", "paletteId", 0, PALETTE_COUNT - 1),
)


def check_int(name: str, value: Any, low: int, high: int) -> int:
    """Return ``value`` if it is an integer in ``low..high``, else raise naming field, value and range."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidParams(f"{name} must be an integer {low}..{high}, got {value!r}")
    if not low <= value <= high:
        raise InvalidParams(f"{name} must be {low}..{high}, got {value}")
    return value


@dataclass(frozen=True)
class RenderParams:
    """The eight numbers EntropyArtParamsV2 stores per token, validated."""

    prompt_index: int
    style_index: int
    sampler_index: int
    aspect_index: int
    steps: int
    cfg: int
    latent_seed: int
    palette_id: int

    def __post_init__(self) -> None:
        for f in FIELDS:
            check_int(f.key, getattr(self, f.attr), f.low, f.high)

    @classmethod
    def from_json(cls, data: Any) -> RenderParams:
        """Build from the contract's JSON keys (``promptIndex`` ...); every key is required."""
        if not isinstance(data, Mapping):
            raise InvalidParams(f"parameters must be a JSON object with {', '.join(f.key for f in FIELDS)}")
        missing = [f.key for f in FIELDS if f.key not in data]
        if missing:
            raise InvalidParams(f"parameters are missing {', '.join(missing)}")
        unknown = sorted(set(data) - {f.key for f in FIELDS})
        if unknown:
            raise InvalidParams(f"parameters has unknown keys {', '.join(map(str, unknown))}")
        return cls(**{f.attr: data[f.key] for f in FIELDS})

    def to_json(self) -> dict[str, int]:
        return {f.key: getattr(self, f.attr) for f in FIELDS}

    @property
    def template(self) -> Named:
        return TEMPLATES[self.prompt_index]

    @property
    def style(self) -> Named:
        return STYLES[self.style_index]

    @property
    def aspect(self) -> Aspect:
        return ASPECTS[self.aspect_index]

    @property
    def sampler(self) -> str:
        return SAMPLERS[self.sampler_index]

    @property
    def guidance_scale(self) -> float:
        return self.cfg / 10


def build_prompt(params: RenderParams, *, colours: str | None = None) -> str:
    """The seed's prompt; with ``colours`` (``palette: prompt``), the palette's colour words before the suffix."""
    palette_words = f", {colours} colour palette" if colours else ""
    return f"{params.template.text}, {params.style.text}, {params.aspect.words}{palette_words} | {PROMPT_SUFFIX}"


def restyle_prompt(prompt: str, style_index: int) -> str:
    """``prompt`` with its style modifier (one of STYLES' texts) replaced by style ``style_index``'s; a prompt
    with none of them (a manual one) gets it before the seed's ``| …`` suffix, or at its end."""
    style = STYLES[check_int("styleIndex", style_index, 0, len(STYLES) - 1)].text
    for known in sorted((s.text for s in STYLES), key=len, reverse=True):
        if f", {known}," in prompt:
            return prompt.replace(f", {known},", f", {style},", 1)
    head, bar, tail = prompt.partition(" | ")
    return f"{head}, {style}{bar}{tail}"


@dataclass(frozen=True)
class PaletteChoice:
    """How a token's paletteId shows in its image: ``grade`` (a colour grade of the decoded pixels; the
    prompt stays the seed's), ``prompt`` (the palette's colour words in the prompt) or ``off``."""

    mode: PaletteMode = "grade"
    strength: float = DEFAULT_STRENGTH  # the grade's: 0 none, 1 all the way to the palette's colours


DEFAULT_PALETTE = PaletteChoice()


@dataclass(frozen=True)
class PaletteGrade:
    """The colour grade a spec's decoded pixels get: toward palette ``palette_id`` with ``strength``."""

    palette_id: int
    strength: float


LORA_WEIGHT = (-2.0, 2.0)
MAX_LORAS = 4


@dataclass(frozen=True)
class LoraWeight:
    """An uploaded LoRA (its sha256) applied at ``weight``: 0 is the model without it, 1 as trained."""

    sha256: str
    weight: float


def round_up_to_8(n: int) -> int:
    return math.ceil(n / 8) * 8


@dataclass(frozen=True)
class RenderSpec:
    """Everything that decides the pixels of one image, in Stable Diffusion's terms.

    ``params`` is set when the spec came from a token's RenderParams and ``None`` for a
    manual (flat) request; ``width``/``height`` are the size of the delivered image.
    """

    prompt: str
    sampler: str
    width: int
    height: int
    steps: int
    guidance_scale: float
    seed: int
    params: RenderParams | None = None
    grade: PaletteGrade | None = None
    model: str | None = None  # an uploaded checkpoint's sha256; None is the service's own model
    loras: tuple[LoraWeight, ...] = ()

    @property
    def render_width(self) -> int:
        """The size diffusers renders at (multiples of 8); the image is centre-cropped after."""
        return round_up_to_8(self.width)

    @property
    def render_height(self) -> int:
        return round_up_to_8(self.height)

    def summary(self) -> dict[str, Any]:
        """The seed's ``parameters`` object of the HTTP/CLI answer."""
        return {
            "steps": self.steps,
            "cfg_scale": self.guidance_scale,
            "seed": self.seed,
            "sampler": self.sampler,
            "width": self.width,
            "height": self.height,
        }

    def pixels(self) -> dict[str, Any]:
        """The fields that decide the pixels (the RenderParams only say where they came from)."""
        return {k: v for k, v in self.canonical().items() if k != "params"}

    def canonical(self) -> dict[str, Any]:
        """A JSON-ready form with stable keys, for hashing and metadata (a fresh dict each call)."""
        return dict(self._canonical)

    @functools.cached_property
    def _canonical(self) -> dict[str, Any]:
        data = asdict(self)
        data["params"] = self.params.to_json() if self.params else None
        for optional, default in (("grade", None), ("model", None), ("loras", ())):
            if getattr(self, optional) == default:
                del data[optional]  # specs without them keep the keys they had before they existed
        if self.loras:
            data["loras"] = [asdict(lora) for lora in self.loras]
        return data

    @classmethod
    def from_canonical(cls, data: Mapping[str, Any]) -> RenderSpec:
        """The inverse of ``canonical`` (job records are stored in that form)."""
        params, grade = data.get("params"), data.get("grade")
        return cls(**{**data, "params": RenderParams.from_json(params) if params is not None else None,
                      "grade": PaletteGrade(**grade) if grade is not None else None,
                      "loras": tuple(LoraWeight(**lora) for lora in data.get("loras", ()))})


def spec_from_params(params: RenderParams, palette_choice: PaletteChoice = DEFAULT_PALETTE) -> RenderSpec:
    aspect = params.aspect
    chosen = palette(params.palette_id)
    grades = palette_choice.mode == "grade" and palette_choice.strength > 0
    return RenderSpec(
        prompt=build_prompt(params, colours=chosen.words if palette_choice.mode == "prompt" else None),
        sampler=params.sampler,
        width=aspect.width,
        height=aspect.height,
        steps=params.steps,
        guidance_scale=params.guidance_scale,
        seed=params.latent_seed,
        params=params,
        grade=PaletteGrade(params.palette_id, palette_choice.strength) if grades else None,
    )


FIELD_LABELS = {
    "promptIndex": "Prompt", "styleIndex": "Style", "samplerIndex": "Sampler", "aspectIndex": "Aspect",
    "steps": "Steps", "cfg": "CFG ×10", "latentSeed": "Seed", "paletteId": "Palette",
}


def tables_json() -> dict[str, Any]:
    """The mapping tables and field ranges, for clients that show or edit parameters."""
    return {
        "fields": [{"key": f.key, "label": FIELD_LABELS[f.key], "min": f.low, "max": f.high} for f in FIELDS],
        "prompts": [t.name for t in TEMPLATES],
        "styles": [s.name for s in STYLES],
        "samplers": list(SAMPLERS),
        "aspects": [{"name": a.name, "width": a.width, "height": a.height} for a in ASPECTS],
        "palettes": [{"id": p.id, "name": p.name, "colours": list(p.colours)} for p in PALETTES],
    }


def describe(params: RenderParams) -> dict[str, str]:
    """The parameters as people read them (for the CLI, the token endpoints and the page)."""
    return {
        "prompt": params.template.name,
        "style": params.style.name,
        "sampler": params.sampler,
        "aspect": params.aspect.label,
        "palette": palette(params.palette_id).name,
    }

