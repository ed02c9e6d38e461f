"""The job queue: what every backend shares, and the in-process backend (the embedded default).

One request, one job: a request identical to one queued or running joins it, and one whose
result is stored is answered from the store. Every job is recorded in SQLite on each change,
so queued and interrupted jobs run after a restart and their ids keep answering.

``BaseQueue`` holds that bookkeeping; a backend says where worker jobs run. ``JobQueue`` runs them
on one thread of this process that owns the model; ``aleaart.cluster.CeleryQueue`` hands them to
GPU workers through Celery.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from aleaart.config import Settings
from aleaart.errors import AleaArtError, GenerationCancelled, ModelUnavailable, NotFound, QueueFull, ShuttingDown
from aleaart.jobs.book import JobBook
from aleaart.jobs.kind import CoordinatorContext, EngineLike, JobRequest, Recipe, RunContext, identity
from aleaart.jobs.model import ModelHolder
from aleaart.jobs.state import Job, JobState, Priority
from aleaart.logs import current_job
from aleaart.metrics import Metrics
from aleaart.store import FindImage, ImageStore, StoredImage

log = logging.getLogger(__name__)

PRUNE_EVERY = 100  # finished jobs between two prunes of old records
ENCODING_AHEAD = 2  # rendered images waiting to be encoded and stored while the engine renders the next


@dataclass(frozen=True)
class Progress:
    """Where a job stands as clients see it."""

    queue_position: int | None
    eta_seconds: float | None


class BaseQueue:
    """Accepts jobs of any kind, deduplicates them, records them, runs coordinating kinds in threads,
    and leaves worker jobs to the backend (``_dispatch``), most urgent first."""

    def __init__(self, *, store: ImageStore, book: JobBook, settings: Settings,
                 metrics: Metrics | None = None, chain: Any = None) -> None:
        self.chain = chain  # for coordinating kinds that read the chain (collections)
        self.metrics = metrics or Metrics()
        self.store = store
        self.book = book
        self.max_queue = settings.max_queue
        self.keep_jobs_seconds = settings.keep_jobs_hours * 3600
        self.generations = 0
        self._jobs: dict[str, Job] = {}  # id → queued or running job
        self._by_identity: dict[str, Job] = {}
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._seconds_per_job = 0.0
        self._finished = 0
        self._stopping = False
        self.draining = False
        self._coordinators: list[threading.Thread] = []

    # What a backend provides

    def recipes(self) -> list[Recipe]:
        """The recipes results can have now (keys are computed from them); empty while none is known."""
        raise NotImplementedError

    @property
    def model_name(self) -> str | None:
        """The name of the model images are rendered with, once it is known."""
        raise NotImplementedError

    def health(self) -> dict[str, Any]:
        """The backend's part of /health."""
        raise NotImplementedError

    def require_ready(self) -> None:
        """Raise why new work could not run now (for /ready)."""
        raise NotImplementedError

    def _refuse_if_unavailable(self) -> None:
        """Raise if new jobs must be refused (jobs wait while the backend starts; a broken one refuses)."""

    def _dispatch(self, job: Job) -> None:
        """Hand a queued worker job to whatever runs it (the caller holds the lock)."""
        raise NotImplementedError

    def _withdraw(self, job: Job) -> None:
        """A queued job was cancelled: make sure it never runs (in process, the heap skips it)."""

    def _stop_running(self, job: Job) -> None:
        """Ask a running job to stop at its next step."""
        job.cancel_event.set()

    def _resume(self, job: Job) -> None:
        """Take back an unfinished job recorded by a previous run of the service."""
        if job.state is JobState.RUNNING:
            job.move(JobState.QUEUED, attempts=job.status.attempts + 1)
            self.book.save(job)
        self._enqueue(job)

    def _start_backend(self) -> None:
        raise NotImplementedError

    def _stop_backend(self, timeout: float) -> None:
        raise NotImplementedError

    def _drain_backend(self, seconds: float, interrupt_wait: float) -> None:
        raise NotImplementedError

    def start(self, *, resume: bool = True) -> None:
        """Take back the jobs a previous run left queued or running (unless ``resume`` is off, as for a
        one-off command sharing the service's database), then start the backend."""
        self.book.prune(older_than_seconds=self.keep_jobs_seconds)
        resumed = self.book.unfinished() if resume else []
        with self._wake:
            for job in resumed:
                self._resume(job)
        if resumed:
            log.warning("resumed %d job(s) from before the restart", len(resumed))
        self._start_backend()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop taking work; coordinators (and, in process, the running job) are interrupted and resume
        at the next start."""
        with self._wake:
            self._stopping = True
            self._interrupt_running()
            self._wake.notify_all()
        self._stop_backend(timeout)
        self._join_coordinators(timeout)

    def drain(self, seconds: float, *, interrupt_wait: float = 60.0) -> None:
        """Take no new work; let the running job finish within ``seconds``, else interrupt it (it is
        queued again, like every waiting job, and runs after the restart). Returns when the worker is idle."""
        with self._wake:
            self.draining = True
            self._interrupt_running(coordinators_only=True)  # their work waits in the queue: resume it later
            self._wake.notify_all()
        self._join_coordinators(interrupt_wait)
        self._drain_backend(seconds, interrupt_wait)

    def _interrupt_running(self, *, coordinators_only: bool = False) -> None:
        for job in self._jobs.values():
            if job.state is JobState.RUNNING and (job.request.coordinates or not coordinators_only):
                job.interrupted = True
                job.cancel_event.set()

    def _join_coordinators(self, timeout: float) -> None:
        for thread in list(self._coordinators):
            thread.join(timeout)

    # Submitting and finding jobs

    def submit(self, request: JobRequest, *, priority: int = Priority.INTERACTIVE) -> Job:
        """A job for this request: the one already on it, a finished one from the store, or a new one."""
        if self.draining:
            raise ShuttingDown("the service is shutting down for a restart; try again in a few seconds")
        stored = self.lookup(request)  # outside the lock: reading the store may tidy its index
        if stored is None:  # a stored result is answered even while the backend can't take new work
            self._refuse_if_unavailable()
            self.store.require_free_space()
        ident = identity(request)
        with self._wake:
            if (active := self._by_identity.get(ident)) is not None:
                return active
            if stored is not None:
                return self._answered_from_store(request, stored, priority)
            if self._queued_count() >= self.max_queue:
                raise QueueFull(f"the queue is full ({self.max_queue} jobs waiting); try again later",
                                retry_after=self._retry_after())
            job = Job(id=_new_id(), request=request, priority=priority)
            job.move(JobState.QUEUED, total_steps=request.total_steps())
            self.book.save(job)
            try:
                self._enqueue(job)
            except AleaArtError as error:  # the backend could not take it: the job ends here, said why
                self._forget(job)
                job.move(JobState.FAILED, error=str(error), code=error.code)
                self.book.save(job)
                raise
            self._wake.notify_all()
            return job

    def lookup(self, request: JobRequest) -> tuple[StoredImage, ...] | None:
        """The stored result of ``request`` under any recipe results can have now, if there is one."""
        return self._find(request, self.store.get)

    def remembered(self, request: JobRequest) -> tuple[StoredImage, ...] | None:
        """``lookup`` from memory only, for results looked up before (safe on the event loop); None otherwise."""
        return self._find(request, self.store.known)

    def _find(self, request: JobRequest, find: FindImage) -> tuple[StoredImage, ...] | None:
        for recipe in self.recipes():
            if (stored := request.stored(request.key(recipe), find)) is not None:
                return stored
        return None

    def get(self, job_id: str) -> Job:
        with self._lock:
            job = self._jobs.get(job_id)
        if job is None:
            job = self.book.load(job_id)
        if job is None:
            raise NotFound(f"no job with id {job_id!r} (finished jobs are kept for "
                           f"{self.keep_jobs_seconds / 3600:g} hours)")
        return job

    def cancel(self, job_id: str) -> Job:
        """Cancel a queued job now, or a running one at its next step; a finished job is left as is."""
        job = self.get(job_id)
        with self._wake:
            if job.state is JobState.QUEUED and job.id in self._jobs:
                self._forget(job)
                job.move(JobState.CANCELLED, error="cancelled while queued", code=GenerationCancelled.code)
                self.book.save(job)
                self._withdraw(job)
            elif job.state is JobState.RUNNING:
                self._stop_running(job)
        return job

    def progress(self, job: Job) -> Progress:
        with self._lock:
            position = self._position(job)
            running = sum(1 for j in self._jobs.values() if j.state is JobState.RUNNING)
        return Progress(queue_position=position, eta_seconds=self._eta(job, position, running))

    @property
    def depth(self) -> int:
        with self._lock:
            return self._queued_count()

    def _settle(self, job: Job, work: Callable[[], dict[str, Any] | Future]) -> None:
        """Do a job's work (or what is left of it) and record how it ended; an interrupted job goes back to
        the queue."""
        token = current_job.set(job.id)
        try:
            changes = work()
            if isinstance(changes, Future):  # the rest runs on another thread: settle the job when it ends
                changes.add_done_callback(lambda done: self._settle(job, done.result))
                return
        except GenerationCancelled as error:
            if job.interrupted:
                self._requeue_interrupted(job)
            else:
                self._finish(job, JobState.CANCELLED, error=str(error), code=error.code)
        except AleaArtError as error:
            self._finish(job, JobState.FAILED, error=str(error), code=error.code)
        except Exception as error:  # any failure of one job is that job's, not the worker's
            log.exception("job %s failed", job.id)
            self._finish(job, JobState.FAILED, error=f"generation failed: {type(error).__name__}: {error}",
                         code="generation_failed")
        else:
            self._finish(job, JobState.SUCCEEDED, **changes)
        finally:
            current_job.reset(token)

    def _count_generation(self, kind: str, seconds: float) -> None:
        """A job that rendered (not one answered from the store): its metric, and the average the ETAs use."""
        self.metrics.job_seconds.labels(kind).observe(seconds)
        with self._lock:
            self._seconds_per_job = 0.7 * self._seconds_per_job + 0.3 * seconds if self._seconds_per_job else seconds
            self.generations += 1

    def _finish(self, job: Job, state: JobState, **changes: object) -> None:
        """Record the outcome, publish it, then let the job leave the in-memory table."""
        status = job.move(state, **changes)
        self.metrics.jobs.labels(job.kind, state.value).inc()
        log.info("%s job %s%s", job.kind, state.value, f": {status.error}" if status.error else "")
        self.book.save(job)
        with self._lock:
            self._forget(job)
        self._finished += 1
        if self._finished % PRUNE_EVERY == 0:
            self.book.prune(older_than_seconds=self.keep_jobs_seconds)

    def _requeue_interrupted(self, job: Job) -> None:
        job.move(JobState.QUEUED, step=0, attempts=job.status.attempts + 1)
        self.book.save(job)
        log.warning("job %s was interrupted by the shutdown; it runs again after the restart", job.id)

    # Coordinating kinds, each in a thread of its own

    def _coordinate(self, job: Job) -> None:
        self._settle(job, lambda: self._coordinated(job))

    def _coordinated(self, job: Job) -> dict[str, Any]:
        job.move(JobState.RUNNING, started_at=time.time())
        self.book.save(job)
        context = CoordinatorContext(
            submit=lambda request, priority: self.submit(request, priority=priority), cancel_job=self.cancel,
            store=self.store, chain=self.chain, on_progress=job.progress, cancel=job.cancel_event)
        summary = job.request.coordinate(context)
        return {"summary": summary, "step": job.status.total_steps}

    # Bookkeeping (callers hold the lock)

    def _enqueue(self, job: Job) -> None:
        self._jobs[job.id] = job
        self._by_identity[job.identity] = job
        if job.request.coordinates:
            thread = threading.Thread(target=self._coordinate, args=(job,), name=f"aleaart-{job.kind}", daemon=True)
            self._coordinators.append(thread)
            thread.start()
        else:
            self._dispatch(job)

    def _forget(self, job: Job) -> None:
        self._jobs.pop(job.id, None)
        if self._by_identity.get(job.identity) is job:
            del self._by_identity[job.identity]

    def _answered_from_store(self, request: JobRequest, stored: tuple[StoredImage, ...], priority: int) -> Job:
        job = Job(id=_new_id(), request=request, priority=priority)
        steps = request.total_steps()
        job.move(JobState.SUCCEEDED, images=stored, cached=True, step=steps, total_steps=steps)
        self.book.save(job)
        self.metrics.cache_hits.labels(job.kind).inc()
        self.metrics.jobs.labels(job.kind, JobState.SUCCEEDED.value).inc()
        return job

    def _queued_count(self) -> int:
        return sum(1 for j in self._jobs.values() if j.state is JobState.QUEUED and not j.request.coordinates)

    def _position(self, job: Job) -> int | None:
        if job.state is not JobState.QUEUED or job.id not in self._jobs:
            return None
        ahead = (int(job.priority), job.created_at)
        return 1 + sum(1 for j in self._jobs.values()
                       if j.state is JobState.QUEUED and j is not job and (int(j.priority), j.created_at) < ahead)

    def _retry_after(self) -> int:
        return max(1, round(self._seconds_per_job or 10))

    def _eta(self, job: Job, position: int | None, running: int) -> float | None:
        status = job.status
        if status.state is JobState.RUNNING and status.step and status.started_at:
            per_step = (time.time() - status.started_at) / status.step
            return round(per_step * (status.total_steps - status.step), 1)
        if position is not None and self._seconds_per_job:
            return round(self._seconds_per_job * (position - 1 + running), 1)
        return None


class JobQueue(BaseQueue):
    """The in-process backend: a priority heap in front of the one worker thread that owns the model."""

    def __init__(self, *, model: ModelHolder, store: ImageStore, book: JobBook, settings: Settings,
                 metrics: Metrics | None = None, chain: Any = None) -> None:
        super().__init__(store=store, book=book, settings=settings, metrics=metrics, chain=chain)
        self.model = model
        self._heap: list[tuple[int, int, Job]] = []
        self._order = itertools.count()
        self._worker = threading.Thread(target=self._work, name="aleaart-worker", daemon=True)
        self._encoder = ThreadPoolExecutor(ENCODING_AHEAD, thread_name_prefix="aleaart-encode")
        self._encoding = threading.BoundedSemaphore(ENCODING_AHEAD)

    def recipes(self) -> list[Recipe]:
        engine = self.model.engine
        return [engine.recipe] if engine is not None else []

    @property
    def model_name(self) -> str | None:
        return getattr(self.model.engine, "model_name", None)

    def health(self) -> dict[str, Any]:
        model, engine = self.model, self.model.engine
        return {
            "backend": "in-process",
            "model_loaded": engine is not None,
            "model_loading": model.loading,
            "model_error": model.error,
            "device": str(getattr(engine, "device", "")) or None,
            "cuda_available": model.cuda_available,
        }

    def require_ready(self) -> None:
        self.model.require()

    def _refuse_if_unavailable(self) -> None:
        self.model.refuse_if_failed()

    def _dispatch(self, job: Job) -> None:
        heapq.heappush(self._heap, (int(job.priority), next(self._order), job))

    def _start_backend(self) -> None:
        self._worker.start()

    def _stop_backend(self, timeout: float) -> None:
        if self._worker.is_alive():
            self._worker.join(timeout)
        self._encoder.shutdown(wait=True)  # rendered images are stored, not lost

    def _drain_backend(self, seconds: float, interrupt_wait: float) -> None:
        if self._worker.is_alive():
            self._worker.join(seconds)
        if self._worker.is_alive():
            with self._lock:
                self._interrupt_running()
            self._worker.join(interrupt_wait)
        self._encoder.shutdown(wait=True)

    # The worker

    def _work(self) -> None:
        while not self.model.wait(0.5):
            if self._stopping or self.draining:
                return
        while (job := self._next()) is not None:
            self._run(job)

    def _next(self) -> Job | None:
        with self._wake:
            while True:
                if self._stopping or self.draining:
                    return None
                while self._heap and self._heap[0][2].state is not JobState.QUEUED:
                    heapq.heappop(self._heap)  # cancelled while queued
                if self._heap:
                    job = heapq.heappop(self._heap)[2]
                    job.move(JobState.RUNNING, started_at=time.time(), step=0)
                    return job
                self._wake.wait()

    def _run(self, job: Job) -> None:
        self._settle(job, lambda: self._render(job))

    def _render(self, job: Job) -> dict[str, Any] | Future:
        """A worker job's work: how its status ends (a stored result is not rendered again), or the
        encoding still running for it."""
        engine = self.model.engine
        if engine is None:  # jobs accepted while the model loaded, and it failed to load
            raise ModelUnavailable(self.model.error or "the model is not available")
        key = job.request.key(engine.recipe)
        job.move(JobState.RUNNING, key=key)
        self.book.save(job)
        if (stored := job.request.stored(key, self.store.get)) is not None:
            self.metrics.cache_hits.labels(job.kind).inc()
            return {"images": stored, "cached": True, "step": job.status.total_steps}
        self.store.require_free_space()
        return self._execute(job, engine, key)

    def _execute(self, job: Job, engine: EngineLike, key: str) -> Future | dict[str, Any]:
        """Render on this thread (the engine's), then encode and store on the encoder's, so the engine
        starts the next job meanwhile; at most ENCODING_AHEAD images wait for it."""
        started = last_step = time.perf_counter()

        def on_step(step: int, total: int) -> None:
            nonlocal last_step
            now = time.perf_counter()
            self.metrics.step_seconds.observe(now - last_step)
            last_step = now
            job.progress(step, total)

        context = RunContext(engine=engine, key=key, store=self.store, on_step=on_step, cancel=job.cancel_event,
                             read_png=self.store.read_png)
        rendered = job.request.render(context)
        self._encoding.acquire()
        try:
            future = self._encoder.submit(self._store_result, job, rendered, context, started)
        except RuntimeError:  # the encoder was shut down by a stop that this render outlived: store it here
            self._encoding.release()
            return self._store_result(job, rendered, context, started)
        future.add_done_callback(lambda _: self._encoding.release())
        return future

    def _store_result(self, job: Job, rendered: Any, context: RunContext, started: float) -> dict[str, Any]:
        artifacts = job.request.encode(rendered, context)
        images = tuple(self.store.put(a.record, a.data) for a in artifacts)
        self._count_generation(job.kind, time.perf_counter() - started)
        return {"images": images, "step": job.status.total_steps}


def _new_id() -> str:
    return uuid.uuid4().hex
