"""The Celery backend of the API: jobs go to GPU workers through Redis, results come back into the store.

The API loads no model. It keeps everything else the in-process service does (dedup, job records,
collections, SSE, fair shares: cluster/release.py hands the broker jobs in turn) and two threads: one follows the
workers' progress events, the other refreshes the list of live workers, sends jobs resumed after a restart or
whose turn came, and collects finished jobs' outcomes.
Outcomes and PNGs are Redis keys, so a result finished while the API was down lands when it is back.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from typing import Any

import redis
from kombu.exceptions import OperationalError

from aleaart.cluster.app import make_celery, redact, redis_client
from aleaart.cluster.events import EventFollower
from aleaart.cluster.release import Release
from aleaart.cluster.wire import (
    RUN_JOB,
    WORKERS,
    Outcome,
    WorkerInfo,
    cancel_key,
    celery_priority,
    done_key,
    outcome_key,
    png_key,
    queue_for_model,
    sent_key,
    watch_key,
    worker_key,
)
from aleaart.config import Settings
from aleaart.errors import AleaArtError, BrokerUnavailable, GenerationFailed, NotFound, error_for
from aleaart.jobs import Job, JobBook, JobState, Queue
from aleaart.jobs.backend import QueueHooks
from aleaart.jobs.kind import JobRequest, Recipe
from aleaart.metrics import Metrics
from aleaart.store import ImageStore, StoredImage

log = logging.getLogger(__name__)

POLL_SECONDS = 0.5  # how often finished jobs are looked for when no "done" event says so
WATCH_SECONDS = 10  # a client's interest in a job's previews, renewed while it watches
BROKER_ERRORS = (redis.RedisError, OperationalError, OSError)


class CeleryQueue(Queue):
    """The queue on the Celery backend: jobs run on `aleaart worker` processes (Celery on ALEAART_BROKER_URL)."""

    def __init__(self, *, store: ImageStore, book: JobBook, settings: Settings, metrics: Metrics | None = None,
                 chain: Any = None) -> None:
        super().__init__(backend=CeleryBackend(settings), store=store, book=book, settings=settings,
                         metrics=metrics, chain=chain)


class CeleryBackend:
    """Hands worker jobs to `aleaart worker` processes and stores their results (a queue backend)."""

    detached = True  # worker jobs go on without this process

    def __init__(self, settings: Settings) -> None:
        self.model = settings.model
        self.queue_name = queue_for_model(settings.model)
        self.broker_url = redact(str(settings.broker_url))
        self.celery = make_celery(settings)
        self.redis = redis_client(settings)
        self.heartbeat_seconds = settings.heartbeat_seconds
        self.result_seconds = round(settings.result_hours * 3600)
        self.workers: tuple[tuple[WorkerInfo, float], ...] = ()  # (info, seconds since its heartbeat)
        self.broker_error: str | None = None
        self._recipes: dict[str, Recipe] = {}  # kept when workers go: stored results stay findable
        self._model_name: str | None = None
        self._unsent: set[str] = set()  # resumed after a restart: sent by the watcher unless already sent
        self._unsent_lock = threading.Lock()
        self._release = Release(self._send)
        self._wakeup = threading.Event()
        self._halt = threading.Event()
        self._threads = [threading.Thread(target=self._watch, name="aleaart-cluster-watch", daemon=True)]

    def attach(self, queue: QueueHooks) -> None:
        self.queue = queue
        follower = EventFollower(self.redis, queue, started=self._release.started, wake=self._wakeup.set,
                                 halt=self._halt, errors=BROKER_ERRORS)
        self._threads.append(threading.Thread(target=follower.run, name="aleaart-cluster-events", daemon=True))

    def watch_previews(self, job: Job) -> None:
        """A client watches the job's previews: its worker sends them for the next WATCH_SECONDS."""
        try:
            self.redis.set(watch_key(job.id), 1, ex=WATCH_SECONDS)
        except BROKER_ERRORS:
            pass  # previews are best effort

    # What the queue asks of a backend (jobs/backend.py)

    def recipes(self) -> list[Recipe]:
        return list(self._recipes.values())

    @property
    def model_name(self) -> str | None:
        return self._model_name

    def health(self) -> dict[str, Any]:
        mine = [info for info, _ in self.workers if info.model == self.model]
        return {
            "backend": "celery",
            "model_loaded": bool(mine),
            "model_loading": False,
            "model_error": None,
            "device": None,
            "cuda_available": any(info.device.startswith("cuda") for info in mine),
            "broker": {"url": self.broker_url, "state": "unreachable" if self.broker_error else "ok",
                       "error": self.broker_error, "queue": self.queue_name,
                       "held": self._release.held, "sent": self._release.unstarted},
            "workers": [info.health(age) for info, age in self.workers],
        }

    def require_ready(self) -> None:
        self.refuse_if_unavailable()

    def refuse_if_unavailable(self) -> None:
        if self.broker_error:
            raise BrokerUnavailable(f"the job broker (Redis at {self.broker_url}) cannot be reached: "
                                    f"{self.broker_error}; try again in a few seconds")

    def refuse_if_too_large(self, request: JobRequest) -> None:
        pass  # the workers' engines are not here: each refuses a job too large for it when it comes

    def dispatch(self, job: Job) -> None:
        self.refuse_if_unavailable()
        self._release.hold(job, self.queue.weight_of(job.owner))
        try:
            self._release_in_turn()
        except BROKER_ERRORS as error:
            self._broker_down(error)
            self.refuse_if_unavailable()

    def withdraw(self, job: Job) -> None:
        self._release.withdraw(job.id)
        try:
            self._tell_cancelled(job)
        except BROKER_ERRORS as error:  # it is cancelled here; a worker that runs it anyway is not listened to
            log.warning("job %s: could not tell the workers it is cancelled: %s", job.id, error)

    def stop_running(self, job: Job) -> None:
        try:
            self._tell_cancelled(job)
        except BROKER_ERRORS as error:
            self._broker_down(error)
            self.refuse_if_unavailable()

    def adopt(self, job: Job) -> bool:
        """Queued or running on a worker still: only its outcome is awaited (sent again if it never was)."""
        with self._unsent_lock:
            self._unsent.add(job.id)
        return True

    def start(self) -> None:
        try:
            self.redis.ping()
        except BROKER_ERRORS as error:
            self._broker_down(error)
        for thread in self._threads:
            thread.start()

    def stop(self, timeout: float) -> None:
        self._halt.set()
        self._wakeup.set()
        for thread in self._threads:
            if thread.is_alive():
                thread.join(timeout)

    def drain(self, seconds: float, interrupt_wait: float) -> None:
        """Nothing to wait for: jobs run on the workers, and their results are collected after the restart."""

    # Sending

    def _tell_cancelled(self, job: Job) -> None:
        """The key workers check before a job and at every step."""
        self.redis.set(cancel_key(job.id), 1, ex=self.result_seconds)

    def _send(self, job: Job) -> None:
        self._upload_sources(job)
        self.celery.send_task(RUN_JOB, args=[job.id, job.kind, job.request.to_json()], task_id=job.id,
                              queue=self.queue_name, priority=celery_priority(job.priority))
        self.redis.set(sent_key(job.id), 1, ex=self.result_seconds)

    def _upload_sources(self, job: Job) -> None:
        """The stored images the job starts from, into Redis for the worker (which has no store)."""
        for key, sha256 in job.request.sources():
            try:
                data = self.queue.store.read_png(key, sha256)
            except NotFound:
                continue  # gone since it was asked for: the worker fails the job, saying so
            self.redis.set(png_key(sha256), data, ex=self.result_seconds)

    def _release_in_turn(self) -> None:
        """Hand the broker held jobs, in turn, until one waits there for each live worker (at least one)."""
        self._release.release(max(1, sum(1 for info, _ in self.workers if info.model == self.model)))

    def _send_unsent(self) -> None:
        """Jobs resumed after a restart, or from a Redis that was down: those the broker has count as waiting
        there; the others wait for their turn."""
        with self._unsent_lock:
            ids, self._unsent = self._unsent, set()
        unsent = [job for job in self.queue.waiting_jobs() if job.id in ids and not self._release.holds(job.id)]
        for index, job in enumerate(unsent):
            try:
                if self.redis.exists(sent_key(job.id)):
                    if job.state is JobState.QUEUED:
                        self._release.sent_earlier(job.id)
                else:
                    self._release.hold(job, self.queue.weight_of(job.owner))
            except BROKER_ERRORS:
                with self._unsent_lock:  # this one and those after it are tried again next round
                    self._unsent.update(j.id for j in unsent[index:])
                raise

    # Watching the cluster

    def _watch(self) -> None:
        refreshed = 0.0
        while not self._halt.is_set():
            try:
                if time.monotonic() - refreshed >= self.heartbeat_seconds:
                    self._refresh_workers()
                    refreshed = time.monotonic()
                self._send_unsent()
                self._collect_outcomes()
                self._release_in_turn()
                self._broker_up()
            except BROKER_ERRORS as error:
                self._broker_down(error)
            except Exception:  # the watcher must outlive any one bad outcome
                log.exception("collecting results failed; retrying")
            self._wakeup.wait(POLL_SECONDS)
            self._wakeup.clear()

    def _refresh_workers(self) -> None:
        names = sorted(n.decode() for n in self.redis.smembers(WORKERS))
        replies = self.redis.mget([worker_key(name) for name in names]) if names else []
        alive, gone = [], []
        for name, raw in zip(names, replies, strict=True):
            if raw is None:
                gone.append(name)
                continue
            info = WorkerInfo.from_json(raw)
            alive.append((info, round(max(0.0, time.time() - info.heartbeat_at), 1)))
            if info.job:
                self._release.started(info.job)
            if info.model == self.model:
                self._recipes[json.dumps(info.recipe, sort_keys=True)] = info.recipe
                self._model_name = info.model_name
        if gone:
            self.redis.srem(WORKERS, *gone)
        self.workers = tuple(alive)

    def _collect_outcomes(self) -> None:
        waiting = self.queue.waiting_jobs()
        if not waiting:
            return
        raws = self.redis.mget([outcome_key(job.id) for job in waiting])
        for job, raw in zip(waiting, raws, strict=True):
            if raw is not None:
                self._collect(job, Outcome.from_json(raw))

    def _collect(self, job: Job, outcome: Outcome) -> None:
        """Store the result (PNG bytes from Redis, checked against the worker's sha256) and end the job."""
        self._release.started(job.id)
        pngs = {image.sha256: self.redis.get(png_key(image.sha256)) for image in outcome.images}
        self.queue.settle(job, lambda: self._result_of(job, outcome, pngs))
        self.redis.delete(outcome_key(job.id), sent_key(job.id), cancel_key(job.id), *map(png_key, pngs))

    def _result_of(self, job: Job, outcome: Outcome, pngs: dict[str, bytes | None]) -> dict[str, Any]:
        if outcome.state != "succeeded":
            raise error_for(outcome.code, outcome.error or f"the job {outcome.state} on worker {outcome.worker}")
        try:
            images = tuple(self._ingest(image, pngs.get(image.sha256)) for image in outcome.images)
        except AleaArtError:
            if outcome.key:  # not stored here: forget it was done, so the next ask renders it again
                self.redis.delete(done_key(outcome.key))
            raise
        if outcome.cached:
            self.queue.metrics.cache_hits.labels(job.kind).inc()
        else:
            self.queue.count_generation(job.kind, outcome.seconds)
        log.info("job %s: result from worker %s%s", job.id, outcome.worker, " (already done)" if outcome.cached else "")
        return {"images": images, "cached": outcome.cached, "key": outcome.key, "step": job.status.total_steps}

    def _ingest(self, image: StoredImage, png: bytes | None) -> StoredImage:
        """One file and one index row per key: a key already stored is kept as it is."""
        store = self.queue.store
        if (stored := store.get(image.key)) is not None:
            return stored
        if png is None:
            raise GenerationFailed(f"the image of key {image.key[:16]} left Redis before it was stored; ask again")
        if hashlib.sha256(png).hexdigest() != image.sha256:
            raise GenerationFailed(f"the image of key {image.key[:16]} was damaged on its way from the worker")
        return store.put(image, png)

    # The broker's state

    def _broker_down(self, error: BaseException) -> None:
        if self.broker_error is None:
            log.error("the job broker (Redis at %s) is unreachable: %s", self.broker_url, error)
        self.broker_error = f"{type(error).__name__}: {error}"

    def _broker_up(self) -> None:
        if self.broker_error is None:
            return
        log.warning("the job broker (Redis at %s) is back", self.broker_url)
        self.broker_error = None
        waiting = self.queue.waiting_jobs()
        with self._unsent_lock:  # a Redis that restarted empty lost their messages: those are sent again
            self._unsent.update(job.id for job in waiting)
        self._wakeup.set()

