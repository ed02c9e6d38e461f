"""Verification over HTTP: an uploaded file (POST /verify) or a token's stored image (GET /tokens/{id}/verify),
checked against its Content Credentials, the chain's parameters and a render made here (provenance/verify.py
decides)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from starlette.datastructures import UploadFile

from aleaart.api.auth import READ, may
from aleaart.api.deps import ChainDep, QueueDep, SettingsDep, TokenIdPath
from aleaart.api.errors import error_responses
from aleaart.api.submit import SubmitDep, Submitter
from aleaart.api.token_reads import CHAIN_ERRORS, read_token, token_request
from aleaart.errors import Busy, InvalidParams, NotFound, Unauthorized
from aleaart.jobs import RenderRequest
from aleaart.params import RenderSpec
from aleaart.provenance.verify import Verification, compare, inspect_file, verify

router = APIRouter(tags=["verify"])
UPLOAD_FIELD = "file"
MAX_VERIFY_MB = 64  # an animation's MP4 at most; a PNG is under 1 MB

UPLOAD_BODY = {
    "required": True,
    "content": {"multipart/form-data": {"schema": {
        "type": "object", "required": [UPLOAD_FIELD],
        "properties": {UPLOAD_FIELD: {"type": "string", "format": "binary",
                                      "description": "a PNG, MP4 or WebP (this service's, or anyone's)"}},
    }}},
}
RerenderQuery = Annotated[bool | None, Query(
    description="render the recorded spec (or, with tokenId, the token's) here and compare; default: when the "
    "caller may generate (the API key, where one is set)")]


@router.post("/verify", dependencies=READ, openapi_extra={"requestBody": UPLOAD_BODY},
             responses=error_responses(401, 413, 422, 429, 500, 503, 507, *CHAIN_ERRORS))
async def verify_upload(request: Request, submit: SubmitDep, chain: ChainDep, settings: SettingsDep,
                        tokenId: Annotated[int | None, Query(ge=0, description="check the file against this "  # noqa: N803
                                                             "token's on-chain parameters")] = None,
                        rerender: RerenderQuery = None) -> dict[str, Any]:
    """A file's Content Credentials (validation state, failing checks, whether its pixels changed), the token's
    parameters against the chain's, and a re-render compared: exact, perceptual or mismatch, naming each recipe
    field that differs."""
    form = await request.form(max_files=1, max_fields=1)
    try:
        upload = form.get(UPLOAD_FIELD)
        if not isinstance(upload, UploadFile):
            raise InvalidParams(f"send the file as a multipart file field named {UPLOAD_FIELD!r}")
        data = await upload.read()
        name = upload.filename or "upload"
    finally:
        await form.close()
    chain_params = token_spec = None
    if tokenId is not None:
        info = await read_token(chain, tokenId)
        chain_params, token_spec = info.params.to_json(), token_request(info, settings).spec.canonical()
    with verify_slot(request):
        result = await asyncio.to_thread(verify, name, data, chain_params=chain_params,
                                         token_id=str(tokenId) if tokenId is not None else None,
                                         trust_anchors=trust_anchors(request))
    if await wants_rerender(request, rerender):
        await rerendered(submit, result, token_spec, str(tokenId) if tokenId is not None else None)
    return result.to_json()


@router.get("/tokens/{token_id}/verify", dependencies=READ, responses=error_responses(404, 429, *CHAIN_ERRORS))
async def verify_token(request: Request, token_id: TokenIdPath, chain: ChainDep, queue: QueueDep,
                       settings: SettingsDep) -> dict[str, Any]:
    """The token's stored image: its Content Credentials, and its recorded parameters against the chain's."""
    info = await read_token(chain, token_id)
    stored = await asyncio.to_thread(queue.lookup, token_request(info, settings))
    if not stored:
        raise NotFound(f"token {token_id}'s image is not rendered yet; GET /tokens/{token_id}/image.png makes it")
    data = await asyncio.to_thread(queue.store.path_of(stored[0].file).read_bytes)
    with verify_slot(request):
        result = await asyncio.to_thread(verify, stored[0].file, data, chain_params=info.params.to_json(),
                                         token_id=str(token_id), trust_anchors=trust_anchors(request))
    return result.to_json()


@contextmanager
def verify_slot(request: Request) -> Iterator[None]:
    """One of the few checks that may run at once (each decodes an image): 429 busy when none is free."""
    slots: threading.BoundedSemaphore = request.app.state.verify_slots
    if not slots.acquire(blocking=False):
        most = request.app.state.settings.verify_concurrency
        raise Busy(f"{most} verifications are running, the most at once (ALEAART_VERIFY_CONCURRENCY); try again in "
                   "a few seconds")
    try:
        yield
    finally:
        slots.release()


async def wants_rerender(request: Request, asked: bool | None) -> bool:
    """A re-render is a render: it needs what generating needs (a key with the generate scope, where keys are
    required)."""
    allowed = await may(request, "generate")
    if asked and not allowed:
        raise Unauthorized("a re-render needs a key with the generate scope (Authorization: Bearer or X-API-Key); "
                           "verify without it with rerender=false")
    return allowed if asked is None else asked


async def rerendered(submit: Submitter, result: Verification, token_spec: dict[str, Any] | None,
                     token_id: str | None) -> None:
    """Render the token's spec (or the recorded one) through the queue, and compare the file with it."""
    inspection = result.inspection
    assertion = inspection.assertion or {}
    spec = token_spec or assertion.get("spec")
    if inspection.image is None or spec is None:
        result.notes.append("nothing to render again: the file is not an image, or records no spec and no token "
                            "was given")
        return
    status = await submit.render(RenderRequest(RenderSpec.from_canonical(spec), token_id))
    data = await asyncio.to_thread(submit.queue.store.path_of(status.images[0].file).read_bytes)
    result.rerender_url = f"/generated_images/{status.images[0].file}"

    def compared() -> None:
        here = inspect_file(data)  # the render's own credentials state its recipe
        assert inspection.image is not None and here.image is not None
        result.rerender = compare(inspection.image, here.image, recorded=assertion.get("recipe", {}),
                                  here=(here.assertion or {}).get("recipe", {}))

    await asyncio.to_thread(compared)


def trust_anchors(request: Request) -> bytes | None:
    credentials = getattr(request.app.state, "credentials", None)
    return credentials.trust_anchors if credentials is not None else None
