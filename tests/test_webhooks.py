"""Webhooks through the API on the fake engine, to a real receiver on a real port that verifies every signature
with the `standardwebhooks` library."""

from __future__ import annotations

import logging
import time

import pytest
from fakes import FakeEngine
from fastapi.testclient import TestClient
from integration.receiver import SECRET, Receiver
from waiting import eventually

from aleaart.api import create_app
from aleaart.config import Settings
from aleaart.webhooks.targets import shown_url

FLAT = {"prompt": "a lighthouse at dusk", "steps": 4, "width": 256, "height": 256, "seed": 11}
ORDER = ["start", "output", "completed"]


@pytest.fixture
def receiver():
    started = Receiver().start()
    yield started
    started.stop()


@pytest.fixture
def make_client(tmp_path):
    opened = []

    def make(engine: FakeEngine | None = None, **settings) -> TestClient:
        defaults = {"webhook_secret": SECRET, "webhook_allow_private": True, "webhook_retry_seconds": 0.1}
        app = create_app(Settings(images_dir=tmp_path / "images", **{**defaults, **settings}),
                         loader=lambda: engine or FakeEngine())
        client = TestClient(app).__enter__()
        assert client.app.state.model.wait(60)
        opened.append(client)
        return client

    yield make
    for client in opened:
        client.__exit__(None, None, None)


def events(receiver: Receiver, job_id: str) -> list[str]:
    return [r.event for r in receiver.delivered(job_id)]


def test_a_render_tells_start_output_completed_in_order_signed_with_the_jobs_own_body(make_client, receiver):
    client = make_client()
    created = client.post("/jobs", json={**FLAT, "webhook": receiver.url,
                                         "webhook_events_filter": ["start", "output", "completed"]})
    assert created.status_code == 202, created.text
    job_id = created.json()["jobId"]
    assert created.json()["webhooks"][0]["url"] == shown_url(receiver.url)  # its path, query and userinfo left out
    assert "/hook" not in created.text
    assert eventually(lambda: events(receiver, job_id) == ORDER, timeout=20), events(receiver, job_id)
    assert all(r.verified for r in receiver.received)
    completed = receiver.delivered(job_id)[-1].body
    shown = client.get(f"/jobs/{job_id}").json()
    assert completed["status"] == "succeeded" and completed["result"]["sha256"] == shown["result"]["sha256"]
    assert {k: v for k, v in completed.items() if k not in ("queuePosition", "etaSeconds")} == \
        {k: v for k, v in shown.items() if k not in ("queuePosition", "etaSeconds", "webhooks")}
    assert eventually(lambda: client.get(f"/jobs/{job_id}").json()["webhooks"][0]["deliveries"]["delivered"] == 3)


def test_the_filter_is_honoured_and_start_and_completed_always_come(make_client, receiver):
    engine = FakeEngine()
    client = make_client(engine)
    created = client.post("/jobs", json={**FLAT, "seed": 12, "webhook": receiver.url,
                                         "webhook_events_filter": ["completed"]}).json()
    assert eventually(lambda: events(receiver, created["jobId"]) == ["start", "completed"], timeout=20)
    logged = client.post("/jobs", json={**FLAT, "seed": 13, "steps": 30, "webhook": receiver.url,
                                        "webhook_events_filter": ["logs"]}).json()
    assert eventually(lambda: events(receiver, logged["jobId"])[-1:] == ["completed"], timeout=20)
    told = events(receiver, logged["jobId"])
    assert told[0] == "start" and "output" not in told and set(told) <= {"start", "logs", "completed"}


def test_a_stored_image_asked_again_tells_every_event_at_once_and_generate_image_too(make_client, receiver):
    client = make_client()
    first = client.post("/generate-image", json={**FLAT, "seed": 14})
    assert first.status_code == 200
    again = client.post("/generate-image", json={**FLAT, "seed": 14, "webhook": receiver.url})
    assert again.json()["cached"] is True
    assert eventually(lambda: receiver.received, timeout=20)
    [job_id] = {r.body["jobId"] for r in receiver.received}
    assert eventually(lambda: events(receiver, job_id) == ORDER, timeout=20)


def test_variations_tell_their_images(make_client, receiver):
    client = make_client()
    created = client.post("/variations", json={**FLAT, "count": 3, "webhook": receiver.url,
                                               "webhook_events_filter": ["output"]})
    assert created.status_code == 202, created.text
    job_id = created.json()["jobId"]
    assert eventually(lambda: events(receiver, job_id) == ORDER, timeout=20), events(receiver, job_id)
    assert len(receiver.delivered(job_id)[-1].body["results"]) == 3


def test_a_receiver_down_for_a_while_gets_every_event_in_order_with_stable_ids(make_client, receiver):
    receiver.status = 503
    client = make_client()
    job_id = client.post("/jobs", json={**FLAT, "seed": 15, "webhook": receiver.url,
                                        "webhook_events_filter": ["output"]}).json()["jobId"]
    assert eventually(lambda: len(receiver.received) >= 3, timeout=20)  # the first event, tried again and again
    assert len({r.id for r in receiver.received}) == 1 and receiver.received[0].event == "start"
    assert "aleaart_webhook_deliveries_total{outcome=\"retry\"}" in client.get("/metrics").text
    receiver.status = 200
    assert eventually(lambda: events(receiver, job_id) == ORDER, timeout=30), events(receiver, job_id)
    retried_id = receiver.received[0].id
    assert [r.id for r in receiver.delivered(job_id)][0] == retried_id
    assert eventually(lambda: 'aleaart_webhook_outbox_depth 0.0' in client.get("/metrics").text, timeout=30)


def test_410_stops_every_later_event(make_client, receiver):
    receiver.status = 410
    client = make_client()
    job_id = client.post("/jobs", json={**FLAT, "seed": 16, "webhook": receiver.url}).json()["jobId"]
    assert client.app.state.queue.get(job_id).wait_done(20)

    def gone() -> bool:
        hooks = client.get(f"/jobs/{job_id}").json()["webhooks"][0]["deliveries"]
        return hooks["gone"] >= 1 and hooks["pending"] == 0

    assert eventually(gone, timeout=20)
    assert len(receiver.received) == 1  # the first event only: nothing after the 410


def test_a_slow_receiver_does_not_slow_the_queue(make_client, receiver):
    receiver.gate.clear()  # every delivery waits until the test opens the gate
    client = make_client()
    jobs = [client.post("/jobs", json={**FLAT, "seed": 20 + i, "webhook": receiver.url}).json()["jobId"]
            for i in range(3)]
    assert all(client.app.state.queue.get(j).wait_done(20) for j in jobs)  # rendered while deliveries hang
    assert receiver.waiting >= 1 and not any(r.event == "completed" for r in receiver.received)
    receiver.gate.set()
    assert eventually(lambda: all(events(receiver, j)[-1:] == ["completed"] for j in jobs), timeout=30)


@pytest.mark.parametrize("url", [
    "http://127.0.0.1/hook", "http://2130706433/hook", "http://0177.0.0.1/hook", "http://0x7f.1/hook",
    "http://[::1]/hook", "http://[::ffff:127.0.0.1]/hook", "http://169.254.169.254/latest/meta-data",
    "http://[fd00:ec2::254]/", "http://10.1.2.3/hook", "http://192.168.0.1/", "http://[fe80::1]/",
    "http://224.0.0.1/", "http://0.0.0.0/", "http://localhost:9/hook", "ftp://example.com/hook", "not a url",
    "http://[2002:7f00:1::]/", "http://[2002:a9fe:a9fe::]/", "http://[2002:a00:1::]/", "http://[fec0::1]/",
    "http://192.88.99.1/", "http://127.0.0.1/\r\nX-Inj: 1", "http://example.com/a b", "http://example.com/\x7f",
])
def test_unsafe_webhook_urls_are_refused_at_request_time_and_make_no_job(make_client, url):
    client = make_client(webhook_allow_private=False)
    for path, body in (("/jobs", FLAT), ("/generate-image", FLAT), ("/variations", {**FLAT, "count": 2})):
        answer = client.post(path, json={**body, "seed": 99, "webhook": url})
        assert answer.status_code == 422, (path, answer.text)
        assert answer.json()["code"] == "invalid_webhook" and "webhook" in answer.json()["error"]
    assert client.app.state.journal_db.query("SELECT COUNT(*) AS n FROM jobs")[0]["n"] == 0


def test_one_silent_receiver_holds_at_most_two_deliveries_and_never_another_receivers(make_client, receiver):
    """24 jobs whose receiver never answers, then one whose receiver does: the one is told everything while the
    silent receiver has had at most PER_TARGET attempts (not every delivery thread)."""
    from aleaart.webhooks.delivery import PER_TARGET

    silent = Receiver().start()
    silent.gate.clear()
    try:
        client = make_client(webhook_timeout_seconds=30)
        for i in range(24):
            client.post("/jobs", json={**FLAT, "seed": 300 + i, "webhook": silent.url})
        job_id = client.post("/jobs", json={**FLAT, "seed": 400, "webhook": receiver.url}).json()["jobId"]
        assert eventually(lambda: events(receiver, job_id)[-1:] == ["completed"], timeout=25)
        assert 1 <= len(silent.received) <= PER_TARGET  # the others wait in the outbox, not in a thread
    finally:
        silent.stop()


def test_others_see_no_one_elses_webhook_and_urls_keep_their_secrets(make_client, receiver, caplog):
    caplog.set_level(logging.INFO)
    engine = FakeEngine()
    engine.release.clear()  # the job waits: all three ask for the same one
    client = make_client(engine, admin_key="the-admin-key")
    admin = {"X-API-Key": "the-admin-key"}
    keys = [client.post("/keys", json={"name": name, "scopes": ["read", "generate"]}, headers=admin).json()["secret"]
            for name in ("alice", "bob", "carol")]
    alice, bob, carol = ({"X-API-Key": k} for k in keys)
    secret_url = receiver.url.replace("http://", "http://user:s3cret@") + "/T000/B000/XXXX?token=abc"
    body = {**FLAT, "seed": 500}
    made = client.post("/jobs", json={**body, "webhook": secret_url}, headers=alice).json()
    client.post("/jobs", json={**body, "webhook": receiver.url + "/sharedB"}, headers=bob)  # the same job
    client.post("/jobs", json=body, headers=carol)
    job = f"/jobs/{made['jobId']}"
    assert [w["url"] for w in made["webhooks"]] == [shown_url(receiver.url)]
    assert [w["url"] for w in client.get(job, headers=alice).json()["webhooks"]] == [shown_url(receiver.url)]
    assert len(client.get(job, headers=bob).json()["webhooks"]) == 1
    assert "webhooks" not in client.get(job, headers=carol).json()
    assert len(client.get(job, headers=admin).json()["webhooks"]) == 2
    engine.release.set()
    assert eventually(lambda: client.get(job, headers=alice).json()["webhooks"][0]["deliveries"]["delivered"] >= 3)
    everything = client.get(job, headers=admin).text + caplog.text
    assert "s3cret" not in everything and "token=abc" not in everything and "sharedB" not in everything


def test_a_token_body_and_the_filter_are_checked(make_client, receiver):
    client = make_client()
    bad = client.post("/jobs", json={**FLAT, "webhook": receiver.url, "webhook_events_filter": ["finished"]})
    assert bad.status_code == 422


def test_the_address_connected_to_is_the_one_checked_so_dns_rebinding_is_refused(make_client, receiver, monkeypatch):
    """Public when the request is checked, loopback when the delivery connects (DNS rebinding): not sent."""
    import socket

    answers = iter(["93.184.216.34"])  # the request-time lookup; every later one says 127.0.0.1
    real = socket.getaddrinfo

    def rebinding(host, port, *args, **kwargs):
        if host != "rebind.example":
            return real(host, port, *args, **kwargs)
        address = next(answers, "127.0.0.1")
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    client = make_client(webhook_allow_private=False)
    url = f"http://rebind.example:{receiver.port}/hook"
    created = client.post("/jobs", json={**FLAT, "seed": 30, "webhook": url})
    assert created.status_code == 202, created.text

    def refused() -> str | None:
        return client.get(f"/jobs/{created.json()['jobId']}").json()["webhooks"][0]["lastError"]

    assert eventually(lambda: refused() is not None, timeout=20)
    assert "127.0.0.1" in refused() and "loopback" in refused()
    assert receiver.received == []  # never connected


def test_a_delivery_connects_to_the_checked_address_with_the_hosts_name(make_client, monkeypatch):
    import socket

    from aleaart.webhooks import targets

    monkeypatch.setattr(targets.socket, "getaddrinfo", lambda host, port, **kw: [
        (socket.AF_INET6, socket.SOCK_STREAM, 6, "", ("2606:2800:220:1::", port, 0, 0))])
    deliverer = make_client(webhook_allow_private=False).app.state.webhooks.deliverer
    headers: dict[str, str] = {}
    url, extensions = deliverer._pinned("https://hooks.example.com/in?x=1", headers)
    assert url == "https://[2606:2800:220:1::]/in?x=1"
    assert headers["host"] == "hooks.example.com" and extensions == {"sni_hostname": "hooks.example.com"}


def test_ended_events_are_pruned_once_their_jobs_are_forgotten(make_client, receiver):
    client = make_client()
    job_id = client.post("/jobs", json={**FLAT, "seed": 40, "webhook": receiver.url}).json()["jobId"]
    assert eventually(lambda: events(receiver, job_id)[-1:] == ["completed"], timeout=20)
    hub = client.app.state.webhooks
    db = client.app.state.journal_db
    assert eventually(lambda: db.query("SELECT COUNT(*) AS n FROM webhook_outbox WHERE state = 'pending'")[0]["n"]
                      == 0)
    hub.outbox.prune(time.time() - 3600)  # nothing is that old yet
    assert db.query("SELECT COUNT(*) AS n FROM webhook_outbox")[0]["n"] >= 3
    db.execute("UPDATE webhook_outbox SET finished_at = 0")
    db.execute("UPDATE webhook_subscriptions SET created_at = 0")
    hub._prune()
    assert db.query("SELECT COUNT(*) AS n FROM webhook_outbox")[0]["n"] == 0
    assert db.query("SELECT COUNT(*) AS n FROM webhook_subscriptions")[0]["n"] == 0


def test_an_empty_webhook_is_refused_as_the_openapi_document_says(make_client):
    client = make_client()
    answer = client.post("/jobs", json={**FLAT, "webhook": ""})
    assert answer.status_code == 422 and answer.json()["code"] == "invalid_params"
    schema = client.get("/openapi.json").json()["components"]["schemas"]
    webhook = next(s["properties"]["webhook"] for s in schema.values() if "webhook" in s.get("properties", {}))
    assert any(s.get("minLength") == 1 for s in webhook["anyOf"] if s["type"] == "string")
