"""Where worker jobs run: the protocol every queue backend implements, and what it may ask of the queue.

The queue (``queue.Queue``) keeps the records, dedup, priorities, progress, cancel and how a job ends; a
backend only carries jobs to whatever renders them and their outcomes back. The queue never calls a backend with
its lock held, and a backend reaches the queue only through ``QueueHooks``' methods, each of which takes the lock
itself: there is no lock to hold, and no rule about it to remember.

    in process   jobs/inprocess.py   one worker thread of this process owns the model (the embedded default)
    celery       cluster/dispatch.py GPU workers through Celery and Redis (ALEAART_BROKER_URL)
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, Protocol

from aleaart.jobs.book import JobBook
from aleaart.jobs.kind import JobRequest, Recipe
from aleaart.jobs.state import Job
from aleaart.metrics import Metrics
from aleaart.store import ImageStore

Work = Callable[[], "dict[str, Any] | Future"]
"""A job's work: the changes its status ends with, or a Future of them (the rest runs on another thread)."""


class QueueHooks(Protocol):
    """What a backend may use of the queue."""

    store: ImageStore
    book: JobBook
    metrics: Metrics

    def claim(self, job: Job) -> bool:
        """Move a queued job to running; False if it is no longer queued here (cancelled meanwhile)."""
        ...

    def started(self, job_id: str, **changes: Any) -> Job | None:
        """A worker elsewhere started the job: running (recorded) if it was queued; None if it is not active."""
        ...

    def settle(self, job: Job, work: Work) -> None:
        """Do (the rest of) a job's work and record how it ended; an interrupted job goes back to the queue."""
        ...

    def count_generation(self, kind: str, seconds: float) -> None:
        """A job that rendered (not one answered from the store): its metric, and the average the ETAs use."""
        ...

    def weight_of(self, owner: str) -> int:
        """``owner``'s share of the fair queue (jobs/fair.py): its renders for one of an owner of weight 1."""
        ...

    def waiting_jobs(self) -> list[Job]:
        """The worker jobs queued or running now."""
        ...

    def interrupt_running(self) -> None:
        """Interrupt running jobs: they are queued again, and run after the restart."""
        ...


class Backend(Protocol):
    detached: bool
    """Whether worker jobs go on without this process (a stop interrupts only what runs here)."""

    def attach(self, queue: QueueHooks) -> None:
        """Called once, before anything else."""
        ...

    def recipes(self) -> list[Recipe]:
        """The recipes results can have now (keys are computed from them); empty while none is known."""
        ...

    @property
    def model_name(self) -> str | None:
        """The name of the model images are rendered with, once it is known."""
        ...

    def health(self) -> dict[str, Any]:
        """The backend's part of /health."""
        ...

    def require_ready(self) -> None:
        """Raise why new work could not run now (for /ready)."""
        ...

    def refuse_if_unavailable(self) -> None:
        """Raise if new jobs must be refused (jobs wait while the backend starts; a broken one refuses)."""
        ...

    def refuse_if_too_large(self, request: JobRequest) -> None:
        """Raise InsufficientMemory if the engine that would render ``request`` has too little memory for it, where
        that is known here (a remote worker checks when the job comes: jobs/runner.py)."""
        ...

    def dispatch(self, job: Job) -> None:
        """Hand a queued worker job to whatever runs it, most urgent first; raise an AleaArtError if it cannot."""
        ...

    def adopt(self, job: Job) -> bool:
        """A worker job a previous run left unfinished: True if the backend follows it as it is (it may still be
        running elsewhere); False, and the queue queues it again."""
        ...

    def withdraw(self, job: Job) -> None:
        """A queued job was cancelled: make sure it never runs."""
        ...

    def stop_running(self, job: Job) -> None:
        """Ask a running job to stop at its next step."""
        ...

    def watch_previews(self, job: Job) -> None:
        """A client watches the job's previews now (a backend whose workers are elsewhere has them sent)."""
        ...

    def start(self) -> None: ...

    def stop(self, timeout: float) -> None: ...

    def drain(self, seconds: float, interrupt_wait: float) -> None:
        """Let running work finish within ``seconds``, else interrupt it; return once idle."""
        ...
