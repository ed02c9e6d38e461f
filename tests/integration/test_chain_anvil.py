"""The chain on a real JSON-RPC node (anvil) and the service pointed at it."""

from __future__ import annotations

import hashlib
import io
import os
import socket
import time

import httpx
import pytest
from evm import deploy, install_multicall3, mint, mint_cheap, mint_many
from PIL import Image

from aleaart.chain import ChainReader, params_from_tuple
from aleaart.cid import file_cid
from aleaart.entropy import derive_params
from aleaart.errors import ChainError, TokenNotReady
from aleaart.params import ASPECTS
from integration.anvil import Anvil
from integration.server import Server, live_group_members, server_env


def test_two_hundred_random_seeds_derive_the_same_on_chain(contract):
    for _ in range(200):
        seed = os.urandom(32)
        assert params_from_tuple(contract.functions.deriveParams(seed).call()) == derive_params(seed)


def test_reader_on_anvil(anvil, contract):
    w3 = anvil.web3()
    token_id = mint(contract, w3, os.urandom(32))
    reader = ChainReader(rpc_url=anvil.url, chain_id=31337, address=contract.address)
    info = reader.token(token_id)
    assert info.derived_match and reader.latest().token_id == token_id


@pytest.fixture(scope="module")
def service(anvil, contract, tiny_env, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("chain-service")
    env = server_env(tiny_env, workdir, rpc_url=anvil.url, chain_id="31337", params_contract=contract.address,
                     chain_timeout="3")
    with Server(env, workdir) as server:
        yield server


def test_service_reads_and_renders_tokens(anvil, contract, service):
    w3 = anvil.web3()
    token_id = mint_cheap(contract, w3)
    mint(contract, w3)  # a newer token whose randomness has not arrived: not "latest"
    with httpx.Client(base_url=service.url, timeout=120) as client:
        latest = client.get("/tokens/latest").json()
        assert latest["tokenId"] == str(token_id) and latest["derivedMatch"] is True
        token = client.get(f"/tokens/{token_id}").json()
        onchain = contract.functions.viewRenderParams(token_id).call()
        assert token["parameters"] == params_from_tuple(onchain).to_json()
        assert token["named"]["aspect"] == "Square 512x512"
        assert token["seed"] == "0x" + contract.functions.tokenSeed(token_id).call().hex()

        made = client.post(f"/tokens/{token_id}/generate-image")
        assert made.status_code == 200, made.text
        result = made.json()
        assert result["tokenId"] == str(token_id) and result["derivedMatch"] is True
        assert result["renderParams"] == token["parameters"]
        png = client.get(result["imageUrl"]).content
        assert Image.open(io.BytesIO(png)).size == (ASPECTS[0].width, ASPECTS[0].height)

        meta = client.get(f"/tokens/{token_id}/metadata.json").json()
        assert meta["name"] == f"AleaArt #{token_id}"
        assert meta["image"] == f"{service.url}/tokens/{token_id}/image.png"
        assert meta["image_ipfs"] == "ipfs://" + file_cid(png)
        assert meta["generation"]["sha256"] == hashlib.sha256(png).hexdigest() == result["sha256"]
        assert client.get(f"/tokens/{token_id}/image.png").content == png

        job = client.post(f"/tokens/{token_id}/jobs")
        assert job.status_code == 202 and job.json()["result"]["cached"] is True


def test_variations_of_a_tokens_image_on_the_tiny_model(anvil, contract, service):
    token_id = mint_cheap(contract, anvil.web3())
    with httpx.Client(base_url=service.url, timeout=120) as client:
        own = client.post(f"/tokens/{token_id}/generate-image").json()
        made = client.post(f"/tokens/{token_id}/variations", json={"count": 2, "strength": 0.5})
        assert made.status_code == 202, made.text
        status, deadline = made.json(), time.monotonic() + 120
        while status["status"] in ("queued", "running"):
            assert time.monotonic() < deadline, status
            time.sleep(0.1)
            status = client.get(status["statusUrl"]).json()
        assert status["status"] == "succeeded" and len(status["results"]) == 2
        pixels = {Image.open(io.BytesIO(client.get(r["imageUrl"]).content)).tobytes() for r in status["results"]}
        assert len(pixels) == 2
        assert Image.open(io.BytesIO(client.get(own["imageUrl"]).content)).tobytes() not in pixels
        listed = client.get("/images", params={"source": own["imageId"]}).json()
        assert listed["total"] == 2
        bad = client.post(f"/tokens/{token_id}/variations", json={"count": 2, "strength": 0.5, "extra": 1})
        assert bad.status_code == 422 and "extra" in bad.json()["error"]


def test_unready_unminted_and_bad_ids(anvil, contract, service):
    pending = mint(contract, anvil.web3())
    with httpx.Client(base_url=service.url, timeout=30) as client:
        not_ready = client.get(f"/tokens/{pending}")
        assert not_ready.status_code == 409 and "not ready" in not_ready.json()["error"]
        assert not_ready.json()["code"] == "token_not_ready"
        assert client.post(f"/tokens/{pending}/generate-image").status_code == 409
        missing = client.get(f"/tokens/{pending + 100}")
        assert missing.status_code == 404 and "is not minted" in missing.json()["error"]
        assert client.get("/tokens/0").status_code == 404
        for bad in ("abc", "-1", "1.5", str(2**256), "%C2%B2", "1%0A", "%EF%BC%91"):  # ², "1\n", fullwidth 1
            answer = client.get(f"/tokens/{bad}")
            assert answer.status_code == 422 and answer.json()["code"] == "invalid_params", bad


def test_wrong_chain_id_is_503_naming_the_url(anvil, contract, tiny_env, tmp_path):
    env = server_env(tiny_env, tmp_path, rpc_url=anvil.url, chain_id="421614", params_contract=contract.address)
    with Server(env, tmp_path) as server:
        response = httpx.get(server.url + "/tokens/latest", timeout=30)
        assert response.status_code == 503
        assert anvil.url in response.json()["error"] and "chain id 31337, not 421614" in response.json()["error"]


def test_stopped_node_is_502_naming_the_url(contract, tiny_env, tmp_path):
    node = Anvil().start()
    w3 = node.web3()
    moved = deploy(w3)
    token_id = mint(moved, w3, os.urandom(32))
    env = server_env(tiny_env, tmp_path, rpc_url=node.url, chain_id="31337", params_contract=moved.address,
                     chain_timeout="2")
    with Server(env, tmp_path) as server:
        assert httpx.get(f"{server.url}/tokens/{token_id}", timeout=30).status_code == 200
        node.stop()
        response = httpx.get(server.url + "/tokens/latest", timeout=30)
        assert response.status_code == 502 and node.url in response.json()["error"]
        assert response.json()["code"] == "chain_unreachable"
        cached = httpx.get(f"{server.url}/tokens/{token_id}", timeout=30)
        assert cached.status_code == 200  # a finished token is served from the cache while the node is down
        assert httpx.get(server.url + "/health", timeout=10).status_code == 200


def test_reverts_are_decoded_not_matched_by_substring(anvil, contract):
    # A real node's revert (eth-tester raises its own exception type instead).
    reader = ChainReader(rpc_url=anvil.url, chain_id=31337, address=contract.address)
    pending = mint(contract, anvil.web3())
    with pytest.raises(TokenNotReady):
        reader._call(contract.functions.viewRenderParams(pending).call)
    with pytest.raises(ChainError, match=r"reverted: no such token$"):
        reader._call(contract.functions.fulfill(10**6, b"\1" * 32).call)


def test_stopping_anvil_leaves_no_process_and_frees_the_port():
    node = Anvil().start()
    node.stop()
    assert live_group_members(node.process.pid) == []  # the Node wrapper and the node it started
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", node.port)) != 0


def test_cli_token_and_render_token(anvil, contract, tiny_env, tmp_path):
    import json
    import subprocess
    import sys

    token_id = mint_cheap(contract, anvil.web3())
    env = {**tiny_env, "ALEAART_RPC_URL": anvil.url, "ALEAART_CHAIN_ID": "31337",
           "ALEAART_PARAMS_CONTRACT": contract.address}

    def aleaart(*args):
        return subprocess.run([sys.executable, "-m", "aleaart.cli", *args], env=env, cwd=tmp_path,
                              capture_output=True, text=True, timeout=300)

    shown = aleaart("token", "latest")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["tokenId"] == str(token_id)
    by_id = json.loads(aleaart("token", str(token_id)).stdout)
    assert by_id["derivedMatch"] is True and set(by_id["named"]) >= {"prompt", "style", "sampler", "aspect"}
    rendered = aleaart("render-token", str(token_id), "--out", "token.png")
    assert rendered.returncode == 0, rendered.stderr
    assert json.loads(rendered.stdout)["tokenId"] == str(token_id)
    assert Image.open(tmp_path / "token.png").size == (512, 512)
    verified = aleaart("verify", "token.png", "--token", str(token_id), "--rerender", "--json")
    assert verified.returncode == 0, verified.stderr
    answer = json.loads(verified.stdout)
    assert answer["token"]["match"] and answer["rerender"]["verdict"] == "exact"
    for bad in ("²", "1\n", "-1"):
        refused = aleaart("token", bad)
        assert refused.returncode == 2 and "tokenId must be" in refused.stderr and "Traceback" not in refused.stderr
    missing = aleaart("token", str(token_id + 1000))
    assert missing.returncode == 1 and "is not minted" in missing.stderr


@pytest.mark.parametrize("multicall", [False, True], ids=["json-rpc batches", "multicall3"])
def test_a_range_of_tokens_is_read_in_batches(anvil, contract, multicall):
    w3 = anvil.web3()
    if multicall:
        install_multicall3(w3)
    ready = mint_many(contract, w3, 30)
    pending = mint_many(contract, w3, 3, random_base=None)
    reader = ChainReader(rpc_url=anvil.url, chain_id=31337, address=contract.address)
    batch = reader.tokens(ready.start, pending.stop + 4)  # four ids past the last minted
    assert reader._has_multicall() is multicall
    assert [t.token_id for t in batch.ready] == list(ready) and batch.pending == list(pending)
    assert batch.not_minted == 5  # the four past the end, and the next id
    one_by_one = ChainReader(rpc_url=anvil.url, chain_id=31337, address=contract.address)
    assert [one_by_one.token(i) for i in ready] == batch.ready
    assert all(t.derived_match for t in batch.ready)
