"""Pinning and the frontend's MongoDB record, through the service, against their protocols on 127.0.0.1:
test doubles of Pinata and an IPFS node's RPC, and MockupDB (the pymongo team's wire-protocol server)."""

import json
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from bson import ObjectId
from fakes import FakeEngine
from fastapi.testclient import TestClient
from integration.server import free_port
from ipfs_doubles import Doubles, DoublesServer, js_cid
from mockupdb import MockupDB, OpMsg

from aleaart.api import create_app
from aleaart.config import Settings
from aleaart.integrations.mongo import record_id

# The body the frontend's /api/generate-image-async route sends (tokenId a number, userId a string).
FRONTEND_BODY = {"prompt": "cyberpunk cityscape, neon lights", "steps": 4, "cfg_scale": 15.6, "seed": 4294967295,
                 "sampler": "DPM++ 2M Karras", "width": 512, "height": 512, "tokenId": 7,
                 "userId": "6650f0a1b2c3d4e5f6a7b8c9"}
GATEWAY = "https://gateway.example"


@pytest.fixture
def doubles():
    with DoublesServer(Doubles()) as server:
        yield server


@pytest.fixture
def make_client(tmp_path):
    opened = []

    def make(**settings) -> TestClient:
        settings = {"images_dir": tmp_path / "images", "ipfs_gateway": GATEWAY, "keepalive_seconds": 0, **settings}
        client = TestClient(create_app(Settings(**settings), loader=FakeEngine)).__enter__()
        assert client.app.state.model.wait(60)
        opened.append(client)
        return client

    yield make
    for client in opened:
        client.__exit__(None, None, None)


def png_of(client, answer) -> bytes:
    return client.get(answer["imageUrl"]).content


def due_now(client) -> None:
    """Make every pending retry due, as if its backoff had passed, and run one retry pass."""
    client.app.state.store.db.execute("UPDATE pins SET next_at = 0")  # pins live with the images
    client.app.state.journal_db.execute("UPDATE user_records SET next_at = 0")  # records are owed: the journal
    client.app.state.publisher.retry_pending()


def test_pinata_pins_once_with_cid_version_1_and_every_answer_carries_it(make_client, doubles):
    client = make_client(pinata_jwt="test-jwt", pinata_api=doubles.url)
    first = client.post("/generate-image", json=FRONTEND_BODY).json()
    png = png_of(client, first)
    assert first["success"] is True and first["ipfsHash"] == js_cid(png) and "ipfsError" not in first
    assert first["ipfsUrl"] == f"{GATEWAY}/ipfs/{first['ipfsHash']}"
    [upload] = doubles.doubles.uploads
    assert upload.service == "pinata" and upload.data == png and upload.filename == first["imageUrl"].split("/")[-1]
    assert json.loads(upload.form["pinataOptions"]) == {"cidVersion": 1}
    again = client.post("/generate-image", json=FRONTEND_BODY).json()
    assert again["cached"] is True and again["ipfsHash"] == first["ipfsHash"]
    listed = client.get("/images").json()["images"][0]
    assert listed["ipfsHash"] == first["ipfsHash"] and listed["ipfsUrl"] == first["ipfsUrl"]
    assert len(doubles.doubles.uploads) == 1  # pinned once


def test_an_ipfs_node_pins_through_its_rpc(make_client, doubles):
    client = make_client(ipfs_api=doubles.url)
    answer = client.post("/generate-image", json=FRONTEND_BODY).json()
    [upload] = doubles.doubles.uploads
    assert upload.service == "kubo" and upload.query == {"cid-version": "1", "raw-leaves": "true", "pin": "true"}
    assert answer["ipfsHash"] == js_cid(png_of(client, answer))


def test_a_failed_pin_still_answers_the_image_and_is_retried(make_client, doubles):
    client = make_client(pinata_jwt="test-jwt", pinata_api=doubles.url)
    doubles.doubles.fail_with = 503
    answer = client.post("/generate-image", json=FRONTEND_BODY).json()
    assert answer["success"] is True and answer["imageBase64"] and answer["ipfsHash"] is None
    assert "Pinata answered 503" in answer["ipfsError"]
    doubles.doubles.fail_with = None
    due_now(client)
    later = client.post("/generate-image", json=FRONTEND_BODY).json()
    assert later["ipfsHash"] == js_cid(png_of(client, answer)) and "ipfsError" not in later


def test_a_cid_that_differs_from_ours_is_not_recorded(make_client, doubles):
    client = make_client(pinata_jwt="test-jwt", pinata_api=doubles.url)
    doubles.doubles.wrong_cid = "bafkreibm6jg3ux5qumhcn2b3flc3tyu6dmlb4xa7u5bf44yegnrjhc4yeq"
    answer = client.post("/generate-image", json=FRONTEND_BODY).json()
    assert answer["ipfsHash"] is None and "but the PNG's CID is" in answer["ipfsError"]
    assert client.app.state.publisher.pinned_cid(answer["imageId"]) is None


@pytest.mark.parametrize("settings, reason", [
    ({"pinata_jwt": "wrong"}, "Pinata answered 401"),
    ({"pinata_jwt": "test-jwt", "pinata_api": f"http://127.0.0.1:{free_port()}"}, "could not be reached"),
])
def test_pinning_refusals_are_reported_beside_the_image(make_client, doubles, settings, reason):
    client = make_client(**{"pinata_api": doubles.url, **settings})
    answer = client.post("/generate-image", json=FRONTEND_BODY).json()
    assert answer["success"] is True and reason in answer["ipfsError"]


def test_pinning_off_answers_null_ipfs_fields_as_the_original(make_client):
    answer = make_client().post("/generate-image", json=FRONTEND_BODY).json()
    assert answer["ipfsHash"] is None and answer["ipfsUrl"] is None and "ipfsError" not in answer


def insert_of(server: MockupDB):
    request = server.receives(OpMsg("insert", "generatedImages"), timeout=20)
    assert request.doc["$db"] == "aleart"
    return request


def test_the_frontends_record_is_inserted_once_per_user_token_and_image(make_client, doubles):
    server = MockupDB(auto_ismaster={"maxWireVersion": 21})
    server.run()
    try:
        client = make_client(pinata_jwt="test-jwt", pinata_api=doubles.url, mongodb_uri=server.uri)
        with ThreadPoolExecutor(1) as pool:
            answering = pool.submit(client.post, "/generate-image", json=FRONTEND_BODY)
            request = insert_of(server)
            request.ok(n=1)
            answer = answering.result(20).json()
        [document] = request.doc["documents"]
        created = document.pop("createdAt")
        image_data = document.pop("imageData")  # what the frontend's token card shows, as the answer carries it
        assert image_data == answer["imageBase64"] and image_data.startswith("data:image/png;base64,")
        assert abs(created.timestamp() - time.time()) < 600
        assert document == {
            "_id": record_id(FRONTEND_BODY["userId"], "7", answer["imageId"]),
            "userId": "6650f0a1b2c3d4e5f6a7b8c9", "tokenId": 7, "ipfsHash": answer["ipfsHash"],
            "ipfsUrl": answer["ipfsUrl"], "prompt": FRONTEND_BODY["prompt"],
            "parameters": {"steps": 4, "cfg_scale": 15.6, "seed": 4294967295, "width": 512, "height": 512},
            "status": "completed",
        }
        assert isinstance(document["_id"], ObjectId) and "mongoError" not in answer
        again = client.post("/generate-image", json=FRONTEND_BODY).json()  # the same user, token and image
        assert again["cached"] is True and "mongoError" not in again
        other_user = {**FRONTEND_BODY, "userId": "someone-else"}
        with ThreadPoolExecutor(1) as pool:
            answering = pool.submit(client.post, "/generate-image", json=other_user)
            insert_of(server).ok(n=1)
            assert answering.result(20).status_code == 200
    finally:
        server.stop()


def test_the_records_image_data_can_be_left_out(make_client):
    server = MockupDB(auto_ismaster={"maxWireVersion": 21})
    server.run()
    try:
        client = make_client(mongodb_uri=server.uri, mongodb_image_data=False)
        with ThreadPoolExecutor(1) as pool:
            answering = pool.submit(client.post, "/generate-image", json=FRONTEND_BODY)
            request = insert_of(server)
            request.ok(n=1)
            assert answering.result(20).status_code == 200
        [document] = request.doc["documents"]
        assert "imageData" not in document and document["prompt"] == FRONTEND_BODY["prompt"]
    finally:
        server.stop()


def test_a_database_that_is_down_is_reported_and_retried(make_client):
    port = free_port()
    client = make_client(mongodb_uri=f"mongodb://127.0.0.1:{port}/?serverSelectionTimeoutMS=500")
    answer = client.post("/generate-image", json=FRONTEND_BODY).json()
    assert answer["success"] is True and answer["imageBase64"] and "MongoDB did not take" in answer["mongoError"]
    server = MockupDB(port=port, auto_ismaster={"maxWireVersion": 21})
    server.run()
    try:
        with ThreadPoolExecutor(1) as pool:
            retrying = pool.submit(due_now, client)
            request = insert_of(server)
            request.ok(n=1)
            retrying.result(20)
        assert request.doc["documents"][0]["ipfsHash"] is None  # pinning is off: the original's null
        rows = client.app.state.journal_db.query("SELECT inserted_at FROM user_records")
        assert len(rows) == 1 and rows[0]["inserted_at"] is not None
    finally:
        server.stop()
