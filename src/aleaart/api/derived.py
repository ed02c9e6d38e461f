"""Images made from others: the routes of every kind made from an image's spec (variations, animations, ...) and
of every kind that starts from a stored image (upscale, restyle, ...), each derived from its declaration
(jobs/spec_kind.py, jobs/image_kind.py).

No ``from __future__ import annotations`` here: the routes' body types are built at import, and FastAPI reads
them from the annotations as objects.
"""

import asyncio
import inspect

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from aleaart.api.deps import KEYED, ChainDep, ImageKeyPath, QueueDep, SettingsDep, StoreDep, TokenIdPath, WebhooksDep
from aleaart.api.errors import error_responses
from aleaart.api.generate import SUBMIT_ERRORS, accepted
from aleaart.api.models import RegistryDep
from aleaart.api.schemas import chosen_options, image_kind_body, kind_bodies
from aleaart.api.tokens import CHAIN_ERRORS, read_token, token_request
from aleaart.api.webhooks import checked_webhook
from aleaart.errors import NotFound
from aleaart.jobs import KINDS
from aleaart.jobs.image_kind import FromStoredImage, SourceImage
from aleaart.jobs.spec_kind import SpecRequest
from aleaart.store import ImageStore, clip

router = APIRouter(tags=["derived images"], dependencies=KEYED)
SOURCE_ERRORS = error_responses(401, 404, 409, 413, 422, 429, 500, 503, 507)
TOKEN_ERRORS = error_responses(401, 413, 422, 429, 500, 507, *CHAIN_ERRORS)


def add_kind_routes(cls: type[SpecRequest]) -> None:
    """POST <path> with a seed or flat body, and POST /tokens/{token_id}/<token_path>, for the kind ``cls``."""
    bodies = kind_bodies(cls)

    async def create(body: bodies.body, queue: QueueDep, settings: SettingsDep,  # type: ignore[name-defined]
                     registry: RegistryDep, hub: WebhooksDep) -> JSONResponse:
        request = body.chosen(body.to_job(settings.palette_choice), registry)
        spec = await checked_webhook(body, hub)
        return await accepted(queue, await asyncio.to_thread(queue.submit, request), hub, spec)

    async def create_for_token(token_id: TokenIdPath, body: bodies.token, chain: ChainDep,  # type: ignore[name-defined]
                               queue: QueueDep, settings: SettingsDep, hub: WebhooksDep) -> JSONResponse:
        info = await read_token(chain, token_id)
        spec = await checked_webhook(body, hub)
        job = await asyncio.to_thread(queue.submit, cls.of(token_request(info, settings), **chosen_options(cls, body)))
        return await accepted(queue, job, hub, spec)

    # Their names are their OpenAPI summaries and operation ids, as for every route.
    create.__name__, create_for_token.__name__ = f"create_{cls.kind}", f"create_token_{cls.kind}"
    router.add_api_route(cls.routes.path, create, methods=["POST"], status_code=202, responses=SUBMIT_ERRORS,
                         description=inspect.cleandoc(cls.__doc__ or ""))
    router.add_api_route(f"/tokens/{{token_id}}/{cls.routes.token_path}", create_for_token, methods=["POST"],
                         status_code=202, responses=TOKEN_ERRORS)


def stored_source(store: ImageStore, key: str) -> SourceImage:
    if (image := store.get(key)) is None:
        raise NotFound(f"no stored image with key {clip(key)}")
    return SourceImage.of(image)


def add_image_kind_route(cls: type[FromStoredImage]) -> None:
    """POST /images/{key}/<path> for the stored-image kind ``cls``: a job whose result is stored under its source."""
    body_model = image_kind_body(cls)

    async def create(key: ImageKeyPath, body: body_model, store: StoreDep,  # type: ignore[valid-type]
                     queue: QueueDep, hub: WebhooksDep) -> JSONResponse:
        request = cls(stored_source(store, key), **chosen_options(cls, body))  # type: ignore[call-arg]
        spec = await checked_webhook(body, hub)
        return await accepted(queue, await asyncio.to_thread(queue.submit, request), hub, spec)

    create.__name__ = f"{cls.kind}_image"  # its OpenAPI summary, as for every route
    router.add_api_route(f"/images/{{key}}/{cls.routes.path}", create, methods=["POST"], status_code=202,
                         responses=SOURCE_ERRORS, description=inspect.cleandoc(cls.__doc__ or ""))


for kind in KINDS.values():
    if issubclass(kind, SpecRequest):
        add_kind_routes(kind)
    elif issubclass(kind, FromStoredImage):
        add_image_kind_route(kind)
