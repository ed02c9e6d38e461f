"""The job API over HTTP, in-process against a fake engine with gates: deterministic, no sleeps."""

import base64
import hashlib
import io
import json
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from fakes import FakeEngine, wait_done
from fastapi.testclient import TestClient
from PIL import Image
from sse import sse_events

from aleaart.api import create_app
from aleaart.config import Settings
from aleaart.errors import OutOfMemory, error_codes
from aleaart.metadata import read_png_text
from aleaart.params import SAMPLERS

BODY = {"prompt": "a fox", "seed": 1, "steps": 3, "width": 256, "height": 256}


def body(seed: int, steps: int = 3) -> dict:
    return {**BODY, "seed": seed, "steps": steps}


@pytest.fixture
def engine():
    return FakeEngine()


@pytest.fixture
def make_client(tmp_path):
    opened = []

    def make(loader, **settings) -> TestClient:
        app = create_app(Settings(images_dir=tmp_path / "images", **settings), loader=loader)
        client = TestClient(app).__enter__()
        opened.append(client)
        return client

    yield make
    for client in opened:
        client.__exit__(None, None, None)


@pytest.fixture
def client(make_client, engine):
    c = make_client(lambda: engine)
    assert c.app.state.model.wait(60)
    return c


def test_a_job_shows_its_kind_and_result(client):
    created = client.post("/jobs", json=body(1))
    assert created.status_code == 202 and created.headers["location"] == created.json()["statusUrl"]
    assert created.json()["kind"] == "render" and created.json()["priority"] == 0
    done = wait_done(client, created.json()["jobId"])
    assert done["status"] == "succeeded" and done["kind"] == "render" and done["code"] is None
    assert done["result"]["imageUrl"].startswith("/generated_images/art_token_manual_")
    assert done["results"] == [done["result"]] and done["result"]["kind"] == "render"


def test_identical_requests_share_one_job_then_the_store(client, engine):
    engine.release.clear()
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: client.post("/jobs", json=body(2)), range(8)))
    assert len({a.json()["jobId"] for a in answers}) == 1
    engine.release.set()
    wait_done(client, answers[0].json()["jobId"])
    again = client.post("/generate-image", json=body(2)).json()
    assert again["cached"] is True and len(engine.calls) == 1


def test_cancel_queued_and_running_over_http(client, engine):
    engine.pause_at_step = 1
    running = client.post("/jobs", json=body(3, steps=10)).json()
    queued = client.post("/jobs", json=body(4)).json()
    assert engine.paused.wait(5)
    assert client.get(queued["statusUrl"]).json()["queuePosition"] == 1
    cancelled = client.delete(queued["statusUrl"]).json()
    assert cancelled["status"] == "cancelled" and cancelled["code"] == "cancelled"
    client.delete(running["statusUrl"])
    engine.resume.set()
    final = wait_done(client, running["jobId"])
    assert final["status"] == "cancelled" and final["step"] == 1 and len(engine.calls) == 1
    assert client.get("/jobs/" + "0" * 32).json()["code"] == "not_found"


@pytest.mark.parametrize("keepalive", [0, 0.05])
def test_a_waiting_client_of_a_cancelled_job_is_told_so(make_client, engine, keepalive):
    client = make_client(lambda: engine, keepalive_seconds=keepalive)
    engine.release.clear()
    with ThreadPoolExecutor(1) as pool:
        waiting = pool.submit(client.post, "/generate-image", json=body(5))
        assert engine.started.wait(5)  # the waiting client's job is running
        job = client.post("/jobs", json=body(5)).json()  # the same request: the same job
        client.delete(job["statusUrl"])
        answer = waiting.result(10)
    if keepalive:  # the status line went out before the failure: it comes in the body, where the frontend reads it
        assert answer.status_code == 200
    else:
        assert answer.status_code == 409
    assert answer.json()["success"] is False and answer.json()["code"] == "cancelled"


def test_a_long_wait_is_kept_alive_with_spaces_then_the_json(make_client, engine):
    client = make_client(lambda: engine, keepalive_seconds=0.05)
    engine.pause_at_step = 1
    with ThreadPoolExecutor(1) as pool:
        waiting = pool.submit(client.post, "/generate-image", json=body(12))
        assert engine.paused.wait(5)
        with client.stream("POST", "/generate-image", json=body(12)) as stream:
            assert stream.status_code == 200 and stream.headers["content-type"] == "application/json"
            chunks = stream.iter_bytes()
            first = next(chunks)
            assert first.strip() == b""  # after one interval: headers and a space while the image is made
            engine.resume.set()
            rest = b"".join(chunks)
        answer = json.loads(first + rest)
    assert answer["success"] is True and answer["imageBase64"].startswith("data:image/png;base64,")
    assert waiting.result(10).json()["sha256"] == answer["sha256"]
    cached = client.post("/generate-image", json=body(12))  # ready at once: an ordinary answer
    assert cached.headers["content-length"] and cached.json()["cached"] is True


def test_queue_full_is_429_with_retry_after_and_its_code(make_client, engine):
    client = make_client(lambda: engine, max_queue=1)
    engine.release.clear()
    client.post("/jobs", json=body(1))
    assert engine.started.wait(5)
    assert client.post("/jobs", json=body(2)).status_code == 202
    full = client.post("/jobs", json=body(3))
    assert full.status_code == 429 and int(full.headers["retry-after"]) >= 1
    assert full.json()["code"] == "queue_full" and "queue is full" in full.json()["error"]
    engine.release.set()


def test_events_come_in_order_and_end_with_the_result(client, engine):
    engine.pause_at_step = 2
    job = client.post("/jobs", json=body(6, steps=4)).json()
    events = []
    with client.stream("GET", job["eventsUrl"]) as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        for kind, data in sse_events(stream.iter_lines()):
            events.append((kind, data))
            if data["step"] == 2:
                engine.resume.set()
    kinds = [k for k, _ in events]
    assert kinds[-1] == "result" and set(kinds[:-1]) <= {"progress", "preview"} and "progress" in kinds
    events = [(k, data) for k, data in events if k != "preview"]  # its own test: tests/test_previews.py
    steps = [data["step"] for _, data in events]
    assert steps == sorted(steps) and 2 in steps and steps[-1] == 4
    assert events[-1][1]["result"]["imageUrl"] and events[-1][1]["kind"] == "render"


def test_requests_made_while_the_model_loads_are_queued_not_refused(make_client):
    gate = threading.Event()
    client = make_client(lambda: gate.wait(10) and FakeEngine())
    assert client.get("/ready").json()["code"] == "model_unavailable"
    job = client.post("/jobs", json=BODY)
    assert job.status_code == 202 and job.json()["status"] == "queued"
    with ThreadPoolExecutor(1) as pool:
        waiting = pool.submit(client.post, "/generate-image", json=body(9))
        gate.set()
        answer = waiting.result(10)
    assert answer.status_code == 200 and answer.json()["success"] is True
    assert wait_done(client, job.json()["jobId"])["status"] == "succeeded"


def test_a_restart_finishes_the_accepted_jobs(tmp_path, make_client):
    engine = FakeEngine()
    engine.release.clear()
    first = make_client(lambda: engine)
    ids = [first.post("/jobs", json=body(s)).json()["jobId"] for s in range(5)]
    assert engine.started.wait(5)
    first.__exit__(None, None, None)  # the service stops with one job running and four queued
    engine.release.set()
    second = make_client(lambda: engine)
    finished = [wait_done(second, job_id) for job_id in ids]
    assert [f["status"] for f in finished] == ["succeeded"] * 5
    assert len({f["result"]["sha256"] for f in finished}) == 5


def test_a_failed_generation_is_a_500_with_its_code_and_the_worker_lives_on(client, engine):
    engine.fail_with = RuntimeError("CUDA out of memory")
    response = client.post("/generate-image", json=BODY)
    assert response.status_code == 500
    assert response.json() == {"success": False, "error": "generation failed: RuntimeError: CUDA out of memory",
                               "code": "generation_failed"}
    engine.fail_with = None
    assert client.post("/generate-image", json=BODY).status_code == 200


def test_out_of_memory_is_a_503_with_retry_after_and_the_next_job_runs(client, engine):
    engine.fail_with = OutOfMemory("out of cuda memory for a 512x512 image, even with VAE tiling and attention slicing")
    response = client.post("/generate-image", json=BODY)
    assert response.status_code == 503 and response.headers["retry-after"] == "30"
    assert response.json()["code"] == "out_of_memory" and "attention slicing" in response.json()["error"]
    engine.fail_with = None
    assert client.post("/generate-image", json=BODY).status_code == 200


def test_openapi_documents_the_error_body_and_its_codes(client):
    schema = client.get("/openapi.json").json()
    post = schema["paths"]["/generate-image"]["post"]["responses"]
    assert {"401", "422", "429", "503"} <= set(post)
    error_schema = schema["components"]["schemas"]["ErrorBody"]
    assert set(error_schema["properties"]) == {"success", "error", "code"}
    for code in error_codes():
        assert code in error_schema["properties"]["code"]["description"]


def test_the_readme_lists_every_error_code():
    from pathlib import Path

    from aleaart.api.errors import HTTP_CODES

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    for code in {*error_codes(), *HTTP_CODES.values(), "http_error"}:
        assert f"| `{code}` |" in readme, code


def test_a_slow_store_read_does_not_block_other_requests(client):
    """Regression: v1's async routes read SQLite on the event loop, so one slow read stalled every client."""
    store = client.app.state.store
    in_read, release = threading.Event(), threading.Event()
    real_get = store.get

    def slow_get(key):
        in_read.set()
        release.wait(10)
        return real_get(key)

    store.get = slow_get
    with ThreadPoolExecutor(2) as pool:
        blocked = pool.submit(client.post, "/jobs", json=body(11))
        try:
            assert in_read.wait(5)
            other = pool.submit(lambda: (client.get("/health").status_code, client.get("/images").status_code))
            assert other.result(5) == (200, 200)  # a TimeoutError here: the event loop was blocked
        finally:
            release.set()
        assert blocked.result(10).status_code == 202


SEED_PARAMS = {"promptIndex": 3, "styleIndex": 1, "samplerIndex": 2, "aspectIndex": 0, "steps": 18, "cfg": 70,
               "latentSeed": 4242, "paletteId": 0}


def test_the_same_pixels_through_either_body_are_rendered_once(client, engine):
    from aleaart.params import RenderParams, spec_from_params

    spec = spec_from_params(RenderParams.from_json(SEED_PARAMS))
    flat = {"prompt": spec.prompt, "steps": spec.steps, "cfg_scale": spec.guidance_scale, "seed": spec.seed,
            "sampler": spec.sampler, "width": spec.width, "height": spec.height, "tokenId": 5}
    # Without the palette's colour grade the seed body's pixels are the flat body's.
    by_seed_body = client.post("/generate-image", json={"parameters": SEED_PARAMS, "tokenId": "1",
                                                        "palette": "off"}).json()
    by_flat_body = client.post("/generate-image", json=flat).json()
    assert len(engine.calls) == 1
    assert by_seed_body["imageUrl"].startswith("/generated_images/art_token_1_")
    assert by_flat_body["imageUrl"].startswith("/generated_images/art_token_5_")  # the token id names the file
    pixels = [Image.open(io.BytesIO(client.get(a["imageUrl"]).content)).tobytes() for a in (by_seed_body, by_flat_body)]
    assert pixels[0] == pixels[1]


def test_a_missing_or_minus_one_seed_is_drawn_once_and_answered(client, engine):
    answers = [client.post("/generate-image", json={"prompt": "p", "steps": 2, "width": 256, "height": 256, **extra})
               for extra in ({}, {"seed": -1})]
    seeds = [a.json()["parameters"]["seed"] for a in answers]
    assert all(0 <= s < 2**32 for s in seeds) and seeds[0] != seeds[1]
    assert [c.seed for c in engine.calls] == seeds
    texts = read_png_text(client.get(answers[0].json()["imageUrl"]).content)
    assert f"Seed: {seeds[0]}" in texts["parameters"]


def test_the_originals_test_token_label_names_the_file(client):
    answer = client.post("/generate-image", json={**BODY, "tokenId": "test"}).json()
    assert answer["tokenId"] == "test" and answer["imageUrl"].startswith("/generated_images/art_token_test_")
    assert client.get("/images", params={"tokenId": "test"}).json()["total"] == 1


def test_cors_star_allows_every_origin(make_client, engine):
    client = make_client(lambda: engine, cors_origins="*")
    preflight = client.options("/generate-image", headers={
        "Origin": "https://anywhere.example", "Access-Control-Request-Method": "POST"})
    assert preflight.status_code == 200 and preflight.headers["access-control-allow-origin"] == "*"


FRONTEND_BODIES = json.loads((Path(__file__).resolve().parent / "fixtures" / "frontend_bodies.json").read_text())


@pytest.mark.parametrize("frontend_body", FRONTEND_BODIES, ids=lambda b: f"{b['sampler']}-{b['width']}x{b['height']}")
def test_every_body_the_frontend_sends_renders(client, frontend_body):
    """The exact bodies of the frontend's /api/generate-image-async route (tokenId a number, userId)."""
    answer = client.post("/generate-image", json=frontend_body)
    assert answer.status_code == 200, answer.text
    result = answer.json()
    assert result["success"] is True and result["tokenId"] == str(frontend_body["tokenId"])
    assert result["parameters"] == {k: frontend_body[k] for k in ("steps", "cfg_scale", "seed", "sampler", "width",
                                                                   "height")}
    assert {"ipfsHash", "ipfsUrl", "imageBase64", "prompt"} <= set(result)


def test_the_frontend_fixtures_cover_what_it_can_send():
    assert {b["sampler"] for b in FRONTEND_BODIES} == set(SAMPLERS)
    assert {(b["width"], b["height"]) for b in FRONTEND_BODIES} == {(512, 512), (1024, 576), (768, 1024)}
    assert {7, 15.6} <= {b["cfg_scale"] for b in FRONTEND_BODIES}
    assert 4294967295 in {b["seed"] for b in FRONTEND_BODIES}
    assert all(isinstance(b["tokenId"], int) and b["userId"] for b in FRONTEND_BODIES)


def test_stored_pngs_are_served_like_static_files(client):
    made = client.post("/generate-image", json=BODY).json()
    first = client.get(made["imageUrl"])
    assert first.status_code == 200 and first.headers["content-type"] == "image/png"
    assert first.headers["etag"] == f'"{made["sha256"]}"'
    assert first.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert hashlib.sha256(first.content).hexdigest() == made["sha256"]
    assert client.get(made["imageUrl"]).content == first.content  # from memory now
    for tags in (first.headers["etag"], f'W/{first.headers["etag"]}', f'"other", {first.headers["etag"]}'):
        unchanged = client.get(made["imageUrl"], headers={"If-None-Match": tags})
        assert unchanged.status_code == 304 and unchanged.content == b""
        assert unchanged.headers["etag"] == first.headers["etag"]
    assert client.get(made["imageUrl"], headers={"If-None-Match": '"other"'}).status_code == 200
    assert client.get(made["imageUrl"], headers={"If-None-Match": "*"}).status_code == 304  # it exists
    head = client.head(made["imageUrl"])
    assert head.status_code == 200 and head.content == b""
    assert {k: head.headers[k] for k in ("etag", "content-length", "content-type", "accept-ranges")} == \
        {k: first.headers[k] for k in ("etag", "content-length", "content-type", "accept-ranges")}
    assert client.head("/generated_images/art_token_manual_0000000000000000.png").status_code == 404
    assert "HEAD" in client.options(made["imageUrl"]).headers["allow"]
    assert made["imageBase64"] == "data:image/png;base64," + base64.b64encode(first.content).decode()
    assert client.post("/generate-image", json=BODY).json()["imageBase64"] == made["imageBase64"]  # cached answer
    for name in ("art_token_manual_0000000000000000.png", "..%2Findex.db", "art_token_1_x.png"):
        missing = client.get(f"/generated_images/{name}")
        assert missing.status_code == 404 and missing.json()["code"] == "not_found"


def test_stored_files_answer_one_byte_range(client):
    made = client.post("/generate-image", json=BODY).json()
    whole = client.get(made["imageUrl"])
    size = len(whole.content)
    assert whole.headers["accept-ranges"] == "bytes"
    spans = {"bytes=0-99": (0, 99), "bytes=100-": (100, size - 1), "bytes=-50": (size - 50, size - 1),
             f"bytes=10-{size + 500}": (10, size - 1)}
    for header, (start, end) in spans.items():
        part = client.get(made["imageUrl"], headers={"Range": header})
        assert part.status_code == 206, header
        assert part.content == whole.content[start:end + 1]
        assert part.headers["content-range"] == f"bytes {start}-{end}/{size}"
        assert part.headers["etag"] == whole.headers["etag"]
    # ignored (RFC 9110 allows it): several ranges, another unit, garbage, an If-Range naming another version
    for headers in ({"Range": "bytes=0-1,5-9"}, {"Range": "items=0-1"}, {"Range": "bytes=9-2"}, {"Range": "bytes=x"},
                    {"Range": "bytes=0-9", "If-Range": '"other"'}):
        assert client.get(made["imageUrl"], headers=headers).content == whole.content, headers
    ranged = client.get(made["imageUrl"], headers={"Range": "bytes=0-9", "If-Range": whole.headers["etag"]})
    assert ranged.status_code == 206 and len(ranged.content) == 10
    for header in (f"bytes={size}-", "bytes=-0"):
        refused = client.get(made["imageUrl"], headers={"Range": header})
        assert refused.status_code == 416 and refused.json()["code"] == "range_not_satisfiable"
        assert refused.headers["content-range"] == f"bytes */{size}"


def test_the_same_picture_through_the_flat_body_is_the_seed_bodys_image(fake_client):
    """The seed's body first (palette off), then the frontend's flat body with the same prompt, sampler, size,
    steps, guidance, seed and token: one render, one file, and the second answer is a store hit."""
    params = {"promptIndex": 1, "styleIndex": 2, "samplerIndex": 3, "aspectIndex": 0, "steps": 20, "cfg": 75,
              "latentSeed": 99, "paletteId": 4}
    seed = fake_client.post("/generate-image", json={"parameters": params, "tokenId": "5", "palette": "off"}).json()
    flat_body = {"prompt": seed["prompt"], "steps": 20, "cfg_scale": 7.5, "seed": 99, "width": 512, "height": 512,
                 "sampler": seed["parameters"]["sampler"], "tokenId": 5}
    flat = fake_client.post("/generate-image", json=flat_body).json()
    assert flat["cached"] is True and flat["sha256"] == seed["sha256"] and flat["imageId"] == seed["imageId"]
    assert fake_client.get("/images", params={"tokenId": "5"}).json()["total"] == 1
    other_token = fake_client.post("/generate-image", json={**flat_body, "tokenId": 6}).json()
    assert other_token["cached"] is False and other_token["imageUrl"] != seed["imageUrl"]  # named for its token
    assert len(fake_client.app.state.model.engine.calls) == 1  # its pixels were reused, not rendered again
