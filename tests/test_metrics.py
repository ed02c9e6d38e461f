"""GET /metrics after real traffic, in-process against the fake engine."""

import threading

from fakes import FakeEngine
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from waiting import eventually

from aleaart.api import create_app
from aleaart.config import Settings

BODY = {"prompt": "metered", "seed": 1, "steps": 3, "width": 256, "height": 256}


def samples(client) -> dict[tuple[str, tuple], float]:
    response = client.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(response.text) for s in family.samples}


def test_metrics_count_jobs_hits_steps_and_errors(tmp_path):
    engine = FakeEngine()
    with TestClient(create_app(Settings(images_dir=tmp_path / "images"), loader=lambda: engine)) as client:
        assert client.app.state.model.wait(60)
        assert client.post("/generate-image", json=BODY).status_code == 200
        assert client.post("/generate-image", json=BODY).json()["cached"] is True
        assert client.post("/generate-image", json={**BODY, "steps": 0}).status_code == 422
        assert client.get("/jobs/nope").status_code == 404
        found = samples(client)
    assert found[("aleaart_jobs_total", (("kind", "render"), ("state", "succeeded")))] == 2
    assert found[("aleaart_cache_hits_total", (("kind", "render"),))] == 1
    assert found[("aleaart_step_seconds_count", ())] == 3
    assert found[("aleaart_job_seconds_count", (("kind", "render"),))] == 1
    assert found[("aleaart_errors_total", (("code", "invalid_params"),))] == 1
    assert found[("aleaart_errors_total", (("code", "not_found"),))] == 1
    assert found[("aleaart_queue_depth", ())] == 0 and found[("aleaart_model_load_seconds", ())] >= 0
    assert any(name == "aleaart_build_info" for name, _ in found)


def test_clients_waiting_on_a_job_are_counted_while_they_wait(fake_client):
    engine = fake_client.app.state.model.engine
    engine.release.clear()  # the job waits at its first step until released
    body = {"prompt": "waiting clients", "steps": 2, "seed": 5, "width": 256, "height": 256}
    answers: list = []
    waiter = threading.Thread(target=lambda: answers.append(fake_client.post("/generate-image", json=body)))
    waiter.start()
    try:
        assert engine.started.wait(10)
        assert eventually(lambda: 'aleaart_waiting_clients{how="answer"} 1.0' in fake_client.get("/metrics").text)
    finally:
        engine.release.set()
        waiter.join(10)
    assert answers[0].status_code == 200
    assert 'aleaart_waiting_clients{how="answer"} 0.0' in fake_client.get("/metrics").text
