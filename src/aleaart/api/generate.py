"""Routes that make images: the seed's synchronous /generate-image and the job API."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse

from aleaart.api.auth import GENERATE, GENERATE_TOKENS, READ_JOBS, Caller, CallerDep
from aleaart.api.deps import ChainDep, QueueDep, RegistryDep, SettingsDep, WebhooksDep
from aleaart.api.errors import error_responses
from aleaart.api.responses import job_events, job_snapshot
from aleaart.api.schemas import GenerateBody
from aleaart.api.submit import SUBMIT_ERRORS, SubmitDep
from aleaart.api.token_reads import require_token_image
from aleaart.errors import JobEnded, NotFound
from aleaart.jobs import Job, Queue
from aleaart.previews import as_jpeg, wants_jpeg

log = logging.getLogger(__name__)
router = APIRouter(tags=["generate"])
JOB_ERRORS = error_responses(401, 403, 404, 422)


@router.post("/generate-image", dependencies=GENERATE_TOKENS, responses=SUBMIT_ERRORS, response_model=None)
async def generate_image(body: GenerateBody, submit: SubmitDep, settings: SettingsDep, registry: RegistryDep,
                         caller: CallerDep, chain: ChainDep) -> Response:
    """Generate (or join, or find stored) and answer with the image.

    An answer ready within ALEAART_KEEPALIVE_SECONDS, and every refusal, is an ordinary one.
    A longer wait sends the status line and headers then, and a space every
    ALEAART_KEEPALIVE_SECONDS until the JSON; a failure then comes as ``{"success": false, ...}``
    in that 200 answer (the frontend reads ``success``). A ``webhook`` is told of the job even if the client
    goes away.
    """
    request = body.chosen(body.to_request(settings.palette_choice), registry)
    if caller.tokens_only:  # no key, let in by ALEAART_PUBLIC_TOKENS
        await require_token_image(request, chain, settings)
    return await submit.answer(request, body, user_id=body.userId)


@router.post("/jobs", status_code=202, dependencies=GENERATE, responses=SUBMIT_ERRORS)
async def create_job(body: GenerateBody, submit: SubmitDep, settings: SettingsDep, registry: RegistryDep) -> Response:
    return await submit.accept(body.chosen(body.to_request(settings.palette_choice), registry), body)


@router.get("/jobs/{job_id}", dependencies=READ_JOBS, responses=JOB_ERRORS)
def get_job(job_id: str, queue: QueueDep, hub: WebhooksDep, caller: CallerDep) -> dict[str, Any]:
    """The job, and the caller's webhooks of it with their deliveries (pending, delivered, failed, gone) if it has
    any (every one's for the admin scope). A job is its owners' (the keys that asked for it) and the admin scope's:
    to another key it is 404, as an unknown one."""
    snapshot = job_snapshot(queue, visible_job(queue, job_id, caller))
    admin = caller.key is not None and caller.key.allows("admin")
    if webhooks := hub.job_state(job_id, owner=caller.owner, every=admin):
        snapshot["webhooks"] = webhooks
    return snapshot


@router.get("/jobs/{job_id}/events", dependencies=READ_JOBS, responses=JOB_ERRORS)
def job_event_stream(job_id: str, queue: QueueDep, caller: CallerDep) -> StreamingResponse:
    job = visible_job(queue, job_id, caller)
    return StreamingResponse(job_events(queue, job), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


@router.get("/jobs/{job_id}/preview.webp", dependencies=READ_JOBS, response_class=Response,
            responses={**JOB_ERRORS, **error_responses(410), 200: {"content": {"image/webp": {}, "image/jpeg": {}}},
                       304: {"description": "the preview the client has (its ETag) is still the latest"}})
def job_preview(job_id: str, request: Request, queue: QueueDep, caller: CallerDep) -> Response:
    """The running job's latest preview (its predicted image so far, small): 404 before the first, 410 once the
    job ended (with the result's imageUrl), an ETag per step."""
    job = visible_job(queue, job_id, caller)
    status = job.status
    if status.state.is_terminal():
        image = status.images[0] if status.images else None
        raise JobEnded(f"job {job_id} has {status.state.value}: its previews are over",
                       extra={"status": status.state.value,
                              "imageUrl": f"/generated_images/{image.file}" if image else None})
    queue.watch_previews(job)  # a client polling for previews watches them too
    preview = job.preview
    if preview is None:
        raise NotFound(f"job {job_id} has no preview yet (one comes every ALEAART_PREVIEW_EVERY steps once it runs)")
    if wants_jpeg(request.headers.get("accept", "")):  # WebP unless a client asks for JPEG alone
        preview = as_jpeg(preview)
    etag = f'"{job_id}-{preview.step}-{preview.mime.removeprefix("image/")}"'
    headers = {"ETag": etag, "Cache-Control": "no-cache", "Vary": "Accept"}
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    return Response(preview.data, media_type=preview.mime, headers=headers)


@router.delete("/jobs/{job_id}", dependencies=GENERATE, responses=JOB_ERRORS)
def cancel_job(job_id: str, queue: QueueDep, caller: CallerDep) -> dict[str, Any]:
    """Withdraw the caller's interest: the job stops once none of the keys that asked for it wants it. Without a
    key (where none is needed), or with the admin scope, it stops now."""
    if not caller.sees_every_job:
        return job_snapshot(queue, queue.withdraw(visible_job(queue, job_id, caller).id, caller.owner))
    job = queue.cancel(job_id)
    if caller.key is not None:
        log.warning("job %s cancelled by the admin key %r", job_id, caller.name)
    return job_snapshot(queue, job)


def visible_job(queue: Queue, job_id: str, caller: Caller) -> Job:
    return queue.get(job_id, owner=None if caller.sees_every_job else caller.owner)
