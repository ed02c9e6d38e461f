"""Weights held once: the PyTorch parts mapped from safetensors files and released after use, OpenVINO's IR pages
dropped once compiled, a LoRA job back on OpenVINO after it without a second compile, and what is measured once
kept in the cache. Pages are counted from /proc/self/smaps, as the kernel counts them."""

from __future__ import annotations

import mmap
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from aleaart.engine import footprint
from aleaart.engine.pages import drop_pages, shedding_pages
from aleaart.engine.pipeline import Engine
from aleaart.engine.residency import PARTS, map_weights
from aleaart.engine.tiny import build_tiny_pipeline
from aleaart.errors import InsufficientMemory, OutOfMemory
from aleaart.memory import RenderSize
from aleaart.params import LoraWeight, RenderSpec

SMALL = RenderSpec(prompt="cyberpunk cityscape", sampler="Euler a", width=64, height=64, steps=3,
                   guidance_scale=7.5, seed=12345)


def resident_kib(path: Path) -> int:
    """This process's resident pages of its mappings of ``path``, in KiB."""
    target, total, inside = str(path.resolve()), 0, False
    for line in Path("/proc/self/smaps").read_text().splitlines():
        fields = line.split()
        if "-" in fields[0] and len(fields) >= 5 and ":" not in fields[0]:
            inside = len(fields) == 6 and fields[5] == target
        elif inside and fields[0] == "Rss:":
            total += int(fields[1])
    return total


def mappings(path: Path) -> list[str]:
    """The address ranges of this process's mappings of ``path``."""
    target = str(path.resolve())
    return [line.split()[0] for line in Path("/proc/self/maps").read_text().splitlines() if line.endswith(target)]


def mapping_of(module: torch.nn.Module) -> str:
    """The address range of the mapping ``module``'s first tensor lies in."""
    address = next(module.parameters()).data_ptr()
    for line in Path("/proc/self/maps").read_text().splitlines():
        start, end = (int(part, 16) for part in line.split()[0].split("-"))
        if start <= address < end:
            return line.split()[0]
    raise AssertionError("not mapped")


def test_read_only_pages_are_dropped_and_read_in_again_and_writable_ones_are_left(tmp_path):
    path = tmp_path / "weights.bin"
    data = bytes(range(256)) * (8 * 4096)  # 8 MiB
    path.write_bytes(data)
    with path.open("rb") as file, mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
        assert mapped[:] == data
        assert resident_kib(path) >= 8 * 1024
        drop_pages(path)
        assert resident_kib(path) < 64
        assert mapped[:] == data  # read in again, unchanged
    with path.open("r+b") as file, mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_WRITE) as writable:
        writable[0] = 7
        drop_pages(path)  # writable: never dropped (a private one would lose the write)
        assert writable[0] == 7 and resident_kib(path) >= 4


def test_a_file_read_through_while_shedding_keeps_none_of_it_after(tmp_path):
    path = tmp_path / "weights.bin"
    path.write_bytes(bytes(8 * 2**20))
    with path.open("rb") as file, mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
        with shedding_pages(path, every=0.01):
            assert sum(mapped[offset] for offset in range(0, len(mapped), 4096)) == 0  # every page read
        assert resident_kib(path) < 64


def test_parts_map_from_the_models_own_files_and_a_release_drops_their_pages_not_their_values(tiny_engine,
                                                                                               tmp_path):
    loaded = tiny_engine.core.current
    files = loaded.weights.files
    assert sorted(files) == sorted(PARTS)
    assert files["unet"].name == "diffusion_pytorch_model.safetensors"  # the folder's own: no copy was written
    # Mapping reads each tensor's first pages (which, for these tiny parts, are most of each file); a release
    # replaces the mapping that holds what was read since, and that mapping is gone.
    pipeline = tiny_engine.pipeline
    before = mapping_of(pipeline.text_encoder)
    first = tiny_engine.generate(replace(SMALL, prompt="a prompt no other test encodes")).image
    assert before not in mappings(files["text_encoder"])  # released once the new prompt was encoded
    before = {part: mapping_of(getattr(pipeline, part)) for part in PARTS}
    loaded.release(PARTS)
    for part, file in files.items():
        assert before[part] not in mappings(file) and mapping_of(getattr(pipeline, part)) in mappings(file)
    assert tiny_engine.generate(replace(SMALL, prompt="a prompt no other test encodes")).image.tobytes() \
        == first.tobytes()


def test_parts_loaded_from_elsewhere_are_copied_once_and_mapped_from_the_copy(tmp_path):
    pipeline = build_tiny_pipeline()
    before = {name: tensor.clone() for name, tensor in pipeline.unet.state_dict().items()}
    mapped = map_weights(pipeline, None, tmp_path)
    assert mapped.files["unet"] == tmp_path / "unet.safetensors"
    written = {part: file.stat().st_mtime_ns for part, file in mapped.files.items()}
    assert all(before[name].equal(tensor) for name, tensor in pipeline.unet.state_dict().items())
    again = map_weights(build_tiny_pipeline(), None, tmp_path)
    assert {part: file.stat().st_mtime_ns for part, file in again.files.items()} == written  # read, not rewritten


def test_openvino_holds_the_weights_alone_and_a_lora_job_maps_them_back_for_its_time(tiny_settings, tiny_lora):
    folder, sha256 = tiny_lora
    engine = Engine.load(tiny_settings.model_copy(update={"backend": "openvino", "openvino_precision": "f32",
                                                          "models_dir": folder}))
    loaded = engine.core.current
    plain = engine.generate(SMALL).image
    compiled = loaded.runtime.unet.shapes
    unet_file = loaded.weights.files["unet"]
    ir = next(Path(tiny_settings.cache_dir, "openvino").glob("*/unet.bin"))
    # What the compiler read of the IR was dropped; inference reads the few constants it uses in place (with SD
    # 1.5's full size, 60 MB of 3.4 GB), which for this tiny UNet are less than half of it.
    assert 0 < resident_kib(ir) < ir.stat().st_size / 1024 / 2
    before = mapping_of(engine.pipeline.unet)
    assert before in mappings(unet_file)
    engine.generate(replace(SMALL, loras=(LoraWeight(sha256, 1.0),)))  # on PyTorch: it reads the UNet
    assert before not in mappings(unet_file)  # and lets it go after
    assert mapping_of(engine.pipeline.unet) in mappings(unet_file)
    assert engine.generate(SMALL).image.tobytes() == plain.tobytes()
    assert loaded.runtime.unet.shapes == compiled  # the next plain job is on OpenVINO, not compiled again


def test_openvino_lets_the_compiled_unet_go_before_the_encode_and_decode_of_a_larger_image(tiny_settings,
                                                                                          monkeypatch):
    settings = tiny_settings.model_copy(update={"backend": "openvino", "openvino_precision": "f32"})
    engine = Engine.load(settings)
    unet, decoder = engine.core.current.runtime.unet, engine.core.current.runtime.decoder
    large = replace(SMALL, width=576, height=512)  # larger than the VAE's native 512x512
    engine.generate(SMALL)
    assert [shape[0] for shape in unet.shapes] == [(2, 4, 8, 8)]  # a native-size render keeps its compilation
    first = engine.generate(large).image
    # Its UNet compiled for the steps, let go before the decode (which compiled for its own shape).
    assert unet.shapes == [] and [shape[0] for shape in decoder.shapes] == [(1, 4, 64, 72)]
    assert engine.generate(large).image.tobytes() == first.tobytes()  # compiled again: the same pixels
    engine.generate(SMALL)
    vae = engine.pipeline.vae
    encode, at_encode = vae.encode, []
    monkeypatch.setattr(vae, "encode", lambda *a, **kw: at_encode.append(unet.shapes) or encode(*a, **kw))
    engine.transform(large, first, 0.5)
    assert at_encode == [[]] and unet.shapes == []  # gone before the encode, and again before the decode
    kept = Engine.load(settings.model_copy(update={"openvino_shapes": 2}))
    kept.generate(SMALL)
    kept.generate(large)  # where more shapes are kept, so is a larger image's
    assert sorted(shape[0] for shape in kept.core.current.runtime.unet.shapes) == [(2, 4, 8, 8), (2, 4, 64, 72)]


def test_the_digest_and_the_memory_profile_are_measured_once_and_kept(tiny_settings, tmp_path, monkeypatch):
    settings = tiny_settings.model_copy(update={"backend": "torch", "max_rss_gb": 100.0, "cache_dir": tmp_path})
    rendered, hashed, at_measure = [], [], []
    generate, measure, digest = Engine.generate, footprint.measure, Engine.digest_weights
    monkeypatch.setattr(Engine, "generate", lambda engine, spec, **kw: rendered.append(
        (spec.width, spec.height)) or generate(engine, spec, **kw))
    monkeypatch.setattr(Engine, "digest_weights", lambda engine: hashed.append(
        mapping_of(engine.pipeline.unet)) or digest(engine))  # the mapping the digest reads through
    monkeypatch.setattr(footprint, "measure", lambda engine: at_measure.append(
        mappings(engine.core.current.weights.files["unet"])) or measure(engine))
    first = Engine.load(settings)
    profile = first.memory
    # Start renders the two smallest sizes, not the largest: its peak is their line's, until it is rendered.
    assert rendered == [(512, 683), (512, 512)] and profile is not None and profile.estimated
    assert hashed[0] not in at_measure[0]  # the pages the digest read in went before the renders
    assert profile.largest.gib >= profile.small.gib > 0 and profile.resident_gib > 0
    assert (profile.small.width, profile.largest.width, profile.largest.height) == (512, 768, 1024)  # Portrait
    monkeypatch.undo()
    first.generate(replace(SMALL, width=768, height=1024, steps=1))
    assert not first.memory.estimated and first.memory.small == profile.small and first.memory.largest.gib > 0
    first.generate(replace(SMALL, width=768, height=1024, steps=1))
    monkeypatch.setattr(footprint, "measure", lambda engine: pytest.fail("measured again"))
    monkeypatch.setattr(footprint, "reset_peak", lambda: pytest.fail("measured again"))
    monkeypatch.setattr(Engine, "digest_weights", lambda engine: pytest.fail("hashed again"))
    again = Engine.load(settings)
    assert again.memory == first.memory and again.weights_sha256 == first.weights_sha256
    again.generate(replace(SMALL, width=768, height=1024, steps=1))  # measured already: not again
    monkeypatch.undo()
    assert again.weights_sha256 == again.digest_weights()
    again.require_memory(RenderSize(768, 1024))
    again.max_rss_gb = again.memory.resident_gib
    with pytest.raises(InsufficientMemory, match="768x1024"):
        again.require_memory(RenderSize(768, 1024))


def test_a_profile_that_cannot_be_measured_leaves_the_engine_serving_unchecked(tiny_engine, tmp_path, monkeypatch):
    def out_of_memory(spec, **_):
        raise OutOfMemory(f"out of cuda memory for a {spec.width}x{spec.height} image")

    monkeypatch.setattr(tiny_engine, "generate", out_of_memory)
    assert footprint.memory_profile(tiny_engine, tmp_path / "memory" / "profile.json") is None
    assert not (tmp_path / "memory").exists()  # measured again at the next start, not kept as nothing
