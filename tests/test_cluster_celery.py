"""GPU workers through Celery: fair shares (cluster/release.py: the API hands the broker one job per live worker, in
the fair queue's turns, and the rest wait in the API), and previews (a worker sends a job's previews through Redis
only while a client watches them). Pure first, then a real Celery worker on a real redis-server."""

from __future__ import annotations

import dataclasses
import json
import threading

import pytest
from cluster_helpers import SPEC, needs_redis
from waiting import eventually

from aleaart.cluster.release import Release
from aleaart.cluster.wire import EVENTS
from aleaart.jobs import Job, JobState, RenderRequest


def queued(name: str, owner: str) -> Job:
    job = Job(id=name, request=RenderRequest(SPEC), owners=[owner])
    job.move(JobState.QUEUED)
    return job


def test_release_keeps_one_job_per_worker_at_the_broker_in_turns():
    sent: list[str] = []
    release = Release(lambda job: sent.append(job.id))
    for i in range(5):
        release.hold(queued(f"a{i}", "a"))
    release.hold(queued("b0", "b"))
    assert release.release(capacity=2) == 2 and sent == ["a0", "b0"]  # a's first, then b's turn
    assert release.release(capacity=2) == 0  # both still wait unstarted at the broker
    assert release.started("a0") and not release.started("a0")
    release.release(capacity=2)
    assert sent == ["a0", "b0", "a1"] and (release.held, release.unstarted) == (3, 2)


def test_a_job_that_could_not_be_sent_keeps_its_place_and_a_cancelled_one_is_skipped():
    failing = True
    sent: list[str] = []

    def send(job: Job) -> None:
        if failing:
            raise ConnectionError("redis is down")
        sent.append(job.id)

    release = Release(send)
    first, second = queued("a0", "a"), queued("a1", "a")
    release.hold(first)
    release.hold(second)
    with pytest.raises(ConnectionError):
        release.release(capacity=1)
    assert release.held == 2 and release.unstarted == 0
    failing = False
    first.move(JobState.CANCELLED)
    assert release.release(capacity=1) == 1 and sent == ["a1"]


def test_a_job_the_broker_had_before_a_restart_counts_as_waiting_there():
    sent: list[str] = []
    release = Release(lambda job: sent.append(job.id))
    release.sent_earlier("old")
    release.hold(queued("new", "a"))
    assert release.release(capacity=1) == 0
    release.started("old")
    assert release.release(capacity=1) == 1 and sent == ["new"]


@pytest.fixture(scope="module")
def celery_cluster(redis_server, tmp_path_factory):
    """A CeleryQueue and one real Celery worker (in a thread, on the fake engine) on the same redis-server: one for
    the whole test run (a second Celery worker started in the same process does not take jobs)."""
    from celery.contrib.testing.worker import start_worker
    from cluster_helpers import settings_for
    from fakes import FakeEngine

    from aleaart.cluster.app import make_celery
    from aleaart.cluster.dispatch import CeleryQueue
    from aleaart.cluster.wire import queue_for_model
    from aleaart.cluster.worker import ClusterWorker
    from aleaart.database import Database
    from aleaart.jobs import JobBook, Runner
    from aleaart.store import ImageStore

    tmp_path = tmp_path_factory.mktemp("celery")
    engine = FakeEngine()
    settings = settings_for(redis_server, images_dir=tmp_path / "images", max_queue=300)
    db = Database(tmp_path / "index.db")
    store = ImageStore(tmp_path / "images", db)
    queue = CeleryQueue(store=store, book=JobBook(db, store), settings=settings)
    worker = ClusterWorker(Runner(engine), redis_server.client(), settings, name="w1")
    app = make_celery(settings, run_job=worker.run)
    worker.start()
    queue.start()
    try:
        with start_worker(app, pool="solo", concurrency=1, perform_ping_check=False, shutdown_timeout=30,
                          queues=[queue_for_model(settings.model)]):
            yield queue, engine
            engine.release.set()
    finally:
        worker.stop()
        queue.stop()
        db.close()


@needs_redis
def test_a_key_with_200_waiting_delays_another_keys_one_by_at_most_one_render_per_worker(celery_cluster):
    queue, engine = celery_cluster
    engine.release.clear()  # the first render waits at its gate
    release = queue.backend._release
    jobs = [queue.submit(RenderRequest(dataclasses.replace(SPEC, seed=s)), owner="a") for s in range(200)]
    assert engine.started.wait(30)
    # a0 runs; a1 waits at the broker (one per worker); the other 198 wait in the API for their turn
    assert eventually(lambda: (release.unstarted, release.held) == (1, 198))
    single = queue.submit(RenderRequest(dataclasses.replace(SPEC, seed=1000)), owner="b")
    assert release.held == 199 and queue.health()["broker"]["held"] == 199
    engine.release.set()
    assert single.wait_done(60) and single.state is JobState.SUCCEEDED
    started = [spec.seed for spec in engine.calls]
    assert started.index(1000) == 2, started[:5]  # a0 was running, a1 at the broker: b's render came next
    for job in jobs:
        queue.cancel(job.id)
    assert eventually(lambda: release.unstarted == 0) and release.held == 0  # the cancelled count nowhere


@needs_redis
def test_a_watched_jobs_previews_come_from_its_worker_and_an_unwatched_one_sends_none(celery_cluster, client):
    queue, engine = celery_cluster
    engine.step_seconds = 0.3  # each step's preview is past the throttle
    events = client.pubsub()
    events.subscribe(EVENTS)
    unwatched = queue.submit(RenderRequest(dataclasses.replace(SPEC, seed=21, steps=5)))
    assert unwatched.wait_done(60) and unwatched.preview is None
    watched = queue.submit(RenderRequest(dataclasses.replace(SPEC, seed=22, steps=8)))
    stop = threading.Event()

    def watch() -> None:  # what an events stream does while it is open
        while not stop.is_set():
            queue.watch_previews(watched)
            stop.wait(0.5)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        assert eventually(lambda: watched.preview is not None, timeout=60)
        assert watched.preview.data[8:12] == b"WEBP" and watched.preview.steps == 8
        assert watched.wait_done(60)
    finally:
        stop.set()
        watcher.join(10)
    sent: dict[str, int] = {}
    while (message := events.get_message(timeout=0.5)) is not None:
        if message["type"] != "message":
            continue  # the subscription's own confirmation
        event = json.loads(message["data"])
        if event["kind"] == "preview":
            sent[event["job"]] = sent.get(event["job"], 0) + 1
    events.close()
    assert unwatched.id not in sent and sent.get(watched.id, 0) >= 1
