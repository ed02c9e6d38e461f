"""A kind is one declaration: "mirror" (tests/mirror.py), registered here as @register would, gets its route, body,
option checks (every way a request is made), key, Content Credentials action, command, dashboard button and
events with nothing else touched."""

from __future__ import annotations

import io
import json

import pytest
from fakes import FakeEngine, wait_done
from fastapi.testclient import TestClient
from mirror import MirrorRequest
from PIL import Image

from aleaart import cli, services
from aleaart.api import create_app
from aleaart.config import Settings
from aleaart.errors import InvalidParams
from aleaart.jobs import KINDS, Runner, SourceImage, request_from_json

BODY = {"prompt": "a mirror", "seed": 4, "steps": 2, "width": 256, "height": 320}


@pytest.fixture(autouse=True)
def registered(monkeypatch):
    monkeypatch.setitem(KINDS, MirrorRequest.kind, MirrorRequest)  # what @register does, for these tests only


@pytest.fixture
def client(tmp_path):
    with TestClient(create_app(Settings(images_dir=tmp_path / "images"), loader=FakeEngine)) as client:
        assert client.app.state.model.wait(60)
        yield client


def stored_png(client) -> tuple[str, bytes]:
    made = client.post("/generate-image", json=BODY).json()
    return made["imageId"], client.get(made["imageUrl"]).content


def pixels(data: bytes) -> Image.Image:
    with Image.open(io.BytesIO(data)) as image:
        return image.convert("RGB")


def test_its_route_flips_a_stored_image_into_a_file_of_its_own(client):
    key, png = stored_png(client)
    job = client.post(f"/images/{key}/mirror", json={"axis": "vertical"})
    assert job.status_code == 202
    done = wait_done(client, job.json()["jobId"])
    assert done["status"] == "succeeded" and done["kind"] == "mirror"
    flipped = pixels(client.get(done["result"]["imageUrl"]).content)
    assert flipped.tobytes() == pixels(png).transpose(Image.Transpose.FLIP_TOP_BOTTOM).tobytes()
    assert done["result"]["imageId"] != key
    again = client.post(f"/images/{key}/mirror", json={"axis": "vertical"}).json()  # its key: a store hit
    assert again["result"]["cached"] is True
    schema = client.get("/openapi.json").json()
    assert "/images/{key}/mirror" in schema["paths"] and "MirrorBody" in schema["components"]["schemas"]


def test_an_option_outside_its_declaration_is_refused_however_the_request_is_made(client):
    key, png = stored_png(client)
    answer = client.post(f"/images/{key}/mirror", json={"axis": "diagonal"})
    assert answer.status_code == 422 and answer.json()["code"] == "invalid_params"
    source = SourceImage.from_png(png)
    with pytest.raises(InvalidParams, match="axis must be one of horizontal, vertical, got 'diagonal'"):
        MirrorRequest(source, axis="diagonal")  # the CLI's way
    wire = {**MirrorRequest(source).to_json(), "axis": "diagonal"}
    with pytest.raises(InvalidParams, match="axis must be one of"):
        request_from_json("mirror", json.loads(json.dumps(wire)))  # a job record's, and the Celery wire's


class Signer:
    """A Sealer that keeps what each file's manifest would say."""

    chain = None

    def __init__(self) -> None:
        self.actions: list[list[dict]] = []

    def sign(self, data: bytes, mime: str, claim) -> bytes:
        self.actions.append(claim.actions())
        return data


def test_its_files_credentials_name_its_action_after_opening_the_source(client):
    key, png = stored_png(client)
    signer = Signer()
    Runner(FakeEngine(), read_png=lambda _key, _sha: png, credentials=signer).run(
        MirrorRequest(SourceImage.from_png(png)))
    [[opened, made]] = signer.actions
    assert opened["action"] == "c2pa.opened" and made["action"] == "c2pa.orientation"


def test_its_command_comes_from_its_declaration(tmp_path, monkeypatch, capsys, client):
    _, png = stored_png(client)
    source = tmp_path / "source.png"
    source.write_bytes(png)
    monkeypatch.setattr(services, "open_runner", lambda settings: Runner(FakeEngine()))
    out = tmp_path / "flipped.png"
    assert cli.main(["mirror", str(source), "--axis", "vertical", "--out", str(out)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["operation"] == "mirror" and printed["settings"] == {"axis": "vertical"}
    assert pixels(out.read_bytes()).tobytes() == pixels(png).transpose(Image.Transpose.FLIP_TOP_BOTTOM).tobytes()
    assert cli.main(["mirror", str(source), "--axis", "diagonal"]) == cli.EXIT_BAD_INPUT
    assert "axis must be one of" in capsys.readouterr().err


def test_the_dashboard_offers_it_and_its_events_carry_its_image(client):
    offered = {offer["kind"]: offer for offer in client.get("/params").json()["kinds"]}
    assert offered["mirror"]["from"] == "image" and offered["mirror"]["label"] == "Mirror"
    assert list(offered) == ["variations", "upscale", "restyle", "animation", "mirror"]  # in their declared order
    assert MirrorRequest.ended_event is None  # no service event of its own when it ends
    key, _ = stored_png(client)
    done = wait_done(client, client.post(f"/images/{key}/mirror", json={}).json()["jobId"])
    job = client.app.state.queue.get(done["jobId"])
    assert job.request.outputs(job.status) == 1  # a webhook's output events: its one image
