"""webhooks/hub.py without a receiver: what a job's saves write to the outbox, and the service's own events (the
deliveries themselves are tests/test_webhooks.py's, against a real receiver)."""

from __future__ import annotations

import json

import pytest

from aleaart.config import Settings
from aleaart.database import Database
from aleaart.jobs import CollectionRequest, Job, JobBook, JobState, RenderRequest
from aleaart.metrics import Metrics
from aleaart.params import RenderSpec
from aleaart.store import ImageStore
from aleaart.webhooks.events import WebhookSpec
from aleaart.webhooks.hub import Webhooks

SPEC = RenderSpec(prompt="hub", sampler="Euler a", width=16, height=16, steps=4, guidance_scale=7.5, seed=1)
SERVICE_URL = "https://hooks.example/service"


@pytest.fixture
def hub(tmp_path):
    db = Database(tmp_path / "journal.db")
    settings = Settings(images_dir=tmp_path, webhook_url=SERVICE_URL, webhook_allow_private=True)
    hub = Webhooks(db, settings, Metrics())
    book = JobBook(db, ImageStore(tmp_path / "images", db))
    book.on_save = hub.on_job_saved
    with db.transaction() as conn:  # what start() does for the service's own webhook, without its senders
        hub.outbox.subscribe(conn, None, WebhookSpec(SERVICE_URL, frozenset()), "service")
    yield hub, book
    db.close()


def test_a_subscribed_jobs_saves_write_its_events_with_its_record(hub):
    hub, book = hub
    job = Job(id="j1", request=RenderRequest(SPEC))
    job.move(JobState.QUEUED)
    hub.subscribe(job, WebhookSpec.of("https://hooks.example/a", ["completed"]))
    job.move(JobState.RUNNING)
    book.save(job)
    job.move(JobState.SUCCEEDED)
    book.save(job)
    rows = hub.db.query("SELECT event, body FROM webhook_outbox ORDER BY seq")
    assert [r["event"] for r in rows] == ["start", "completed"]  # the filter: output and logs left out
    assert json.loads(rows[-1]["body"])["status"] == "succeeded"
    assert [s["url"] for s in hub.job_state("j1")] == ["https://hooks.example/…"]  # the path left out


def test_a_queued_jobs_progress_sends_no_logs_before_its_start(hub):
    hub, _ = hub
    job = Job(id="q1", request=RenderRequest(SPEC))
    job.move(JobState.QUEUED)
    hub.subscribe(job, WebhookSpec.of("https://hooks.example/q", ["logs"]))
    with hub.db.transaction() as conn:  # what the follower writes as the queue moves
        hub._record(conn, job, job.status, hub.outbox.of_job(conn, job.id), final=False, logs=True)
    events = [r["event"] for r in hub.db.query("SELECT event FROM webhook_outbox WHERE body LIKE '%q1%' ORDER BY seq")]
    assert events == []  # nothing before start
    job.move(JobState.RUNNING)
    with hub.db.transaction() as conn:
        hub._record(conn, job, job.status, hub.outbox.of_job(conn, job.id), final=False, logs=True)
    events = [r["event"] for r in hub.db.query("SELECT event FROM webhook_outbox WHERE body LIKE '%q1%' ORDER BY seq")]
    assert events == ["start", "logs"]
    hub.stop()


def test_a_kind_that_names_an_ended_event_tells_the_service_and_counts_its_outputs(hub):
    hub, book = hub
    collection = Job(id="c1", request=CollectionRequest(out="/tmp/x", first=1, last=3))
    collection.move(JobState.QUEUED)
    collection.move(JobState.RUNNING)
    collection.progress(2, 3, {"rendered": 2})
    assert collection.request.outputs(collection.status) == 2
    collection.move(JobState.SUCCEEDED, summary={"rendered": 3})
    book.save(collection)
    render = Job(id="r1", request=RenderRequest(SPEC))
    render.move(JobState.QUEUED)
    render.move(JobState.RUNNING)
    render.move(JobState.FAILED, error="x")
    book.save(render)  # a render names no event of its own
    bodies = [json.loads(r["body"]) for r in hub.db.query("SELECT body FROM webhook_outbox ORDER BY seq")]
    assert [b["type"] for b in bodies] == ["collection.succeeded"]
    assert bodies[0]["data"]["jobId"] == "c1"


def test_a_target_that_keeps_not_answering_rests_as_a_whole_and_its_events_wait(tmp_path):
    import time

    from aleaart.webhooks.delivery import REST_AFTER, Deliverer, DeliveryPolicy
    from aleaart.webhooks.outbox import Outbox

    db = Database(tmp_path / "journal.db")
    outbox = Outbox(db)
    deliverer = Deliverer(outbox, DeliveryPolicy(secret=None, allow_private=True, retry_seconds=60,
                                                 horizon_seconds=3600), Metrics())
    with db.transaction() as conn:
        for job in ("j1", "j2"):
            subscription = outbox.subscribe(conn, job, WebhookSpec.of("http://127.0.0.1:9/hook", []))
            outbox.add(conn, subscription.id, [("start", {"jobId": job})], now=time.time())
    target = "http://127.0.0.1:9"
    for _ in range(REST_AFTER - 1):
        deliverer._note_answer(target, answered=False)
    assert target not in deliverer._resting  # not yet: two silences are not a pattern
    deliverer._note_answer(target, answered=False)
    deliverer.send_due()
    assert len(outbox.due(time.time(), 10)) == 2 and not deliverer._busy  # resting: nothing taken, nothing spent
    deliverer._note_answer(target, answered=True)  # it answered (another subscription's attempt): awake again
    assert target not in deliverer._resting
    deliverer.stop()
    db.close()
