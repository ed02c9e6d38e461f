"""Routes for whole collections: start one, page through its tokens, download its CAR."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import FileResponse, Response
from pydantic import ConfigDict, Field

from aleaart.api.auth import GENERATE, READ
from aleaart.api.deps import ChainDep, QueueDep, SettingsDep
from aleaart.api.errors import error_responses
from aleaart.api.schemas import WebhookFields
from aleaart.api.submit import SubmitDep
from aleaart.errors import InvalidParams, NotFound
from aleaart.jobs import CollectionRequest, JobState, Queue
from aleaart.token_ids import MAX_JSON_TOKEN_ID, MAX_TOKEN_ID

router = APIRouter(tags=["collections"])


class CollectionBody(WebhookFields):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    first: int = Field(1, alias="from", ge=0, le=MAX_JSON_TOKEN_ID, strict=True,
                       description="the first token id (default 1)")
    last: int | None = Field(None, alias="to", ge=0, le=MAX_JSON_TOKEN_ID, strict=True,
                             description="the last token id (default: the newest minted)")


def collection_job(queue: Queue, job_id: str) -> CollectionRequest:
    request = queue.get(job_id).request
    if not isinstance(request, CollectionRequest):
        raise NotFound(f"job {job_id!r} is not a collection")
    return request


@router.post("/collections", status_code=202, dependencies=GENERATE,
             responses=error_responses(401, 403, 409, 422, 429, 502, 503))
async def start_collection(body: CollectionBody, submit: SubmitDep, settings: SettingsDep) -> Response:
    """Render every token first..last (at bulk priority: interactive requests go first) and export
    the folder and CAR for IPFS; follow it at /jobs/<id> (its ``summary``)."""
    if body.last is not None and body.last < body.first:
        raise InvalidParams(f"to must be at least from ({body.first}), got {body.last}")
    name = f"{body.first}-{body.last if body.last is not None else 'latest'}"
    request = CollectionRequest(out=str(settings.collections_dir / name), first=body.first, last=body.last,
                                palette=settings.palette_choice)
    return await submit.accept(request, body)


@router.get("/collections/{job_id}/tokens", dependencies=READ, responses=error_responses(404, 422, 502, 503))
async def collection_tokens(
    job_id: str, queue: QueueDep, chain: ChainDep,
    offset: Annotated[int, Query(ge=0, le=MAX_JSON_TOKEN_ID)] = 0,
    limit: Annotated[int, Query(ge=1, le=200)] = 48,
) -> dict[str, Any]:
    """The collection's ready tokens, a page at a time, each with its image once it is stored."""
    request = collection_job(queue, job_id)
    last = request.last if request.last is not None else MAX_TOKEN_ID
    batch = await asyncio.to_thread(chain.tokens, request.first, last)
    page = batch.ready[offset:offset + limit]
    found = await asyncio.to_thread(
        lambda: [queue.lookup(request.token_request(t)) for t in page])
    tokens = [{"tokenId": str(t.token_id), "imageUrl": f"/generated_images/{stored[0].file}" if stored else None}
              for t, stored in zip(page, found, strict=True)]
    return {"tokens": tokens, "total": len(batch.ready), "pending": batch.pending, "offset": offset, "limit": limit}


@router.get("/collections/{job_id}/collection.car", dependencies=READ, response_class=FileResponse,
            responses=error_responses(404, 409))
def collection_car(job_id: str, queue: QueueDep) -> FileResponse:
    request = collection_job(queue, job_id)
    if queue.get(job_id).state is not JobState.SUCCEEDED:
        raise NotFound(f"collection {job_id} has no CAR yet: it is still running, or it failed")
    car = Path(request.out) / "collection.car"
    if not car.is_file():
        raise NotFound(f"collection {job_id}'s CAR is gone from {car}")
    return FileResponse(car, media_type="application/vnd.ipld.car", filename="collection.car")
