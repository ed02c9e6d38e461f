"""Images made from others: variations of an image's parameters (more operations to come here)."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from aleaart.api.deps import KEYED, ChainDep, QueueDep, SettingsDep, TokenIdPath
from aleaart.api.errors import error_responses
from aleaart.api.generate import SUBMIT_ERRORS, accepted
from aleaart.api.schemas import TokenVariations, VariationsBody
from aleaart.api.tokens import CHAIN_ERRORS, read_token, token_request
from aleaart.jobs import VariationsRequest

router = APIRouter(tags=["derived images"], dependencies=KEYED)


@router.post("/variations", status_code=202, responses=SUBMIT_ERRORS)
async def create_variations(body: VariationsBody, queue: QueueDep, settings: SettingsDep) -> JSONResponse:
    """``count`` images from the body's parameters, their starting noise blended (``strength``) with the noise
    of seed + 1 … seed + count; a job whose ``results`` are the images, each stored under its source's key."""
    job = await asyncio.to_thread(queue.submit, body.to_variations(settings.palette_choice))
    return accepted(queue, job)


@router.post("/tokens/{token_id}/variations", status_code=202,
             responses=error_responses(401, 413, 422, 429, 500, 507, *CHAIN_ERRORS))
async def create_token_variations(token_id: TokenIdPath, body: TokenVariations, chain: ChainDep, queue: QueueDep,
                                  settings: SettingsDep) -> JSONResponse:
    info = await read_token(chain, token_id)
    request = VariationsRequest.of(token_request(info, settings), body.count, body.strength)
    job = await asyncio.to_thread(queue.submit, request)
    return accepted(queue, job)
