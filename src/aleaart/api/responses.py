"""What the HTTP routes answer: image results, job snapshots and their event stream."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi.responses import JSONResponse

from aleaart.errors import GenerationCancelled, GenerationFailed
from aleaart.jobs import Job, JobQueue, JobState
from aleaart.params import RenderSpec
from aleaart.store import ImageStore, StoredImage

IMMUTABLE = "public, max-age=31536000, immutable"  # a stored image never changes
POLL_SECONDS = 0.1
HEARTBEAT_SECONDS = 15.0


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"success": False, "error": message}, status_code=status, headers=headers)


def image_base64(store: ImageStore, image: StoredImage) -> str:
    data = store.path_of(image.file).read_bytes()
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def image_result(store: ImageStore, image: StoredImage, *, cached: bool, with_base64: bool) -> dict[str, Any]:
    spec = image.spec
    result: dict[str, Any] = {
        "imageUrl": f"/generated_images/{image.file}",
        "tokenId": image.token_id,
        "prompt": image.prompt,
        "parameters": {"steps": spec["steps"], "cfg_scale": spec["guidance_scale"], "seed": spec["seed"],
                       "sampler": image.sampler, "width": image.width, "height": image.height},
        "renderParams": image.params,
        "imageId": image.key,
        "sha256": image.sha256,
        "model": image.model,
        "seconds": image.seconds,
        "cached": cached,
        "createdAt": image.created_at,
    }
    if with_base64:
        result["imageBase64"] = image_base64(store, image)
    return result


def job_snapshot(queue: JobQueue, job: Job) -> dict[str, Any]:
    progress = queue.progress(job)
    snapshot = {
        "jobId": job.id,
        "status": job.state.value,
        "step": job.step,
        "totalSteps": job.total_steps,
        "queuePosition": progress.queue_position,
        "etaSeconds": progress.eta_seconds,
        "tokenId": job.token_id,
        "error": job.error,
        "statusUrl": f"/jobs/{job.id}",
        "eventsUrl": f"/jobs/{job.id}/events",
    }
    if job.image is not None:
        snapshot["result"] = image_result(queue.store, job.image, cached=job.cached, with_base64=False)
    return snapshot


async def wait_for(job: Job) -> None:
    # Polling keeps waiting off the thread pool: hundreds of waiters cost nothing but a timer each.
    while not job.state.is_terminal():
        await asyncio.sleep(POLL_SECONDS)


async def job_events(queue: JobQueue, job: Job) -> AsyncIterator[str]:
    """Server-Sent Events: one ``progress`` per change, then the terminal state's event."""
    seen, quiet = -1, 0.0
    while True:
        if job.version != seen or job.state.is_terminal():
            seen = job.version
            snapshot = job_snapshot(queue, job)
            kind = "result" if job.state is JobState.SUCCEEDED else job.state.value
            yield f"event: {kind if job.state.is_terminal() else 'progress'}\ndata: {json.dumps(snapshot)}\n\n"
            if job.state.is_terminal():
                return
            quiet = 0.0
        await asyncio.sleep(POLL_SECONDS)
        quiet += POLL_SECONDS
        if quiet >= HEARTBEAT_SECONDS:
            quiet = 0.0
            yield ": keep-alive\n\n"


async def finished_job(queue: JobQueue, spec: RenderSpec, token_id: str | None) -> Job:
    """Submit (or join, or find stored) and wait; the job has its image, or this raises why not."""
    job = queue.submit(spec, token_id)
    # The job is the worker's: a client that goes away does not cancel it, and the result is stored.
    await asyncio.shield(wait_for(job))
    if job.state is JobState.CANCELLED:
        raise GenerationCancelled(f"job {job.id} was cancelled")
    if job.image is None:
        raise GenerationFailed(job.error or "generation failed")
    return job


async def generate_and_wait(queue: JobQueue, spec: RenderSpec, token_id: str | None) -> dict[str, Any]:
    """The seed's synchronous answer, with the image inline."""
    job = await finished_job(queue, spec, token_id)
    result = image_result(queue.store, job.image, cached=job.cached, with_base64=True)
    return {"success": True, **result, "jobId": job.id}
