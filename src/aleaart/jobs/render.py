"""The ``render`` job kind, and the one render path: spec → pixels → PNG with its chunks → record."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, ClassVar

from PIL import Image

from aleaart.files import MEDIA_TYPES
from aleaart.grading import grade
from aleaart.jobs.kind import Artifact, EngineLike, JobRequest, Recipe, RunContext, Sealer, register
from aleaart.memory import RenderSize
from aleaart.metadata import Derivation, ImageInfo, encode_png, image_filename, pixel_key, render_key
from aleaart.palettes import palette
from aleaart.params import DEFAULT_PALETTE, PaletteChoice, RenderParams, RenderSpec, spec_from_params
from aleaart.provenance.claim import Claim, Parent, pixel_hash, render_assertion, software_agent
from aleaart.store import ImageStore, StoredImage, new_record
from aleaart.token_ids import check_token_id


@dataclass(frozen=True)
class Sealing:
    """What signing a stored file needs besides the file: the credentials, the engine that made it (its recipe
    and details go into the manifest), and the image it was made from (``parent``), if any."""

    credentials: Sealer
    engine: EngineLike
    parent: Parent | None = None
    action: str = "c2pa.edited"  # the kind's C2PA action

    @classmethod
    def of(cls, context: RunContext, parent: Parent | None = None) -> Sealing | None:
        if context.credentials is None:
            return None
        return cls(context.credentials, context.engine, parent, context.action)


def image_artifact(image: Image.Image, spec: RenderSpec, *, token_id: str | None, key: str, model: str,
                   recipe: Recipe, seconds: float, derivation: Derivation | None = None,
                   sealing: Sealing | None = None) -> Artifact:
    """The PNG (with its metadata chunks and, with ``sealing``, its Content Credentials) and the index record of
    rendered pixels; a derived image (``derivation``) records its source and operation, and has no pixel key (its
    pixels are not the spec's)."""
    pixels = pixel_key(spec, recipe) if derivation is None else None
    info = ImageInfo(spec=spec, model=model, version=recipe.get("aleaart", ""), token_id=token_id, key=key,
                     pixels=pixels, derivation=derivation, backend=recipe.get("backend"))
    return stored_artifact(encode_png(image, info), "png", spec, token_id=token_id, key=key, model=model,
                           seconds=seconds, size=image.size, pixels=pixels,
                           kind=derivation.operation if derivation else "render",
                           source=derivation.source if derivation else None, sealing=sealing,
                           pixel_sha256=pixel_hash(image), operation=derivation.settings if derivation else None)


def stored_artifact(data: bytes, extension: str, spec: RenderSpec, *, token_id: str | None, key: str, model: str,
                    seconds: float, size: tuple[int, int], kind: str, source: str | None,
                    pixels: str | None = None, sealing: Sealing | None = None, pixel_sha256: str | None = None,
                    operation: dict[str, Any] | None = None) -> Artifact:
    """Any file a job stores (a PNG, a video) and the index record that describes it, signed once here."""
    file = image_filename(token_id, key, extension)
    if sealing is not None:
        claim = file_claim(sealing, spec, file=file, key=key, kind=kind, token_id=token_id, size=size,
                           pixel_sha256=pixel_sha256, source=source, operation=operation)
        data = sealing.credentials.sign(data, MEDIA_TYPES[extension], claim)
    record = new_record(
        key=key, token_id=token_id, file=file, prompt=spec.prompt,
        params=spec.params.to_json() if spec.params else None, spec=spec.canonical(), sampler=spec.sampler,
        width=size[0], height=size[1], model=model, seconds=round(seconds, 3),
        sha256=hashlib.sha256(data).hexdigest(), pixels=pixels, kind=kind, source=source,
    )
    return Artifact(record=record, data=data)


def file_claim(sealing: Sealing, spec: RenderSpec, *, file: str, key: str, kind: str, token_id: str | None,
               size: tuple[int, int], pixel_sha256: str | None, source: str | None,
               operation: dict[str, Any] | None) -> Claim:
    engine = sealing.engine
    recipe, details = engine.recipe, engine.recipe_details(spec)
    version = recipe.get("aleaart", "")
    assertion = render_assertion(key=key, kind=kind, spec=spec.canonical(),
                                 params=spec.params.to_json() if spec.params else None, token_id=token_id,
                                 chain=sealing.credentials.chain, recipe=recipe, details=details,
                                 pixels=pixel_sha256, size=size, source=source, operation=operation)
    parent = sealing.parent or (Parent(source) if source is not None else None)
    agent = software_agent(version, recipe, details.get("weightsSha256", ""))
    return Claim(title=file, action=sealing.action, software_agent=agent, assertion=assertion, parent=parent,
                 generator={"name": "aleaart", "version": version})


def graded(image: Image.Image, spec: RenderSpec) -> Image.Image:
    """Freshly decoded pixels as the spec wants them delivered: with its palette's colour grade, if any."""
    if spec.grade is None:
        return image
    return grade(image, palette(spec.grade.palette_id), spec.grade.strength)


@dataclass(frozen=True)
class Pixels:
    """What ``render`` hands to ``encode``: pixels, the seconds they took, and whether they are final
    (reused from the store) or still to be graded."""

    image: Image.Image
    seconds: float
    final: bool = False


def stored_pixels(store: ImageStore | None, spec: RenderSpec, recipe: Recipe) -> Image.Image | None:
    """The pixels of an image already rendered from the same spec (under another token id or body)."""
    same = store.with_pixels(pixel_key(spec, recipe)) if store is not None else None
    if same is None:
        return None
    with Image.open(store.path_of(same.file)) as image:
        return image.convert("RGB")


@register
@dataclass(frozen=True)
class RenderRequest(JobRequest):
    """One image from a RenderSpec (a token's RenderParams, or a manual request)."""

    spec: RenderSpec
    token: str | None = None

    kind: ClassVar[str] = "render"
    action: ClassVar[str] = "c2pa.created"

    @classmethod
    def of_params(cls, params: RenderParams, token_id: str | None,
                  palette_choice: PaletteChoice = DEFAULT_PALETTE) -> RenderRequest:
        """A token's image: its RenderParams mapped to a spec (the seed body, the chain, a collection)."""
        return cls(spec_from_params(params, palette_choice), token_id)

    @property
    def token_id(self) -> str | None:
        return self.token

    def to_json(self) -> dict[str, Any]:
        return {"spec": self.spec.canonical(), "tokenId": self.token}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RenderRequest:
        return cls(spec=RenderSpec.from_canonical(data["spec"]), token=check_token_id(data.get("tokenId")))

    def key(self, recipe: Recipe) -> str:
        return render_key(self.spec, recipe, self.token)

    def total_steps(self) -> int:
        return self.spec.steps

    def render_size(self) -> RenderSize:
        return RenderSize(self.spec.width, self.spec.height)

    def same_picture(self, recipe: Recipe, store: ImageStore) -> StoredImage | None:
        """The same pixels stored for the same token through the other body (the seed's ``{parameters, tokenId}``
        first, then the frontend's flat body with its prompt, sampler, size, steps, guidance and seed): that image
        is this answer, rendered once. Not the other way round: a seed body's answer carries the RenderParams a
        flat body's image does not have."""
        same = store.with_pixels(pixel_key(self.spec, recipe))
        if same is None or same.token_id != self.token or (same.params is None and self.spec.params is not None):
            return None
        return same

    def render(self, context: RunContext) -> Pixels:
        reused = stored_pixels(context.store, self.spec, context.engine.recipe)
        if reused is not None:  # the token id names the file; it does not change the pixels
            return Pixels(reused, 0.0, final=True)
        rendered = context.engine.generate(self.spec, on_step=context.on_step, cancel=context.cancel)
        return Pixels(rendered.image, rendered.seconds)

    def encode(self, rendered: Pixels, context: RunContext) -> list[Artifact]:
        image = rendered.image if rendered.final else graded(rendered.image, self.spec)
        engine = context.engine
        return [image_artifact(image, self.spec, token_id=self.token, key=context.key, model=engine.model_name,
                               recipe=engine.recipe, seconds=rendered.seconds, sealing=Sealing.of(context))]
