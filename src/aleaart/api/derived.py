"""Images made from others: every spec-based kind's routes (variations, animations, ...), derived from its
declaration (jobs/spec_kind.py), and upscales and restyles of stored images.

No ``from __future__ import annotations`` here: the routes' body types are built at import, and FastAPI reads
them from the annotations as objects.
"""

import asyncio

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from aleaart.api.deps import KEYED, ChainDep, ImageKeyPath, QueueDep, SettingsDep, StoreDep, TokenIdPath
from aleaart.api.errors import error_responses
from aleaart.api.generate import SUBMIT_ERRORS, accepted
from aleaart.api.models import RegistryDep
from aleaart.api.schemas import RestyleBody, UpscaleBody, kind_bodies
from aleaart.api.tokens import CHAIN_ERRORS, read_token, token_request
from aleaart.errors import NotFound
from aleaart.jobs import KINDS, RestyleRequest, SourceImage, UpscaleRequest
from aleaart.jobs.spec_kind import SpecRequest
from aleaart.store import ImageStore, clip

router = APIRouter(tags=["derived images"], dependencies=KEYED)
SOURCE_ERRORS = error_responses(401, 404, 409, 413, 422, 429, 500, 503, 507)
TOKEN_ERRORS = error_responses(401, 413, 422, 429, 500, 507, *CHAIN_ERRORS)


def add_kind_routes(cls: type[SpecRequest]) -> None:
    """POST <path> with a seed or flat body, and POST /tokens/{token_id}/<token_path>, for the kind ``cls``."""
    bodies = kind_bodies(cls)
    summary = cls.__doc__.split(";")[0].split(".")[0].strip() if cls.__doc__ else cls.kind

    async def create(body: bodies.body, queue: QueueDep, settings: SettingsDep,  # type: ignore[name-defined]
                     registry: RegistryDep) -> JSONResponse:
        job = await asyncio.to_thread(queue.submit, body.chosen(body.to_job(settings.palette_choice), registry))
        return accepted(queue, job)

    async def create_for_token(token_id: TokenIdPath, body: bodies.token, chain: ChainDep,  # type: ignore[name-defined]
                               queue: QueueDep, settings: SettingsDep) -> JSONResponse:
        info = await read_token(chain, token_id)
        options = {field: getattr(body, option.name) for field, option in cls.options()}
        job = await asyncio.to_thread(queue.submit, cls.of(token_request(info, settings), **options))
        return accepted(queue, job)

    create.__name__, create_for_token.__name__ = f"create_{cls.kind}", f"create_token_{cls.kind}"
    router.add_api_route(cls.routes.path, create, methods=["POST"], status_code=202, responses=SUBMIT_ERRORS,
                         summary=summary, description=cls.__doc__)
    router.add_api_route(f"/tokens/{{token_id}}/{cls.routes.token_path}", create_for_token, methods=["POST"],
                         status_code=202, responses=TOKEN_ERRORS, summary=f"{summary}, of a token's image")


for kind in KINDS.values():
    if issubclass(kind, SpecRequest):
        add_kind_routes(kind)


def stored_source(store: ImageStore, key: str) -> SourceImage:
    if (image := store.get(key)) is None:
        raise NotFound(f"no stored image with key {clip(key)}")
    return SourceImage.of(image)


@router.post("/images/{key}/upscale", status_code=202, responses=SOURCE_ERRORS)
async def upscale_image(key: ImageKeyPath, body: UpscaleBody, store: StoreDep, queue: QueueDep) -> JSONResponse:
    """The stored image ``key``, ``scale`` times larger; a job whose result is stored under its source."""
    request = UpscaleRequest(stored_source(store, key), body.scale, body.mode, body.strength)
    return accepted(queue, await asyncio.to_thread(queue.submit, request))


@router.post("/images/{key}/restyle", status_code=202, responses=SOURCE_ERRORS)
async def restyle_image(key: ImageKeyPath, body: RestyleBody, store: StoreDep, queue: QueueDep) -> JSONResponse:
    """The stored image ``key`` redrawn in style ``styleIndex``; a job whose result is stored under its source."""
    request = RestyleRequest(stored_source(store, key), body.styleIndex, body.strength)
    return accepted(queue, await asyncio.to_thread(queue.submit, request))
