"""Store hits of the seed's call (and /jobs, and a token's) answered from memory: the same bytes as the whole
way, no job record or store read per request, and never once the image is gone."""

from __future__ import annotations

import pytest
from fakes import FakeEngine
from fastapi.testclient import TestClient

from aleaart.api import create_app
from aleaart.config import Settings

BODY = {"prompt": "kept answers", "seed": 3, "steps": 2, "width": 256, "height": 256}


def make_client(tmp_path, **settings) -> TestClient:
    client = TestClient(create_app(Settings(images_dir=tmp_path / "images", **settings), loader=FakeEngine))
    client.__enter__()
    assert client.app.state.model.wait(60)
    return client


@pytest.fixture
def client(tmp_path):
    client = make_client(tmp_path)
    yield client
    client.__exit__(None, None, None)


def counting(monkeypatch, obj, name: str) -> list:
    calls: list = []
    real = getattr(obj, name)
    monkeypatch.setattr(obj, name, lambda *a, **k: (calls.append(a), real(*a, **k))[1])
    return calls


def test_a_stored_answer_is_the_same_bytes_without_a_job_record_or_a_store_read(client, monkeypatch):
    made = client.post("/generate-image", json=BODY)  # renders
    first = client.post("/generate-image", json=BODY)  # a store hit, the whole way: kept
    queue = client.app.state.queue
    submits, saves = counting(monkeypatch, queue, "submit"), counting(monkeypatch, queue.book, "save")
    reads = counting(monkeypatch, queue.store, "get")
    again = [client.post("/generate-image", json=BODY) for _ in range(3)]
    assert (submits, saves, reads) == ([], [], [])
    assert all(a.status_code == 200 and a.content == first.content for a in again)  # byte for byte
    assert all(a.headers["content-type"] == first.headers["content-type"] == "application/json" for a in again)
    assert first.json()["cached"] is True and first.json()["jobId"] != made.json()["jobId"]
    assert first.json()["imageBase64"] == made.json()["imageBase64"]
    job = client.get(f"/jobs/{first.json()['jobId']}")
    assert job.status_code == 200 and job.json()["status"] == "succeeded"  # the kept answer's job still answers
    metrics = client.get("/metrics").text
    assert 'aleaart_cache_hits_total{kind="render"} 4.0' in metrics


def test_jobs_answers_are_kept_with_their_status_and_location(client, monkeypatch):
    client.post("/generate-image", json=BODY)
    first = client.post("/jobs", json=BODY)
    submits = counting(monkeypatch, client.app.state.queue, "submit")
    again = client.post("/jobs", json=BODY)
    assert submits == [] and again.status_code == first.status_code == 202
    assert again.content == first.content and again.headers["location"] == first.headers["location"]


def test_an_image_gone_from_the_store_ends_its_kept_answer(client):
    made = client.post("/generate-image", json=BODY).json()
    kept = client.post("/generate-image", json=BODY).json()
    engine = client.app.state.model.engine
    store = client.app.state.store
    (store.folder / made["imageUrl"].rsplit("/", 1)[1]).unlink()
    assert store.get(made["imageId"]) is None  # noticed, as any read of it notices
    rendered_before = len(engine.calls)
    again = client.post("/generate-image", json=BODY).json()
    assert len(engine.calls) == rendered_before + 1 and again["jobId"] != kept["jobId"]


def test_requests_with_side_effects_of_their_own_go_the_whole_way(client, monkeypatch):
    client.post("/generate-image", json=BODY)
    client.post("/generate-image", json=BODY)
    submits = counting(monkeypatch, client.app.state.queue, "submit")
    client.post("/generate-image", json={**BODY, "userId": "u1"})  # the frontend's MongoDB record
    assert len(submits) == 1


def test_nothing_is_kept_without_room(tmp_path, monkeypatch):
    client = make_client(tmp_path, serve_cache_mb=0)
    try:
        client.post("/generate-image", json=BODY)
        first = client.post("/generate-image", json=BODY).json()
        submits = counting(monkeypatch, client.app.state.queue, "submit")
        again = client.post("/generate-image", json=BODY).json()
        assert len(submits) == 1  # not kept: the whole way through the queue again
        # A store hit's job is named by its request: one record however often it is asked for.
        assert again["jobId"] == first["jobId"] and again["cached"] is True
        jobs = client.app.state.journal_db.query("SELECT id, cached FROM jobs")
        assert sorted(row["cached"] for row in jobs) == [0, 1]
        assert client.get(f"/jobs/{again['jobId']}").json()["status"] == "succeeded"
    finally:
        client.__exit__(None, None, None)


def test_every_kinds_route_keeps_its_store_hits_as_jobs_does(client, monkeypatch):
    """The derived routes submit through the same layer as /jobs: a stored result's answer is kept too."""
    body = {**BODY, "count": 2}
    done = client.post("/variations", json=body).json()
    client.get(f"/jobs/{done['jobId']}/events")  # waits for the end
    first = client.post("/variations", json=body)
    submits = counting(monkeypatch, client.app.state.queue, "submit")
    again = client.post("/variations", json=body)
    assert first.json()["result"]["cached"] is True and len(first.json()["results"]) == 2 and submits == []
    assert again.status_code == first.status_code == 202 and again.content == first.content
    assert again.headers["location"] == f"/jobs/{first.json()['jobId']}"
