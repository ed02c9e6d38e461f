"""HTTP routes for tokens: read them from the chain, render them, describe them (ERC-721)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import FileResponse, JSONResponse

from aleaart.chain import ChainReader, TokenInfo, token_json
from aleaart.config import Settings
from aleaart.errors import Unauthorized
from aleaart.jobs import JobQueue
from aleaart.metadata import render_key, token_metadata
from aleaart.params import spec_from_params
from aleaart.responses import finished_job, generate_and_wait, job_snapshot
from aleaart.store import StoredImage

TOKEN_IMAGE_CACHE = "public, max-age=3600"
TokenId = Annotated[int, Path(ge=0, le=2**256 - 1, description="the token id (decimal)")]


async def read_token(request: Request, token_id: int) -> TokenInfo:
    # web3 blocks: a thread keeps the event loop free, and the generation worker never waits on the chain.
    chain: ChainReader = request.app.state.chain
    return await asyncio.to_thread(chain.token, token_id)


def stored_image_of(queue: JobQueue, info: TokenInfo) -> StoredImage | None:
    """The token's stored image for the loaded model, if it was generated."""
    engine = queue.model.engine
    if engine is None:
        return None
    key = render_key(spec_from_params(info.params), engine.recipe, str(info.token_id))
    return queue.store.get(key)


def token_routes(settings: Settings, check_key: Callable[[Request], None]) -> APIRouter:
    router = APIRouter(tags=["tokens"])
    keyed = [Depends(check_key)]

    @router.get("/tokens/latest")
    async def latest_token(request: Request) -> dict[str, Any]:
        chain: ChainReader = request.app.state.chain
        return token_json(await asyncio.to_thread(chain.latest))

    @router.get("/tokens/{token_id}")
    async def get_token(request: Request, token_id: TokenId) -> dict[str, Any]:
        return token_json(await read_token(request, token_id))

    @router.post("/tokens/{token_id}/generate-image", dependencies=keyed)
    async def generate_token_image(request: Request, token_id: TokenId) -> dict[str, Any]:
        info = await read_token(request, token_id)
        answer = await generate_and_wait(request.app.state.queue, spec_from_params(info.params), str(token_id))
        return {**answer, "derivedMatch": info.derived_match}

    @router.post("/tokens/{token_id}/jobs", status_code=202, dependencies=keyed)
    async def create_token_job(request: Request, token_id: TokenId) -> JSONResponse:
        info = await read_token(request, token_id)
        queue: JobQueue = request.app.state.queue
        job = queue.submit(spec_from_params(info.params), str(token_id))
        return JSONResponse(job_snapshot(queue, job), status_code=202, headers={"Location": f"/jobs/{job.id}"})

    @router.get("/tokens/{token_id}/metadata.json")
    async def token_metadata_json(request: Request, token_id: TokenId) -> dict[str, Any]:
        info = await read_token(request, token_id)
        queue: JobQueue = request.app.state.queue
        stored = stored_image_of(queue, info)
        png = queue.store.path_of(stored.file).read_bytes() if stored else None
        base = str(request.base_url).rstrip("/")
        return token_metadata(
            token_id=str(token_id), params=info.params, image_url=f"{base}/tokens/{token_id}/image.png",
            model=stored.model if stored else getattr(queue.model.engine, "model_name", settings.model), png=png,
            external_url=f"{base}/tokens/{token_id}",
        )

    @router.get("/tokens/{token_id}/image.png")
    async def token_image(request: Request, token_id: TokenId) -> FileResponse:
        info = await read_token(request, token_id)
        queue: JobQueue = request.app.state.queue
        stored = stored_image_of(queue, info)
        if stored is None:
            require_key_to_generate(request, token_id)
            stored = (await finished_job(queue, spec_from_params(info.params), str(token_id))).image
        # Not immutable: this address follows the token to whatever the current model renders.
        return FileResponse(queue.store.path_of(stored.file), media_type="image/png",
                            headers={"Cache-Control": TOKEN_IMAGE_CACHE})

    def require_key_to_generate(request: Request, token_id: int) -> None:
        """Serving a stored image is open; generating one needs the key when a key is configured."""
        try:
            check_key(request)
        except Unauthorized:
            raise Unauthorized(
                f"token {token_id}'s image is not generated yet, and generating it needs the API key (X-API-Key)"
            ) from None

    return router
