"""The ``render`` job kind, and the one render path: spec → pixels → PNG with its chunks → record."""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass
from typing import Any, ClassVar

from aleaart.jobs.kind import Artifact, EngineLike, JobRequest, Recipe, RunContext, StepCallback, register
from aleaart.metadata import ImageInfo, encode_png, image_filename, render_key
from aleaart.params import RenderSpec, check_token_id
from aleaart.store import new_record


def render_image(
    engine: EngineLike,
    spec: RenderSpec,
    *,
    token_id: str | None,
    key: str,
    on_step: StepCallback | None = None,
    cancel: threading.Event | None = None,
) -> Artifact:
    """Render ``spec`` and make the PNG (with its metadata chunks) and its index record.

    The queue, the CLI and the token routes all come through here, so a PNG is the same
    bytes whichever of them made it.
    """
    rendered = engine.generate(spec, on_step=on_step, cancel=cancel)
    info = ImageInfo(spec=spec, model=engine.model_name, version=engine.recipe.get("aleaart", ""),
                     token_id=token_id, key=key)
    png = encode_png(rendered.image, info)
    record = new_record(
        key=key, token_id=token_id, file=image_filename(token_id, key), prompt=spec.prompt,
        params=spec.params.to_json() if spec.params else None, spec=spec.canonical(), sampler=spec.sampler,
        width=spec.width, height=spec.height, model=engine.model_name, seconds=round(rendered.seconds, 3),
        sha256=hashlib.sha256(png).hexdigest(),
    )
    return Artifact(record=record, data=png)


@register
@dataclass(frozen=True)
class RenderRequest(JobRequest):
    """One image from a RenderSpec (a token's RenderParams, or a manual request)."""

    spec: RenderSpec
    token: str | None = None

    kind: ClassVar[str] = "render"

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

    def run(self, context: RunContext) -> list[Artifact]:
        return [render_image(context.engine, self.spec, token_id=self.token, key=context.key,
                             on_step=context.on_step, cancel=context.cancel)]
