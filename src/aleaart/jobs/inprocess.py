"""The in-process backend (the embedded default): the fair queue (jobs/fair.py: priorities, then owners in turn) in
front of the one worker thread that owns the model, and an encoder pool so the next job renders while this one's
PNG is encoded and stored."""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from aleaart.config import Settings
from aleaart.errors import ModelUnavailable
from aleaart.jobs.backend import QueueHooks
from aleaart.jobs.book import JobBook
from aleaart.jobs.fair import FairQueue
from aleaart.jobs.holder import ModelHolder
from aleaart.jobs.kind import EngineLike, JobRequest, Recipe, Sealer
from aleaart.jobs.queue import Queue
from aleaart.jobs.runner import Rendering, Runner
from aleaart.jobs.state import Job, JobState
from aleaart.metrics import Metrics
from aleaart.previews import sink_for
from aleaart.store import ImageStore

ENCODING_AHEAD = 2  # rendered images waiting to be encoded and stored while the engine renders the next


class InProcessBackend:
    detached = False

    def __init__(self, model: ModelHolder, credentials: Sealer | None = None) -> None:
        self.model = model
        self.credentials = credentials
        self._waiting: FairQueue[Job] = FairQueue()
        self._ready = threading.Condition()
        self._halted = False
        self._worker = threading.Thread(target=self._work, name="aleaart-worker", daemon=True)
        self._encoder = ThreadPoolExecutor(ENCODING_AHEAD, thread_name_prefix="aleaart-encode")
        self._encoding = threading.BoundedSemaphore(ENCODING_AHEAD)

    def attach(self, queue: QueueHooks) -> None:
        self.queue = queue

    def recipes(self) -> list[Recipe]:
        engine = self.model.engine
        return [engine.recipe] if engine is not None else []

    @property
    def model_name(self) -> str | None:
        return getattr(self.model.engine, "model_name", None)

    def health(self) -> dict[str, Any]:
        model, engine = self.model, self.model.engine
        health = {
            "backend": "in-process",
            "model_loaded": engine is not None,
            "model_loading": model.loading,
            "model_error": model.error,
            "device": str(getattr(engine, "device", "")) or None,
            "cuda_available": model.cuda_available,
        }
        if engine is not None and engine.memory is not None:
            health["memory"] = engine.memory.to_json(engine.max_rss_gb)
        return health

    def require_ready(self) -> None:
        self.model.require()

    def refuse_if_unavailable(self) -> None:
        self.model.refuse_if_failed()

    def refuse_if_too_large(self, request: JobRequest) -> None:
        if (engine := self.model.engine) is not None and (size := request.render_size()) is not None:
            engine.require_memory(size)

    def dispatch(self, job: Job) -> None:
        weight = self.queue.weight_of(job.owner)
        with self._ready:
            self._waiting.push(job, priority=int(job.priority), owner=job.owner, weight=weight)
            self._ready.notify()

    def adopt(self, job: Job) -> bool:
        return False

    def withdraw(self, job: Job) -> None:
        pass  # its turn is skipped: it is no longer queued

    def stop_running(self, job: Job) -> None:
        job.cancel_event.set()

    def watch_previews(self, job: Job) -> None:
        pass  # rendered here: its previews are at hand

    def start(self) -> None:
        self._worker.start()

    def stop(self, timeout: float) -> None:
        self._halt()
        if self._worker.is_alive():
            self._worker.join(timeout)
        self._encoder.shutdown(wait=True)  # rendered images are stored, not lost

    def drain(self, seconds: float, interrupt_wait: float) -> None:
        self._halt()
        if self._worker.is_alive():
            self._worker.join(seconds)
        if self._worker.is_alive():
            self.queue.interrupt_running()
            self._worker.join(interrupt_wait)
        self._encoder.shutdown(wait=True)

    def _halt(self) -> None:
        with self._ready:
            self._halted = True
            self._ready.notify_all()

    # The worker

    def _work(self) -> None:
        while not self.model.wait(0.5):
            if self._halted:
                return
        while (job := self._next()) is not None:
            self.queue.settle(job, lambda job=job: self._render(job))

    def _next(self) -> Job | None:
        """The most urgent job still queued, claimed (running); None once halted."""
        with self._ready:
            while not self._halted:
                while (job := self._waiting.pop()) is not None:
                    if self.queue.claim(job):
                        return job  # else: cancelled while queued
                self._ready.wait()
        return None

    def _render(self, job: Job) -> dict[str, Any] | Future:
        """A worker job's work: how its status ends (a stored result is not rendered again), or the
        encoding still running for it."""
        queue, engine = self.queue, self.model.engine
        if engine is None:  # jobs accepted while the model loaded, and it failed to load
            raise ModelUnavailable(self.model.error or "the model is not available")
        key = job.request.key(engine.recipe)
        job.move(JobState.RUNNING, key=key)
        queue.book.save(job)
        if (stored := job.request.stored(key, queue.store.get)) is not None:
            queue.metrics.cache_hits.labels(job.kind).inc()
            return {"images": stored, "cached": True, "step": job.status.total_steps}
        queue.store.require_free_space()
        return self._execute(job, engine, key)

    def _execute(self, job: Job, engine: EngineLike, key: str) -> Future | dict[str, Any]:
        """Render on this thread (the engine's), then encode and store on the encoder's, so the engine
        starts the next job meanwhile; at most ENCODING_AHEAD images wait for it."""
        started = last_step = time.perf_counter()

        def on_step(step: int, total: int) -> None:
            nonlocal last_step
            now = time.perf_counter()
            self.queue.metrics.step_seconds.observe(now - last_step)
            last_step = now
            job.progress(step, total)

        store = self.queue.store
        runner = Runner(engine, store=store, read_png=store.read_png, credentials=self.credentials)
        on_preview = sink_for(job.show_preview, lambda: (job.status.step, job.status.total_steps))
        rendering = runner.render(job.request, key=key, on_step=on_step, cancel=job.cancel_event,
                                  on_preview=on_preview)
        self._encoding.acquire()
        try:
            future = self._encoder.submit(self._store_result, job, rendering, started)
        except RuntimeError:  # the encoder was shut down by a stop that this render outlived: store it here
            self._encoding.release()
            return self._store_result(job, rendering, started)
        future.add_done_callback(lambda _: self._encoding.release())
        return future

    def _store_result(self, job: Job, rendering: Rendering, started: float) -> dict[str, Any]:
        artifacts = rendering.encode()
        images = tuple(self.queue.store.put(a.record, a.data) for a in artifacts)
        self.queue.count_generation(job.kind, time.perf_counter() - started)
        return {"images": images, "step": job.status.total_steps}


class JobQueue(Queue):
    """The queue on the in-process backend: one worker thread of this process owns the model."""

    def __init__(self, *, model: ModelHolder, store: ImageStore, book: JobBook, settings: Settings,
                 metrics: Metrics | None = None, chain: Any = None, credentials: Sealer | None = None) -> None:
        super().__init__(backend=InProcessBackend(model, credentials), store=store, book=book, settings=settings,
                         metrics=metrics, chain=chain)
        self.model = model
