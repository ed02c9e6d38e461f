"""A key's limits hold across API processes that share one Redis (ALEAART_BROKER_URL): two apps on a real
redis-server, the same journal, no worker (renders wait at the broker), over HTTP."""

from __future__ import annotations

import pytest
from cluster_helpers import needs_redis, settings_for
from fastapi.testclient import TestClient

from aleaart.api import create_app

ADMIN = {"X-API-Key": "the-admin-key"}
BODY = {"prompt": "shared limits", "steps": 2, "width": 256, "height": 256}


@pytest.fixture
def two_apis(redis_server, client, tmp_path):
    settings = settings_for(redis_server, images_dir=tmp_path / "images", admin_key="the-admin-key")
    apis = [TestClient(create_app(settings)) for _ in range(2)]
    for api in apis:
        api.__enter__()
    yield apis
    for api in apis:
        api.__exit__(None, None, None)


@needs_redis
def test_two_api_processes_share_a_keys_request_rate_and_renders_waiting(two_apis):
    first, second = two_apis
    made = first.post("/keys", json={"name": "shared", "scopes": ["read", "generate"], "rate": "4/min",
                                     "maxQueued": 1}, headers=ADMIN)
    assert made.status_code == 201, made.text
    key = {"X-API-Key": made.json()["secret"]}
    assert first.post("/jobs", json={**BODY, "seed": 1}, headers=key).status_code == 202  # waits: no worker
    full = second.post("/jobs", json={**BODY, "seed": 2}, headers=key)
    assert full.status_code == 429 and full.json()["code"] == "quota_exceeded", full.text
    assert "1 renders waiting" in full.json()["error"]
    me = second.get("/me", headers=key).json()
    assert me["left"]["queued"] == 0 and me["left"]["requests"] == 1  # 3 of its 4 made, over both processes
    assert first.get("/me", headers=key).json()["left"]["requests"] == 0
    limited = second.get("/me", headers=key)
    assert limited.status_code == 429 and limited.json()["code"] == "rate_limited"
    assert limited.headers["ratelimit-policy"] == '"requests";q=4;w=60'
