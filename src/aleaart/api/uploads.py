"""Routes for models: the service's own and uploaded SD 1.x checkpoints and LoRAs (uploads need the admin key)."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, get_args

from fastapi import APIRouter, Path, Request
from fastapi.responses import JSONResponse
from starlette.datastructures import UploadFile

from aleaart.api.auth import ADMIN, READ, UPLOAD
from aleaart.api.deps import QueueDep, RegistryDep, SettingsDep
from aleaart.api.errors import error_responses
from aleaart.errors import InvalidModel, InvalidParams, UploadsDisabled
from aleaart.jobs import ModelHolder
from aleaart.uploads import ID_LENGTH
from aleaart.weights import ModelKind

router = APIRouter(tags=["models"])
UPLOAD_FIELD = "file"

UPLOAD_BODY = {
    "required": True,
    "content": {"multipart/form-data": {"schema": {
        "type": "object",
        "required": [UPLOAD_FIELD],
        "properties": {
            UPLOAD_FIELD: {"type": "string", "format": "binary",
                           "description": "a .safetensors file: an SD 1.x checkpoint (original layout) or a LoRA"},
            "kind": {"type": "string", "enum": list(get_args(ModelKind)),
                     "description": "what the file is claimed to be; checked against its tensors"},
        },
    }}},
}


ModelIdPath = Annotated[str, Path(pattern=f"^[0-9a-f]{{{ID_LENGTH}}}$|^[0-9a-f]{{64}}$",
                                  description="an upload's id (16 hex digits) or its whole sha256")]


@router.get("/models", dependencies=READ)
def list_models(request: Request, registry: RegistryDep, queue: QueueDep, settings: SettingsDep) -> dict[str, Any]:
    """The service's own model, then every upload; a request names one by ``model`` (a checkpoint) or in
    ``loras`` (``[{"id", "weight"}]``)."""
    default = {"id": None, "name": queue.model_name or settings.model, "kind": "checkpoint", "default": True}
    return {"models": [default, *({**m.to_json(), "default": False} for m in registry.list())],
            "uploadsEnabled": request.app.state.keys.can_upload()}


@router.post("/models", status_code=201, dependencies=UPLOAD, openapi_extra={"requestBody": UPLOAD_BODY},
             responses={200: {"description": "the same file was uploaded before: that model"},
                        **error_responses(401, 403, 413, 422, 503)})
async def upload_model(request: Request, registry: RegistryDep, settings: SettingsDep) -> JSONResponse:
    """Upload a .safetensors SD 1.x checkpoint or LoRA (multipart, field ``file``). Its tensors are checked
    against the service's model before it is kept; pickle files (.ckpt, .pt, .bin) are refused. The same file
    twice is one model (200)."""
    architecture = await asyncio.to_thread(engine_of(request).architecture)
    # The key was checked before this: only then is the body read, to disk past its first megabyte.
    form = await request.form(max_files=1, max_fields=2)
    try:
        upload = form.get(UPLOAD_FIELD)
        if not isinstance(upload, UploadFile):
            raise InvalidParams(f"send the weights as a multipart file field named {UPLOAD_FIELD!r}")
        claimed = form.get("kind")
        if claimed is not None and claimed not in get_args(ModelKind):
            raise InvalidModel(f"kind must be one of {', '.join(get_args(ModelKind))}, got {str(claimed)[:40]!r}")
        model, created = await asyncio.to_thread(
            registry.add, upload.file.read, filename=upload.filename, claimed=claimed, architecture=architecture,
            max_bytes=settings.max_upload_mb * 2**20)
    finally:
        await form.close()
    return JSONResponse(model.to_json(), status_code=201 if created else 200,
                        headers={"Location": f"/models/{model.id}"})


@router.get("/models/{model_id}", dependencies=READ, responses=error_responses(404, 422))
def get_model(model_id: ModelIdPath, registry: RegistryDep) -> dict[str, Any]:
    return registry.get(model_id).to_json()


@router.delete("/models/{model_id}", dependencies=ADMIN, responses=error_responses(401, 403, 404, 422))
def delete_model(model_id: ModelIdPath, registry: RegistryDep) -> dict[str, Any]:
    """Delete an upload; jobs that name it afterwards fail with not_found."""
    return {**registry.delete(model_id).to_json(), "deleted": True}


def engine_of(request: Request) -> Any:
    """The loaded engine, which uploads are checked against (the API of a cluster has none)."""
    holder: ModelHolder | None = request.app.state.model
    if holder is None:
        raise UploadsDisabled("this API hands jobs to GPU workers and has no model to check uploads against; "
                              "upload to a service that renders itself, sharing ALEAART_MODELS_DIR with the workers")
    return holder.require()
