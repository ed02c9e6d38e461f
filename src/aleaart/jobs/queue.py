"""Jobs: the bounded queue in front of the one worker that owns the pipeline.

One key, one generation: a request whose image is being made joins that job, and one whose
image is stored is answered from the store. The model loads in the background; until it is
loaded, submissions get ModelUnavailable with the reason.
"""

from __future__ import annotations

import collections
import enum
import hashlib
import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from PIL import Image

from aleaart.config import Settings
from aleaart.errors import AleaArtError, GenerationCancelled, ModelUnavailable, NotFound, QueueFull
from aleaart.metadata import ImageInfo, encode_png, image_filename, render_key
from aleaart.params import RenderSpec
from aleaart.store import ImageStore, StoredImage, new_record

log = logging.getLogger(__name__)


class Rendered(Protocol):
    image: Image.Image
    seconds: float


class EngineLike(Protocol):
    """What the queue needs of an engine (the real one, or a fake in tests)."""

    model_name: str

    @property
    def recipe(self) -> dict[str, str]: ...

    def generate(self, spec: RenderSpec, *, on_step: Any = None, cancel: threading.Event | None = None) -> Rendered: ...


class JobState(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    def is_terminal(self) -> bool:
        return self in (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED)


ALLOWED = {
    JobState.QUEUED: {JobState.RUNNING, JobState.CANCELLED, JobState.SUCCEEDED},
    JobState.RUNNING: {JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED},
}


@dataclass
class Job:
    id: str
    key: str
    spec: RenderSpec
    token_id: str | None
    state: JobState = JobState.QUEUED
    step: int = 0
    total_steps: int = 0
    created_at: float = field(default_factory=time.time)
    started_at: float | None = None
    finished_at: float | None = None
    image: StoredImage | None = None
    cached: bool = False
    error: str | None = None
    cancel_event: threading.Event = field(default_factory=threading.Event)
    version: int = 0
    _changed: threading.Condition = field(default_factory=threading.Condition, repr=False)

    def __post_init__(self) -> None:
        self.total_steps = self.total_steps or self.spec.steps

    def move(self, state: JobState, **changes: Any) -> None:
        """Change state (checked) and wake everyone watching this job."""
        with self._changed:
            if state is not self.state and state not in ALLOWED.get(self.state, set()):
                raise RuntimeError(f"job {self.id}: {self.state.value} → {state.value} is not allowed")
            self.state = state
            for name, value in changes.items():
                setattr(self, name, value)
            if state.is_terminal():
                self.finished_at = self.finished_at or time.time()
            self.version += 1
            self._changed.notify_all()

    def progress(self, step: int, total: int) -> None:
        with self._changed:
            self.step, self.total_steps = step, total
            self.version += 1
            self._changed.notify_all()

    def wait_change(self, since: int, timeout: float) -> int:
        """Block until version > ``since`` or the job is terminal (or timeout); return version."""
        with self._changed:
            self._changed.wait_for(lambda: self.version > since or self.state.is_terminal(), timeout)
            return self.version

    def wait_done(self, timeout: float | None = None) -> bool:
        with self._changed:
            return self._changed.wait_for(lambda: self.state.is_terminal(), timeout)


@dataclass(frozen=True)
class Progress:
    """A moment of a job as clients see it."""

    job: Job
    queue_position: int | None
    eta_seconds: float | None


class ModelHolder:
    """Loads the engine in a background thread and tells how that is going."""

    def __init__(self, loader: Callable[[], EngineLike], *, probe_cuda: Callable[[], bool] = lambda: False) -> None:
        self._loader = loader
        self._probe_cuda = probe_cuda
        self._ready = threading.Event()
        self.engine: EngineLike | None = None
        self.error: str | None = None
        self.cuda_available = False

    def start(self) -> None:
        threading.Thread(target=self._load, name="aleaart-model-loader", daemon=True).start()

    def _load(self) -> None:
        try:
            self.engine = self._loader()
        except AleaArtError as error:
            self.error = str(error)
        except Exception as error:  # the loader's failure must reach /health, not kill a thread silently
            log.exception("model loading failed")
            self.error = f"model loading failed: {type(error).__name__}: {error}"
        finally:
            try:
                self.cuda_available = self._probe_cuda()
            except Exception:  # a broken driver is reported as "no CUDA"
                self.cuda_available = False
            self._ready.set()

    @property
    def loading(self) -> bool:
        return not self._ready.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        return self._ready.wait(timeout)

    def require(self) -> EngineLike:
        """The engine, or ModelUnavailable saying why not (still loading, or failed)."""
        if self.engine is not None:
            return self.engine
        if self.loading:
            raise ModelUnavailable("the model is still loading; try again in a few seconds")
        raise ModelUnavailable(self.error or "the model is not available")


class JobQueue:
    """Accepts jobs, deduplicates them by key, and runs them one at a time on one worker."""

    def __init__(self, *, model: ModelHolder, store: ImageStore, settings: Settings) -> None:
        self.model = model
        self.store = store
        self.max_queue = settings.max_queue
        self.keep_jobs = settings.keep_jobs
        self.generations = 0
        self._jobs: collections.OrderedDict[str, Job] = collections.OrderedDict()
        self._active: dict[str, Job] = {}  # key → queued or running job
        self._queue: collections.deque[Job] = collections.deque()
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._seconds_per_job = 0.0
        self._stopping = False
        self._worker = threading.Thread(target=self._work, name="aleaart-worker", daemon=True)

    def start(self) -> None:
        self._worker.start()

    def stop(self, timeout: float = 5.0) -> None:
        with self._wake:
            self._stopping = True
            for job in self._active.values():  # a running render stops at its next step
                job.cancel_event.set()
            self._wake.notify_all()
        self._worker.join(timeout)

    # Submitting and finding jobs

    def submit(self, spec: RenderSpec, token_id: str | None) -> Job:
        """A job for this image: the one already making it, a finished one from the store, or a new one."""
        engine = self.model.require()
        key = render_key(spec, engine.recipe, token_id)
        with self._wake:
            if (active := self._active.get(key)) is not None:
                return active
            if (stored := self.store.get(key)) is not None:
                job = Job(id=_new_id(), key=key, spec=spec, token_id=token_id)
                job.move(JobState.SUCCEEDED, image=stored, cached=True, step=spec.steps)
                self._remember(job)
                return job
            if len(self._queue) >= self.max_queue:
                raise QueueFull(
                    f"the queue is full ({self.max_queue} jobs waiting); try again later",
                    retry_after=self._retry_after(),
                )
            job = Job(id=_new_id(), key=key, spec=spec, token_id=token_id)
            self._remember(job)
            self._active[key] = job
            self._queue.append(job)
            self._wake.notify_all()
            return job

    def get(self, job_id: str) -> Job:
        with self._lock:
            job = self._jobs.get(job_id)
        if job is None:
            raise NotFound(f"no job with id {job_id!r} (finished jobs are kept for a while, not forever)")
        return job

    def cancel(self, job_id: str) -> Job:
        """Cancel a queued job now, or a running one at its next step; a finished job is left as is."""
        job = self.get(job_id)
        with self._wake:
            if job.state is JobState.QUEUED:
                self._queue.remove(job)
                self._active.pop(job.key, None)
                job.move(JobState.CANCELLED, error="cancelled while queued")
            elif job.state is JobState.RUNNING:
                job.cancel_event.set()
        return job

    def progress(self, job: Job) -> Progress:
        with self._lock:
            position = self._queue.index(job) + 1 if job.state is JobState.QUEUED and job in self._queue else None
            running = [j for j in self._active.values() if j.state is JobState.RUNNING]
        return Progress(job=job, queue_position=position, eta_seconds=self._eta(job, position, running))

    @property
    def depth(self) -> int:
        with self._lock:
            return len(self._queue)

    # The worker

    def _work(self) -> None:
        self.model.wait()
        while True:
            with self._wake:
                self._wake.wait_for(lambda: self._queue or self._stopping)
                if self._stopping:
                    return
                job = self._queue.popleft()
                job.move(JobState.RUNNING, started_at=time.time())
            try:
                self._run(job)
            finally:
                with self._lock:
                    self._active.pop(job.key, None)

    def _run(self, job: Job) -> None:
        engine = self.model.engine
        try:
            if engine is None:
                raise ModelUnavailable(self.model.error or "the model is not available")
            rendered = engine.generate(job.spec, on_step=job.progress, cancel=job.cancel_event)
            stored = self._store(job, engine, rendered)
        except GenerationCancelled as error:
            job.move(JobState.CANCELLED, error=str(error))
            return
        except Exception as error:  # any failure of one job is that job's, not the worker's
            log.exception("job %s failed", job.id)
            job.move(JobState.FAILED, error=f"generation failed: {type(error).__name__}: {error}")
            return
        self.generations += 1
        self._seconds_per_job = rendered.seconds if not self._seconds_per_job else (
            0.7 * self._seconds_per_job + 0.3 * rendered.seconds
        )
        job.move(JobState.SUCCEEDED, image=stored, step=job.total_steps)

    def _store(self, job: Job, engine: EngineLike, rendered: Rendered) -> StoredImage:
        info = ImageInfo(spec=job.spec, model=engine.model_name, version=engine.recipe.get("aleaart", ""),
                         token_id=job.token_id, key=job.key)
        png = encode_png(rendered.image, info)
        record = new_record(
            key=job.key, token_id=job.token_id, file=image_filename(job.token_id, job.key), prompt=job.spec.prompt,
            params=job.spec.params.to_json() if job.spec.params else None, spec=job.spec.canonical(),
            sampler=job.spec.sampler, width=job.spec.width, height=job.spec.height, model=engine.model_name,
            seconds=round(rendered.seconds, 3), sha256=hashlib.sha256(png).hexdigest(),
        )
        return self.store.put(record, png)

    # Bookkeeping

    def _remember(self, job: Job) -> None:
        self._jobs[job.id] = job
        while len(self._jobs) > self.keep_jobs:
            oldest_id, oldest = next(iter(self._jobs.items()))
            if not oldest.state.is_terminal():
                break
            del self._jobs[oldest_id]

    def _retry_after(self) -> int:
        return max(1, round(self._seconds_per_job or 10))

    def _eta(self, job: Job, position: int | None, running: list[Job]) -> float | None:
        if job.state is JobState.RUNNING and job.step and job.started_at:
            per_step = (time.time() - job.started_at) / job.step
            return round(per_step * (job.total_steps - job.step), 1)
        if position is not None and self._seconds_per_job:
            return round(self._seconds_per_job * (position + len(running)), 1)
        return None


def _new_id() -> str:
    return uuid.uuid4().hex

