"""API behaviours that need a particular engine, in-process with fakes at the engine seam."""

import threading
import warnings

import pytest
from evm import deploy, mint_cheap
from fakes import FakeEngine
from fastapi.testclient import TestClient
from web3 import EthereumTesterProvider, Web3

from aleaart.api import create_app
from aleaart.api.token_reads import token_request
from aleaart.chain import ChainReader
from aleaart.config import Settings

BODY = {"prompt": "a fox", "seed": 1, "steps": 3, "width": 256, "height": 256}


def client_for(tmp_path, loader, **settings) -> TestClient:
    app = create_app(Settings(images_dir=tmp_path / "images", **settings), loader=loader)
    return TestClient(app)


def test_while_the_model_loads(tmp_path):
    gate = threading.Event()
    with client_for(tmp_path, lambda: gate.wait(10) and FakeEngine()) as client:
        health = client.get("/health").json()
        assert health["model_loading"] is True and health["model_loaded"] is False
        ready = client.get("/ready")
        assert ready.status_code == 503 and ready.json()["code"] == "model_unavailable"
        assert "still loading" in ready.json()["error"]
        gate.set()
        assert client.app.state.model.wait(60)
        assert client.get("/ready").status_code == 200


def test_a_loader_crash_reaches_health(tmp_path):
    def crash():
        raise RuntimeError("driver exploded")

    with client_for(tmp_path, crash) as client:
        assert client.app.state.model.wait(60)
        assert "RuntimeError: driver exploded" in client.get("/health").json()["model_error"]
        refused = client.post("/generate-image", json=BODY)
        assert refused.status_code == 503 and refused.json()["code"] == "model_unavailable"


@pytest.fixture
def chain():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        w3 = Web3(EthereumTesterProvider())
    contract = deploy(w3)
    return w3, contract, ChainReader(rpc_url="eth-tester", chain_id=w3.eth.chain_id, address=contract.address,
                                     web3=w3)


def test_token_metadata_gains_the_cid_once_the_image_is_stored(tmp_path, chain):
    w3, contract, reader = chain
    token_id = mint_cheap(contract, w3)
    app = create_app(Settings(images_dir=tmp_path / "images"), loader=FakeEngine, chain=reader)
    with TestClient(app) as client:
        assert app.state.model.wait(60)
        before = client.get(f"/tokens/{token_id}/metadata.json").json()
        assert "image_ipfs" not in before and before["generation"]["sha256"] is None
        assert before["image"].endswith(f"/tokens/{token_id}/image.png")
        png = client.get(f"/tokens/{token_id}/image.png")
        assert png.status_code == 200 and png.headers["content-type"] == "image/png"
        assert "immutable" not in png.headers["cache-control"]  # the token's address follows the model
        after = client.get(f"/tokens/{token_id}/metadata.json").json()
        assert after["image_ipfs"].startswith("ipfs://bafkrei") and after["generation"]["model"] == "fake"


def test_token_image_needs_the_key_to_generate_but_not_to_serve(tmp_path, chain):
    w3, contract, reader = chain
    token_id = mint_cheap(contract, w3)
    app = create_app(Settings(images_dir=tmp_path / "images", api_key="k"), loader=FakeEngine, chain=reader)
    with TestClient(app) as client:
        assert app.state.model.wait(60)
        denied = client.get(f"/tokens/{token_id}/image.png")
        assert denied.status_code == 401 and "not generated yet" in denied.json()["error"]
        assert client.post(f"/tokens/{token_id}/generate-image", headers={"X-API-Key": "k"}).status_code == 200
        assert client.get(f"/tokens/{token_id}/image.png").status_code == 200


def test_public_tokens_let_anyone_have_a_minted_tokens_image_and_nothing_else(tmp_path, chain):
    w3, contract, reader = chain
    token_id = mint_cheap(contract, w3)
    settings = Settings(images_dir=tmp_path / "images", api_key="k", public_tokens=True)
    app = create_app(settings, loader=FakeEngine, chain=reader)
    with TestClient(app) as client:
        assert app.state.model.wait(60)
        params = client.get(f"/tokens/{token_id}").json()["parameters"]
        assert client.post(f"/tokens/{token_id}/generate-image").status_code == 200  # no key
        seed_body = {"parameters": params, "tokenId": token_id}
        assert client.post("/generate-image", json=seed_body).json()["cached"] is True  # the same image, stored
        other = {**params, "latentSeed": (params["latentSeed"] + 1) % 2**32}
        refused = client.post("/generate-image", json={"parameters": other, "tokenId": token_id})
        assert refused.status_code == 401 and "only a minted token's own image" in refused.json()["error"]
        image = app.state.queue.lookup(token_request(reader.token(token_id), settings))[0].spec
        flat = {"prompt": image["prompt"], "sampler": image["sampler"], "width": image["width"],
                "height": image["height"], "steps": image["steps"], "cfg_scale": image["guidance_scale"],
                "seed": image["seed"], "tokenId": token_id}
        assert client.post("/generate-image", json=flat).status_code == 200  # the frontend's body of that token
        assert client.post("/generate-image", json={**flat, "seed": 1}).status_code == 401
        assert client.post("/generate-image", json={**flat, "tokenId": None}).status_code == 401
        assert client.post("/jobs", json=seed_body).status_code == 401  # only the token routes and /generate-image
        assert client.post(f"/tokens/{token_id}/variations", json={}).status_code == 401
    closed = create_app(Settings(images_dir=tmp_path / "closed", api_key="k"), loader=FakeEngine, chain=reader)
    with TestClient(closed) as client:
        assert client.post(f"/tokens/{token_id}/generate-image").status_code == 401
