"""`ALEAART_BACKEND=openvino aleaart serve`: a real service renders on OpenVINO and says so in its images."""

from __future__ import annotations

import io

import httpx
from PIL import Image

from aleaart.engine.openvino import VERSION
from integration.server import Server, server_env

BODY = {"prompt": "a lighthouse at dusk", "seed": 7, "steps": 4, "width": 256, "height": 320}


def test_a_service_on_openvino_renders_and_names_its_backend(tiny_env, tmp_path):
    with Server(server_env(tiny_env, tmp_path, backend="openvino"), tmp_path) as server, \
            httpx.Client(base_url=server.url, timeout=300) as client:
        answer = client.post("/generate-image", json=BODY)
        assert answer.status_code == 200, answer.text
        png = client.get(answer.json()["imageUrl"])
        with Image.open(io.BytesIO(png.content)) as image:
            assert image.size == (256, 320)
            assert f"Backend: openvino-{VERSION}" in image.text["parameters"]
        assert client.post("/generate-image", json=BODY).json()["imageUrl"] == answer.json()["imageUrl"]  # stored
