"""cluster/worker.py against a real redis-server, on the fake engine: claims, outcomes, cancel, hand-back,
heartbeats."""

from __future__ import annotations

import hashlib
import json
import threading

from celery.exceptions import Reject
from cluster_helpers import SPEC, finished_artifact, needs_redis, outcome_of, request_json, settings_for
from fakes import FakeEngine

from aleaart.cluster.wire import (
    WorkerInfo,
    cancel_key,
    claim_key,
    done_key,
    outcome_key,
    png_key,
)
from aleaart.cluster.worker import ClusterWorker
from aleaart.jobs import RenderRequest, Runner


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
