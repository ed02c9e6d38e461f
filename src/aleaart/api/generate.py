"""Routes that make images: the seed's synchronous /generate-image and the job API."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response, StreamingResponse

from aleaart.api.answers import AnswersDep, StoredAnswers
from aleaart.api.deps import KEYED, PublisherDep, QueueDep, SettingsDep, WebhooksDep
from aleaart.api.errors import error_responses
from aleaart.api.models import RegistryDep
from aleaart.api.responses import answer_of, job_events, job_snapshot, kept_alive
from aleaart.api.schemas import GenerateBody
from aleaart.api.webhooks import checked_webhook, subscribed
from aleaart.jobs import Job, JobRequest, Queue
from aleaart.webhooks.events import WebhookSpec
from aleaart.webhooks.hub import Webhooks

router = APIRouter(tags=["generate"], dependencies=KEYED)
SUBMIT_ERRORS = error_responses(401, 409, 413, 422, 429, 500, 503, 507)
JOB_ERRORS = error_responses(401, 404, 422)


async def accepted(queue: Queue, job: Job, hub: Webhooks | None = None,
                   spec: WebhookSpec | None = None) -> JSONResponse:
    """202 with the job's snapshot, subscribed to ``spec`` (its webhook) if given."""
    answer = job_snapshot(queue, job)
    if hub is not None:
        answer = await subscribed(hub, job, spec, answer)
    return JSONResponse(answer, status_code=202, headers={"Location": f"/jobs/{job.id}"})


@router.post("/generate-image", responses=SUBMIT_ERRORS, response_model=None)
async def generate_image(body: GenerateBody, queue: QueueDep, publisher: PublisherDep, settings: SettingsDep,
                         registry: RegistryDep, answers: AnswersDep, hub: WebhooksDep) -> Response:
    """Generate (or join, or find stored) and answer with the image.

    An answer ready within ALEAART_KEEPALIVE_SECONDS, and every refusal, is an ordinary one.
    A longer wait sends the status line and headers then, and a space every
    ALEAART_KEEPALIVE_SECONDS until the JSON; a failure then comes as ``{"success": false, ...}``
    in that 200 answer (the frontend reads ``success``). A ``webhook`` is told of the job even if the client
    goes away.
    """
    request = body.chosen(body.to_request(settings.palette_choice), registry)
    spec = await checked_webhook(body, hub)
    # No side effect of its own (a record, a pin, a webhook): its answer can be kept.
    plain = body.userId is None and publisher.pinner is None and spec is None
    if plain and (kept := answers.get("generate", request, queue)) is not None:
        return kept
    job = await asyncio.to_thread(queue.submit, request)
    await subscribed(hub, job, spec, {})
    # A task of its own: a client that goes away does not stop the image's pinning and record.
    answer = asyncio.ensure_future(answer_of(queue, job, publisher=publisher, user_id=body.userId))
    if not settings.keepalive_seconds:
        return answered(answers, plain, request, job, await asyncio.shield(answer))
    done, _ = await asyncio.wait({answer}, timeout=settings.keepalive_seconds)
    if done:
        return answered(answers, plain, request, job, answer.result())
    return StreamingResponse(kept_alive(answer, settings.keepalive_seconds), media_type="application/json",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


def answered(answers: StoredAnswers, plain: bool, request: JobRequest, job: Job, content: dict[str, Any]) -> Response:
    return answers.keep("generate", request, job, content) if plain else JSONResponse(content)


@router.post("/jobs", status_code=202, responses=SUBMIT_ERRORS)
async def create_job(body: GenerateBody, queue: QueueDep, settings: SettingsDep, registry: RegistryDep,
                     answers: AnswersDep, hub: WebhooksDep) -> Response:
    request = body.chosen(body.to_request(settings.palette_choice), registry)
    if (spec := await checked_webhook(body, hub)) is not None:
        return await accepted(queue, await asyncio.to_thread(queue.submit, request), hub, spec)
    if (kept := answers.get("jobs", request, queue)) is not None:
        return kept
    job = await asyncio.to_thread(queue.submit, request)
    return answers.keep("jobs", request, job, job_snapshot(queue, job), status_code=202,
                        headers={"Location": f"/jobs/{job.id}"})


@router.get("/jobs/{job_id}", responses=JOB_ERRORS)
def get_job(job_id: str, queue: QueueDep, hub: WebhooksDep) -> dict[str, Any]:
    """The job, and its webhooks with their deliveries (pending, delivered, failed, gone) if it has any."""
    snapshot = job_snapshot(queue, queue.get(job_id))
    if webhooks := hub.job_state(job_id):
        snapshot["webhooks"] = webhooks
    return snapshot


@router.get("/jobs/{job_id}/events", responses=JOB_ERRORS)
def job_event_stream(job_id: str, queue: QueueDep) -> StreamingResponse:
    job = queue.get(job_id)
    return StreamingResponse(job_events(queue, job), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


@router.delete("/jobs/{job_id}", responses=JOB_ERRORS)
def cancel_job(job_id: str, queue: QueueDep) -> dict[str, Any]:
    return job_snapshot(queue, queue.cancel(job_id))
