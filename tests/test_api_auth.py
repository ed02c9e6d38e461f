"""api/auth.py and /keys, in-process on the fake engine: each route's scope, 401 and 403, keys only in headers."""

from __future__ import annotations

import pytest
from fakes import FakeEngine
from fastapi.testclient import TestClient

from aleaart.api import create_app
from aleaart.config import Settings

BODY = {"prompt": "keys", "seed": 3, "steps": 2, "width": 256, "height": 256}
ADMIN = {"X-API-Key": "the-admin-key"}


@pytest.fixture
def make_client(tmp_path):
    made = []

    def make(**settings) -> TestClient:
        client = TestClient(create_app(Settings(images_dir=tmp_path / "images", **settings), loader=FakeEngine))
        client.__enter__()
        assert client.app.state.model.wait(60)
        made.append(client)
        return client

    yield make
    for client in made:
        client.__exit__(None, None, None)


def new_key(client: TestClient, name: str, *scopes: str) -> dict[str, str]:
    made = client.post("/keys", json={"name": name, "scopes": list(scopes)}, headers=ADMIN)
    assert made.status_code == 201, made.text
    return {"Authorization": f"Bearer {made.json()['secret']}"}


def test_with_no_key_issued_the_service_is_open_but_keys_are_not(make_client):
    client = make_client()
    assert client.post("/jobs", json=BODY).status_code == 202
    refused = client.get("/keys")
    assert refused.status_code == 401 and refused.headers["www-authenticate"].startswith("Bearer")


def test_each_key_does_what_its_scopes_allow_and_the_answer_names_the_missing_scope(make_client):
    client = make_client(admin_key="the-admin-key")
    assert client.post("/jobs", json=BODY).status_code == 202  # the admin key alone does not close generating
    frontend = new_key(client, "frontend", "read", "generate")
    viewer = new_key(client, "viewer", "read")
    assert client.post("/jobs", json=BODY).json()["code"] == "unauthorized"  # issued keys: generating needs one
    job = client.post("/jobs", json={**BODY, "seed": 4}, headers=frontend)
    assert job.status_code == 202
    denied = client.post("/jobs", json=BODY, headers=viewer)
    assert denied.status_code == 403 and denied.json()["code"] == "forbidden"
    assert "the generate scope; key 'viewer' has read" in denied.json()["error"]
    status_url = job.json()["statusUrl"]
    assert client.get(status_url).status_code == 401  # a job's status is not a public read
    assert client.get(status_url, headers=frontend).status_code == 200
    assert client.get(status_url, headers=viewer).status_code == 404  # not the viewer's job
    assert client.get("/images").status_code == 200  # stored images are (ALEAART_PUBLIC_READS=1)
    assert client.get("/keys", headers=frontend).status_code == 403


def test_a_revoked_key_and_one_never_issued_get_the_same_answer(make_client):
    client = make_client(admin_key="the-admin-key")
    team = new_key(client, "team-b", "generate")
    assert client.post("/jobs", json=BODY, headers=team).status_code == 202
    assert client.delete("/keys/team-b", headers=ADMIN).json()["revokedAt"] is not None
    revoked = client.post("/jobs", json=BODY, headers=team)
    never = client.post("/jobs", json=BODY, headers={"Authorization": "Bearer aa_" + "x" * 43})
    assert revoked.status_code == never.status_code == 401 and revoked.json() == never.json()
    listed = client.get("/keys", headers=ADMIN).json()["keys"]
    assert [k["name"] for k in listed] == ["env-admin", "team-b"] and all("secret" not in k for k in listed)


def test_a_rotated_key_gets_a_new_secret_and_the_old_one_works_for_its_grace(make_client):
    client = make_client(admin_key="the-admin-key")
    old = new_key(client, "ci", "generate")
    rotated = client.post("/keys/ci/rotate", json={"graceHours": 0}, headers=ADMIN).json()
    new = {"Authorization": f"Bearer {rotated['secret']}"}
    assert client.post("/jobs", json=BODY, headers=new).status_code == 202
    client.app.state.keys.forget()
    assert client.post("/jobs", json=BODY, headers=old).status_code == 401


@pytest.mark.parametrize("query", ["?api_key=abc", "?key=abc", "?token_id=aa_" + "s3cretLooking_-" * 2 + "x" * 13])
def test_a_key_in_the_url_is_refused(make_client, query):
    answer = make_client().get("/images" + query)
    assert answer.status_code == 400 and "header only" in answer.json()["error"]


def test_reads_can_be_closed(make_client):
    client = make_client(admin_key="the-admin-key", public_reads=False)
    reader = new_key(client, "reader", "read")
    assert client.get("/images").status_code == 401
    assert client.get("/images", headers=reader).status_code == 200


def test_every_operation_says_its_scope_in_openapi(make_client):
    document = make_client().get("/openapi.json").json()
    assert set(document["components"]["securitySchemes"]) == {"HTTPBearer", "APIKeyHeader"}
    open_paths = {"/", "/params", "/health", "/metrics", "/ready"}
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            if path in open_paths:
                assert "security" not in operation, (method, path)
                continue
            scopes = {tuple(s) for requirement in operation["security"] for s in requirement.values()}
            if path == "/me":
                assert scopes == {()}  # any valid key
                continue
            [[scope]] = scopes
            assert scope in ("read", "generate", "upload", "admin"), (method, path)
    assert document["paths"]["/jobs"]["post"]["security"][0] == {"HTTPBearer": ["generate"]}
    assert document["paths"]["/models"]["post"]["security"][0] == {"HTTPBearer": ["upload"]}
    assert document["paths"]["/keys"]["get"]["security"][0] == {"HTTPBearer": ["admin"]}
    assert document["paths"]["/generated_images/{filename}"]["get"]["security"][0] == {"HTTPBearer": ["read"]}
    # Reads and renders need no key where none is issued (OpenAPI's empty requirement); uploads and admin do.
    assert {} in document["paths"]["/jobs"]["post"]["security"]
    assert {} not in document["paths"]["/models"]["post"]["security"]
    assert {} not in document["paths"]["/keys"]["get"]["security"]
    assert set(document["paths"]["/jobs"]["post"]["responses"]) >= {"400", "401", "403", "429"}


def test_a_stored_image_is_served_without_a_key_and_its_job_only_with_one(make_client):
    client = make_client(admin_key="the-admin-key")
    job_id = client.post("/jobs", json=BODY, headers=ADMIN).json()["jobId"]
    assert client.app.state.queue.get(job_id).wait_done(10)
    assert client.get(f"/jobs/{job_id}").status_code == 200  # no key issued yet: the job is readable as today
    new_key(client, "someone", "read")
    assert client.get(f"/jobs/{job_id}").status_code == 401
    done = client.get(f"/jobs/{job_id}", headers=ADMIN).json()
    assert client.get(done["result"]["imageUrl"]).status_code == 200


def test_a_job_is_its_owners_and_stops_when_none_of_them_wants_it(make_client):
    client = make_client(admin_key="the-admin-key")
    a, b = new_key(client, "a", "read", "generate"), new_key(client, "b", "read", "generate")
    client.app.state.model.engine.release.clear()  # renders wait at their gate: jobs stay queued or running
    client.post("/jobs", json={**BODY, "seed": 90}, headers=a)  # running
    job = client.post("/jobs", json=BODY, headers=a).json()
    unknown = client.get("/jobs/" + "0" * 32, headers=b)
    hidden = client.get(job["statusUrl"], headers=b)
    assert hidden.status_code == unknown.status_code == 404
    assert hidden.json()["error"].replace(job["jobId"], "ID") == unknown.json()["error"].replace("0" * 32, "ID")
    assert client.get(job["eventsUrl"], headers=b).status_code == 404
    assert client.delete(job["statusUrl"], headers=b).status_code == 404
    joined = client.post("/jobs", json=BODY, headers=b).json()  # the same request: b joins a's job
    assert joined["jobId"] == job["jobId"] and client.get(job["statusUrl"], headers=b).status_code == 200
    assert client.delete(job["statusUrl"], headers=a).json()["status"] == "queued"  # b still wants it
    assert client.delete(job["statusUrl"], headers=b).json()["status"] == "cancelled"
    assert client.get(job["statusUrl"], headers=ADMIN).json()["status"] == "cancelled"  # admin sees every job
    client.app.state.model.engine.release.set()


def test_limits_answer_429_with_their_headers_and_a_store_hit_is_never_a_render(make_client):
    client = make_client(admin_key="the-admin-key")
    made = client.post("/keys", json={"name": "small", "scopes": ["read", "generate"], "rate": "4/min",
                                      "rendersPerDay": 1}, headers=ADMIN).json()
    assert made["limits"] == {"rate": "4/min", "maxQueued": None, "rendersPerDay": 1}
    small = {"X-API-Key": made["secret"]}
    first = client.post("/jobs", json=BODY, headers=small).json()
    assert client.app.state.queue.get(first["jobId"]).wait_done(10)
    assert client.post("/jobs", json=BODY, headers=small).status_code == 202  # a store hit: not a render
    over = client.post("/jobs", json={**BODY, "seed": 77}, headers=small)
    assert over.status_code == 429 and over.json()["code"] == "quota_exceeded"
    assert "1 renders today" in over.json()["error"]
    assert over.headers["ratelimit-policy"] == '"renders";q=1;w=86400' and int(over.headers["retry-after"]) > 0
    assert client.get("/images", headers=small).status_code == 200  # the fourth request of the minute
    limited = client.get("/images", headers=small)
    assert limited.status_code == 429 and limited.json()["code"] == "rate_limited"
    assert limited.headers["ratelimit-policy"] == '"requests";q=4;w=60' and limited.headers["ratelimit"].startswith(
        '"requests";r=0;t=')
    metrics = client.get("/metrics").text  # by key name, never its secret
    assert 'aleaart_key_requests_total{key="small"} 4.0' in metrics and made["secret"] not in metrics
    assert 'aleaart_key_renders_total{key="small"} 1.0' in metrics
    assert 'aleaart_key_limited_total{key="small",limit="renders"} 1.0' in metrics
    assert 'aleaart_key_limited_total{key="small",limit="requests"} 1.0' in metrics
    assert 'aleaart_key_queue_seconds_count{key="small"} 1.0' in metrics


def test_a_key_may_keep_only_so_many_renders_waiting(make_client):
    client = make_client(admin_key="the-admin-key")
    made = client.post("/keys", json={"name": "one", "scopes": ["generate"], "maxQueued": 1}, headers=ADMIN).json()
    one = {"X-API-Key": made["secret"]}
    client.app.state.model.engine.release.clear()
    assert client.post("/jobs", json=BODY, headers=one).status_code == 202
    refused = client.post("/jobs", json={**BODY, "seed": 8}, headers=one)
    assert refused.status_code == 429 and refused.json()["code"] == "quota_exceeded"
    assert client.post("/jobs", json={**BODY, "seed": 8}, headers=ADMIN).status_code == 202  # others are not held
    client.app.state.model.engine.release.set()


def test_a_key_sees_itself_and_what_is_left_of_its_limits(make_client):
    client = make_client(admin_key="the-admin-key")
    made = client.post("/keys", json={"name": "me", "scopes": ["generate"], "rate": "10/min", "maxQueued": 3,
                                      "rendersPerDay": 5, "weight": 2}, headers=ADMIN).json()
    me = {"X-API-Key": made["secret"]}
    client.post("/jobs", json=BODY, headers=me)
    mine = client.get("/me", headers=me).json()
    assert mine["name"] == "me" and mine["scopes"] == ["generate"] and "secret" not in mine and mine["weight"] == 2
    assert mine["left"]["rendersToday"] == 4 and mine["left"]["requests"] == 8  # /jobs, then /me itself
    assert mine["left"]["queued"] in (2, 3)  # its render may have ended already
    assert client.get("/me").status_code == 401
    assert client.get("/me", headers=ADMIN).json()["left"] == {"requests": None, "queued": None,
                                                                     "rendersToday": None}
