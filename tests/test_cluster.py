"""The cluster's two halves against a real redis-server, each without the other: the worker's claims and
outcomes (on the fake engine), and the API's collecting of outcomes (with no worker at all)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import threading

import pytest
from celery.exceptions import Reject
from fakes import FakeEngine
from integration.cluster import RedisServer
from waiting import eventually

from aleaart.cluster.dispatch import CeleryQueue, redact
from aleaart.cluster.wire import (
    Event,
    Outcome,
    WorkerInfo,
    cancel_key,
    celery_priority,
    claim_key,
    done_key,
    outcome_key,
    png_key,
    queue_for_model,
)
from aleaart.cluster.worker import ClusterWorker
from aleaart.config import Settings
from aleaart.database import Database
from aleaart.jobs import JobBook, JobState, RenderRequest, Runner
from aleaart.params import RenderSpec
from aleaart.store import ImageStore

needs_redis = pytest.mark.skipif(shutil.which("redis-server") is None and not os.environ.get("CI"),
                                 reason="redis-server is not installed (run_tests.sh installs it; CI fails instead)")

SPEC = RenderSpec(prompt="cluster", steps=4, guidance_scale=7.5, seed=3, sampler="Euler a", width=64, height=64)


# Pure parts

def test_queue_names_are_readable_stable_and_differ_per_model():
    assert queue_for_model("tiny") == queue_for_model("tiny")
    assert queue_for_model("tiny").startswith("aleaart.tiny.")
    assert queue_for_model("/models/a.safetensors") != queue_for_model("/other/a.safetensors")
    assert " " not in queue_for_model("My Model v2")


def test_priorities_map_onto_redis_priority_steps():
    assert celery_priority(0) == 0 and celery_priority(10) == 9 and celery_priority(-3) == 0


def test_messages_round_trip(tmp_path):
    info = WorkerInfo(name="w", device="cuda:1", model="tiny", model_name="m", recipe={"a": "b"}, queue="q",
                      state="busy", job="j", jobs=3, heartbeat_at=5.0)
    assert WorkerInfo.from_json(info.to_json()) == info
    event = Event(job="j", kind="step", worker="w", key="k", step=2, total=4)
    assert Event.from_json(event.to_json()) == event
    outcome = Outcome(job="j", state="failed", worker="w", error="boom", code="generation_failed")
    assert Outcome.from_json(outcome.to_json()) == outcome


def test_the_broker_url_is_shown_without_its_password():
    assert redact("redis://:s3cret@10.0.0.2:6379/0") == "redis://:***@10.0.0.2:6379/0"
    assert redact("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"


# The worker's side

@pytest.fixture(scope="module")
def redis_server(tmp_path_factory):
    if shutil.which("redis-server") is None and not os.environ.get("CI"):
        pytest.skip("redis-server is not installed (run_tests.sh installs it)")
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture
def client(redis_server):
    client = redis_server.client()
    client.flushdb()
    yield client
    client.close()


def settings_for(redis_server, **extra) -> Settings:
    return Settings(broker_url=redis_server.url, model="fake", heartbeat_seconds=0.2, redeliver_seconds=5, **extra)


@pytest.fixture
def engine():
    return FakeEngine()


@pytest.fixture
def worker(redis_server, client, engine):
    return ClusterWorker(Runner(engine), client, settings_for(redis_server), name="w1")


def request_json() -> dict:
    return RenderRequest(SPEC, "7").to_json()


def outcome_of(client, job_id: str) -> Outcome:
    return Outcome.from_json(client.get(outcome_key(job_id)))


@needs_redis
def test_a_rendered_key_is_not_rendered_again(worker, client, engine):
    worker.run("job-1", "render", request_json())
    first = outcome_of(client, "job-1")
    assert first.state == "succeeded" and not first.cached and len(engine.calls) == 1
    png = client.get(png_key(first.images[0].sha256))
    assert hashlib.sha256(png).hexdigest() == first.images[0].sha256
    assert client.get(claim_key(first.key)) is None  # released

    worker.run("job-2", "render", request_json())  # redelivered, or sent again after an API restart
    second = outcome_of(client, "job-2")
    assert second.state == "succeeded" and second.cached and second.images == first.images
    assert len(engine.calls) == 1


@needs_redis
def test_a_key_claimed_elsewhere_is_waited_for_not_rendered(worker, client, engine, monkeypatch):
    key = RenderRequest(SPEC, "7").key(engine.recipe)
    client.set(claim_key(key), "w0|job-0", ex=30)
    refused = threading.Event()  # the worker asked for the claim and was told another worker holds it
    plain_set = client.set

    def watched_set(name, value, *args, nx=False, **kwargs):
        answer = plain_set(name, value, *args, nx=nx, **kwargs)
        if nx and name == claim_key(key) and not answer:
            refused.set()
        return answer

    monkeypatch.setattr(client, "set", watched_set)
    runner = threading.Thread(target=worker.run, args=("job-3", "render", request_json()))
    runner.start()
    assert refused.wait(10)
    refused.clear()
    assert refused.wait(10)  # and asked again: it waits, polling, rather than rendering
    monkeypatch.undo()
    assert runner.is_alive() and engine.calls == []  # waiting on the other worker
    record = {"key": key, "token_id": "7", "file": "art_token_7_0000000000000000.png", "prompt": "p", "params": None,
              "spec": {}, "sampler": "Euler a", "width": 64, "height": 64, "model": "fake", "seconds": 1.0,
              "sha256": "00" * 32, "created_at": 1.0}
    client.set(done_key(key), json.dumps([record]))
    client.delete(claim_key(key))
    runner.join(10)
    outcome = outcome_of(client, "job-3")
    assert outcome.cached and outcome.images[0].sha256 == "00" * 32 and engine.calls == []


@needs_redis
def test_a_claim_whose_worker_died_expires_and_the_key_is_rendered(worker, client, engine):
    key = RenderRequest(SPEC, "7").key(engine.recipe)
    client.set(claim_key(key), "dead|job-0", px=700)  # no heartbeat renews it
    worker.run("job-4", "render", request_json())
    assert outcome_of(client, "job-4").state == "succeeded" and len(engine.calls) == 1


@needs_redis
def test_cancel_before_and_during_the_render(worker, client, engine):
    client.set(cancel_key("job-5"), 1)
    worker.run("job-5", "render", request_json())
    assert outcome_of(client, "job-5").state == "cancelled" and engine.calls == []

    engine.pause_at_step = 2
    runner = threading.Thread(target=worker.run, args=("job-6", "render", request_json()))
    runner.start()
    assert engine.paused.wait(10)
    client.set(cancel_key("job-6"), 1)
    engine.resume.set()  # the next step's check sees it
    runner.join(10)
    outcome = outcome_of(client, "job-6")
    assert outcome.state == "cancelled" and outcome.code == "cancelled"
    assert client.get(claim_key(outcome.key)) is None and client.get(done_key(outcome.key)) is None


@needs_redis
def test_an_interrupted_job_is_handed_back_without_an_outcome(worker, client, engine):
    engine.pause_at_step = 1
    failures: list[BaseException] = []

    def run() -> None:
        try:
            worker.run("job-7", "render", request_json())
        except Reject as error:
            failures.append(error)

    runner = threading.Thread(target=run)
    runner.start()
    assert engine.paused.wait(10)
    worker.interrupt()
    engine.resume.set()
    runner.join(10)
    assert len(failures) == 1 and failures[0].requeue is True
    assert client.get(outcome_key("job-7")) is None
    assert client.get(claim_key(RenderRequest(SPEC, "7").key(engine.recipe))) is None


@needs_redis
def test_an_engine_failure_is_the_jobs_outcome_and_frees_the_key(redis_server, client):
    engine = FakeEngine(fail_with=RuntimeError("CUDA error: an illegal memory access"))
    worker = ClusterWorker(Runner(engine), client, settings_for(redis_server), name="w2")
    worker.run("job-8", "render", request_json())
    outcome = outcome_of(client, "job-8")
    assert outcome.state == "failed" and outcome.code == "generation_failed" and "illegal memory" in outcome.error
    assert client.get(claim_key(outcome.key)) is None and client.get(done_key(outcome.key)) is None


@needs_redis
def test_the_heartbeat_registers_the_worker_and_renews_its_claim(worker, client):
    worker.start()
    try:
        info = WorkerInfo.from_json(client.get("aleaart:worker:w1"))
        assert info.state == "idle" and info.model == "fake" and info.recipe == worker.engine.recipe
        assert client.sismember("aleaart:workers", "w1")
    finally:
        worker.stop()
    assert client.get("aleaart:worker:w1") is None


# The API's side, with no worker: outcomes written by hand, as a worker would

@pytest.fixture
def queue(redis_server, client, tmp_path):
    db = Database(tmp_path / "index.db")
    store = ImageStore(tmp_path / "images", db)
    settings = settings_for(redis_server, images_dir=tmp_path / "images")
    queue = CeleryQueue(store=store, book=JobBook(db, store), settings=settings)
    queue.start()
    yield queue
    queue.stop()
    db.close()


def finished_artifact(engine: FakeEngine):
    request = RenderRequest(SPEC, "7")
    [artifact] = Runner(engine).run(request)
    return request, Runner(engine).key(request), artifact


@needs_redis
def test_the_api_stores_a_workers_result_once_with_its_sha256(queue, client):
    request, key, artifact = finished_artifact(FakeEngine())
    job = queue.submit(request)
    assert job.state is JobState.QUEUED and client.exists(f"aleaart:sent:{job.id}")
    client.set(png_key(artifact.record.sha256), artifact.data)
    client.set(outcome_key(job.id), Outcome(job=job.id, state="succeeded", worker="w", key=key,
                                            images=(artifact.record,), seconds=0.5).to_json())
    assert job.wait_done(10) and job.state is JobState.SUCCEEDED
    stored = queue.store.get(key)
    assert stored.sha256 == artifact.record.sha256
    assert (queue.store.folder / stored.file).read_bytes() == artifact.data
    assert queue.generations == 1
    # Collected keys are deleted once the job is settled (so a crash in between loses nothing).
    assert eventually(lambda: client.get(png_key(artifact.record.sha256)) is None
                      and client.get(outcome_key(job.id)) is None)


@needs_redis
def test_a_result_damaged_on_its_way_fails_the_job_and_is_rendered_next_time(queue, client):
    request, key, artifact = finished_artifact(FakeEngine())
    job = queue.submit(request)
    client.set(png_key(artifact.record.sha256), artifact.data[:-1] + b"\x00")
    client.set(done_key(key), "[]")
    client.set(outcome_key(job.id), Outcome(job=job.id, state="succeeded", worker="w", key=key,
                                            images=(artifact.record,)).to_json())
    assert job.wait_done(10)
    assert job.state is JobState.FAILED and job.status.code == "generation_failed" and "damaged" in job.status.error
    assert queue.store.get(key) is None and client.get(done_key(key)) is None


@needs_redis
def test_a_workers_failure_keeps_its_code(queue, client):
    job = queue.submit(RenderRequest(SPEC, "8"))
    client.set(outcome_key(job.id), Outcome(job=job.id, state="failed", worker="w", error="disk full on the worker",
                                            code="disk_full").to_json())
    assert job.wait_done(10)
    assert job.state is JobState.FAILED and job.status.code == "disk_full"


# Jobs that start from a stored image: the API sends its PNG through Redis, the worker reads it there

@needs_redis
def test_a_worker_upscales_a_source_the_api_put_in_redis(worker, client, engine):
    from aleaart.jobs import SourceImage, UpscaleRequest

    _, _, source = finished_artifact(engine)
    request = UpscaleRequest(SourceImage.of(source.record), 2, "lanczos")
    worker.run("job-9", "upscale", request.to_json())
    missing = outcome_of(client, "job-9")
    assert missing.state == "failed" and missing.code == "not_found" and "not in Redis" in missing.error

    client.set(png_key(source.record.sha256), source.data)
    worker.run("job-10", "upscale", request.to_json())
    outcome = outcome_of(client, "job-10")
    assert outcome.state == "succeeded" and outcome.images[0].kind == "upscale"
    assert outcome.images[0].source == source.record.key and (outcome.images[0].width, outcome.images[0].height) == (
        128, 128)


@needs_redis
def test_the_api_sends_the_source_png_with_the_job(queue, client):
    from aleaart.jobs import RestyleRequest, SourceImage

    _, _, source = finished_artifact(FakeEngine())
    stored = queue.store.put(source.record, source.data)
    job = queue.submit(RestyleRequest(SourceImage.of(stored), 4))
    assert client.get(png_key(stored.sha256)) == source.data
    assert client.exists(f"aleaart:sent:{job.id}")
