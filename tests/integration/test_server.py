"""The service as users meet it: a real uvicorn process on 127.0.0.1, the tiny model, httpx."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import socket
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from PIL import Image
from sse import sse_events
from waiting import eventually, waited

from integration.server import Server, server_env

SEED_BODY = {
    "parameters": {"promptIndex": 0, "styleIndex": 0, "samplerIndex": 0, "aspectIndex": 0, "steps": 20, "cfg": 75,
                   "latentSeed": 12345, "paletteId": 5},
    "tokenId": "1",
}
SEED_PROMPT = ("retrofuturism bodywear, primitive, vintage, intricate detail, digital art, digital painting, "
               "concept art, poster, award winning, max detail, 8k, ultra realistic, square, 1:1 | max detail | 8k")


@pytest.fixture(scope="module")
def server(tiny_env, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("server")
    with Server(server_env(tiny_env, workdir, max_queue="2"), workdir) as running:
        yield running


@pytest.fixture
def client(server):
    with httpx.Client(base_url=server.url, timeout=120) as c:
        yield c


def raw_get(port: int, path: str) -> tuple[int, bytes]:
    """GET the path exactly as written, over a plain socket."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


def decode_data_url(data_url: str) -> bytes:
    prefix = "data:image/png;base64,"
    assert data_url.startswith(prefix)
    return base64.b64decode(data_url[len(prefix):])


def test_seed_body_end_to_end(client):
    response = client.post("/generate-image", json=SEED_BODY)
    assert response.status_code == 200, response.text
    body = response.json()
    assert {"success", "imageUrl", "imageBase64", "tokenId", "prompt", "parameters"} <= set(body)
    assert body["success"] is True and body["tokenId"] == "1" and body["prompt"] == SEED_PROMPT
    assert body["parameters"] == {"steps": 20, "cfg_scale": 7.5, "seed": 12345, "sampler": "DPM++ 2M Karras",
                                  "width": 512, "height": 512}
    assert body["imageUrl"].startswith("/generated_images/art_token_1_")
    png = decode_data_url(body["imageBase64"])
    served = client.get(body["imageUrl"])
    assert served.status_code == 200 and served.headers["content-type"] == "image/png"
    assert "immutable" in served.headers["cache-control"]
    assert served.content == png and hashlib.sha256(png).hexdigest() == body["sha256"]
    assert Image.open(io.BytesIO(png)).size == (512, 512)


def test_flat_body_end_to_end(client):
    body = {"prompt": "a red fox", "steps": 6, "cfg_scale": 6.5, "seed": 0, "sampler": "LMS", "width": 256,
            "height": 320, "tokenId": 4}
    response = client.post("/generate-image", json=body)
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["parameters"] == {"steps": 6, "cfg_scale": 6.5, "seed": 0, "sampler": "LMS", "width": 256,
                                    "height": 320}
    assert result["tokenId"] == "4" and result["prompt"] == "a red fox" and result["renderParams"] is None
    assert Image.open(io.BytesIO(decode_data_url(result["imageBase64"]))).size == (256, 320)


def test_twenty_identical_requests_make_one_image(client, server):
    body = {**SEED_BODY, "tokenId": "20", "parameters": {**SEED_BODY["parameters"], "latentSeed": 2020}}
    before = client.get("/health").json()["generations"]
    with ThreadPoolExecutor(20) as pool:
        answers = list(pool.map(lambda _: httpx.post(server.url + "/generate-image", json=body, timeout=120),
                                range(20)))
    assert [a.status_code for a in answers] == [200] * 20
    assert len({a.json()["sha256"] for a in answers}) == 1
    assert len({a.json()["imageUrl"] for a in answers}) == 1
    assert client.get("/health").json()["generations"] == before + 1
    assert client.get("/images", params={"tokenId": "20"}).json()["total"] == 1
    repeat = client.post("/generate-image", json=body).json()
    assert repeat["cached"] is True and repeat["sha256"] == answers[0].json()["sha256"]
    assert client.get("/health").json()["generations"] == before + 1


def test_job_events_stream_steps_then_result(client):
    body = {"prompt": "events", "seed": 77, "steps": 12, "width": 256, "height": 256}
    job = client.post("/jobs", json=body)
    assert job.status_code == 202 and job.headers["location"] == job.json()["statusUrl"]
    with client.stream("GET", job.json()["eventsUrl"]) as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        events = list(sse_events(stream.iter_lines()))
    steps = [data["step"] for kind, data in events if kind == "progress"]
    assert steps == sorted(steps) and steps[-1] > 0
    kind, final = events[-1]
    assert kind == "result" and final["status"] == "succeeded" and final["result"]["imageUrl"]
    status = client.get(final["statusUrl"]).json()
    assert status["status"] == "succeeded" and status["step"] == status["totalSteps"] == 12


def test_client_disconnect_does_not_lose_the_image(client, server):
    body = {"prompt": "left early", "seed": 5, "steps": 30, "width": 512, "height": 512}
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(server.url + "/generate-image", json=body, timeout=0.5)
    assert eventually(lambda: any(i["prompt"] == "left early" for i in client.get("/images").json()["images"]),
                      timeout=60, every=0.5)
    again = client.post("/generate-image", json=body).json()
    assert again["cached"] is True


@pytest.mark.parametrize("path", [
    "/generated_images/..%2Findex.db", "/generated_images/%2e%2e%2findex.db", "/generated_images/index.db",
    "/generated_images/..", "/generated_images/%2Fetc%2Fpasswd", "/generated_images//etc/passwd",
    "/generated_images/art_token_1_0123456789abcdef.png%00", "/generated_images/art_token_1_0123456789abcdef.png",
    "/generated_images/.tmp-x.png", "/generated_images/..%5c..%5cindex.db",
])
def test_only_stored_pngs_are_served(server, path):
    status, body = raw_get(server.port, path)  # raw: httpx would normalise the dot segments away
    assert status == 404
    assert json.loads(body)["success"] is False


def test_symlink_out_of_the_folder_is_not_served(client, server, tmp_path):
    secret = tmp_path / "secret.png"
    secret.write_bytes(b"secret")
    link = server.workdir / "images" / "art_token_1_fedcba9876543210.png"
    link.symlink_to(secret)
    assert client.get("/generated_images/" + link.name).status_code == 404


@pytest.mark.parametrize("body, message", [
    ({"parameters": {**SEED_BODY["parameters"], "steps": 70}}, "parameters: steps must be 18..64, got 70"),
    ({"parameters": {**SEED_BODY["parameters"], "cfg": "75"}}, "parameters: cfg must be an integer 70..180"),
    ({"parameters": {"promptIndex": 0}}, "parameters: parameters are missing styleIndex"),
    ({"parameters": SEED_BODY["parameters"], "tokenId": "../1"}, "tokenId: tokenId must be"),
    ({"parameters": SEED_BODY["parameters"], "tokenId": True}, "tokenId: tokenId must be"),
    ({"prompt": "x", "seed": 1, "tokenId": 0.0}, "tokenId: tokenId must be"),
    ({"prompt": "x", "seed": 1, "tokenId": "1\n"}, "tokenId: tokenId must be"),
    ({"prompt": "x", "seed": 1, "width": 513}, "width: Input should be a multiple of 8"),
    ({"prompt": "x", "seed": 1, "sampler": "DDIM"}, "sampler: Input should be"),
    ({"prompt": "x", "seed": 1, "steps": 101}, "steps: Input should be less than or equal to 100"),
    ({"prompt": "x" * 1001, "seed": 1}, "prompt: String should have at most 1000 characters"),
    ({"prompt": "x", "seed": -2}, "seed: Input should be greater than or equal to -1"),
    ({"prompt": "x", "seed": 1, "userId": 5}, "userId: Input should be a valid string"),
    ({"prompt": "x", "seed": 1, "tokenId": "a b"}, "tokenId: tokenId must be"),
    ([1, 2], "request body must be a JSON object"),
    ("just a string", "request body must be a JSON object"),
])
def test_bad_input_is_422_with_a_message(client, body, message):
    response = client.post("/generate-image", json=body)
    assert response.status_code == 422 and response.json()["code"] == "invalid_params"
    assert response.json()["success"] is False and message in response.json()["error"]


def test_malformed_json_and_bad_queries(client):
    response = client.post("/generate-image", content=b"{oops", headers={"content-type": "application/json"})
    assert response.status_code == 422 and response.json()["error"] == "request body is not valid JSON"
    assert client.get("/images", params={"limit": 0}).status_code == 422
    assert client.get("/images", params={"tokenId": "../x"}).status_code == 422
    assert client.get("/images", params={"tokenId": "test"}).json()["total"] == 0  # a label, like "test"


def test_bodies_over_the_limit_are_413(client):
    big = {"prompt": "x" * 70_000, "seed": 1}
    assert client.post("/generate-image", json=big).status_code == 413

    def chunks():
        yield b'{"prompt": "'
        for _ in range(20):
            yield b"x" * 8192
        yield b'", "seed": 1}'

    response = client.post("/jobs", content=chunks(), headers={"content-type": "application/json"})
    assert response.status_code == 413 and "over the limit" in response.json()["error"]


def test_index_health_ready_and_openapi(client):
    index = client.get("/").json()
    assert "message" in index and "POST /generate-image" in index["endpoints"]
    health = client.get("/health").json()
    assert health["status"] == "healthy" and health["model_loaded"] is True and health["cuda_available"] is False
    assert health["device"] == "cpu" and health["queue_depth"] >= 0
    assert client.get("/ready").status_code == 200
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/generate-image", "/jobs", "/jobs/{job_id}/events", "/images"} <= set(paths)
    assert client.get("/docs").status_code == 200


def test_browsers_get_the_dashboard_and_json_clients_the_index(client):
    page = client.get("/", headers={"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"})
    assert page.headers["content-type"].startswith("text/html") and "AleaArt dashboard" in page.text
    for accept in ("application/json", "*/*", "application/json, text/html"):
        assert "endpoints" in client.get("/", headers={"Accept": accept}).json()
    for asset in ("/web/app.js", "/web/api.js", "/web/style.css"):
        assert client.get(asset).status_code == 200
    tables = client.get("/params").json()
    assert tables["prompts"][1] == "Cyberpunk" and tables["fields"][4] == {
        "key": "steps", "label": "Steps", "min": 18, "max": 64}


def test_cors_allows_the_nextjs_dev_server(client):
    response = client.options("/generate-image", headers={
        "Origin": "http://localhost:3000", "Access-Control-Request-Method": "POST"})
    assert response.headers["access-control-allow-origin"] == "http://localhost:3000"
    response = client.options("/generate-image", headers={
        "Origin": "http://evil.example", "Access-Control-Request-Method": "POST"})
    assert "access-control-allow-origin" not in response.headers


def test_restart_keeps_images(tiny_env, tmp_path):
    env = server_env(tiny_env, tmp_path)
    with Server(env, tmp_path) as first:
        made = httpx.post(first.url + "/generate-image", json=SEED_BODY, timeout=120).json()
    with Server(env, tmp_path) as second:
        listed = httpx.get(second.url + "/images").json()
        assert [i["imageUrl"] for i in listed["images"]] == [made["imageUrl"]]
        served = httpx.get(second.url + made["imageUrl"])
        assert hashlib.sha256(served.content).hexdigest() == made["sha256"]
        again = httpx.post(second.url + "/generate-image", json=SEED_BODY, timeout=120).json()
        assert again["cached"] is True and again["sha256"] == made["sha256"]


def test_api_key_guards_generation_not_reads(tiny_env, tmp_path):
    with Server(server_env(tiny_env, tmp_path, api_key="s3cret"), tmp_path) as keyed:
        denied = httpx.post(keyed.url + "/generate-image", json=SEED_BODY, timeout=60)
        assert denied.status_code == 401 and "X-API-Key" in denied.json()["error"]
        assert httpx.post(keyed.url + "/jobs", json=SEED_BODY, headers={"X-API-Key": "wrong"}).status_code == 401
        ok = httpx.post(keyed.url + "/generate-image", json=SEED_BODY, headers={"X-API-Key": "s3cret"}, timeout=120)
        assert ok.status_code == 200
        bearer = httpx.post(keyed.url + "/jobs", json=SEED_BODY, headers={"Authorization": "Bearer s3cret"})
        assert bearer.status_code == 202
        assert httpx.get(keyed.url + "/images").status_code == 200
        assert httpx.get(keyed.url + ok.json()["imageUrl"]).status_code == 200
        assert httpx.get(keyed.url + "/health").json()["api_key_required"] is True


@pytest.mark.parametrize("model", ["default hub model, offline", "missing local folder"])
def test_model_unavailable_is_503_with_the_hint(tiny_env, tmp_path, model):
    env = server_env(tiny_env, tmp_path)
    env["HF_HOME"] = str(tmp_path / "empty-hf-home")  # nothing cached, and HF_HUB_OFFLINE=1
    if model.startswith("default"):
        del env["ALEAART_MODEL"]
    else:
        env["ALEAART_MODEL"] = str(tmp_path / "no-such-model")
    with Server(env, tmp_path) as broken:
        health = httpx.get(broken.url + "/health")
        assert health.status_code == 200
        expected = "not in the local Hugging Face cache" if model.startswith("default") else "not found"
        assert health.json()["model_loaded"] is False and expected in health.json()["model_error"]
        assert httpx.get(broken.url + "/ready").status_code == 503
        response = httpx.post(broken.url + "/generate-image", json=SEED_BODY)
        assert response.status_code == 503 and "ALEAART_MODEL=tiny" in response.json()["error"]
        assert httpx.post(broken.url + "/jobs", json=SEED_BODY).status_code == 503
        assert httpx.get(broken.url + "/images").status_code == 200


def test_jobs_accepted_before_a_kill_9_finish_after_the_restart(tiny_env, tmp_path):
    env = server_env(tiny_env, tmp_path)
    bodies = [{"prompt": "durable", "seed": seed, "steps": 30, "width": 512, "height": 512} for seed in range(5)]
    with Server(env, tmp_path) as first:
        ids = [httpx.post(first.url + "/jobs", json=b).json()["jobId"] for b in bodies]
        first.kill()  # no shutdown at all: what was accepted must be in the database already
    with Server(env, tmp_path) as second:
        states = waited(lambda: {i: httpx.get(f"{second.url}/jobs/{i}").json() for i in ids},
                        lambda found: all(s["status"] in ("succeeded", "failed", "cancelled") for s in found.values()),
                        timeout=240, every=0.5, what="every job ending")
        assert [s["status"] for s in states.values()] == ["succeeded"] * 5
        files = {s["result"]["imageUrl"] for s in states.values()}
        assert len(files) == 5 and all(httpx.get(second.url + f).status_code == 200 for f in files)


def test_a_100_kb_path_is_a_json_414_and_not_echoed(server):
    status, body = raw_get(server.port, "/generated_images/" + "x" * 100_000)
    assert status == 414 and json.loads(body)["code"] == "uri_too_long" and len(body) < 500


def raw_exchange(port: int, data: bytes) -> tuple[int, bytes]:
    """Send bytes as they are, read the answer until the server closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(data)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


@pytest.mark.parametrize(("request_bytes", "codes"), [
    (b"GARBAGE\r\n\r\n", {"bad_request"}),  # no method, target or version
    (b"GET / HTTP/1.1\r\nHost: x\r\nBad Header Without Colon\r\n\r\n", {"bad_request"}),
    # Over h11's 1 MiB head: 400 where it arrives in pieces, else the app's own 431; JSON either way.
    (b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"y" * (1024 * 1024 + 10) + b"\r\n\r\n",
     {"bad_request", "headers_too_large"}),
])
def test_a_request_that_is_not_http_gets_the_json_error_body(server, request_bytes, codes):
    status, body = raw_exchange(server.port, request_bytes)
    assert status in (400, 431) and json.loads(body)["code"] in codes


def test_a_request_head_sent_a_byte_at_a_time_is_cut_off_with_408(tiny_env, tmp_path):
    """Slowloris: headers that never finish hold a connection only until the head timeout."""
    env = server_env(tiny_env, tmp_path, header_timeout_seconds="1")
    with Server(env, tmp_path, fake_step_seconds=0) as slow, \
            socket.create_connection(("127.0.0.1", slow.port), timeout=30) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        answer = b""
        for _ in range(100):  # a header byte every 0.1 s, never the blank line that ends the head
            try:
                sock.sendall(b"X")
            except OSError:
                break
            time.sleep(0.1)
            sock.setblocking(False)
            try:
                answer += sock.recv(65536)
            except BlockingIOError:
                pass
            finally:
                sock.setblocking(True)
            if answer:
                break
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.split()[1] == b"408" and json.loads(body)["code"] == "request_timeout"
        assert httpx.get(slow.url + "/health").status_code == 200  # others are served meanwhile


def test_a_refusal_before_the_body_is_read_reaches_a_client_that_sends_it_all_first(tiny_env, tmp_path):
    """urllib (as requests) sends the whole body before it reads: a 401 answered without reading 14 MB used to
    arrive as a connection reset. The rest is read and dropped, up to a bound."""
    import urllib.error
    import urllib.request

    env = server_env(tiny_env, tmp_path, admin_key="s3cret", max_upload_mb="64")
    with Server(env, tmp_path, fake_step_seconds=0) as slow:
        boundary = "b0undary"
        body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.safetensors\"\r\n\r\n"
                .encode() + os.urandom(14 * 2**20) + f"\r\n--{boundary}--\r\n".encode())
        request = urllib.request.Request(slow.url + "/models", data=body, method="POST",
                                         headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=60)
        assert refused.value.code == 401 and json.loads(refused.value.read())["code"] == "unauthorized"
        too_big = urllib.request.Request(slow.url + "/generate-image", data=b"{" + b" " * (3 * 2**20) + b"}",
                                         method="POST", headers={"Content-Type": "application/json"})
        with pytest.raises(urllib.error.HTTPError) as over:
            urllib.request.urlopen(too_big, timeout=60)
        assert over.value.code == 413 and json.loads(over.value.read())["code"] == "body_too_large"


def test_keys_in_every_malformed_shape_are_clear_refusals_never_500s(tiny_env, tmp_path):
    """A real server with issued keys: headers as clients and attackers send them, and keys in the URL."""
    env = server_env(tiny_env, tmp_path, admin_key="the-admin-key")
    with Server(env, tmp_path, fake_step_seconds=0) as server:
        made = httpx.post(server.url + "/keys", json={"name": "frontend", "scopes": ["read", "generate"]},
                          headers={"X-API-Key": "the-admin-key"})
        assert made.status_code == 201
        good = made.json()["secret"]
        assert httpx.post(server.url + "/jobs", json=SEED_BODY, headers={"Authorization": f"Bearer {good}"},
                          timeout=30).status_code == 202
        shapes = [{"Authorization": "Bearer"}, {"Authorization": "Basic dXNlcjpwdw=="},
                  {"Authorization": good}, {"X-API-Key": ""}, {"Authorization": "Bearer " + good[:-1]},
                  *({"X-API-Key": "a" * n} for n in (1, 2, 45, 46, 47, 1000, 30_000))]
        for headers in shapes:
            answer = httpx.post(server.url + "/jobs", json=SEED_BODY, headers=headers, timeout=30)
            assert answer.status_code == 401 and answer.json()["code"] == "unauthorized", (headers, answer.text)
            assert answer.headers["www-authenticate"].startswith("Bearer")
        in_url = httpx.post(f"{server.url}/jobs?api_key={good}", json=SEED_BODY, timeout=30)
        assert in_url.status_code == 400 and "header only" in in_url.json()["error"]
        assert httpx.get(server.url + "/health").json()["keys"] == {"issued": 1, "revoked": 0, "environment": 1}
