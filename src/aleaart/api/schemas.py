"""The HTTP edge's request and response models (pydantic); everything inside uses dataclasses."""

from __future__ import annotations

import dataclasses
import inspect
import secrets
from dataclasses import dataclass, replace
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    WithJsonSchema,
    create_model,
    field_validator,
    model_validator,
)

from aleaart.errors import InvalidParams, NotFound
from aleaart.jobs import JobRequest, RenderRequest
from aleaart.jobs.image_kind import FromStoredImage
from aleaart.jobs.kind import Option
from aleaart.jobs.spec_kind import SpecRequest
from aleaart.palettes import PaletteMode
from aleaart.params import (
    FIELD_LABELS,
    FIELDS,
    LORA_WEIGHT,
    MAX_LORAS,
    SAMPLERS,
    LoraWeight,
    PaletteChoice,
    RenderParams,
    RenderSpec,
)
from aleaart.token_ids import LABEL_NOT_NUMBER, MAX_JSON_TOKEN_ID, TOKEN_ID, TOKEN_LABEL_LENGTH, check_token_id
from aleaart.uploads import ModelRegistry
from aleaart.webhooks.events import EVENTS, Event, WebhookSpec
from aleaart.webhooks.targets import MAX_URL_LENGTH

R = TypeVar("R")

SamplerName = Literal[SAMPLERS]  # type: ignore[valid-type]  # the one list of names, in params.py

MAX_PROMPT = 1000
TOKEN_ID_SCHEMA = {"anyOf": [
    {"type": "integer", "minimum": 0, "maximum": MAX_JSON_TOKEN_ID},
    {"type": "string", "pattern": f"^{TOKEN_ID.pattern}$"},
    {"type": "string", "pattern": f"^{LABEL_NOT_NUMBER}$", "maxLength": TOKEN_LABEL_LENGTH},
    {"type": "null"},
]}
TokenId = Annotated[str | int | None, WithJsonSchema(TOKEN_ID_SCHEMA), Field(
    None, description="the NFT's token id (a uint256, number or decimal string) or a label of letters, digits, "
    "_ and - (up to 64); it names the file, it does not change the pixels")]


def json_int(value: Any) -> int:
    """An integer written as one: 3, never true, "3" or 3.0 (pydantic's lax mode would take those)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"must be an integer, got {value!r}")
    return value


def json_number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"must be a number, got {value!r}")
    return float(value)


JsonInt = Annotated[int, BeforeValidator(json_int)]
JsonNumber = Annotated[float, BeforeValidator(json_number)]
UserId = Annotated[str | None, Field(
    None, min_length=1, max_length=128, description="the frontend's user id: with MONGODB_URI set, the image is "
    "recorded for this user in aleart.generatedImages")]
RANDOM_SEED = -1
# What the validator (RenderParams.from_json, which words the errors) enforces, for OpenAPI's clients.
RENDER_PARAMS_SCHEMA = {
    "type": "object",
    "title": "RenderParams",
    "additionalProperties": False,
    "required": [f.key for f in FIELDS],
    "properties": {f.key: {"type": "integer", "minimum": f.low, "maximum": f.high, "title": FIELD_LABELS[f.key]}
                   for f in FIELDS},
}


def _side(name: str) -> Any:  # the annotation is JsonInt
    return Field(512, ge=256, le=1024, multiple_of=8, description=f"image {name} in pixels, a multiple of 8")


MODEL_ID = "^[0-9a-f]{16}$|^[0-9a-f]{64}$"


class LoraChoice(BaseModel):
    """An uploaded LoRA and how strongly it applies."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=MODEL_ID, description="the LoRA's id (GET /models)")
    weight: JsonNumber = Field(1.0, ge=LORA_WEIGHT[0], le=LORA_WEIGHT[1],
                               description="0: the model without it; 1: as trained; negative: away from it")


class ModelChoice(BaseModel):
    """Which uploaded checkpoint renders, and which uploaded LoRAs apply (default: the service's own model)."""

    model: str | None = Field(None, pattern=MODEL_ID, description="an uploaded checkpoint's id (GET /models)")
    loras: list[LoraChoice] = Field(default_factory=list, max_length=MAX_LORAS)

    def chosen(self, request: R, registry: ModelRegistry) -> R:
        """``request`` rendered with the chosen weights (their sha256 and the LoRA weights go into its key)."""
        if self.model is None and not self.loras:
            return request
        try:
            model = registry.resolve(self.model, "checkpoint").sha256 if self.model is not None else None
            loras = tuple(LoraWeight(registry.resolve(lora.id, "lora").sha256, lora.weight) for lora in self.loras)
        except NotFound as missing:
            raise InvalidParams(str(missing)) from None
        return replace(request, spec=replace(request.spec, model=model, loras=loras))  # type: ignore[type-var]


class WebhookFields(BaseModel):
    """Replicate's and Cog's webhook fields, on every body that makes a job."""

    webhook: str | None = Field(
        None, min_length=1, max_length=MAX_URL_LENGTH, description="an http(s) URL told of the job's events: a POST "
        "whose body is the job as GET /jobs/{id} shows it, signed per Standard Webhooks (webhook-id, "
        "webhook-timestamp, webhook-signature) when the service has ALEAART_WEBHOOK_SECRET")
    webhook_events_filter: list[Event] | None = Field(
        None, max_length=len(EVENTS), description="which events: start, output (each image as it lands; a "
        "collection's tokens), logs (progress), completed; start and completed are always sent; output and logs at "
        "most one per 500 ms. Default: all")

    def webhook_spec(self) -> WebhookSpec | None:
        return WebhookSpec.of(self.webhook, self.webhook_events_filter) if self.webhook is not None else None


class SeedRequest(ModelChoice, WebhookFields):
    """The seed's body: the contract's RenderParams and the token id."""

    model_config = ConfigDict(extra="ignore")

    parameters: Annotated[dict[str, Any], WithJsonSchema(RENDER_PARAMS_SCHEMA)] = Field(
        description="RenderParams with the contract's keys (promptIndex ...)")
    tokenId: TokenId
    userId: UserId
    palette: PaletteMode | None = Field(None, description="grade (colour grade toward the token's palette), prompt "
                                        "(its colour words in the prompt) or off; default: ALEAART_PALETTE_MODE")
    paletteStrength: JsonNumber | None = Field(None, ge=0, le=1, description="the grade's strength, 0..1; "
                                               "default: ALEAART_PALETTE_STRENGTH")

    @field_validator("parameters")
    @classmethod
    def _valid_params(cls, value: dict[str, Any]) -> dict[str, Any]:
        RenderParams.from_json(value)  # InvalidParams is a ValueError: pydantic reports it as a 422
        return value

    @field_validator("tokenId", mode="before")
    @classmethod
    def _valid_token(cls, value: Any) -> str | None:
        return check_token_id(value)

    def to_request(self, default_palette: PaletteChoice) -> RenderRequest:
        palette = PaletteChoice(self.palette or default_palette.mode,
                                default_palette.strength if self.paletteStrength is None else self.paletteStrength)
        return RenderRequest.of_params(RenderParams.from_json(self.parameters), self.tokenId, palette)


class FlatRequest(ModelChoice, WebhookFields):
    """The body the existing AleaArt frontend route sends: Stable Diffusion settings directly."""

    model_config = ConfigDict(extra="ignore")

    prompt: str = Field(min_length=1, max_length=MAX_PROMPT)
    steps: JsonInt = Field(20, ge=1, le=100)
    cfg_scale: JsonNumber = Field(7.5, ge=1.0, le=30.0)
    seed: JsonInt = Field(RANDOM_SEED, ge=RANDOM_SEED, le=2**32 - 1,
                      description="the same seed gives the same image; missing or -1 draws one "
                      "(answered in parameters.seed)")
    sampler: SamplerName = "DPM++ 2M Karras"
    width: JsonInt = _side("width")
    height: JsonInt = _side("height")
    tokenId: TokenId
    userId: UserId

    @field_validator("tokenId", mode="before")
    @classmethod
    def _valid_token(cls, value: Any) -> str | None:
        return check_token_id(value)

    @model_validator(mode="after")
    def _draw_seed(self) -> FlatRequest:
        if self.seed == RANDOM_SEED:  # drawn once, here: the answer and the PNG carry the seed used
            self.seed = secrets.randbelow(2**32)
        return self

    def to_request(self, default_palette: PaletteChoice) -> RenderRequest:
        """A manual request has no paletteId: ``default_palette`` does not apply."""
        spec = RenderSpec(prompt=self.prompt, sampler=self.sampler, width=self.width, height=self.height,
                          steps=self.steps, guidance_scale=self.cfg_scale, seed=self.seed)
        return RenderRequest(spec, self.tokenId)


def _body_kind(body: Any) -> str:
    return "seed" if isinstance(body, dict) and "parameters" in body else "flat"


GenerateBody = Annotated[
    Annotated[SeedRequest, Tag("seed")] | Annotated[FlatRequest, Tag("flat")],
    Discriminator(_body_kind),
]


class ForbidExtra(BaseModel):
    model_config = ConfigDict(extra="forbid")


class JobOptions(ForbidExtra, WebhookFields):
    """A body of options for a job on something the path names (a token, a stored image), with its webhook."""


def option_field(option: Option, default: Any) -> tuple[Any, Any]:
    """A pydantic field for a kind's declared option (kind.option); required where it has no default."""
    if option.choices is not None:
        annotation: Any = Literal[option.choices]  # type: ignore[valid-type]
    else:
        annotation = JsonInt if option.integer else JsonNumber
    if default is None:
        annotation = annotation | None
    required = default is dataclasses.MISSING
    low, high = ((int(option.low), int(option.high)) if option.integer and option.low is not None
                 and option.high is not None else (option.low, option.high))
    return annotation, Field(... if required else default, ge=low, le=high, description=option.description)


def chosen_options(cls: type[JobRequest], body: BaseModel) -> dict[str, Any]:
    """A body's options by the kind's field names (its JSON names may differ: morphStyle, styleIndex)."""
    return {field: getattr(body, opt.name) for field, opt in cls.options()}


def option_fields(cls: type[JobRequest]) -> dict[str, tuple[Any, Any]]:
    defaults = cls.option_defaults()
    return {opt.name: option_field(opt, defaults[field]) for field, opt in cls.options()}


def image_kind_body(cls: type[FromStoredImage]) -> type[BaseModel]:
    """The body of POST /images/{key}/<path> for a stored-image kind: its declared options."""
    return create_model(f"{cls.routes.title}Body", __base__=JobOptions, __doc__=inspect.cleandoc(cls.__doc__ or ""),
                        **option_fields(cls))  # type: ignore[call-overload]


@dataclass(frozen=True)
class KindBodies:
    """The request bodies of a spec-based kind: ``body`` (a seed or flat body with the options) and ``token``
    (the options alone, for /tokens/{id}/...)."""

    body: Any
    token: type[BaseModel]


def kind_bodies(cls: type[SpecRequest]) -> KindBodies:
    """The bodies of ``cls``, from its declaration (its options, their ranges and descriptions)."""
    fields = option_fields(cls)
    title = cls.routes.title
    options = create_model(f"{title}Options", **fields)  # type: ignore[call-overload]

    def to_job(self: Any, default_palette: PaletteChoice) -> SpecRequest:
        return cls.of(self.to_request(default_palette), **chosen_options(cls, self))

    seed = create_model(f"Seed{title}", __base__=(options, SeedRequest))
    flat = create_model(f"Flat{title}", __base__=(options, FlatRequest))
    for model in (seed, flat):
        model.to_job = to_job  # type: ignore[attr-defined]
    token = create_model(f"Token{title}", __base__=JobOptions, __doc__=f"{title} of a token's image: its "
                         "parameters come from the chain.", **fields)  # type: ignore[call-overload]
    body = Annotated[Annotated[seed, Tag("seed")] | Annotated[flat, Tag("flat")], Discriminator(_body_kind)]
    return KindBodies(body=body, token=token)
