"""Images made from others: variations and animations of an image's parameters, and upscales and restyles of
stored images."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from aleaart.api.deps import KEYED, ChainDep, ImageKeyPath, QueueDep, SettingsDep, StoreDep, TokenIdPath
from aleaart.api.errors import error_responses
from aleaart.api.generate import SUBMIT_ERRORS, accepted
from aleaart.api.models import RegistryDep
from aleaart.api.schemas import (
    AnimationBody,
    RestyleBody,
    TokenAnimation,
    TokenVariations,
    UpscaleBody,
    VariationsBody,
)
from aleaart.api.tokens import CHAIN_ERRORS, read_token, token_request
from aleaart.errors import NotFound
from aleaart.jobs import AnimationRequest, RestyleRequest, SourceImage, UpscaleRequest, VariationsRequest
from aleaart.store import ImageStore, clip

router = APIRouter(tags=["derived images"], dependencies=KEYED)
SOURCE_ERRORS = error_responses(401, 404, 409, 413, 422, 429, 500, 503, 507)


@router.post("/variations", status_code=202, responses=SUBMIT_ERRORS)
async def create_variations(body: VariationsBody, queue: QueueDep, settings: SettingsDep,
                            registry: RegistryDep) -> JSONResponse:
    """``count`` images from the body's parameters, their starting noise blended (``strength``) with the noise
    of seed + 1 … seed + count; a job whose ``results`` are the images, each stored under its source's key."""
    job = await asyncio.to_thread(queue.submit, body.chosen(body.to_variations(settings.palette_choice), registry))
    return accepted(queue, job)


@router.post("/tokens/{token_id}/variations", status_code=202,
             responses=error_responses(401, 413, 422, 429, 500, 507, *CHAIN_ERRORS))
async def create_token_variations(token_id: TokenIdPath, body: TokenVariations, chain: ChainDep, queue: QueueDep,
                                  settings: SettingsDep) -> JSONResponse:
    info = await read_token(chain, token_id)
    request = VariationsRequest.of(token_request(info, settings), body.count, body.strength)
    job = await asyncio.to_thread(queue.submit, request)
    return accepted(queue, job)


@router.post("/animations", status_code=202, responses=SUBMIT_ERRORS)
async def create_animation(body: AnimationBody, queue: QueueDep, settings: SettingsDep,
                           registry: RegistryDep) -> JSONResponse:
    """A looping video of the body's image: frame 0 is the image, and the starting noise walks through
    ``neighbours`` neighbour seeds and back (or the prompt morphs to ``morphStyle`` and back). A job whose
    ``results`` are the MP4 (H.264) and an animated WebP."""
    job = await asyncio.to_thread(queue.submit, body.chosen(body.to_animation(settings.palette_choice), registry))
    return accepted(queue, job)


@router.post("/tokens/{token_id}/animation", status_code=202,
             responses=error_responses(401, 413, 422, 429, 500, 507, *CHAIN_ERRORS))
async def create_token_animation(token_id: TokenIdPath, body: TokenAnimation, chain: ChainDep, queue: QueueDep,
                                 settings: SettingsDep) -> JSONResponse:
    info = await read_token(chain, token_id)
    request = AnimationRequest.of(token_request(info, settings), **body.options())
    job = await asyncio.to_thread(queue.submit, request)
    return accepted(queue, job)


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
