"""What the HTTP routes answer: image results, job snapshots and their event stream."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import Request
from fastapi.responses import Response

from aleaart.api.errors import error_body
from aleaart.errors import AleaArtError, GenerationCancelled, RangeNotSatisfiable, ShuttingDown, error_for
from aleaart.integrations.publisher import Publisher
from aleaart.jobs import Job, JobState, JobStatus, Progress, Queue
from aleaart.store import ImageStore, StoredImage

log = logging.getLogger(__name__)

ONE_RANGE = re.compile(r"bytes=(\d{0,19})-(\d{0,19})", re.IGNORECASE)
IMMUTABLE = "public, max-age=31536000, immutable"  # a stored image never changes
POLL_SECONDS = 0.1
HEARTBEAT_SECONDS = 15.0
WATCH_RENEW_SECONDS = 3.0  # how often a stream says it still watches its job's previews


FILE_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"content": {"image/png": {}, "video/mp4": {}, "image/webp": {}},
          "description": "the file (a PNG, or an animation's MP4 or WebP); its ETag is its sha256"},
    206: {"description": "the one byte range the Range header asked for (how browsers seek in a video)"},
    304: {"description": "If-None-Match named this file's ETag: the client's copy is this file"},
    416: {"description": "the Range header starts past the end of the file (Content-Range names its size)"},
}


async def file_response(request: Request, store: ImageStore, filename: str,
                        cache_control: str = IMMUTABLE) -> Response:
    """A stored file as a static file server answers it: a strong ETag (its sha256), 304 to a client that has
    it, one byte range when asked (206), and the bytes from memory after the first time (the disk and the
    index only on a miss)."""
    served = store.known_file(filename) or await asyncio.to_thread(store.served_file, filename)
    headers = {"ETag": served.etag, "Cache-Control": cache_control, "Accept-Ranges": "bytes"}
    tags = if_none_match(request.headers.get("if-none-match"))
    if served.etag in tags or "*" in tags:  # "*": any version of it, and the file exists
        return Response(status_code=304, headers=headers)
    data = store.cached_bytes(served) or await asyncio.to_thread(store.file_bytes, served)
    if_range = request.headers.get("if-range")
    span = byte_range(request.headers.get("range"), len(data)) if if_range in (None, served.etag) else None
    if span is None:
        return Response(data, media_type=served.media_type, headers=headers)
    start, end = span
    headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
    return Response(data[start:end + 1], status_code=206, media_type=served.media_type, headers=headers)


def byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The first and last byte a ``Range`` header asks for, or None to answer the whole file: no header, a unit
    other than bytes, several ranges, or one that does not parse (RFC 9110 lets a server ignore all of these).
    A range that starts past the end raises RangeNotSatisfiable (416)."""
    matched = ONE_RANGE.fullmatch(header.strip()) if header is not None else None
    if matched is None or matched.group(1) == matched.group(2) == "":
        return None
    first, last = matched.groups()
    if first == "":  # the last N bytes
        if int(last) == 0:
            raise RangeNotSatisfiable("the range asks for the last 0 bytes", size=size)
        return max(size - int(last), 0), size - 1
    start = int(first)
    if last and int(last) < start:
        return None
    if start >= size:
        raise RangeNotSatisfiable(f"the range starts at byte {start}; the file has {size}", size=size)
    return start, min(int(last), size - 1) if last else size - 1


def if_none_match(header: str | None) -> set[str]:
    """The entity tags a conditional GET names (weak ones compare as strong, as RFC 9110 says for GET)."""
    if not header:
        return set()
    return {tag.strip().removeprefix("W/") for tag in header.split(",")}


def image_result(store: ImageStore, image: StoredImage, *, cached: bool, with_base64: bool,
                 publisher: Publisher | None = None) -> dict[str, Any]:
    spec = image.spec
    result: dict[str, Any] = {
        "imageUrl": f"/generated_images/{image.file}",
        "tokenId": image.token_id,
        "prompt": image.prompt,
        "parameters": {"steps": spec["steps"], "cfg_scale": spec["guidance_scale"], "seed": spec["seed"],
                       "sampler": image.sampler, "width": image.width, "height": image.height},
        "renderParams": image.params,
        "imageId": image.key,
        "kind": image.kind,
        "source": image.source,
        "sha256": image.sha256,
        "model": image.model,
        "seconds": image.seconds,
        "cached": cached,
        "createdAt": image.created_at,
    }
    if publisher is not None and publisher.pinner is not None:
        result |= publisher.ipfs_fields(publisher.pinned_cid(image.key))
    if with_base64:
        result["imageBase64"] = store.data_url(image)
    return result


def job_snapshot(queue: Queue, job: Job, status: JobStatus | None = None, *, placed: bool = True) -> dict[str, Any]:
    """A job as clients see it, from one status snapshot (never half of a change). ``placed`` off leaves out its
    queue position and ETA (a webhook's body: they would be stale when it arrives)."""
    status = status or job.status
    progress = queue.progress(job) if placed else Progress(None, None)
    snapshot = {
        "jobId": job.id,
        "kind": job.kind,
        "status": status.state.value,
        "priority": int(job.priority),
        "step": status.step,
        "totalSteps": status.total_steps,
        "queuePosition": progress.queue_position if status.state is JobState.QUEUED else None,
        "etaSeconds": progress.eta_seconds if not status.state.is_terminal() else None,
        "tokenId": job.request.token_id,
        "error": status.error,
        "code": status.code,
        "attempts": status.attempts,
        "statusUrl": f"/jobs/{job.id}",
        "eventsUrl": f"/jobs/{job.id}/events",
    }
    if status.summary is not None:
        snapshot["summary"] = status.summary
    if status.images:
        results = [image_result(queue.store, i, cached=status.cached, with_base64=False) for i in status.images]
        snapshot["result"] = results[0]
        snapshot["results"] = results
    return snapshot


def shutting_down(job: Job) -> ShuttingDown:
    return ShuttingDown(f"the service is restarting: job {job.id} is kept and runs after the restart; "
                        f"follow it at /jobs/{job.id}")


async def wait_for(queue: Queue, job: Job) -> JobStatus:
    """The job's final status; ShuttingDown when the service drains and the job will not run before it stops."""
    # Polling keeps waiting off the thread pool: hundreds of waiters cost nothing but a timer each.
    with queue.metrics.waiting_clients.labels("answer").track_inprogress():
        while not (status := job.status).state.is_terminal():
            if queue.draining and status.state is JobState.QUEUED:
                raise shutting_down(job)
            await asyncio.sleep(POLL_SECONDS)
        return status


def event(kind: str, data: dict[str, Any]) -> str:
    return f"event: {kind}\ndata: {json.dumps(data)}\n\n"


async def job_events(queue: Queue, job: Job) -> AsyncIterator[str]:
    """Server-Sent Events: one ``progress`` per change, then the terminal state's event."""
    with queue.metrics.waiting_clients.labels("events").track_inprogress():
        async for message in _job_events(queue, job):
            yield message


async def _job_events(queue: Queue, job: Job) -> AsyncIterator[str]:
    seen, quiet, shown, watched = -1, 0.0, None, -WATCH_RENEW_SECONDS
    while True:
        status = job.status
        if status.state is JobState.RUNNING and time.monotonic() - watched >= WATCH_RENEW_SECONDS:
            watched = time.monotonic()
            await asyncio.to_thread(queue.watch_previews, job)  # workers elsewhere send previews while watched
        if (preview := job.preview) is not None and preview is not shown and not status.state.is_terminal():
            shown = preview  # the latest only: a reader that is slow skips previews, none wait for it
            yield event("preview", preview.to_event())
        if queue.draining and status.state is JobState.QUEUED:
            yield event("shutting_down", {**job_snapshot(queue, job, status), "error": str(shutting_down(job)),
                                          "code": ShuttingDown.code})
            return
        if status.version != seen or status.state.is_terminal():
            seen = status.version
            snapshot = await asyncio.to_thread(job_snapshot, queue, job, status)
            if status.state.is_terminal():
                yield event("result" if status.state is JobState.SUCCEEDED else status.state.value, snapshot)
                return
            yield event("progress", snapshot)
            quiet = 0.0
        await asyncio.sleep(POLL_SECONDS)
        quiet += POLL_SECONDS
        if quiet >= HEARTBEAT_SECONDS:
            quiet = 0.0
            yield ": keep-alive\n\n"


def failure_of(job: Job, status: JobStatus) -> AleaArtError:
    """The error a waiting client gets for a job that did not succeed, with the job's own code."""
    if status.state is JobState.CANCELLED:
        return GenerationCancelled(f"job {job.id} was cancelled")
    return error_for(status.code, status.error or "generation failed")


async def succeeded(queue: Queue, job: Job) -> JobStatus:
    """Wait for ``job``; its final status if it succeeded, else the error a waiting client gets."""
    # The job is the worker's: a client that goes away does not cancel it, and the result is stored.
    status = await asyncio.shield(wait_for(queue, job))
    if status.state is not JobState.SUCCEEDED or not status.images:
        raise failure_of(job, status)
    return status


async def answer_of(queue: Queue, job: Job, *, publisher: Publisher | None, user_id: str | None) -> dict[str, Any]:
    status = await succeeded(queue, job)
    image = status.images[0]
    result = await asyncio.to_thread(image_result, queue.store, image, cached=status.cached, with_base64=True)
    if publisher is not None:
        result |= await asyncio.to_thread(publisher.publish, image, user_id=user_id, token_id=job.request.token_id)
    return {"success": True, **result, "jobId": job.id}


async def kept_alive(answer: asyncio.Future[dict[str, Any]], every: float) -> AsyncIterator[bytes]:
    """A space every ``every`` seconds until the answer is ready, then the answer (or its error) as JSON.

    Spaces before a JSON value are insignificant, and they keep clients and proxies with idle
    timeouts (Node's fetch gives up on headers after 300 s) from dropping a long render.
    """
    while not answer.done():
        done, _ = await asyncio.wait({answer}, timeout=every)
        if not done:
            yield b" "
    try:
        body = answer.result()
    except AleaArtError as error:
        body = error_body(str(error), error.code)
    except Exception:
        log.exception("the answer to a kept-alive request failed")
        body = error_body("internal error; the server log has the details", "internal_error")
    yield json.dumps(body).encode()
