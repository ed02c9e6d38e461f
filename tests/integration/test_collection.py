"""Whole collections on a real chain (anvil), through the service in-process on the fake engine."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest
from evm import mint_cheap, mint_many
from fakes import FakeEngine
from fastapi.testclient import TestClient
from tamper import credentials_removed
from test_car import IPFS_CAR, NODE_TOOLS, node

from aleaart.api import create_app
from aleaart.chain import ChainReader
from aleaart.config import Settings
from aleaart.jobs import JobState


@pytest.fixture
def tokens(anvil, contract):
    """Five ready tokens and one whose randomness has not arrived."""
    w3 = anvil.web3()
    ready = mint_many(contract, w3, 5, random_base=bytes(range(32)))
    pending = mint_many(contract, w3, 1, random_base=None)
    return ready, pending


@pytest.fixture
def make_client(tmp_path, anvil, contract):
    opened = []

    def make(engine: FakeEngine) -> TestClient:
        reader = ChainReader(rpc_url=anvil.url, chain_id=31337, address=contract.address)
        settings = Settings(images_dir=tmp_path / "images", collections_dir=tmp_path / "collections")
        client = TestClient(create_app(settings, loader=lambda: engine, chain=reader)).__enter__()
        opened.append(client)
        return client

    yield make
    for client in opened:
        client.__exit__(None, None, None)


def run_collection(client, first: int, last: int) -> dict:
    created = client.post("/collections", json={"from": first, "to": last})
    assert created.status_code == 202, created.text
    assert created.json()["kind"] == "collection"
    assert client.app.state.queue.get(created.json()["jobId"]).wait_done(60)
    return client.get(created.json()["statusUrl"]).json()


def test_a_collection_renders_every_ready_token_and_exports_it_for_ipfs(make_client, tokens, tmp_path):
    ready, pending = tokens
    engine = FakeEngine()
    client = make_client(engine)
    done = run_collection(client, ready.start, pending.stop - 1)
    summary = done["summary"]
    assert done["status"] == "succeeded" and summary["tokens"] == 5 and summary["rendered"] == 5
    assert summary["pending"] == list(pending) and summary["failed"] == {} and len(engine.calls) == 5
    out = tmp_path / "collections" / f"{ready.start}-{pending.stop - 1}"
    assert sorted(p.name for p in (out / "images").iterdir()) == sorted(f"{i}.png" for i in ready)
    meta = json.loads((out / "metadata" / str(ready.start)).read_text())
    assert meta["image"] == f"ipfs://{summary['imagesCid']}/{ready.start}.png"
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["rootCid"] == summary["rootCid"] and len(manifest["tokens"]) == 5
    assert {"parameters", "seed", "derivedMatch", "sha256", "cid"} <= set(manifest["tokens"][0])

    car = client.get(f"/collections/{done['jobId']}/collection.car")
    assert car.status_code == 200 and car.headers["content-type"] == "application/vnd.ipld.car"
    (tmp_path / "downloaded.car").write_bytes(car.content)
    assert node(str(IPFS_CAR), "roots", str(tmp_path / "downloaded.car")) == summary["rootCid"]
    unpacked = tmp_path / "unpacked"
    node(str(IPFS_CAR), "unpack", str(tmp_path / "downloaded.car"), "--output", str(unpacked))
    for folder in ("images", "metadata"):
        for path in (out / folder).iterdir():
            assert (unpacked / folder / path.name).read_bytes() == path.read_bytes()
    only_the_two = tmp_path / "the-car-holds"
    for folder in ("images", "metadata"):
        shutil.copytree(out / folder, only_the_two / folder)
    assert node("node", str(NODE_TOOLS / "unixfs-dir-cid.mjs"), str(only_the_two)) == summary["rootCid"]

    page = client.get(f"/collections/{done['jobId']}/tokens", params={"limit": 3}).json()
    assert page["total"] == 5 and len(page["tokens"]) == 3 and all(t["imageUrl"] for t in page["tokens"])


def test_aleaart_verify_checks_every_image_of_an_export_and_fails_on_any_change(make_client, tokens, tmp_path,
                                                                                 capsys):
    from aleaart.provenance.cli import verify_export

    ready, _ = tokens
    client = make_client(FakeEngine())
    done = run_collection(client, ready.start, ready.stop - 1)
    out = tmp_path / "collections" / f"{ready.start}-{ready.stop - 1}"
    manifest = json.loads((out / "manifest.json").read_text())
    assert all(t["provenance"]["recipeClass"] and t["provenance"]["pixelSha256"] for t in manifest["tokens"])
    settings = client.app.state.settings
    assert verify_export(out, settings, rerender=False, as_json=True)
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] and report["rootCid"] == done["summary"]["rootCid"] and len(report["images"]) == 5
    assert all(image["credentials"]["verdict"] == "untrusted" for image in report["images"])
    (out / "images" / f"{ready.start}.png").write_bytes(credentials_removed((out / "images" / f"{ready.start}.png")
                                                                          .read_bytes()))
    assert not verify_export(out, settings, rerender=False, as_json=True)
    report = json.loads(capsys.readouterr().out)
    assert report["images"][0]["credentials"]["verdict"] == "unsigned" and not report["carMatches"]


def test_a_second_run_renders_only_what_is_missing(make_client, tokens):
    ready, _ = tokens
    engine = FakeEngine()
    client = make_client(engine)
    first = run_collection(client, ready.start, ready.stop - 1)
    second = run_collection(client, ready.start, ready.stop - 1)
    assert second["jobId"] != first["jobId"] and len(engine.calls) == 5
    assert second["summary"]["rootCid"] == first["summary"]["rootCid"]


def test_interactive_requests_go_before_the_collection(make_client, tokens):
    ready, _ = tokens
    engine = FakeEngine()
    engine.release.clear()
    client = make_client(engine)
    created = client.post("/collections", json={"from": ready.start, "to": ready.stop - 1}).json()
    assert engine.started.wait(10)  # the first token renders; more wait at bulk priority
    interactive = client.post("/jobs", json={"prompt": "now", "seed": 424242, "steps": 3, "width": 256,
                                             "height": 256}).json()
    engine.release.set()
    assert client.app.state.queue.get(created["jobId"]).wait_done(60)
    assert client.app.state.queue.get(interactive["jobId"]).state is JobState.SUCCEEDED
    assert [c.seed for c in engine.calls].index(424242) == 1  # right after the render that was running


def test_a_token_that_keeps_failing_is_retried_and_reported_not_fatal(make_client, tokens, anvil, contract):
    ready, _ = tokens
    reader = ChainReader(rpc_url=anvil.url, chain_id=31337, address=contract.address)
    broken = reader.token(ready.start + 2)
    engine = FakeEngine(fail_seeds=frozenset({broken.params.latent_seed}))
    client = make_client(engine)
    done = run_collection(client, ready.start, ready.stop - 1)
    assert done["status"] == "succeeded" and done["summary"]["rendered"] == 4
    assert list(done["summary"]["failed"]) == [str(broken.token_id)]
    assert [c.seed for c in engine.calls].count(broken.params.latent_seed) == 2  # retried once


def test_a_collection_resumes_after_a_restart(make_client, tokens):
    ready, _ = tokens
    engine = FakeEngine()
    engine.release.clear()
    first = make_client(engine)
    created = first.post("/collections", json={"from": ready.start, "to": ready.stop - 1}).json()
    assert engine.started.wait(10)
    first.__exit__(None, None, None)  # stopped mid-collection: it is queued again, with its renders
    engine.release.set()
    second = make_client(engine)
    job = second.app.state.queue.get(created["jobId"])
    assert job.wait_done(60) and job.state is JobState.SUCCEEDED
    assert job.status.summary["rendered"] == 5 and job.status.attempts == 1


def test_the_cli_renders_a_collection_with_a_progress_bar(anvil, contract, tiny_env, tmp_path):
    w3 = anvil.web3()
    first, last = mint_cheap(contract, w3), mint_cheap(contract, w3)
    env = {**tiny_env, "ALEAART_RPC_URL": anvil.url, "ALEAART_CHAIN_ID": "31337",
           "ALEAART_PARAMS_CONTRACT": contract.address, "ALEAART_IMAGES_DIR": str(tmp_path / "images")}
    done = subprocess.run([sys.executable, "-m", "aleaart.cli", "collection", "render", "--from", str(first),
                           "--to", str(last), "--out", "export"], env=env, cwd=tmp_path, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["rendered"] == 2 and result["rootCid"].startswith("bafybei")
    assert "tokens" in done.stderr and "images_per_min" in done.stderr
    assert sorted(p.name for p in (tmp_path / "export" / "images").iterdir()) == [f"{first}.png", f"{last}.png"]
    refused = subprocess.run([sys.executable, "-m", "aleaart.cli", "collection", "render", "--from", "x"], env=env,
                             cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
