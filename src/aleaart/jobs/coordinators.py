"""Coordinating kinds (a collection), each in a thread of its own, handing their work to the queue as jobs of other
kinds: made by the job's owner, so they take that owner's turns in the queue."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from aleaart.jobs.kind import CoordinatorContext, JobRequest
from aleaart.jobs.state import Job, JobState


class QueueSide(Protocol):
    """What a coordinator uses of the queue."""

    store: Any
    chain: Any
    book: Any

    def submit(self, request: JobRequest, *, priority: int, owner: str) -> Job: ...

    def cancel(self, job_id: str) -> Job: ...


class Coordinators:
    def __init__(self) -> None:
        self._threads: list[threading.Thread] = []

    def launch(self, job: Job, run: Callable[[Job], None]) -> None:
        thread = threading.Thread(target=run, args=(job,), name=f"aleaart-{job.kind}", daemon=True)
        self._threads.append(thread)
        thread.start()

    def join(self, timeout: float) -> None:
        for thread in list(self._threads):
            thread.join(timeout)


def coordinate(job: Job, queue: QueueSide) -> dict[str, Any]:
    """A coordinating job's work, as its status ends with (its summary)."""
    job.move(JobState.RUNNING, started_at=time.time())
    queue.book.save(job)
    context = CoordinatorContext(
        submit=lambda request, priority: queue.submit(request, priority=priority, owner=job.owner),
        cancel_job=queue.cancel, store=queue.store, chain=queue.chain, on_progress=job.progress,
        cancel=job.cancel_event)
    summary = job.request.coordinate(context)
    return {"summary": summary, "step": job.status.total_steps}
