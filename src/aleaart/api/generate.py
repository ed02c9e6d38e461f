"""Routes that make images: the seed's synchronous /generate-image and the job API."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response, StreamingResponse

from aleaart.api.answers import AnswersDep, StoredAnswers
from aleaart.api.deps import KEYED, PublisherDep, QueueDep, SettingsDep
from aleaart.api.errors import error_responses
from aleaart.api.models import RegistryDep
from aleaart.api.responses import answer_of, job_events, job_snapshot, kept_alive
from aleaart.api.schemas import GenerateBody
from aleaart.jobs import Job, JobRequest, Queue

router = APIRouter(tags=["generate"], dependencies=KEYED)
SUBMIT_ERRORS = error_responses(401, 409, 413, 422, 429, 500, 503, 507)
JOB_ERRORS = error_responses(401, 404, 422)


def accepted(queue: Queue, job: Job) -> JSONResponse:
    return JSONResponse(job_snapshot(queue, job), status_code=202, headers={"Location": f"/jobs/{job.id}"})


@router.post("/generate-image", responses=SUBMIT_ERRORS, response_model=None)
async def generate_image(body: GenerateBody, queue: QueueDep, publisher: PublisherDep, settings: SettingsDep,
                         registry: RegistryDep, answers: AnswersDep) -> Response:
    """Generate (or join, or find stored) and answer with the image.

    An answer ready within ALEAART_KEEPALIVE_SECONDS, and every refusal, is an ordinary one.
    A longer wait sends the status line and headers then, and a space every
    ALEAART_KEEPALIVE_SECONDS until the JSON; a failure then comes as ``{"success": false, ...}``
    in that 200 answer (the frontend reads ``success``).
    """
    request = body.chosen(body.to_request(settings.palette_choice), registry)
    plain = body.userId is None and publisher.pinner is None  # no side effect of its own: its answer can be kept
    if plain and (kept := answers.get("generate", request, queue)) is not None:
        return kept
    job = await asyncio.to_thread(queue.submit, request)
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
                     answers: AnswersDep) -> Response:
    request = body.chosen(body.to_request(settings.palette_choice), registry)
    if (kept := answers.get("jobs", request, queue)) is not None:
        return kept
    job = await asyncio.to_thread(queue.submit, request)
    return answers.keep("jobs", request, job, job_snapshot(queue, job), status_code=202,
                        headers={"Location": f"/jobs/{job.id}"})


@router.get("/jobs/{job_id}", responses=JOB_ERRORS)
def get_job(job_id: str, queue: QueueDep) -> dict[str, Any]:
    return job_snapshot(queue, queue.get(job_id))


@router.get("/jobs/{job_id}/events", responses=JOB_ERRORS)
def job_event_stream(job_id: str, queue: QueueDep) -> StreamingResponse:
    job = queue.get(job_id)
    return StreamingResponse(job_events(queue, job), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


@router.delete("/jobs/{job_id}", responses=JOB_ERRORS)
def cancel_job(job_id: str, queue: QueueDep) -> dict[str, Any]:
    return job_snapshot(queue, queue.cancel(job_id))
