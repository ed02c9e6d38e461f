"""Routes that read stored images: the paged list and the PNG files."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from pydantic import WithJsonSchema

from aleaart.api.auth import READ
from aleaart.api.deps import PublisherDep, StoreDep
from aleaart.api.errors import error_responses
from aleaart.api.responses import FILE_RESPONSES, file_response, image_result
from aleaart.api.schemas import TOKEN_ID_SCHEMA
from aleaart.token_ids import check_token_id

router = APIRouter(tags=["images"])
TOKEN_QUERY_SCHEMA = {"anyOf": [s for s in TOKEN_ID_SCHEMA["anyOf"] if s["type"] == "string"]}


@router.get("/images", dependencies=READ, responses=error_responses(401, 403, 422))
def list_images(
    store: StoreDep,
    publisher: PublisherDep,
    tokenId: Annotated[str | None, WithJsonSchema(TOKEN_QUERY_SCHEMA),
                       Query(description="only this token's images (its id or label)")] = None,
    source: Annotated[str | None, Query(max_length=64, description="only images derived from this image key")] = None,
    kind: Annotated[str | None, Query(max_length=32, description="only what one operation made: render, variation, "
                                      "upscale, restyle, animation")] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    offset: Annotated[int, Query(ge=0, le=2**62)] = 0,
) -> dict[str, Any]:
    images, total = store.list(token_id=check_token_id(tokenId), source=source, kind=kind, limit=limit,
                                offset=offset)
    items = [image_result(store, i, cached=True, with_base64=False, publisher=publisher) for i in images]
    return {"images": items, "total": total, "limit": limit, "offset": offset}


@router.get("/generated_images/{filename}", dependencies=READ, response_class=Response,
            responses={**FILE_RESPONSES, **error_responses(404)})
async def generated_image(filename: str, request: Request, store: StoreDep) -> Response:
    return await file_response(request, store, filename)
