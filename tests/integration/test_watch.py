"""Render on fulfilment against a real chain (anvil): the watcher inside the service (ALEAART_WATCH=1), as a
killed and restarted server process, and as `aleaart watch`; reorganisations, an RPC that goes down, and an RPC
that refuses large log ranges."""

from __future__ import annotations

import collections
import os
import signal
import sqlite3

import httpx
import pytest
from evm import deploy, mint_cheap, mint_many
from fakes import FakeEngine
from fastapi.testclient import TestClient
from ipfs_doubles import Doubles, DoublesServer
from waiting import eventually

from aleaart.api import create_app
from aleaart.config import Settings
from aleaart.entropy import derive_params
from integration.receiver import SECRET, Receiver
from integration.rpc_proxy import RpcProxy
from integration.server import Server, aleaart_watch, free_port, server_env

# Cheap to render on the fake engine and distinct per token.
BASE = bytes(range(32))


@pytest.fixture
def fresh(anvil):
    """A contract of this test's own: its watcher starts with an empty journal."""
    w3 = anvil.web3()
    return deploy(w3), w3


def watch_settings(tmp_path, rpc_url: str, address: str, **extra) -> Settings:
    # No palette grade: on full-size fake images it is most of a token's time here, and none of the watcher's.
    return Settings(**{"images_dir": tmp_path / "images", "collections_dir": tmp_path / "collections",
                       "rpc_url": rpc_url, "chain_id": 31337, "params_contract": address, "watch": True,
                       "watch_poll_seconds": 0.1, "palette_mode": "off", **extra})


@pytest.fixture
def watching(tmp_path):
    """A TestClient of the service with its watcher, on the fake engine; closed at the end."""
    opened = []

    def start(settings: Settings, engine: FakeEngine | None = None) -> TestClient:
        client = TestClient(create_app(settings, loader=lambda: engine or FakeEngine())).__enter__()
        opened.append(client)
        return client

    yield start
    for client in opened:
        client.__exit__(None, None, None)


def watcher_health(client) -> dict:
    return client.get("/health").json()["chain_watcher"]


def rendered(client) -> int:
    return watcher_health(client)["tokens"]["rendered"]


def stored_sha256(client, token_id: int) -> str | None:
    return client.get(f"/tokens/{token_id}/metadata.json").json()["generation"]["sha256"]


def test_fifty_tokens_fulfilled_over_several_blocks_are_each_rendered_once(fresh, watching, tmp_path, anvil):
    contract, w3 = fresh
    engine = FakeEngine()
    client = watching(watch_settings(tmp_path, anvil.url, contract.address, watch_from_block=w3.eth.block_number),
                      engine)
    tokens = [t for _ in range(5) for t in mint_many(contract, w3, 10, random_base=BASE)]  # 5 blocks of 10
    assert eventually(lambda: rendered(client) == 50, timeout=60), watcher_health(client)
    assert len(engine.calls) == 50  # each exactly once
    assert len({spec.seed for spec in engine.calls}) == len({derive_params(contract.functions.tokenSeed(t).call())
                                                               .latent_seed for t in tokens})
    for token_id in tokens:
        listed = client.get("/images", params={"tokenId": token_id}).json()["images"]
        assert len(listed) == 1
        assert stored_sha256(client, token_id) == listed[0]["sha256"]
    health = watcher_health(client)
    assert health["status"] == "following" and health["lagBlocks"] == 0 and health["reorgs"] == 0
    assert health["tokens"] == {"seen": 50, "rendered": 50, "pending": 0, "failed": 0}
    metrics = client.get("/metrics").text
    assert 'aleaart_watch_tokens{state="rendered"} 50.0' in metrics
    assert "aleaart_watch_tokens_seen_total 50.0" in metrics
    assert f"aleaart_watch_cursor_block {float(w3.eth.block_number)}" in metrics


def test_a_reorganised_fulfilment_gives_the_token_the_new_seeds_image(fresh, watching, tmp_path, anvil):
    contract, w3 = fresh
    client = watching(watch_settings(tmp_path, anvil.url, contract.address, watch_from_block=w3.eth.block_number))
    token_id = contract.functions.nextTokenId().call()
    w3.eth.wait_for_transaction_receipt(contract.functions.requestArt().transact())
    snapshot = w3.provider.make_request("evm_snapshot", [])["result"]
    w3.eth.wait_for_transaction_receipt(contract.functions.fulfill(token_id, b"\x0a" * 32).transact())
    assert eventually(lambda: rendered(client) == 1, timeout=30)
    first = stored_sha256(client, token_id)
    old_seed = contract.functions.tokenSeed(token_id).call()

    assert w3.provider.make_request("evm_revert", [snapshot])["result"] is True  # the fulfilment's block is gone
    w3.eth.wait_for_transaction_receipt(contract.functions.fulfill(token_id, b"\x0b" * 32).transact())
    w3.provider.make_request("evm_mine", [])
    new_seed = contract.functions.tokenSeed(token_id).call()
    assert new_seed != old_seed

    def has_new_image() -> bool:
        health = watcher_health(client)
        return health["reorgs"] >= 1 and health["tokens"]["rendered"] == 1 and stored_sha256(client, token_id) != first

    assert eventually(has_new_image, timeout=30), watcher_health(client)
    assert client.get(f"/tokens/{token_id}").json()["seed"] == "0x" + new_seed.hex()
    listed = client.get("/images", params={"tokenId": token_id}).json()["images"]
    assert {i["sha256"] for i in listed} == {first, stored_sha256(client, token_id)}  # the old one stays stored
    metadata = client.get(f"/tokens/{token_id}/metadata.json").json()
    latent = next(a["value"] for a in metadata["attributes"] if a["trait_type"] == "Latent Seed")
    assert latent == derive_params(new_seed).latent_seed


def test_each_rendered_token_is_pinned_when_pinning_is_configured(fresh, watching, tmp_path, anvil):
    contract, w3 = fresh
    with DoublesServer(Doubles()) as pinata:
        client = watching(watch_settings(tmp_path, anvil.url, contract.address, watch_from_block=w3.eth.block_number,
                                         pinata_jwt="test-jwt", pinata_api=pinata.url))
        tokens = mint_many(contract, w3, 2, random_base=BASE)

        def pinned() -> bool:
            images = [i for t in tokens for i in client.get("/images", params={"tokenId": t}).json()["images"]]
            return len(images) == 2 and all(i["ipfsHash"] for i in images)

        assert eventually(pinned, timeout=30)
        assert len(pinata.doubles.uploads) == 2
        for token_id in tokens:
            metadata = client.get(f"/tokens/{token_id}/metadata.json").json()
            [image] = client.get("/images", params={"tokenId": token_id}).json()["images"]
            assert image["ipfsHash"] and metadata["image_ipfs"] == "ipfs://" + image["ipfsHash"]


def test_the_service_webhook_hears_each_token_rendered_and_a_collection_tells_its_tokens(fresh, watching, tmp_path,
                                                                                      anvil):
    contract, w3 = fresh
    service, mine = Receiver().start(), Receiver().start()
    try:
        client = watching(watch_settings(tmp_path, anvil.url, contract.address, watch_from_block=w3.eth.block_number,
                                         webhook_url=service.url, webhook_secret=SECRET, webhook_allow_private=True))
        tokens = mint_many(contract, w3, 3, random_base=BASE)
        assert eventually(lambda: len(service.received) == 3, timeout=30)
        assert {r.body["data"]["tokenId"] for r in service.received} == {str(t) for t in tokens}
        assert all(r.event == "token.rendered" and r.body["type"] == "token.rendered" and r.verified
                   for r in service.received)
        created = client.post("/collections", json={"from": tokens.start, "to": tokens.stop - 1,
                                                    "webhook": mine.url, "webhook_events_filter": ["output"]})
        assert created.status_code == 202, created.text
        job_id = created.json()["jobId"]
        assert eventually(lambda: [r.event for r in mine.delivered(job_id)][-1:] == ["completed"], timeout=60)
        told = [r.event for r in mine.delivered(job_id)]
        assert told[0] == "start" and told[-1] == "completed" and "output" in told
        rendered = [r.body["summary"]["rendered"] for r in mine.delivered(job_id) if r.event == "output"]
        assert rendered == sorted(rendered) and rendered[-1] == 3  # tokens as they land, the last with completed
        assert eventually(lambda: any(r.event == "collection.succeeded" for r in service.received), timeout=30)
    finally:
        service.stop()
        mine.stop()


def test_a_websocket_subscription_has_a_fulfilment_stored_without_waiting_for_the_poll(fresh, watching, tmp_path,
                                                                                       anvil):
    contract, w3 = fresh
    client = watching(watch_settings(tmp_path, anvil.url, contract.address, watch_from_block=w3.eth.block_number + 1,
                                     watch_poll_seconds=300, watch_ws_url=f"ws://127.0.0.1:{anvil.port}"))
    assert eventually(lambda: watcher_health(client)["subscription"] == "live"), watcher_health(client)
    tokens = mint_many(contract, w3, 12, random_base=BASE)  # more than the 8 handed to the queue at once
    # The next poll is 300 s away: the pushed log starts the pass, each render's end its collection and the
    # next tokens' hand-out.
    assert eventually(lambda: rendered(client) == 12, timeout=60), watcher_health(client)
    assert all(stored_sha256(client, t) for t in tokens)


def test_a_websocket_that_cannot_be_reached_leaves_the_watcher_polling(fresh, watching, tmp_path, anvil):
    contract, w3 = fresh
    client = watching(watch_settings(tmp_path, anvil.url, contract.address, watch_from_block=w3.eth.block_number + 1,
                                     watch_ws_url=f"ws://127.0.0.1:{free_port()}"))
    token = mint_cheap(contract, w3)
    assert eventually(lambda: rendered(client) == 1, timeout=60), watcher_health(client)
    assert stored_sha256(client, token) and watcher_health(client)["subscription"] == "connecting"


def test_the_rpc_going_down_is_reported_and_caught_up_by_itself(fresh, watching, tmp_path, anvil):
    contract, w3 = fresh
    proxy = RpcProxy(anvil.url).start()
    try:
        client = watching(watch_settings(tmp_path, proxy.url, contract.address,
                                         watch_from_block=w3.eth.block_number, chain_timeout=1))
        mint_many(contract, w3, 2, random_base=BASE)
        assert eventually(lambda: rendered(client) == 2, timeout=30)
        proxy.down()
        tokens = mint_many(contract, w3, 3, random_base=BASE)
        assert eventually(lambda: watcher_health(client)["status"] == "behind", timeout=30)
        down = watcher_health(client)
        assert "cannot read the chain" in down["lastError"] and down["tokens"]["rendered"] == 2
        proxy.up()
        assert eventually(lambda: rendered(client) == 5, timeout=60), watcher_health(client)
        assert eventually(lambda: watcher_health(client)["status"] == "following", timeout=30)
        assert all(stored_sha256(client, t) for t in tokens)
        assert "aleaart_watch_rpc_errors_total" in client.get("/metrics").text
    finally:
        proxy.stop()


def test_backfill_from_the_deployment_block_gets_past_a_refused_range(fresh, watching, tmp_path, anvil):
    contract, w3 = fresh
    deployed_at = w3.eth.block_number  # anvil mines a block per transaction: the deployment was the last
    tokens = [t for _ in range(6) for t in mint_many(contract, w3, 2, random_base=BASE)]
    for _ in range(20):
        w3.provider.make_request("evm_mine", [])  # empty blocks between the mints and the head
    proxy = RpcProxy(anvil.url, max_range=4).start()
    try:
        client = watching(watch_settings(tmp_path, proxy.url, contract.address))  # no from-block: deployment's
        head = w3.eth.block_number
        assert eventually(lambda: rendered(client) == 12 and watcher_health(client)["cursorBlock"] == head,
                          timeout=60), watcher_health(client)
        sizes = [last - first + 1 for first, last in proxy.log_ranges]
        refused = [size for size in sizes if size > 4]
        assert refused and refused == sorted(set(refused), reverse=True)  # a refused size is not asked for again
        answered = {block for first, last in proxy.log_ranges if last - first + 1 <= 4
                    for block in range(first, last + 1)}
        assert answered == set(range(deployed_at, head + 1))  # from the deployment (not genesis), no gap
        assert all(stored_sha256(client, t) for t in tokens)
    finally:
        proxy.stop()


def read_journal(db_path) -> collections.Counter:
    """The watcher's tokens by state; none while the journal is still being made (no table yet)."""
    try:
        with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=5) as db:
            return collections.Counter(state for (state,) in db.execute("SELECT state FROM watch_tokens"))
    except sqlite3.OperationalError:
        return collections.Counter()


def test_kill_9_mid_way_then_restart_misses_no_token_and_renders_none_twice(fresh, tmp_path, anvil, tiny_env):
    contract, w3 = fresh
    log_path = tmp_path / "renders.log"
    env = server_env(tiny_env, tmp_path, watch="1", rpc_url=anvil.url, chain_id="31337",
                     params_contract=contract.address, watch_poll_seconds="0.1", palette_mode="off",
                     watch_from_block=str(w3.eth.block_number))
    env["FAKE_RENDER_LOG"] = str(log_path)
    tokens = [t for _ in range(3) for t in mint_many(contract, w3, 10, random_base=BASE)]
    db_path = tmp_path / "images" / "journal.db"
    server = Server(env, tmp_path, fake_step_seconds=0.005).start()
    try:
        assert eventually(lambda: db_path.exists() and read_journal(db_path)["rendered"] >= 8, timeout=60)
        server.kill()
        assert read_journal(db_path)["rendered"] < 30, "the watcher finished before it could be killed"
        with Server(env, tmp_path, fake_step_seconds=0.005) as again:
            assert eventually(lambda: httpx.get(again.url + "/health").json()["chain_watcher"]["tokens"]
                              ["rendered"] == 30, timeout=90)
            for token_id in tokens:
                assert len(httpx.get(again.url + "/images", params={"tokenId": token_id}).json()["images"]) == 1
    finally:
        server.kill()
    renders = collections.Counter(log_path.read_text().split())
    assert len(renders) == 30
    # A render the kill interrupted after the engine but before its file was stored is done again; nothing else.
    assert sum(count - 1 for count in renders.values()) <= 1, renders


def test_aleaart_watch_renders_fulfilled_tokens_and_stops_on_sigterm(fresh, tmp_path, anvil, tiny_env):
    contract, w3 = fresh
    start = w3.eth.block_number
    first, second = mint_cheap(contract, w3), mint_cheap(contract, w3)
    env = server_env(tiny_env, tmp_path, rpc_url=anvil.url, chain_id="31337", params_contract=contract.address,
                     watch_poll_seconds="0.2", watch_from_block=str(start))
    db_path = tmp_path / "images" / "journal.db"
    with aleaart_watch(env, tmp_path, tmp_path / "watch.log") as process:
        assert eventually(lambda: db_path.exists() and read_journal(db_path)["rendered"] == 2, timeout=180), \
            (tmp_path / "watch.log").read_text()[-2000:]
        os.killpg(process.pid, signal.SIGTERM)
        assert process.wait(30) == 0
    output = (tmp_path / "watch.log").read_text()
    assert "blocks" in output  # the backfill's progress bar
    with sqlite3.connect(db_path) as journal, sqlite3.connect(tmp_path / "images" / "index.db") as index:
        keys = dict(journal.execute("SELECT token_id, key FROM watch_tokens"))
        files = {key: file for key, file in index.execute("SELECT key, file FROM images")}
    assert set(keys) == {str(first), str(second)}
    assert all((tmp_path / "images" / files[keys[str(t)]]).is_file() for t in (first, second))
