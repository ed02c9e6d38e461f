"""Images made from others: the routes of every kind made from an image's spec (variations, animations, ...) and
of every kind that starts from a stored image (upscale, restyle, ...), each derived from its declaration
(jobs/spec_kind.py, jobs/image_kind.py).

No ``from __future__ import annotations`` here: the routes' body types are built at import, and FastAPI reads
them from the annotations as objects.
"""

import inspect

from fastapi import APIRouter
from fastapi.responses import Response

from aleaart.api.auth import GENERATE
from aleaart.api.deps import ChainDep, ImageKeyPath, RegistryDep, SettingsDep, StoreDep, TokenIdPath
from aleaart.api.errors import error_responses
from aleaart.api.schemas import chosen_options, image_kind_body, kind_bodies
from aleaart.api.submit import SUBMIT_ERRORS, SubmitDep
from aleaart.api.token_reads import CHAIN_ERRORS, read_token, token_request
from aleaart.errors import NotFound
from aleaart.files import clip
from aleaart.jobs import KINDS
from aleaart.jobs.image_kind import FromStoredImage, SourceImage
from aleaart.jobs.spec_kind import SpecRequest
from aleaart.store import ImageStore

SOURCE_ERRORS = error_responses(401, 403, 404, 409, 413, 422, 429, 500, 503, 507)
TOKEN_ERRORS = error_responses(401, 403, 413, 422, 429, 500, 507, *CHAIN_ERRORS)


def kinds_router() -> APIRouter:
    """Every registered kind's routes, from its declaration: made when the app is, so a kind registered after this
    module was imported (a test's) is served too."""
    router = APIRouter(tags=["derived images"], dependencies=GENERATE)
    for kind in KINDS.values():
        if issubclass(kind, SpecRequest):
            add_kind_routes(router, kind)
        elif issubclass(kind, FromStoredImage):
            add_image_kind_route(router, kind)
    return router


def add_kind_routes(router: APIRouter, cls: type[SpecRequest]) -> None:
    """POST <path> with a seed or flat body, and POST /tokens/{token_id}/<token_path>, for the kind ``cls``."""
    bodies = kind_bodies(cls)

    async def create(body: bodies.body, submit: SubmitDep, settings: SettingsDep,  # type: ignore[name-defined]
                     registry: RegistryDep) -> Response:
        return await submit.accept(body.chosen(body.to_job(settings.palette_choice), registry), body)

    async def create_for_token(token_id: TokenIdPath, body: bodies.token, chain: ChainDep,  # type: ignore[name-defined]
                               submit: SubmitDep, settings: SettingsDep) -> Response:
        info = await read_token(chain, token_id)
        return await submit.accept(cls.of(token_request(info, settings), **chosen_options(cls, body)), body)

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


def add_image_kind_route(router: APIRouter, cls: type[FromStoredImage]) -> None:
    """POST /images/{key}/<path> for the stored-image kind ``cls``: a job whose result is stored under its source."""
    body_model = image_kind_body(cls)

    async def create(key: ImageKeyPath, body: body_model, store: StoreDep,  # type: ignore[valid-type]
                     submit: SubmitDep) -> Response:
        return await submit.accept(cls(stored_source(store, key), **chosen_options(cls, body)), body)  # type: ignore[call-arg]

    create.__name__ = f"{cls.kind}_image"  # its OpenAPI summary, as for every route
    router.add_api_route(f"/images/{{key}}/{cls.routes.path}", create, methods=["POST"], status_code=202,
                         responses=SOURCE_ERRORS, description=inspect.cleandoc(cls.__doc__ or ""))
