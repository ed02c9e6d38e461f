"""`ALEAART_BACKEND=openvino aleaart serve`: a real service renders on OpenVINO and says so in its images, with
the precision it computed in."""

from __future__ import annotations

import io
import re

import httpx
import pytest
from PIL import Image

from aleaart.engine.openvino import VERSION, has_native_bf16
from integration.server import Server, server_env

BODY = {"prompt": "a lighthouse at dusk", "seed": 7, "steps": 4, "width": 256, "height": 320}


@pytest.mark.parametrize("precision", ["f32", "auto"])
def test_a_service_on_openvino_renders_and_names_its_backend(tiny_env, tmp_path, precision):
    env = server_env(tiny_env, tmp_path, backend="openvino", openvino_precision=precision)
    computed = "-bf16" if precision == "auto" and has_native_bf16() else ""
    with Server(env, tmp_path) as server, httpx.Client(base_url=server.url, timeout=300) as client:
        answer = client.post("/generate-image", json=BODY)
        assert answer.status_code == 200, answer.text
        png = client.get(answer.json()["imageUrl"])
        with Image.open(io.BytesIO(png.content)) as image:
            assert image.size == (256, 320)
            assert re.search(r"Backend: ([^,\n]+)", image.text["parameters"])[1] == f"openvino-{VERSION}{computed}"
        assert client.post("/generate-image", json=BODY).json()["imageUrl"] == answer.json()["imageUrl"]  # stored
