"""HTTP routes for tokens: read them from the chain, render them, describe them (ERC-721)."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from aleaart.api.auth import GENERATE_TOKENS, READ, may
from aleaart.api.deps import ChainDep, QueueDep, SettingsDep, TokenIdPath
from aleaart.api.errors import error_responses
from aleaart.api.responses import FILE_RESPONSES, file_response
from aleaart.api.schemas import JobOptions
from aleaart.api.submit import SubmitDep
from aleaart.api.token_reads import CHAIN_ERRORS, read_token, token_request
from aleaart.chain import TokenInfo, token_json
from aleaart.cid import file_cid
from aleaart.config import Settings
from aleaart.errors import Unauthorized
from aleaart.jobs import Queue, RenderRequest
from aleaart.jobs.animation import OPERATION as ANIMATION
from aleaart.metadata import FileIds, token_metadata
from aleaart.provenance.credentials import file_provenance
from aleaart.store import StoredImage

TOKEN_IMAGE_CACHE = "public, max-age=3600"

router = APIRouter(tags=["tokens"])


class TokenJobBody(JobOptions):
    """Optional: the job's webhook."""


@router.get("/tokens/latest", dependencies=READ, responses=error_responses(*CHAIN_ERRORS))
async def latest_token(chain: ChainDep) -> dict[str, Any]:
    return token_json(await asyncio.to_thread(chain.latest))


@router.get("/tokens/{token_id}", dependencies=READ, responses=error_responses(*CHAIN_ERRORS))
async def get_token(token_id: TokenIdPath, chain: ChainDep) -> dict[str, Any]:
    return token_json(await read_token(chain, token_id))


@router.post("/tokens/{token_id}/generate-image", dependencies=GENERATE_TOKENS,
             responses=error_responses(401, 403, 429, 500, 507, *CHAIN_ERRORS))
async def generate_token_image(token_id: TokenIdPath, chain: ChainDep, submit: SubmitDep, settings: SettingsDep,
                               body: TokenJobBody | None = None) -> Response:
    info = await read_token(chain, token_id)
    return await submit.answer(token_request(info, settings), body, shape=f"token:{info.derived_match}",
                               extra={"derivedMatch": info.derived_match}, keep_alive=False)


@router.post("/tokens/{token_id}/jobs", status_code=202, dependencies=GENERATE_TOKENS,
             responses=error_responses(401, 403, 429, 507, *CHAIN_ERRORS))
async def create_token_job(token_id: TokenIdPath, chain: ChainDep, submit: SubmitDep, settings: SettingsDep,
                           body: TokenJobBody | None = None) -> Response:
    return await submit.accept(token_request(await read_token(chain, token_id), settings), body)


@router.get("/tokens/{token_id}/metadata.json", dependencies=READ, responses=error_responses(*CHAIN_ERRORS))
async def token_metadata_json(request: Request, token_id: TokenIdPath, chain: ChainDep, queue: QueueDep,
                              settings: SettingsDep) -> dict[str, Any]:
    info = await read_token(chain, token_id)
    return await asyncio.to_thread(metadata_of, request, info, queue, settings)


def metadata_of(request: Request, info: TokenInfo, queue: Queue, settings: Settings) -> dict[str, Any]:
    wanted = token_request(info, settings)
    stored = queue.lookup(wanted)
    image = stored[0] if stored else None
    animation = stored_animation(queue, wanted)
    # The index has the sha256; the CID needs the bytes.
    data = queue.store.path_of(image.file).read_bytes() if image else None
    ids = FileIds(image.sha256, file_cid(data)) if image and data is not None else None
    base = str(request.base_url).rstrip("/")
    return token_metadata(
        token_id=str(info.token_id), params=info.params, spec=wanted.spec,
        image_url=f"{base}/tokens/{info.token_id}/image.png",
        model=image.model if image else queue.model_name or settings.model, stored=ids,
        external_url=f"{base}/tokens/{info.token_id}",
        animation_url=f"{base}/generated_images/{animation.file}" if animation else None,
        provenance=file_provenance(data, f"{base}/tokens/{info.token_id}/verify") if data is not None else None,
    )


def stored_animation(queue: Queue, still: RenderRequest) -> StoredImage | None:
    """The newest MP4 animated from the token's image (as rendered under a recipe results can have now)."""
    for recipe in queue.recipes():
        made, _ = queue.store.list(source=still.key(recipe), kind=ANIMATION, limit=10)
        if videos := [f for f in made if f.file.endswith(".mp4")]:
            return videos[0]
    return None


@router.get("/tokens/{token_id}/image.png", dependencies=READ, response_class=Response,
            responses={**FILE_RESPONSES, **error_responses(401, 429, 500, 507, *CHAIN_ERRORS)})
async def token_image(request: Request, token_id: TokenIdPath, chain: ChainDep, queue: QueueDep, submit: SubmitDep,
                      settings: SettingsDep) -> Response:
    info = await read_token(chain, token_id)
    wanted = token_request(info, settings)
    stored = queue.remembered(wanted) or await asyncio.to_thread(queue.lookup, wanted)
    if stored:
        image = stored[0]
    else:
        if not await may(request, "generate", tokens=True):  # serving a stored image is a read; making one is not
            raise Unauthorized(f"token {token_id}'s image is not generated yet, and generating it needs a key with "
                               "the generate scope (Authorization: Bearer or X-API-Key)")
        image = (await submit.render(wanted)).images[0]
    # Not immutable: this address follows the token to whatever the current model renders.
    return await file_response(request, queue.store, image.file, TOKEN_IMAGE_CACHE)
