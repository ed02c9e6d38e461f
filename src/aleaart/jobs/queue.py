"""The job queue: records, dedup, priorities, progress, cancel, coordinators and how a job ends.

One request, one job: a request identical to one queued or running joins it, and one whose
result is stored is answered from the store. Every job is recorded in SQLite on each change,
so queued and interrupted jobs run after a restart and their ids keep answering.

A ``Backend`` (``jobs/backend.py``) says where worker jobs run: ``inprocess.JobQueue`` is the queue on the
in-process backend, ``aleaart.cluster.CeleryQueue`` the queue on GPU workers through Celery.
"""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from aleaart.config import Settings
from aleaart.errors import AleaArtError, DiskFull, GenerationCancelled, NotFound, QueueFull, ShuttingDown
from aleaart.jobs.active import ActiveJobs
from aleaart.jobs.backend import Backend, Work
from aleaart.jobs.book import JobBook
from aleaart.jobs.coordinators import Coordinators, coordinate
from aleaart.jobs.kind import JobRequest, Recipe, identity
from aleaart.jobs.runner import Outcome, outcome_of
from aleaart.jobs.standing import Progress, eta_seconds, queue_position
from aleaart.jobs.state import Job, JobState, Priority
from aleaart.jobs.stored import StoredResults
from aleaart.locks import StateLock
from aleaart.logs import current_job
from aleaart.metrics import Metrics
from aleaart.store import ImageStore, StoredImage

log = logging.getLogger(__name__)

PRUNE_EVERY = 100  # finished jobs between two prunes of old records


class Queue:
    """Accepts jobs of any kind, deduplicates them, records them, runs coordinating kinds in threads, and hands
    worker jobs to its ``backend``. Only this class takes its lock, and it holds it for memory only: it never calls
    the backend or writes a record holding it (the database refuses: locks.py)."""

    def __init__(self, *, backend: Backend, store: ImageStore, book: JobBook, settings: Settings,
                 metrics: Metrics | None = None, chain: Any = None) -> None:
        self.backend = backend
        self.chain = chain  # for coordinating kinds that read the chain (collections)
        self.metrics = metrics or Metrics()
        self.store = store
        self.book = book
        self.max_queue = settings.max_queue
        self.keep_jobs_seconds = settings.keep_jobs_hours * 3600
        self.generations = 0
        self._active = ActiveJobs()
        self._lock = StateLock("the queue's lock")
        self._seconds_per_job = 0.0
        self._finished = 0
        self.draining = False
        self._coordinators = Coordinators()
        # Each owner's limits: ``admit`` raises if the render may not be made now; ``left``: it waits for it no more
        self.admit: Callable[[str, str], None] = lambda owner, job_id: None
        self.left: Callable[[str, str], None] = lambda owner, job_id: None
        self.weight_of: Callable[[str], int] = lambda owner: 1  # ``owner``'s share of the fair queue
        found = StoredResults(store, self.recipes)
        self.lookup, self.remembered = found.lookup, found.remembered  # what the store holds for a request
        backend.attach(self)

    # The backend's answers

    def recipes(self) -> list[Recipe]:
        return self.backend.recipes()

    @property
    def model_name(self) -> str | None:
        return self.backend.model_name

    def health(self) -> dict[str, Any]:
        return self.backend.health()

    def require_ready(self) -> None:
        self.backend.require_ready()

    # Starting and stopping

    def start(self, *, resume: bool = True) -> None:
        """Take back the jobs a previous run left queued or running (unless ``resume`` is off, as for a
        one-off command sharing the service's database), then start the backend."""
        self.book.prune(older_than_seconds=self.keep_jobs_seconds)
        resumed = self.book.unfinished() if resume else []
        for job in resumed:
            self._resume(job)
        if resumed:
            log.warning("resumed %d job(s) from before the restart", len(resumed))
        self.backend.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop taking work; coordinators (and, in process, the running job) are interrupted, to resume later."""
        with self._lock:
            self._active.interrupt(coordinators_only=self.backend.detached)
        self.backend.stop(timeout)
        self._coordinators.join(timeout)

    def drain(self, seconds: float, *, interrupt_wait: float = 60.0) -> None:
        """Take no new work; let the running job finish within ``seconds``, else interrupt it (queued again, like
        every waiting job, it runs after the restart). Returns when the worker is idle."""
        with self._lock:
            self.draining = True
            self._active.interrupt(coordinators_only=True)  # their work waits in the queue: resume it later
        self._coordinators.join(interrupt_wait)
        self.backend.drain(seconds, interrupt_wait)

    def _resume(self, job: Job) -> None:
        """Take back an unfinished job recorded by a previous run of the service."""
        if not job.request.coordinates and self.backend.adopt(job):
            with self._lock:
                self._active.add(job)
            return
        if job.state is JobState.RUNNING:
            job.move(JobState.QUEUED, attempts=job.status.attempts + 1)
            self.book.save(job)
        with self._lock:
            self._active.add(job)
        self._launch(job)

    # Submitting and finding jobs

    def submit(self, request: JobRequest, *, priority: int = Priority.INTERACTIVE, owner: str = "") -> Job:
        """A job for this request: the one already on it (``owner``, the key asking, becomes one of its owners), a
        finished one from the store, or a new one of ``owner``'s."""
        if self.draining:
            raise ShuttingDown("the service is shutting down for a restart; try again in a few seconds")
        stored = self.lookup(request)  # outside the lock: reading the store may tidy its index
        ident, job_id, admitted = identity(request), _new_id(), False
        if stored is None:  # a stored result is answered even while the backend can't take new work
            self.backend.refuse_if_unavailable()
            self.backend.refuse_if_too_large(request)
            self.store.require_free_space()
            if self._active.with_identity(ident) is None:  # a render to come (not a join): within the owner's limits
                self.admit(owner, job_id)
                admitted = True
        try:
            with self._lock:
                if (active := self._active.with_identity(ident)) is not None:
                    joined = owner not in active.owners
                    if joined:
                        active.owners.append(owner)
                elif stored is None:
                    if self._active.queued_workers() >= self.max_queue:
                        raise QueueFull(f"the queue is full ({self.max_queue} jobs waiting); try again later",
                                        retry_after=self._retry_after())
                    job = Job(id=job_id, request=request, priority=priority, owners=[owner])
                    job.move(JobState.QUEUED, total_steps=request.total_steps())
                    self._active.add(job)
        except QueueFull:
            if admitted:
                self.left(owner, job_id)
            raise
        if active is not None:
            if admitted:  # an identical request came in meanwhile: this one joined it
                self.left(owner, job_id)
            if joined:
                self.book.save(active)
            return active
        if stored is not None:
            return self._answered_from_store(request, stored, priority, ident)
        try:
            self.book.save(job)  # before it can run: what runs is recorded
            self._launch(job)
        except AleaArtError as error:  # not recorded, or the backend could not take it: the job ends here, said why
            with self._lock:
                self._active.remove(job)
            self._left(job)
            job.move(JobState.FAILED, error=str(error), code=error.code)
            with contextlib.suppress(DiskFull):  # a record the disk had no room for is not there to end
                self.book.save(job)
            raise
        return job

    def get(self, job_id: str, *, owner: str | None = None) -> Job:
        """The job; with ``owner``, only if that key asked for it: to anyone else it is as unknown as one never made."""
        with self._lock:
            job = self._active.get(job_id)
        if job is None:
            job = self.book.load(job_id)
        if job is None or (owner is not None and not job.owned_by(owner)):
            raise NotFound(f"no job with id {job_id!r} (finished jobs are kept for {self.keep_jobs_seconds / 3600:g} "
                           "hours)")
        return job

    def cancel(self, job_id: str) -> Job:
        """Cancel a queued job now, or a running one at its next step; a finished job is left as is."""
        job = self.get(job_id)
        with self._lock:
            withdrawn = job.state is JobState.QUEUED and job.id in self._active
            if withdrawn:
                self._active.remove(job)
                job.move(JobState.CANCELLED, error="cancelled while queued", code=GenerationCancelled.code)
            running = job.state is JobState.RUNNING
        if withdrawn:
            self._left(job)
            self.book.save(job)
            self.backend.withdraw(job)
        elif running:
            self.backend.stop_running(job)
        return job

    def withdraw(self, job_id: str, owner: str) -> Job:
        """``owner`` no longer wants the job: it is cancelled once no one who asked for it does."""
        job = self.get(job_id)
        with self._lock:
            last = not any(o for o in job.owners if o != owner)  # its record keeps the last one's name
            if not last and owner in job.owners:
                job.owners.remove(owner)
        if last:
            return self.cancel(job_id)
        self.left(owner, job.id)
        self.book.save(job)
        return job

    def progress(self, job: Job) -> Progress:
        with self._lock:
            active = list(self._active) if job.id in self._active else None
            running = self._active.running()
        # outside the lock: the owners' weights are read from the journal
        position = queue_position(job, active, self.weight_of) if active is not None else None
        return Progress(position, eta_seconds(job, position, running, self._seconds_per_job))

    def watch_previews(self, job: Job) -> None:  # a client watches them now (renewed while it does)
        self.backend.watch_previews(job)

    def waiting_of(self, owner: str) -> int:
        """How many of ``owner``'s jobs are queued or running (renders, not coordinators)."""
        with self._lock:
            return sum(1 for j in self._active.workers() if owner in j.owners)

    @property
    def depth(self) -> int:
        with self._lock:
            return self._active.queued_workers()

    # What a backend may ask (jobs/backend.py's QueueHooks)

    def claim(self, job: Job) -> bool:
        with self._lock:
            if job.state is not JobState.QUEUED or job.id not in self._active:
                return False
            job.move(JobState.RUNNING, started_at=time.time(), step=0)
        self.metrics.key_queue_seconds.labels(job.owner or "-").observe(time.time() - job.created_at)
        return True

    def started(self, job_id: str, **changes: Any) -> Job | None:
        with self._lock:
            job = self._active.get(job_id)
            if job is None or job.state.is_terminal():
                return None
            moved = job.state is JobState.QUEUED
            if moved:
                job.move(JobState.RUNNING, started_at=time.time(), step=0, **changes)
        if moved:
            self.metrics.key_queue_seconds.labels(job.owner or "-").observe(time.time() - job.created_at)
            self.book.save(job)
        return job

    def waiting_jobs(self) -> list[Job]:
        with self._lock:
            return self._active.workers()

    def interrupt_running(self) -> None:
        with self._lock:
            self._active.interrupt()

    def settle(self, job: Job, work: Work) -> None:
        token = current_job.set(job.id)
        try:
            outcome = outcome_of(work, job_id=job.id)
            if isinstance(outcome.result, Future):  # the rest runs on another thread: settle the job when it ends
                outcome.result.add_done_callback(lambda done: self.settle(job, done.result))
                return
            recorded = outcome_of(lambda: self._end(job, outcome), job_id=job.id)
            if recorded.state is not JobState.SUCCEEDED:  # its record could not be written (a full disk): say so
                self._finish(job, recorded.state, **recorded.failure)
        finally:
            current_job.reset(token)

    def count_generation(self, kind: str, seconds: float) -> None:
        self.metrics.job_seconds.labels(kind).observe(seconds)
        with self._lock:
            self._seconds_per_job = 0.7 * self._seconds_per_job + 0.3 * seconds if self._seconds_per_job else seconds
            self.generations += 1

    # How a job ends

    def _end(self, job: Job, outcome: Outcome) -> None:
        if outcome.state is JobState.CANCELLED and job.interrupted:
            self._requeue_interrupted(job)
        elif outcome.state is JobState.SUCCEEDED:
            self._finish(job, JobState.SUCCEEDED, **outcome.result)
        else:
            self._finish(job, outcome.state, **outcome.failure)

    def _finish(self, job: Job, state: JobState, **changes: object) -> None:
        """Record the outcome, publish it, then let the job leave the in-memory table."""
        status = job.move(state, **changes)
        self.metrics.jobs.labels(job.kind, state.value).inc()
        log.info("%s job %s%s", job.kind, state.value, f": {status.error}" if status.error else "")
        self.book.save(job)
        with self._lock:
            self._active.remove(job)
        self._left(job)
        self._finished += 1
        if self._finished % PRUNE_EVERY == 0:
            self.book.prune(older_than_seconds=self.keep_jobs_seconds)

    def _answered_from_store(self, request: JobRequest, stored: tuple[StoredImage, ...], priority: int,
                             ident: str) -> Job:
        """A job already succeeded with the stored result; its id comes from the request's identity."""
        job, steps = Job(id=ident[:32], request=request, priority=priority), request.total_steps()
        job.move(JobState.SUCCEEDED, images=stored, cached=True, step=steps, total_steps=steps)
        self.book.save_once(job)
        self.metrics.cache_hits.labels(job.kind).inc()
        self.metrics.jobs.labels(job.kind, JobState.SUCCEEDED.value).inc()
        return job

    def _left(self, job: Job) -> None:
        """The job left the queue: none of its owners waits for it now."""
        for owner in job.owners:
            self.left(owner, job.id)

    def _requeue_interrupted(self, job: Job) -> None:
        job.move(JobState.QUEUED, step=0, attempts=job.status.attempts + 1)
        self.book.save(job)
        log.warning("job %s was interrupted by the shutdown; it runs again after the restart", job.id)

    # Coordinating kinds, each in a thread of its own

    def _launch(self, job: Job) -> None:
        """Start a registered job: a coordinator in its own thread, a worker job on the backend."""
        if job.request.coordinates:
            self._coordinators.launch(job, lambda job: self.settle(job, lambda: coordinate(job, self)))
        else:
            self.backend.dispatch(job)

    def _retry_after(self) -> int:
        return max(1, round(self._seconds_per_job or 10))


def _new_id() -> str:
    return uuid.uuid4().hex
