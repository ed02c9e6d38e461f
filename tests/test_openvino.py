"""The OpenVINO backend (the default on the CPU) on the tiny model: the UNet and VAE decoder on OpenVINO's CPU
runtime at f32, beside PyTorch's pixels, the same every time, named in the key, and out of the way of LoRAs; and
at bf16 where the CPU has it."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import weakref
from dataclasses import replace

import numpy
import pytest
import torch
from openvino import Core, Model, PartialShape, opset13
from PIL import Image
from pixels import psnr

from aleaart.engine import openvino as openvino_backend
from aleaart.engine.openvino import VERSION, CompiledByShape, ModelSource, has_native_bf16, pick_precision
from aleaart.engine.pipeline import Engine
from aleaart.engine.runtime import pick_backend
from aleaart.errors import ModelUnavailable
from aleaart.jobs.render import image_artifact
from aleaart.metadata import render_key
from aleaart.params import LoraWeight, RenderSpec

SMALL = RenderSpec(prompt="cyberpunk cityscape", sampler="Euler a", width=64, height=64, steps=4,
                   guidance_scale=7.5, seed=12345)
# 11 latent rows: not a multiple of the UNet's downsampling, as Tall's 86 rows are not at full size.
ODD = replace(SMALL, height=88, sampler="DPM++ 2M Karras", seed=7)


@pytest.fixture(scope="module")
def models_dir(tiny_lora):
    return tiny_lora


@pytest.fixture(scope="module")
def engines(tiny_settings, models_dir):
    folder, _ = models_dir
    torch_engine = Engine.load(tiny_settings.model_copy(update={"models_dir": folder, "backend": "torch"}))
    openvino_engine = Engine.load(tiny_settings.model_copy(update={"models_dir": folder, "backend": "openvino",
                                                                    "openvino_precision": "f32"}))
    return torch_engine, openvino_engine


def test_openvino_renders_what_pytorch_does_within_rounding_and_the_same_every_time(engines):
    torch_engine, openvino_engine = engines
    firsts = {}
    for spec in (SMALL, ODD):
        expected = torch_engine.generate(spec).image
        firsts[spec] = first = openvino_engine.generate(spec).image
        again = openvino_engine.generate(spec).image
        assert first.size == (spec.width, spec.height)
        assert first.tobytes() == again.tobytes()  # reproducible run to run
        assert psnr(first, expected) > 40  # the same picture, up to float rounding
    runtime = openvino_engine.core.current.runtime
    # It ran the UNet and decoder, and kept one compilation each (ALEAART_OPENVINO_SHAPES=1, the default): the
    # first shape's went when the second was compiled, and compiled again from the saved IR it renders the same.
    assert [shape[0] for shape in runtime.unet.shapes] == [(2, 4, 11, 8)]
    assert [shape[0] for shape in runtime.decoder.shapes] == [(1, 4, 11, 8)]
    assert openvino_engine.generate(SMALL).image.tobytes() == firsts[SMALL].tobytes()
    assert [shape[0] for shape in runtime.unet.shapes] == [(2, 4, 8, 8)]


def test_more_compiled_shapes_are_kept_where_the_settings_allow(tiny_settings):
    engine = Engine.load(tiny_settings.model_copy(update={"backend": "openvino", "openvino_precision": "f32",
                                                          "openvino_shapes": 2}))
    for spec in (SMALL, ODD, SMALL):
        engine.generate(spec)
    assert sorted(shape[0] for shape in engine.core.current.runtime.unet.shapes) == [(2, 4, 8, 8), (2, 4, 11, 8)]


def test_a_dropped_compilation_is_freed_before_the_next_is_compiled():
    parameter = opset13.parameter(PartialShape.dynamic(2), numpy.float32)
    alive_at_compile = []

    class Source(ModelSource):
        def read(self):
            alive_at_compile.append(first() is not None)
            return super().read()

    compiled = CompiledByShape(Source(model=Model([opset13.relu(parameter)], [parameter])), {}, "relu", keep=1)
    first = lambda: None  # noqa: E731 (no compilation yet)
    assert compiled(-torch.ones(1, 2)).tolist() == [[0.0, 0.0]]
    first = weakref.ref(compiled._requests[((1, 2),)])
    assert compiled(torch.ones(3, 2)).tolist() == [[1.0, 1.0]] * 3
    # Each compilation holds a whole copy of the weights: the first went before the second was made, not after.
    assert alive_at_compile == [False, False] and first() is None


class _Doubled(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(2, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x) * 2


def test_a_conversion_leaves_no_traced_types_behind_and_the_next_conversion_works(monkeypatch):
    def traced_type_kept() -> bool:
        return torch.jit._state._python_cu.get_class(f"__torch__.{_Doubled.__module__}._Doubled") is not None

    module, example = _Doubled(), (torch.ones(1, 2),)
    expected = module(*example).detach().numpy()
    with monkeypatch.context() as patched:
        patched.setattr(openvino_backend, "_forget_traces", lambda: None)
        openvino_backend._convert(module, example)
        assert traced_type_kept()  # what tracing registers, kept for the life of the process unless forgotten
    for _ in range(2):
        model = openvino_backend._convert(module, example)
        assert not traced_type_kept()
        result = Core().compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})(example[0].numpy())[0]
        assert numpy.allclose(result, expected, atol=1e-6)


def test_variations_batch_through_the_compiled_unet(engines):
    torch_engine, openvino_engine = engines
    expected = torch_engine.generate_variations(SMALL, [1, 2, 3], 0.3)
    rendered = openvino_engine.generate_variations(SMALL, [1, 2, 3], 0.3)
    assert all(psnr(a.image, b.image) > 40 for a, b in zip(rendered, expected, strict=True))
    assert (6, 4, 8, 8) in [shape[0] for shape in openvino_engine.core.current.runtime.unet.shapes]


def test_the_backend_is_part_of_the_key_and_the_png(engines):
    torch_engine, openvino_engine = engines
    assert openvino_engine.recipe["backend"] == f"openvino-{VERSION}"
    assert "backend" not in torch_engine.recipe  # keys made before backends were a choice still hold
    assert render_key(SMALL, openvino_engine.recipe, None) != render_key(SMALL, torch_engine.recipe, None)
    image = openvino_engine.generate(SMALL).image
    key = render_key(SMALL, openvino_engine.recipe, None)
    png = image_artifact(image, SMALL, token_id=None, key=key, model="aleaart-tiny", recipe=openvino_engine.recipe,
                         seconds=1.0).data
    with Image.open(io.BytesIO(png)) as stored:
        assert f"Backend: openvino-{VERSION}" in stored.text["parameters"]


def test_a_lora_job_renders_on_pytorch_and_the_next_job_on_openvino_again(engines, models_dir):
    torch_engine, openvino_engine = engines
    plain = openvino_engine.generate(SMALL).image
    styled = replace(SMALL, loras=(LoraWeight(models_dir[1], 1.0),))
    with_lora = openvino_engine.generate(styled).image
    assert with_lora.tobytes() == torch_engine.generate(styled).image.tobytes()
    assert psnr(with_lora, plain) < 40  # the LoRA was on
    assert openvino_engine.generate(SMALL).image.tobytes() == plain.tobytes()
    unweighted = replace(SMALL, loras=(LoraWeight(models_dir[1], 0.0),))  # adds nothing: stays on OpenVINO
    assert openvino_engine.generate(unweighted).image.tobytes() == plain.tobytes()


@pytest.mark.skipif(not has_native_bf16(), reason="this CPU has no native bf16 (AVX512_BF16 or AMX)")
def test_bf16_is_its_own_backend_the_same_every_time_and_near_f32(engines, tiny_settings):
    _, f32_engine = engines
    bf16_engine = Engine.load(tiny_settings.model_copy(update={"backend": "openvino", "openvino_precision": "bf16"}))
    assert bf16_engine.recipe["backend"] == f"openvino-{VERSION}-bf16"
    assert f32_engine.recipe["backend"] == f"openvino-{VERSION}"  # f32 keys are those from before bf16
    first, again = bf16_engine.generate(ODD).image, bf16_engine.generate(ODD).image
    assert first.tobytes() == again.tobytes()  # reproducible run to run
    in_f32 = f32_engine.generate(ODD).image
    assert first.tobytes() != in_f32.tobytes()  # it did compute in bf16
    assert psnr(first, in_f32) > 35  # and it is still the same picture (44-46 dB here)


def test_bf16_without_native_bf16_is_refused_saying_what_to_set(tiny_settings, monkeypatch):
    monkeypatch.setattr(openvino_backend, "has_native_bf16", lambda: False)
    with pytest.raises(ModelUnavailable, match="ALEAART_OPENVINO_PRECISION=bf16 needs a CPU with native bf16"):
        Engine.load(tiny_settings.model_copy(update={"backend": "openvino", "openvino_precision": "bf16"}))


def test_auto_is_openvino_on_the_cpu_and_torch_on_a_gpu_and_bf16_where_the_cpu_has_it(tiny_engine):
    assert pick_backend("auto", torch.device("cpu")) == "openvino"
    assert pick_backend("auto", torch.device("cuda")) == "torch"
    assert pick_backend("torch", torch.device("cpu")) == "torch"
    native = has_native_bf16()
    assert pick_precision("auto") == ("bf16" if native else "f32")
    assert pick_precision("f32") == "f32" and pick_precision("bf16") == "bf16"
    # the tests' engine renders as a service here does
    assert tiny_engine.recipe["backend"] == f"openvino-{VERSION}" + ("-bf16" if native else "")


def test_openvino_on_a_gpu_is_refused_saying_what_to_set(tiny_settings):
    with pytest.raises(ModelUnavailable, match="ALEAART_BACKEND=openvino runs on the CPU, not cuda"):
        Engine.load(tiny_settings.model_copy(update={"backend": "openvino", "device": "cuda"}))


def test_a_restart_reads_the_saved_models_instead_of_converting(tiny_settings, tmp_path, monkeypatch):
    settings = tiny_settings.model_copy(update={"backend": "openvino", "cache_dir": tmp_path})
    first = Engine.load(settings)
    [saved] = (tmp_path / "openvino").iterdir()
    assert sorted(p.name for p in saved.iterdir()) == ["unet.bin", "unet.xml", "vae_decoder.bin", "vae_decoder.xml"]
    expected = first.generate(ODD).image

    def no_conversion(*args):
        raise AssertionError("converted again")

    monkeypatch.setattr(openvino_backend, "_convert", no_conversion)
    again = Engine.load(settings)
    assert again.generate(ODD).image.tobytes() == expected.tobytes()

    (saved / "unet.xml").write_text("not a model")  # damaged: converted again (not by the stub), and replaced
    monkeypatch.undo()
    healed = Engine.load(settings)
    assert healed.generate(ODD).image.tobytes() == expected.tobytes()
    assert (saved / "unet.xml").read_text().startswith("<?xml")


RENDER_ONCE = """
import hashlib, sys
from aleaart.config import Settings
from aleaart.engine.pipeline import Engine
from aleaart.params import RenderSpec
spec = RenderSpec(prompt="two workers", sampler="Euler a", width=64, height=64, steps=2, guidance_scale=7.5, seed=3)
engine = Engine.load(Settings(backend="openvino"))
print(hashlib.sha256(engine.generate(spec).image.tobytes()).hexdigest())
"""


def test_workers_starting_together_on_one_cache_folder_all_render_and_leave_whole_files(tiny_env, tmp_path):
    """Celery workers on one host share ALEAART_CACHE_DIR: they build the tiny model and convert it at once."""
    env = {**tiny_env, "ALEAART_CACHE_DIR": str(tmp_path)}
    workers = [subprocess.Popen([sys.executable, "-c", RENDER_ONCE], env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, start_new_session=True) for _ in range(2)]
    try:
        answers = [worker.communicate(timeout=600) for worker in workers]
    finally:
        for worker in workers:
            if worker.poll() is None:
                os.killpg(worker.pid, signal.SIGKILL)
                worker.wait()
    assert [worker.returncode for worker in workers] == [0, 0], [err[-2000:] for _, err in answers]
    assert answers[0][0] == answers[1][0]  # the same pixels
    [saved] = (tmp_path / "openvino").iterdir()
    assert sorted(p.name for p in saved.iterdir()) == ["unet.bin", "unet.xml", "vae_decoder.bin", "vae_decoder.xml"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging folders left
    third = subprocess.run([sys.executable, "-c", RENDER_ONCE], env=env, capture_output=True, text=True, timeout=600)
    assert third.returncode == 0 and third.stdout == answers[0][0]  # and the saved files read back whole
