"""Store hits answered at the speed of serving the file: the whole JSON answer, serialised once.

The seed's ``POST /generate-image`` for an image already stored answers about 790 KB of JSON (the PNG inline as
base64). The first such request goes the whole way (a job answered from the store, its record, the answer built
and serialised), and its bytes are kept; an identical request after it gets those bytes, from memory, on the
event loop: the same job (its record answers ``GET /jobs/<id>``), the same body byte for byte. An answer is kept
while its images are still the store's (a file deleted or damaged ends it), for half the time job records are
kept, and within ALEAART_SERVE_CACHE_MB (the least recently used go first).

Requests with side effects of their own take the whole way every time: a ``userId`` (the frontend's MongoDB
record) and pinning (an answer carries a CID that may arrive later).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Annotated, Any

from cachetools import LRUCache
from fastapi import Depends, Request
from fastapi.responses import JSONResponse, Response

from aleaart.jobs import Job, JobRequest, Queue, identity


@dataclass(frozen=True)
class Answer:
    body: bytes
    status_code: int
    headers: dict[str, str]
    files: tuple[str, ...]  # the sha256 of each stored file it answers with
    made: float

    def response(self) -> Response:
        """A response of its own each time (middlewares add headers to the one they are given)."""
        return Response(self.body, status_code=self.status_code, headers=self.headers, media_type="application/json")


class StoredAnswers:
    def __init__(self, *, max_bytes: int, keep_seconds: float) -> None:
        self.keep_seconds = keep_seconds
        # Touched only on the event loop: no lock.
        self._answers: LRUCache[tuple[str, str], Answer] = LRUCache(
            maxsize=max(max_bytes, 0), getsizeof=lambda answer: len(answer.body))

    def get(self, shape: str, request: JobRequest, queue: Queue) -> Response | None:
        """The kept answer of this shape (``generate``, ``jobs``, ...) to ``request``, if its images are still
        the store's (memory only: safe on the event loop)."""
        key = (shape, identity(request))
        if (answer := self._answers.get(key)) is None or queue.draining:
            return None
        stored = queue.remembered(request)
        fresh = time.monotonic() - answer.made < self.keep_seconds
        if stored is None or tuple(image.sha256 for image in stored) != answer.files or not fresh:
            del self._answers[key]
            return None
        queue.metrics.cache_hits.labels(request.kind).inc()
        queue.metrics.jobs.labels(request.kind, "succeeded").inc()
        return answer.response()

    def keep(self, shape: str, request: JobRequest, job: Job, content: dict[str, Any], *, status_code: int = 200,
             headers: dict[str, str] | None = None) -> Response:
        """``content`` rendered as FastAPI renders a route's dict; kept when ``job`` was answered from the store."""
        response = JSONResponse(content, status_code=status_code, headers=headers)
        if job.status.cached and job.status.images and len(response.body) <= self._answers.maxsize:
            files = tuple(image.sha256 for image in job.status.images)
            self._answers[(shape, identity(request))] = Answer(bytes(response.body), status_code, dict(headers or {}),
                                                               files, time.monotonic())
        return response


async def get_answers(request: Request) -> StoredAnswers:
    return request.app.state.answers


AnswersDep = Annotated[StoredAnswers, Depends(get_answers)]
