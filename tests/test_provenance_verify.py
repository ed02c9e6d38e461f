"""Verify: every stored file carries Content Credentials; tampering is reported as such; a re-render is exact within
a recipe class, perceptual across classes (the differing fields named), a mismatch for another seed. Over HTTP on
the fake engine, and with `aleaart verify` on the tiny model."""

from __future__ import annotations

import io
import json
from dataclasses import replace

import pytest
from fakes import FakeEngine, wait_done
from fastapi.testclient import TestClient
from PIL import Image
from tamper import assertion_edited, credentials_removed, one_pixel_changed

from aleaart.api import create_app
from aleaart.cli import main
from aleaart.config import Settings
from aleaart.jobs import RenderRequest
from aleaart.jobs.runner import Runner
from aleaart.params import RenderSpec
from aleaart.provenance.claim import DIGITAL_SOURCE_TYPE, LABEL
from aleaart.provenance.credentials import Credentials, read_credentials
from aleaart.provenance.verify import PERCEPTUAL_THRESHOLD

FLAT = {"prompt": "verify me", "seed": 5, "steps": 2, "width": 256, "height": 256}


@pytest.fixture
def client(tmp_path):
    settings = Settings(images_dir=tmp_path / "images", cache_dir=tmp_path / "cache")
    with TestClient(create_app(settings, loader=FakeEngine)) as client:
        assert client.app.state.model.wait(60)
        yield client


def stored_png(client, body=FLAT) -> tuple[dict, bytes]:
    answer = client.post("/generate-image", json=body).json()
    return answer, client.get(answer["imageUrl"]).content


def verified(client, data: bytes, **query) -> dict:
    answer = client.post("/verify", params=query, files={"file": ("f.png", data, "image/png")})
    assert answer.status_code == 200, answer.text
    return answer.json()


# Every stored file is signed

def test_a_stored_png_is_signed_ai_made_with_the_aleaart_assertion_and_xmp(client):
    answer, data = stored_png(client)
    read = read_credentials(data, "image/png")
    assert read.state == "Valid" and read.failures == ("signingCredential.untrusted",)  # a local signer
    [created] = [a for a in read.manifest["assertions"] if a["label"].startswith("c2pa.actions")][0]["data"]["actions"]
    assert created["action"] == "c2pa.created" and created["digitalSourceType"] == DIGITAL_SOURCE_TYPE
    assert "weights sha256 " + "f" * 64 in created["softwareAgent"]["name"]
    assertion = read.assertion
    assert assertion["key"] == answer["imageId"] and assertion["spec"]["seed"] == 5
    assert assertion["recipe"]["model"] == "fake@1" and assertion["recipe"]["scheduler"] == "FlatColour"
    with Image.open(io.BytesIO(data)) as image:
        assert DIGITAL_SOURCE_TYPE in str(image.info["xmp"])
        assert image.text["aleaart"]  # the service's own chunks are kept beside the credentials
    assert [a["label"] for a in read.manifest["assertions"]].count(LABEL) == 1


def test_derived_files_name_their_source_as_a_parent_ingredient(client):
    answer, _ = stored_png(client)
    upscale = wait_done(client, client.post(f"/images/{answer['imageId']}/upscale",
                                            json={"mode": "lanczos"}).json()["jobId"])
    read = read_credentials(client.get(upscale["results"][0]["imageUrl"]).content, "image/png")
    [ingredient] = read.manifest["ingredients"]
    assert ingredient["relationship"] == "parentOf" and ingredient["instance_id"].endswith(answer["imageId"])
    assert ingredient["active_manifest"]  # the source's own credentials travel inside: the chain can be walked
    actions = [a for a in read.manifest["assertions"] if a["label"].startswith("c2pa.actions")][0]["data"]["actions"]
    assert [a["action"] for a in actions] == ["c2pa.opened", "c2pa.resized"]
    variations = wait_done(client, client.post("/variations", json={**FLAT, "count": 1}).json()["jobId"])
    read = read_credentials(client.get(variations["results"][0]["imageUrl"]).content, "image/png")
    assert read.state == "Valid" and read.manifest["ingredients"][0]["relationship"] == "parentOf"
    assert read.assertion["source"] == answer["imageId"]


def test_an_animations_mp4_and_webp_are_signed(client):
    done = wait_done(client, client.post("/animations", json={**FLAT, "frames": 8}).json()["jobId"])
    for result in done["results"]:
        data = client.get(result["imageUrl"]).content
        read = read_credentials(data)
        assert read.state == "Valid" and read.assertion["kind"] == "animation", result["imageUrl"]
        assert read.assertion["operation"]["frames"] == 8


# Verify over HTTP

def test_a_file_the_service_made_verifies_exactly(client):
    _, data = stored_png(client)
    answer = verified(client, data)
    assert answer["ok"] and answer["credentials"]["verdict"] == "untrusted"
    assert answer["credentials"]["pixelsChanged"] is False
    assert answer["rerender"]["verdict"] == "exact" and answer["rerender"]["recipeDifferences"] == []


def test_each_tampering_is_reported_never_valid(client):
    _, data = stored_png(client)
    changed = verified(client, one_pixel_changed(data), rerender="false")
    assert not changed["ok"] and changed["credentials"]["verdict"] == "invalid"
    assert changed["credentials"]["pixelsChanged"] is True
    assert "assertion.dataHash.mismatch" in changed["credentials"]["failures"]
    removed = verified(client, credentials_removed(data), rerender="false")
    assert not removed["ok"] and removed["credentials"]["verdict"] == "unsigned"
    edited = verified(client, assertion_edited(data, b"verify me", b"verify mf"), rerender="false")
    assert not edited["ok"] and edited["credentials"]["verdict"] == "invalid"
    assert any("mismatch" in code for code in edited["credentials"]["failures"])
    never = io.BytesIO()
    Image.new("RGB", (8, 8)).save(never, format="PNG")
    assert verified(client, never.getvalue(), rerender="false")["credentials"]["verdict"] == "unsigned"


def test_a_rerender_needs_the_api_key_where_one_is_set(tmp_path):
    settings = Settings(images_dir=tmp_path / "images", cache_dir=tmp_path / "cache", api_key="secret")
    with TestClient(create_app(settings, loader=FakeEngine)) as client:
        assert client.app.state.model.wait(60)
        data = client.get(client.post("/generate-image", json=FLAT, headers={"X-API-Key": "secret"})
                          .json()["imageUrl"]).content
        refused = client.post("/verify", params={"rerender": "true"}, files={"file": ("f.png", data)})
        assert refused.status_code == 401 and refused.json()["code"] == "unauthorized"
        plain = verified(client, data)  # without the key: the credentials only
        assert plain["ok"] and plain["rerender"] is None


def test_the_upload_must_be_a_file_field(client):
    answer = client.post("/verify", data={"other": "x"})
    assert answer.status_code == 422 and answer.json()["code"] == "invalid_params"


# `aleaart verify` on the tiny model

def tiny_png(engine, spec: RenderSpec, path, credentials) -> None:
    [artifact] = Runner(engine, credentials=credentials).run(RenderRequest(spec, "3"))
    path.write_bytes(artifact.data)


def run_verify(capsys, *args) -> tuple[int, dict]:
    try:
        code = main(["verify", *args, "--json"])
    except SystemExit as exit_:
        code = exit_.code
    return code, json.loads(capsys.readouterr().out)


@pytest.fixture
def tiny_cli(tiny_env, monkeypatch):
    for name in ("ALEAART_MODEL", "ALEAART_CACHE_DIR", "ALEAART_THREADS", "ALEAART_DEVICE"):
        monkeypatch.setenv(name, tiny_env[name])
    return Credentials.from_settings(Settings())


SPEC = RenderSpec(prompt="a lighthouse, watercolor", sampler="Euler a", width=64, height=64, steps=4,
                  guidance_scale=7.5, seed=21)


def test_the_cli_rerender_is_exact_here_perceptual_across_backends_and_names_the_difference(
        tiny_cli, tiny_engine, tiny_settings, tmp_path, capsys):
    here = tmp_path / "here.png"
    tiny_png(tiny_engine, SPEC, here, tiny_cli)
    code, answer = run_verify(capsys, str(here), "--rerender")
    assert code == 0 and answer["rerender"]["verdict"] == "exact"
    from aleaart.engine.pipeline import Engine

    torch_engine = Engine.load(tiny_settings.model_copy(update={"backend": "torch"}))
    there = tmp_path / "torch.png"
    tiny_png(torch_engine, SPEC, there, tiny_cli)
    code, answer = run_verify(capsys, str(there), "--rerender")
    assert code == 0 and answer["rerender"]["verdict"] == "perceptual"
    assert answer["rerender"]["phashDistance"] <= PERCEPTUAL_THRESHOLD
    assert {d["field"] for d in answer["rerender"]["recipeDifferences"]} >= {"backend"}
    assert {"field": "backend", "file": "torch", "here": tiny_engine.recipe["backend"]} in \
        answer["rerender"]["recipeDifferences"]


def test_the_cli_reports_a_forged_seed_and_a_changed_pixel(tiny_cli, tiny_engine, tmp_path, capsys):
    real = tmp_path / "real.png"
    tiny_png(tiny_engine, SPEC, real, tiny_cli)
    forged = tmp_path / "forged.png"  # seed 22's pixels, signed as if they were seed 21's
    [artifact] = Runner(tiny_engine).run(RenderRequest(replace(SPEC, seed=22), "3"), key="f" * 64)
    with Image.open(io.BytesIO(artifact.data)) as image:
        tiny_png(_Pixels(tiny_engine, image.convert("RGB")), SPEC, forged, tiny_cli)
    code, answer = run_verify(capsys, str(forged), "--rerender")
    assert code == 1 and answer["credentials"]["verdict"] == "untrusted"  # honestly signed, dishonest content
    assert answer["rerender"]["verdict"] == "mismatch" and answer["rerender"]["phashDistance"] > PERCEPTUAL_THRESHOLD
    (tmp_path / "changed.png").write_bytes(one_pixel_changed(real.read_bytes()))
    code, answer = run_verify(capsys, str(tmp_path / "changed.png"))
    assert code == 1 and answer["credentials"]["verdict"] == "invalid" and answer["credentials"]["pixelsChanged"]
    code, _ = run_verify(capsys, str(real))
    assert code == 0


class _Pixels:
    """An engine that renders the pixels it is given (to sign a forgery the way the service signs)."""

    def __init__(self, engine, image: Image.Image) -> None:
        self.engine, self.image = engine, image
        self.model_name, self.recipe = engine.model_name, engine.recipe

    def recipe_details(self, spec):
        return self.engine.recipe_details(spec)

    def generate(self, spec, **_):
        return type("Rendered", (), {"image": self.image, "seconds": 0.0})()

    def require_memory(self, size) -> None:
        pass  # it renders nothing


# A token on a real chain (anvil)

def test_a_token_is_checked_against_the_chains_parameters(anvil, contract, tmp_path):
    from evm import mint_cheap

    from aleaart.chain import ChainReader

    first, second = mint_cheap(contract, anvil.web3()), mint_cheap(contract, anvil.web3())
    reader = ChainReader(rpc_url=anvil.url, chain_id=31337, address=contract.address)
    settings = Settings(images_dir=tmp_path / "images", cache_dir=tmp_path / "cache", chain_id=31337,
                        params_contract=contract.address)
    with TestClient(create_app(settings, loader=FakeEngine, chain=reader)) as client:
        assert client.app.state.model.wait(60)
        assert client.get(f"/tokens/{first}/verify").json()["code"] == "not_found"  # not rendered yet
        data = client.get(f"/tokens/{first}/image.png").content
        stored = client.get(f"/tokens/{first}/verify").json()
        assert stored["ok"] and stored["token"]["match"] and stored["token"]["chain"] == stored["token"]["recorded"]
        assert read_credentials(data).assertion["chain"] == {"chainId": 31337, "contract": contract.address}
        own = verified(client, data, tokenId=first)
        assert own["ok"] and own["rerender"]["verdict"] == "exact"
        claimed = verified(client, data, tokenId=second)  # the first token's image passed off as the second's
        assert not claimed["ok"] and claimed["token"]["match"] is False
        metadata = client.get(f"/tokens/{first}/metadata.json").json()
        assert metadata["provenance"]["pixelSha256"] == stored["credentials"]["pixelSha256"]
        assert metadata["provenance"]["verify"].endswith(f"/tokens/{first}/verify")
        assert metadata["provenance"]["recipeClass"] == stored["recipeClass"]


def test_health_says_who_signs(client):
    signing = client.get("/health").json()["content_credentials"]
    assert signing["local"] is True and signing["algorithm"] == "ES256" and "aleaart local signer" in signing["signer"]


def test_over_http_a_png_of_another_backend_is_perceptual_naming_the_difference(tiny_cli, tiny_settings, tmp_path):
    from aleaart.engine.pipeline import Engine

    torch_engine = Engine.load(tiny_settings.model_copy(update={"backend": "torch"}))
    there = tmp_path / "torch.png"
    tiny_png(torch_engine, SPEC, there, tiny_cli)
    with TestClient(create_app(tiny_settings.model_copy(update={"images_dir": tmp_path / "images"}))) as client:
        assert client.app.state.model.wait(120)
        answer = verified(client, there.read_bytes())
    assert answer["ok"] and answer["rerender"]["verdict"] == "perceptual"
    assert {"field": "backend", "file": "torch", "here": client.app.state.model.engine.recipe["backend"]} in \
        answer["rerender"]["recipeDifferences"]
