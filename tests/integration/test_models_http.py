"""Uploaded weights over real HTTP on the tiny model: a checkpoint and a LoRA the project makes, sent as
multipart uploads to `aleaart serve`, then rendered with."""

from __future__ import annotations

import hashlib
import io

import httpx
import pytest
from PIL import Image

from aleaart.engine.checkpoint import export_single_file
from aleaart.engine.tiny import build_tiny_pipeline, tiny_variant, write_tiny_lora
from integration.server import Server, server_env

ADMIN = {"X-Admin-Key": "s3cret"}
BODY = {"prompt": "a lighthouse at dusk", "seed": 7, "steps": 4, "width": 256, "height": 256}


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    folder = tmp_path_factory.mktemp("weights")
    checkpoint = export_single_file(tiny_variant(seed=3), folder / "other-tiny.safetensors")
    lora = write_tiny_lora(build_tiny_pipeline(), folder / "tiny-style.safetensors", seed=11)
    return {"checkpoint": checkpoint.read_bytes(), "lora": lora.read_bytes()}


@pytest.fixture(scope="module")
def service(tiny_env, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("models-service")
    with Server(server_env(tiny_env, workdir, admin_key="s3cret", max_upload_mb="20"), workdir) as server:
        yield server


def render(client: httpx.Client, **choice) -> bytes:
    answer = client.post("/generate-image", json={**BODY, **choice})
    assert answer.status_code == 200, answer.text
    png = client.get(answer.json()["imageUrl"]).content
    with Image.open(io.BytesIO(png)) as image:
        return image.convert("RGB").tobytes()


def test_an_uploaded_checkpoint_and_lora_render_and_the_default_is_unaffected(service, weights):
    with httpx.Client(base_url=service.url, timeout=120) as client:
        base = render(client)
        files = {"file": ("other-tiny.safetensors", weights["checkpoint"], "application/octet-stream")}
        checkpoint = client.post("/models", files=files, data={"kind": "checkpoint"}, headers=ADMIN)
        assert checkpoint.status_code == 201, checkpoint.text
        assert checkpoint.json()["sha256"] == hashlib.sha256(weights["checkpoint"]).hexdigest()
        files = {"file": ("tiny-style.safetensors", weights["lora"], "application/octet-stream")}
        lora = client.post("/models", files=files, headers=ADMIN)
        assert lora.status_code == 201 and lora.json()["kind"] == "lora", lora.text

        other = render(client, model=checkpoint.json()["id"])
        assert other != base
        styled = render(client, loras=[{"id": lora.json()["id"], "weight": 1.0}])
        assert styled != base
        assert render(client, loras=[{"id": lora.json()["id"], "weight": 0}]) == base  # weight 0: the model itself
        assert render(client) == base  # the LoRA was taken off after its job
        both = render(client, model=checkpoint.json()["id"], loras=[{"id": lora.json()["id"], "weight": 0.8}])
        assert both not in (base, other, styled)
        again = client.post("/generate-image", json={**BODY, "model": checkpoint.json()["id"]}).json()
        assert again["cached"] is True
        meta = client.get(again["imageUrl"]).content
        assert f"Model hash: {checkpoint.json()['sha256'][:10]}".encode() in meta


def test_refusals_over_real_http(service, weights):
    with httpx.Client(base_url=service.url, timeout=60) as client:
        pickled = client.post("/models", files={"file": ("model.ckpt", b"\x80\x04junk", "application/octet-stream")},
                              headers=ADMIN)
        assert pickled.status_code == 422 and "pickle" in pickled.json()["error"]
        wrong = client.post("/models", files={"file": ("w.safetensors", weights["lora"], "application/octet-stream")},
                            data={"kind": "checkpoint"}, headers=ADMIN)
        assert wrong.status_code == 422 and "holds a LoRA" in wrong.json()["error"]
        assert client.post("/models", files={"file": ("w.safetensors", b"x")}).status_code == 401

        def chunked():  # no Content-Length: counted as it streams, and cut off at the cap
            yield b"--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.safetensors\"\r\n\r\n"
            for _ in range(250):  # 25 MB
                yield b"\0" * 100_000
            yield b"\r\n--b--\r\n"

        big = client.post("/models", content=chunked(),
                          headers={**ADMIN, "content-type": "multipart/form-data; boundary=b"})
        assert big.status_code == 413 and big.json()["code"] == "body_too_large"
        listed = client.get("/models").json()["models"]
        assert all(m["name"] != "big.safetensors" for m in listed)


def test_a_lora_that_fails_to_load_at_render_time_is_the_users_422_not_a_500(service, weights, tmp_path):
    """Weights damaged after their upload (or any the checks let through) fail their render as invalid_model."""
    lora = write_tiny_lora(build_tiny_pipeline(), tmp_path / "another.safetensors", seed=12).read_bytes()
    with httpx.Client(base_url=service.url, timeout=120) as client:
        files = {"file": ("another.safetensors", lora, "application/octet-stream")}
        uploaded = client.post("/models", files=files, headers=ADMIN)
        assert uploaded.status_code == 201, uploaded.text
        stored = service.workdir / "images" / "models" / f"{uploaded.json()['sha256']}.safetensors"
        stored.write_bytes(b"\0" * 64)  # no longer loadable
        answer = client.post("/generate-image", json={**BODY, "seed": 8,
                                                      "loras": [{"id": uploaded.json()["id"], "weight": 1.0}]})
        assert answer.status_code == 422 and answer.json()["code"] == "invalid_model", answer.text
        assert "cannot be applied" in answer.json()["error"]
        assert client.post("/generate-image", json={**BODY, "seed": 8}).status_code == 200  # the service is fine
