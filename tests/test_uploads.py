"""Uploaded models: what a weights file is (pure), the registry, and the routes, in-process on the fake engine."""

from __future__ import annotations

import io
import pickle
import re
from pathlib import Path

import numpy as np
import pytest
from fakes import FAKE_ARCHITECTURE, FakeEngine, wait_done
from fastapi.testclient import TestClient
from safetensors.numpy import save, save_file

from aleaart.api import create_app
from aleaart.config import Settings
from aleaart.database import Database
from aleaart.errors import BodyTooLarge, InvalidModel
from aleaart.params import LoraWeight, RenderSpec
from aleaart.uploads import ModelRegistry
from aleaart.weights import classify, display_name, read_layout, what_it_is

ADMIN = {"X-Admin-Key": "s3cret"}
FLAT = {"prompt": "a fox", "seed": 1, "steps": 3, "width": 256, "height": 256}


def tensors(layout: dict[str, tuple[int, ...]]) -> dict[str, np.ndarray]:
    return {name: np.zeros(shape, dtype=np.float16) for name, shape in layout.items()}


def checkpoint_bytes(extra: dict[str, tuple[int, ...]] | None = None, **changed: tuple[int, ...]) -> bytes:
    layout = {**FAKE_ARCHITECTURE.checkpoint, **(extra or {})}
    layout.update({name.replace("__", "."): shape for name, shape in changed.items()})
    return save(tensors(layout))


def lora_bytes(down: tuple[int, int] = (4, 8), up: tuple[int, int] = (8, 4)) -> bytes:
    module = "unet.mid_block.attentions.0.transformer_blocks.0.attn2.to_k"
    return save(tensors({f"{module}.lora_A.weight": down, f"{module}.lora_B.weight": up}))


# What a file is (pure)

def test_checkpoints_and_loras_are_told_apart_and_checked_against_the_architecture(tmp_path):
    path = tmp_path / "w.safetensors"
    path.write_bytes(checkpoint_bytes(extra={"model_ema.decay": (1,)}))  # extra tensors (EMA) are fine
    assert classify(read_layout(path), FAKE_ARCHITECTURE).kind == "checkpoint"
    path.write_bytes(lora_bytes())
    facts = classify(read_layout(path), FAKE_ARCHITECTURE)
    assert (facts.kind, facts.base, facts.tensors) == ("lora", "fake", 2)
    kohya = {"lora_unet_mid_block_attentions_0_transformer_blocks_0_attn2_to_k.lora_down.weight": (4, 8),
             "lora_unet_mid_block_attentions_0_transformer_blocks_0_attn2_to_k.lora_up.weight": (8, 4),
             "lora_unet_mid_block_attentions_0_transformer_blocks_0_attn2_to_k.alpha": ()}
    save_file(tensors(kohya), str(path))
    assert classify(read_layout(path), FAKE_ARCHITECTURE).kind == "lora"


@pytest.mark.parametrize(("layout", "message"), [
    ({"conditioner.embedders.0.transformer.text_model.embeddings.token_embedding.weight": (4, 4)},
     "holds an SDXL checkpoint"),
    ({"cond_stage_model.model.token_embedding.weight": (4, 4)}, "holds an SD 2.x checkpoint"),
    ({"down_blocks.0.resnets.0.conv1.weight": (4, 4)}, "diffusers-layout component weights"),
    ({"some.tensor": (4,)}, "no Stable Diffusion tensors (some.tensor)"),
    ({"model.diffusion_model.input_blocks.0.0.weight": (8, 4, 3, 3)}, "lacks 2 of the 3 tensors of fake"),
    ({**FAKE_ARCHITECTURE.checkpoint, "model.diffusion_model.input_blocks.0.0.weight": (320, 4, 3, 3)},
     "input_blocks.0.0.weight is [320, 4, 3, 3] where fake has [8, 4, 3, 3]"),
    ({"unet.mid_block.attentions.0.transformer_blocks.0.attn2.to_k.lora_A.weight": (4, 768),
      "unet.mid_block.attentions.0.transformer_blocks.0.attn2.to_k.lora_B.weight": (8, 4)}, "maps 768 → 8 features"),
    ({"unet.nowhere.lora_A.weight": (4, 8), "unet.nowhere.lora_B.weight": (8, 4)}, "adapts unet.nowhere"),
    ({"unet.mid_block.attentions.0.transformer_blocks.0.attn2.to_k.lora_A.weight": (4, 8)}, "not a pair"),
    ({"lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k.lora_down.weight": (4, 1024),
      "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k.lora_up.weight": (320, 4)},
     "cross-attention is 1024 wide"),
])
def test_files_of_another_kind_are_refused_naming_what_was_found(tmp_path, layout, message):
    path = tmp_path / "w.safetensors"
    save_file(tensors(layout), str(path))
    with pytest.raises(InvalidModel, match=message.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")):
        classify(read_layout(path), FAKE_ARCHITECTURE)


KOHYA_K = "lora_unet_mid_block_attentions_0_transformer_blocks_0_attn2_to_k"
PEFT_K = "unet.mid_block.attentions.0.transformer_blocks.0.attn2.to_k"


@pytest.mark.parametrize(("weights", "message"), [
    ({f"{PEFT_K}.lora_A.weight": np.zeros((0, 8), np.float16), f"{PEFT_K}.lora_B.weight": np.zeros((8, 0), np.float16)},
     "has rank 0"),
    ({f"{PEFT_K}.lora_A.weight": np.zeros((4, 8), np.int8), f"{PEFT_K}.lora_B.weight": np.zeros((8, 4), np.int8)},
     "is stored as I8: quantized LoRAs cannot be loaded"),
    ({f"{KOHYA_K}.lora_down.weight": np.zeros((4, 8), np.float16),
      f"{KOHYA_K}.lora_up.weight": np.zeros((8, 4), np.float16), f"{KOHYA_K}.alpha": np.zeros((4,), np.float16)},
     "is a tensor of shape [4]; an alpha is one number"),
])
def test_loras_that_pass_the_shapes_but_could_never_load_are_refused(tmp_path, weights, message):
    """What loading needs is checked at upload: such a file was accepted, then failed every render that named it."""
    from aleaart.weights import read_dtypes

    path = tmp_path / "w.safetensors"
    save_file(weights, str(path))
    with pytest.raises(InvalidModel, match=re.escape(message)):
        classify(read_layout(path), FAKE_ARCHITECTURE, dtypes=read_dtypes(path))


def test_pickles_and_other_files_are_not_read(tmp_path):
    path = tmp_path / "w.safetensors"
    path.write_bytes(pickle.dumps({"state_dict": {}}, protocol=4))
    with pytest.raises(InvalidModel, match="pickle"):
        read_layout(path)
    import zipfile

    with zipfile.ZipFile(path, "w") as archive:  # torch.save's layout: a pickle inside
        archive.writestr("archive/data.pkl", pickle.dumps({}))
    with pytest.raises(InvalidModel, match="PyTorch zip .* a pickle inside"):
        read_layout(path)
    with zipfile.ZipFile(path, "w") as archive:  # a plain archive: said as such, not as a pickle
        archive.writestr("model.safetensors", b"...")
    with pytest.raises(InvalidModel, match="a zip archive .1 entries., not safetensors") as plain:
        read_layout(path)
    assert "pickle" not in str(plain.value)
    path.write_bytes(b"PK\x03\x04 cut short")
    with pytest.raises(InvalidModel, match="not one"):
        read_layout(path)
    path.write_bytes(b"GIF89a not weights at all")
    with pytest.raises(InvalidModel, match="not a readable .safetensors"):
        read_layout(path)
    assert what_it_is({}) == "no Stable Diffusion tensors (no tensors at all)"


def test_display_names_never_carry_a_folder():
    assert display_name("../../etc/passwd", "x") == "passwd"
    assert display_name("C:\\models\\mine.safetensors", "x") == "mine.safetensors"
    assert display_name("/abs/path/w.safetensors", "x") == "w.safetensors"
    assert display_name("..", "x") == ".." and display_name("", "fallback") == "fallback"


# The registry

def test_the_registry_keeps_a_file_by_its_sha256_once_and_forgets_what_is_gone(tmp_path):
    registry = ModelRegistry(tmp_path / "models", Database(tmp_path / "index.db"))
    data = checkpoint_bytes()
    model, created = registry.add(io.BytesIO(data).read, filename="../../evil.safetensors", claimed=None,
                                  architecture=FAKE_ARCHITECTURE, max_bytes=2**20)
    assert created and model.kind == "checkpoint" and model.name == "evil.safetensors"
    assert [p.name for p in (tmp_path / "models").iterdir()] == [model.filename] == [f"{model.sha256}.safetensors"]
    again, created = registry.add(io.BytesIO(data).read, filename="copy.safetensors", claimed="checkpoint",
                                  architecture=FAKE_ARCHITECTURE, max_bytes=2**20)
    assert not created and again == model and registry.get(model.id) == registry.get(model.sha256) == model
    with pytest.raises(BodyTooLarge):
        registry.add(io.BytesIO(data).read, filename="big.safetensors", claimed=None, architecture=FAKE_ARCHITECTURE,
                     max_bytes=len(data) - 1)
    with pytest.raises(InvalidModel, match="sent as a lora"):
        registry.add(io.BytesIO(checkpoint_bytes(extra={"x": (2,)})).read, filename="c.safetensors", claimed="lora",
                     architecture=FAKE_ARCHITECTURE, max_bytes=2**20)
    assert len(list((tmp_path / "models").iterdir())) == 1  # refused uploads leave nothing behind
    registry.path_of(model).unlink()
    assert registry.list() == []


# The routes (fake engine)

@pytest.fixture
def make_client(tmp_path):
    opened = []

    def make(**settings) -> TestClient:
        client = TestClient(create_app(Settings(images_dir=tmp_path / "images", **settings), loader=FakeEngine))
        opened.append(client.__enter__())
        assert client.app.state.model.wait(60)
        return client

    yield make
    for client in opened:
        client.__exit__(None, None, None)


def upload(client: TestClient, data: bytes, name: str = "mine.safetensors", headers=ADMIN, **form):
    return client.post("/models", files={"file": (name, data, "application/octet-stream")}, data=form,
                       headers=headers)


def test_upload_list_use_and_delete(make_client):
    client = make_client(admin_key="s3cret")
    made = upload(client, checkpoint_bytes(), kind="checkpoint")
    assert made.status_code == 201, made.text
    model = made.json()
    assert (model["kind"], model["base"], model["name"]) == ("checkpoint", "fake", "mine.safetensors")
    assert upload(client, checkpoint_bytes()).status_code == 200  # the same file again: the same model
    lora = upload(client, lora_bytes(), name="style.safetensors").json()
    listed = client.get("/models").json()
    assert [m["id"] for m in listed["models"]] == [None, model["id"], lora["id"]] and listed["uploadsEnabled"]
    assert listed["models"][0] == {"id": None, "name": "fake", "kind": "checkpoint", "default": True}

    plain = wait_done(client, client.post("/jobs", json=FLAT).json()["jobId"])["result"]
    chosen = {**FLAT, "model": model["id"], "loras": [{"id": lora["id"], "weight": 0.5}]}
    job = client.post("/jobs", json=chosen).json()
    assert job["status"] in ("queued", "running", "succeeded"), job
    result = wait_done(client, job["jobId"])["result"]
    assert result["imageId"] != plain["imageId"]  # the weights are part of the key
    spec = client.app.state.queue.get(job["jobId"]).request.spec
    assert spec.model == model["sha256"] and spec.loras == (LoraWeight(lora["sha256"], 0.5),)
    assert wait_done(client, client.post("/jobs", json=chosen).json()["jobId"])["result"]["cached"] is True

    assert client.delete(f"/models/{lora['id']}", headers=ADMIN).json()["deleted"] is True
    gone = client.post("/jobs", json=chosen)
    assert gone.status_code == 422 and "no uploaded model" in gone.json()["error"]
    assert client.get(f"/models/{lora['id']}").status_code == 404


@pytest.mark.parametrize(("body", "field"), [
    ({"model": "zz"}, "model"), ({"loras": [{"id": "0" * 16, "weight": 3}]}, "weight"),
    ({"loras": [{"id": "0" * 16}] * 5}, "loras"), ({"model": "0" * 16}, "no uploaded model"),
])
def test_bad_model_choices_are_422(make_client, body, field):
    answer = make_client().post("/jobs", json={**FLAT, **body})
    assert answer.status_code == 422 and field in answer.json()["error"], answer.text


def test_a_checkpoint_named_as_a_lora_is_422(make_client):
    client = make_client(admin_key="s3cret")
    model = upload(client, checkpoint_bytes()).json()
    answer = client.post("/jobs", json={**FLAT, "loras": [{"id": model["id"], "weight": 1}]})
    assert answer.status_code == 422 and "is a checkpoint, not a lora" in answer.json()["error"]


def test_uploads_need_the_admin_key_and_are_off_without_one(make_client):
    off = make_client()
    refused = upload(off, checkpoint_bytes())
    assert refused.status_code == 403 and refused.json()["code"] == "uploads_disabled"
    assert off.get("/models").json()["uploadsEnabled"] is False
    on = make_client(admin_key="s3cret")
    for headers in ({}, {"X-Admin-Key": "wrong"}, {"Authorization": "Bearer wrong"}):
        denied = upload(on, checkpoint_bytes(), headers=headers)
        assert denied.status_code == 401 and denied.json()["code"] == "unauthorized"
    # The admin key is the key env-admin: any of the key headers carries it.
    assert upload(on, checkpoint_bytes(), headers={"Authorization": "Bearer s3cret"}).status_code == 201
    assert on.delete(f"/models/{'0' * 16}").status_code == 401
    assert on.delete(f"/models/{'0' * 16}", headers=ADMIN).status_code == 404


@pytest.mark.parametrize(("name", "data", "message"), [
    ("model.ckpt", checkpoint_bytes(), "pickle-based weights"),
    ("model.safetensors", pickle.dumps({"weights": [1, 2]}), "is a pickle"),
    ("model.safetensors", b"not weights", "not a readable .safetensors"),
    ("model.safetensors", save(tensors({"conditioner.embedders.0.x": (2,)})), "holds an SDXL checkpoint"),
])
def test_refused_uploads_are_422_and_leave_nothing(make_client, tmp_path, name, data, message):
    client = make_client(admin_key="s3cret")
    refused = upload(client, data, name=name)
    assert refused.status_code == 422 and refused.json()["code"] == "invalid_model"
    assert message in refused.json()["error"]
    assert list(Path(tmp_path / "images" / "models").iterdir()) == []
    assert client.get("/models").json()["models"][1:] == []


def test_uploads_over_the_cap_are_413_while_json_bodies_keep_their_own_limit(make_client, tmp_path):
    client = make_client(admin_key="s3cret", max_upload_mb=1)
    for padding in (600_000, 1_300_000):  # 1.2 MB: refused as it is copied; 2.6 MB: by its Content-Length
        refused = upload(client, checkpoint_bytes(extra={"padding": (padding,)}))
        assert refused.status_code == 413 and refused.json()["code"] == "body_too_large"
    assert list(Path(tmp_path / "images" / "models").iterdir()) == []
    too_long = client.post("/jobs", json={**FLAT, "prompt": "x" * 70_000})
    assert too_long.status_code == 413


def test_a_form_without_the_file_field_is_422(make_client):
    client = make_client(admin_key="s3cret")
    answer = client.post("/models", data={"kind": "lora"}, headers=ADMIN)
    assert answer.status_code == 422 and "file field named 'file'" in answer.json()["error"]
    wrong_kind = upload(client, lora_bytes(), kind="vae")
    assert wrong_kind.status_code == 422 and "kind must be one of" in wrong_kind.json()["error"]


def test_model_and_loras_change_a_specs_key_but_not_an_old_ones():
    plain = RenderSpec("p", "Euler a", 64, 64, 3, 7.0, 1)
    assert "model" not in plain.canonical() and "loras" not in plain.canonical()
    chosen = RenderSpec("p", "Euler a", 64, 64, 3, 7.0, 1, model="a" * 64, loras=(LoraWeight("b" * 64, 0.5),))
    assert RenderSpec.from_canonical(chosen.canonical()) == chosen
    assert chosen.canonical()["loras"] == [{"sha256": "b" * 64, "weight": 0.5}]
