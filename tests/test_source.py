import pytest

from aleaart.engine.source import resolve_source
from aleaart.errors import ModelUnavailable


def test_tiny_and_hub_ids():
    assert resolve_source("tiny").kind == "tiny"
    hub = resolve_source("stable-diffusion-v1-5/stable-diffusion-v1-5")
    assert (hub.kind, hub.location) == ("hub", "stable-diffusion-v1-5/stable-diffusion-v1-5")


def test_local_folder_and_single_files(tmp_path):
    (tmp_path / "model").mkdir()
    assert resolve_source(str(tmp_path / "model")).kind == "folder"
    for name in ("a.safetensors", "b.CKPT"):
        (tmp_path / name).write_bytes(b"x")
        source = resolve_source(str(tmp_path / name))
        assert source.kind == "single_file" and source.name == name.split(".")[0]


def test_missing_paths_and_other_files_say_what_to_set(tmp_path):
    with pytest.raises(ModelUnavailable, match="not found: set ALEAART_MODEL to a local folder.*ALEAART_MODEL=tiny"):
        resolve_source(str(tmp_path / "nope.safetensors"))
    with pytest.raises(ModelUnavailable, match="not found"):
        resolve_source("./relative/missing")
    (tmp_path / "weights.bin").write_bytes(b"x")
    with pytest.raises(ModelUnavailable, match="neither a diffusers folder nor"):
        resolve_source(str(tmp_path / "weights.bin"))
