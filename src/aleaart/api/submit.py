"""The one way a route submits a job: check the request's webhook, answer from a kept answer or submit (joining an
identical job, or answered from the store), subscribe the webhook, and answer.

    Submitter.accept   202 with the job's snapshot: /jobs, every kind's routes, collections
    Submitter.answer   the image itself, waited for: /generate-image and /tokens/{id}/generate-image
    Submitter.render   the finished job's status, for routes that answer with something else (a file, a check)

Routers import this module and ``token_reads``, never each other.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, replace
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from aleaart.api.answers import StoredAnswers
from aleaart.api.auth import caller_of
from aleaart.api.errors import error_responses
from aleaart.api.responses import answer_of, job_snapshot, kept_alive, succeeded
from aleaart.api.schemas import WebhookFields
from aleaart.api.webhooks import checked_webhook, subscribed
from aleaart.config import Settings
from aleaart.integrations.publisher import Publisher
from aleaart.jobs import Job, JobRequest, JobStatus, Queue
from aleaart.webhooks.hub import Webhooks

SUBMIT_ERRORS = error_responses(401, 403, 409, 413, 422, 429, 500, 503, 507)
JOBS_SHAPE = "jobs"  # the kept answers of every 202 route: a job snapshot is the same whichever route asked


@dataclass(frozen=True)
class Submitter:
    queue: Queue
    hub: Webhooks
    answers: StoredAnswers
    publisher: Publisher
    settings: Settings
    owner: str = ""  # the key the jobs are asked for by ("" without one)

    async def accept(self, request: JobRequest, body: WebhookFields | None) -> Response:
        """202 with the job's snapshot; a store hit without a webhook is kept and answered again from memory."""
        if (spec := await checked_webhook(body, self.hub)) is not None:
            job = await self._submit(request)
            answer = await subscribed(self.hub, job, spec, job_snapshot(self.queue, job), self.owner)
            return JSONResponse(answer, status_code=202, headers=location_of(job))
        if (kept := self.answers.get(JOBS_SHAPE, request, self.queue)) is not None:
            return kept
        job = await self._submit(request)
        return self.answers.keep(JOBS_SHAPE, request, job, job_snapshot(self.queue, job), status_code=202,
                                 headers=location_of(job))

    async def answer(self, request: JobRequest, body: WebhookFields | None, *, shape: str = "generate",
                     user_id: str | None = None, extra: dict[str, Any] | None = None,
                     keep_alive: bool = True) -> Response:
        """The image as the seed answers it (inline, pinned and recorded where that is configured), with ``extra``.

        With ``keep_alive``, an answer not ready within ALEAART_KEEPALIVE_SECONDS sends the status line and headers
        then, and a space every ALEAART_KEEPALIVE_SECONDS until the JSON; a failure then comes as
        ``{"success": false, ...}`` in that 200 answer (the frontend reads ``success``).
        """
        spec = await checked_webhook(body, self.hub)
        # No side effect of its own (a record, a pin, a webhook): its answer can be kept.
        plain = user_id is None and self.publisher.pinner is None and spec is None
        if plain and (kept := self.answers.get(shape, request, self.queue)) is not None:
            return kept
        job = await self._submit(request)
        await subscribed(self.hub, job, spec, {}, self.owner)

        def answered(content: dict[str, Any]) -> Response:
            content = {**content, **(extra or {})}
            return self.answers.keep(shape, request, job, content) if plain else JSONResponse(content)

        # A task of its own: a client that goes away does not stop the image's pinning and record.
        answer = asyncio.ensure_future(answer_of(self.queue, job, publisher=self.publisher, user_id=user_id))
        every = self.settings.keepalive_seconds if keep_alive else 0
        if not every:
            return answered(await asyncio.shield(answer))
        done, _ = await asyncio.wait({answer}, timeout=every)
        if done:
            return answered(answer.result())
        return StreamingResponse(kept_alive(answer, every), media_type="application/json",
                                 headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})

    async def render(self, request: JobRequest) -> JobStatus:
        """The job's status once it succeeded (the stored result at once), else the error a waiting client gets."""
        return await succeeded(self.queue, await self._submit(request))

    async def _submit(self, request: JobRequest) -> Job:
        return await asyncio.to_thread(self.queue.submit, request, owner=self.owner)


def location_of(job: Job) -> dict[str, str]:
    return {"Location": f"/jobs/{job.id}"}


async def get_submitter(request: Request) -> Submitter:
    """The service's submitter, on behalf of the caller the route's scope found."""
    submitter: Submitter = request.app.state.submitter
    owner = caller_of(request).owner
    return replace(submitter, owner=owner) if owner else submitter


SubmitDep = Annotated[Submitter, Depends(get_submitter)]
