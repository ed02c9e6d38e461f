"""`aleaart worker`: a Celery worker that loads the model once and runs one job at a time.

Each job is claimed by its key in Redis first, so one key is rendered once in the whole cluster:
a worker handed a key that is done answers from it, and one handed a key another worker is
rendering waits for it (the claim expires when that worker dies, and then this one renders it).
The PNGs and the outcome go back through Redis: workers need no filesystem shared with the API.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import redis
from celery import signals
from celery.exceptions import Reject

from aleaart.cluster.app import make_celery, redis_client
from aleaart.cluster.wire import (
    EVENTS,
    MISSED_HEARTBEATS,
    WORKERS,
    Event,
    Outcome,
    WorkerInfo,
    cancel_key,
    claim_key,
    done_key,
    outcome_key,
    png_key,
    queue_for_model,
    records_from_json,
    records_to_json,
    watch_key,
    worker_key,
)
from aleaart.config import Settings
from aleaart.errors import AleaArtError, GenerationCancelled, NotFound
from aleaart.jobs import Artifact, JobState, request_from_json
from aleaart.jobs.runner import Runner, outcome_of
from aleaart.previews import Preview, PreviewSink, sink_for

log = logging.getLogger(__name__)

# Compare-and-set on a claim: only the worker that holds it may renew or release it.
RENEW = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('expire', KEYS[1], ARGV[2]) end return 0"
RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"
CLAIM_POLL_SECONDS = 0.5


@dataclass
class Running:
    """The job this worker is on: what its heartbeat renews and what a second SIGTERM interrupts."""

    job_id: str
    key: str
    holder: str
    cancel: threading.Event = field(default_factory=threading.Event)
    interrupted: bool = False
    step: int = 0  # its progress, as its step events say
    total: int = 0


class ClusterWorker:
    """Runs jobs handed over by Celery on one loaded engine, and tells Redis it is alive."""

    def __init__(self, runner: Runner, client: redis.Redis, settings: Settings, *, name: str) -> None:
        # The files this worker makes are signed here, where they are encoded (the runner's credentials); the
        # stored images its jobs start from come through Redis.
        self.runner = replace(runner, store=None, read_png=self._read_png)
        engine = self.engine = runner.engine
        self.redis = client
        self.name = name
        self.heartbeat_seconds = settings.heartbeat_seconds
        self.ttl = max(1, round(settings.heartbeat_seconds * MISSED_HEARTBEATS))
        self.result_seconds = round(settings.result_hours * 3600)
        self.redeliver_seconds = settings.redeliver_seconds
        self.info = WorkerInfo(
            name=name, device=str(getattr(engine, "device", "cpu")), model=settings.model,
            model_name=engine.model_name, recipe=dict(engine.recipe), queue=queue_for_model(settings.model),
            started_at=time.time(),
        )
        self.running: Running | None = None
        self.rendered = 0  # written by the job's thread only; the heartbeat reads it
        self._beat_lock = threading.Lock()  # a beat from the job's thread and one from the heartbeat's don't cross
        self._renew = client.register_script(RENEW)
        self._release = client.register_script(RELEASE)
        self._stop = threading.Event()
        self._heartbeat = threading.Thread(target=self._beat, name="aleaart-heartbeat", daemon=True)

    # Lifetime

    def start(self) -> None:
        self._beat_once()
        self._heartbeat.start()

    def stop(self) -> None:
        self._stop.set()
        self._heartbeat.join(5)
        try:
            self.redis.pipeline().delete(worker_key(self.name)).srem(WORKERS, self.name).execute()
        except redis.RedisError:
            pass  # its key expires by itself

    def interrupt(self) -> None:
        """Stop the running job at its next step and hand it back to the queue (a second SIGTERM)."""
        if (running := self.running) is not None:
            running.interrupted = True
            running.cancel.set()

    def _beat(self) -> None:
        while not self._stop.wait(self.heartbeat_seconds):
            self._beat_once()

    def _beat_once(self) -> None:
        with self._beat_lock:
            self._say_alive()

    def _say_alive(self) -> None:
        running = self.running
        self.info = replace(self.info, state="busy" if running else "idle", job=running.job_id if running else None,
                            jobs=self.rendered, heartbeat_at=time.time())
        try:
            pipe = self.redis.pipeline()
            pipe.set(worker_key(self.name), self.info.to_json(), ex=self.ttl).sadd(WORKERS, self.name)
            pipe.execute()
            if running is not None:
                self._renew(keys=[claim_key(running.key)], args=[running.holder, self.ttl])
        except redis.RedisError as error:
            log.warning("heartbeat failed (Redis unreachable?): %s", error)

    # One job

    def run(self, job_id: str, kind: str, data: dict[str, Any]) -> None:
        """The Celery task's body."""
        if self.redis.exists(cancel_key(job_id)):
            self._conclude(Outcome(job=job_id, state="cancelled", worker=self.name, error="cancelled while queued",
                                   code=GenerationCancelled.code))
            return
        try:
            request = request_from_json(kind, data)
            key = request.key(self.engine.recipe)
        except (AleaArtError, KeyError, TypeError, ValueError) as error:  # an API of another version sent it
            self._conclude(Outcome(job=job_id, state="failed", worker=self.name, code="invalid_params",
                                   error=f"this worker cannot read the job: {type(error).__name__}: {error}"))
            return
        log.info("job %s: %s, key %s", job_id, kind, key[:16])
        self._publish(Event(job=job_id, kind="started", worker=self.name, key=key, total=request.total_steps()))
        running = Running(job_id=job_id, key=key, holder=f"{self.name}|{job_id}")
        done = self._claim_or_wait(running)
        if done is not None:
            log.info("job %s: key already done, not rendered again", job_id)
            self._conclude(Outcome(job=job_id, state="succeeded", worker=self.name, key=key,
                                   images=records_from_json(done), cached=True))
            return
        self.running = running
        self._beat_once()  # /health says busy now, not at the next heartbeat
        started = time.perf_counter()
        try:
            outcome = outcome_of(lambda: self.runner.run(request, key=key, on_step=self._step_reporter(running),
                                                         cancel=running.cancel,
                                                         on_preview=self._preview_reporter(running)),
                                 job_id=job_id)
            if outcome.state is not JobState.SUCCEEDED:
                self._release(keys=[claim_key(key)], args=[running.holder])
            if outcome.state is JobState.CANCELLED and running.interrupted:
                log.warning("job %s: interrupted by the shutdown; handed back to the queue", job_id)
                raise Reject("interrupted by a second SIGTERM", requeue=True)
            if outcome.state is not JobState.SUCCEEDED:
                self._conclude(Outcome(job=job_id, state=outcome.state.value, worker=self.name, key=key,
                                       **outcome.failure))
                return
            seconds = time.perf_counter() - started
            self.rendered += 1
            artifacts = outcome.result
            self._conclude(Outcome(job=job_id, state="succeeded", worker=self.name, key=key, seconds=round(seconds, 3),
                                   images=tuple(a.record for a in artifacts)), artifacts, running)
            log.info("job %s: rendered in %.1f s", job_id, seconds)
        finally:
            self.running = None
            self._beat_once()

    def _read_png(self, key: str, sha256: str) -> bytes:
        """A stored image a job starts from: the API put its PNG in Redis when it sent the job."""
        data = self.redis.get(png_key(sha256))
        if data is None or hashlib.sha256(data).hexdigest() != sha256:
            raise NotFound(f"the image {key[:16]} this job starts from is not in Redis (expired?); ask again")
        return data

    def _claim_or_wait(self, running: Running) -> list[dict[str, Any]] | None:
        """Claim the key, or wait while another live worker holds it; the key's records if it is done."""
        while True:
            if (done := self.redis.get(done_key(running.key))) is not None:
                return json.loads(done)
            if self.redis.set(claim_key(running.key), running.holder, nx=True, ex=self.ttl):
                return None
            time.sleep(CLAIM_POLL_SECONDS)

    def _step_reporter(self, running: Running) -> Callable[[int, int], None]:
        def on_step(step: int, total: int) -> None:
            running.step, running.total = step, total
            event = Event(job=running.job_id, kind="step", worker=self.name, key=running.key, step=step, total=total)
            try:
                _, cancelled = self.redis.pipeline(transaction=False).publish(EVENTS, event.to_json()) \
                    .exists(cancel_key(running.job_id)).execute()
            except redis.RedisError:
                return  # progress is best effort; the render goes on and its outcome waits for Redis
            if cancelled:
                running.cancel.set()

        return on_step

    def _preview_reporter(self, running: Running) -> PreviewSink:
        """The job's previews to the API, throttled, and only while a client watches them (the API says so with
        watch_key, looked at once a second): a job no one watches sends none."""
        watched_at, watched = -1e9, False

        def show(preview: Preview) -> None:
            nonlocal watched_at, watched
            try:
                if time.monotonic() - watched_at >= 1.0:
                    watched, watched_at = bool(self.redis.exists(watch_key(running.job_id))), time.monotonic()
                if watched:
                    self.redis.publish(EVENTS, Event(job=running.job_id, kind="preview", worker=self.name,
                                                     key=running.key, step=preview.step, total=preview.steps,
                                                     image=base64.b64encode(preview.data).decode()).to_json())
            except redis.RedisError:
                pass  # previews are best effort

        return sink_for(show, lambda: (running.step, running.total))

    def _conclude(self, outcome: Outcome, artifacts: Sequence[Artifact] = (), running: Running | None = None) -> None:
        """Write the PNGs, the done marker and the outcome in one transaction, release the claim, and say so.
        Retried while Redis is away (up to the redelivery time: after that the job is redelivered anyway)."""
        deadline = time.monotonic() + self.redeliver_seconds
        delay = 0.5
        while True:
            try:
                pipe = self.redis.pipeline()
                for artifact in artifacts:
                    if hashlib.sha256(artifact.data).hexdigest() != artifact.record.sha256:
                        raise RuntimeError(f"{artifact.record.file}: the PNG does not match its record's sha256")
                    pipe.set(png_key(artifact.record.sha256), artifact.data, ex=self.result_seconds)
                if artifacts and outcome.key:
                    pipe.set(done_key(outcome.key), json.dumps(records_to_json(outcome.images)), ex=self.result_seconds)
                pipe.set(outcome_key(outcome.job), outcome.to_json(), ex=self.result_seconds)
                pipe.execute()
                if running is not None:
                    self._release(keys=[claim_key(running.key)], args=[running.holder])
                self._publish(Event(job=outcome.job, kind="done", worker=self.name, key=outcome.key))
                return
            except redis.RedisError as error:
                if time.monotonic() > deadline:
                    raise
                log.warning("job %s: Redis unreachable (%s); keeping the result and retrying", outcome.job, error)
                time.sleep(delay)
                delay = min(delay * 2, 5)

    def _publish(self, event: Event) -> None:
        try:
            self.redis.publish(EVENTS, event.to_json())
        except redis.RedisError:
            pass  # events are wake-ups and progress; outcomes are keys the API polls


def default_worker_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


def serve_worker(settings: Settings, open_runner: Callable[[], Runner], *, name: str | None = None) -> int:
    """Load the model, then run a Celery worker (solo pool: one job at a time, in this process) until stopped.

    SIGTERM is Celery's warm shutdown: the running job finishes first. A second SIGTERM stops it at
    its next step and hands it back to the queue for another worker.
    """
    name = name or settings.worker_name or default_worker_name()
    started = time.perf_counter()
    runner = open_runner()
    client = redis_client(settings)
    worker = ClusterWorker(runner, client, settings, name=name)
    print(f"aleaart worker {name}: loaded {runner.engine.model_name} on {worker.info.device} in "
          f"{time.perf_counter() - started:.1f} s; recipe {worker.info.recipe}; queue {worker.info.queue}", flush=True)

    terms = 0

    def on_shutting_down(sig: str = "", **_: Any) -> None:
        nonlocal terms
        if sig != "SIGTERM":
            return
        terms += 1
        if terms == 1 and worker.running is not None:
            print(f"aleaart worker {name}: finishing job {worker.running.job_id} before stopping "
                  "(SIGTERM again stops it at the next step and hands it back)", flush=True)
        elif terms > 1:
            worker.interrupt()

    signals.worker_shutting_down.connect(on_shutting_down, weak=False)
    app = make_celery(settings, run_job=worker.run)
    worker.start()
    try:
        celery_worker = app.Worker(hostname=f"{name}@{socket.gethostname()}", pool="solo", concurrency=1,
                                   queues=[worker.info.queue], loglevel="INFO", without_mingle=True,
                                   without_gossip=True)
        celery_worker.start()
        return celery_worker.exitcode or 0
    finally:
        worker.stop()
        signals.worker_shutting_down.disconnect(on_shutting_down)
