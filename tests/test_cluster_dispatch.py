"""cluster/dispatch.py against a real redis-server with no worker at all: outcomes written by hand, as a worker
would, collected and stored by the API's CeleryQueue."""

from __future__ import annotations

from cluster_helpers import SPEC, finished_artifact, needs_redis
from fakes import FakeEngine
from waiting import eventually

from aleaart.cluster.app import redact
from aleaart.cluster.wire import (
    Outcome,
    done_key,
    outcome_key,
    png_key,
)
from aleaart.jobs import JobState, RenderRequest


def test_the_broker_url_is_shown_without_its_password():
    assert redact("redis://:s3cret@10.0.0.2:6379/0") == "redis://:***@10.0.0.2:6379/0"
    assert redact("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"


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


@needs_redis
def test_the_api_sends_the_source_png_with_the_job(queue, client):
    from aleaart.jobs import RestyleRequest, SourceImage

    _, _, source = finished_artifact(FakeEngine())
    stored = queue.store.put(source.record, source.data)
    job = queue.submit(RestyleRequest(SourceImage.of(stored), 4))
    assert client.get(png_key(stored.sha256)) == source.data
    assert client.exists(f"aleaart:sent:{job.id}")
