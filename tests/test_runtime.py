"""Engine runtimes: the registry, how ALEAART_BACKEND picks one, and a runtime added as one module and one line."""

from __future__ import annotations

import pytest
import torch
from counting_runtime import CALLS

from aleaart.engine import runtime
from aleaart.engine.eager import EagerRuntime
from aleaart.engine.pipeline import Engine
from aleaart.engine.runtime import RUNTIMES, RuntimeChoice, pick_backend
from aleaart.errors import ModelUnavailable
from aleaart.metadata import render_key
from aleaart.params import RenderSpec

SMALL = RenderSpec(prompt="a runtime of its own", sampler="Euler a", width=64, height=64, steps=2,
                   guidance_scale=7.5, seed=8)


def test_auto_takes_the_first_runtime_that_runs_on_the_device_and_is_installed(monkeypatch):
    assert pick_backend("auto", torch.device("cpu")) == "openvino"
    assert pick_backend("auto", torch.device("cuda")) == "torch"
    monkeypatch.setitem(RUNTIMES, "openvino", RuntimeChoice("aleaart.engine.openvino", ("cpu",), "not-installed-x"))
    assert pick_backend("auto", torch.device("cpu")) == "torch"


def test_a_named_runtime_is_checked_against_the_registry_and_the_device():
    assert pick_backend("torch", torch.device("cuda")) == "torch"
    with pytest.raises(ModelUnavailable, match="ALEAART_BACKEND must be auto or one of openvino, torch, got 'tvm'"):
        pick_backend("tvm", torch.device("cpu"))
    with pytest.raises(ModelUnavailable, match="ALEAART_BACKEND=openvino runs on the CPU, not mps: set "
                       "ALEAART_DEVICE=cpu"):
        pick_backend("openvino", torch.device("mps"))


def test_pytorch_eager_is_absent_from_the_recipe_so_older_keys_hold(tiny_settings):
    engine = Engine.load(tiny_settings.model_copy(update={"backend": "torch"}))
    assert isinstance(engine.core.runtime, EagerRuntime)
    assert "backend" not in engine.recipe


def test_a_runtime_is_one_module_and_one_registry_line(tiny_settings, monkeypatch):
    monkeypatch.setitem(runtime.RUNTIMES, "counting", RuntimeChoice("counting_runtime"))
    CALLS.clear()
    engine = Engine.load(tiny_settings.model_copy(update={"backend": "counting"}))
    assert CALLS[0] == ("prepare", engine.model_identity)  # the default model, prepared as it loads
    assert CALLS.count(("prepare", engine.model_identity)) == 1  # and once (the memory profile ran a job on it)
    eager = Engine.load(tiny_settings.model_copy(update={"backend": "torch"}))
    before = len(CALLS)
    assert engine.generate(SMALL).image.tobytes() == eager.generate(SMALL).image.tobytes()
    # one job; its UNet done with after the last step, its VAE after the decode
    assert CALLS[before:] == [("job", False), ("done_with", "unet"), ("done_with", "vae")]
    assert engine.recipe["backend"] == "counting-1"  # named in every key
    assert render_key(SMALL, engine.recipe, None) != render_key(SMALL, eager.recipe, None)
