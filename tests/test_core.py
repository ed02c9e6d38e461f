"""The render core on the tiny model: cancel, the out-of-memory retry and the prompt cache, the same for every
task and runtime."""

import hashlib
import threading
from dataclasses import replace

import numpy as np
import pytest
import torch

from aleaart.engine.pipeline import Engine
from aleaart.engine.samplers import make_scheduler
from aleaart.errors import GenerationCancelled, OutOfMemory
from aleaart.params import RenderSpec

SMALL = RenderSpec(prompt="cyberpunk cityscape", sampler="Euler a", width=64, height=64, steps=4,
                   guidance_scale=7.5, seed=12345)


def pixels_hash(image) -> str:
    return hashlib.sha256(np.asarray(image).tobytes()).hexdigest()


def test_cancel_stops_between_steps(tiny_engine):
    cancel = threading.Event()
    seen = []

    def on_step(done, total):
        seen.append(done)
        if done == 3:
            cancel.set()

    with pytest.raises(GenerationCancelled, match="after step 3"):
        tiny_engine.generate(replace(SMALL, steps=10), on_step=on_step, cancel=cancel)
    assert seen == [1, 2, 3]
    assert tiny_engine.generate(SMALL).image.size == (64, 64)  # the engine is usable after a cancel


def test_cancel_before_start(tiny_engine):
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(GenerationCancelled, match="before it started"):
        tiny_engine.generate(SMALL, cancel=cancel)


def unet_out_of_memory(monkeypatch, engine: Engine, failures: int) -> list[bool]:
    """The UNet raises CUDA's out-of-memory error on its first ``failures`` calls; returns, per call,
    whether attention slicing was on."""
    unet = engine.pipeline.unet
    forward = unet.forward
    calls: list[bool] = []

    def failing_forward(*args, **kwargs):
        calls.append(any(type(p).__name__ == "SlicedAttnProcessor" for p in unet.attn_processors.values()))
        if len(calls) <= failures:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return forward(*args, **kwargs)

    monkeypatch.setattr(unet, "forward", failing_forward)
    return calls


def test_out_of_memory_is_retried_once_with_tiling_and_slicing_then_all_is_as_before(tiny_engine, monkeypatch):
    normal = pixels_hash(tiny_engine.generate(SMALL).image)
    processors = {name: type(p) for name, p in tiny_engine.pipeline.unet.attn_processors.items()}
    freed: list[int] = []
    monkeypatch.setattr(tiny_engine.core, "free_memory", lambda: freed.append(1))
    calls = unet_out_of_memory(monkeypatch, tiny_engine, failures=1)
    retried = tiny_engine.generate(SMALL).image
    assert retried.size == (64, 64) and np.asarray(retried).std() > 1
    assert calls[0] is False and all(calls[1:]) and freed == [1]  # the retry ran with attention slicing
    monkeypatch.undo()
    assert {name: type(p) for name, p in tiny_engine.pipeline.unet.attn_processors.items()} == processors
    assert not tiny_engine.pipeline.vae.use_tiling
    assert pixels_hash(tiny_engine.generate(SMALL).image) == normal  # the next job renders as before


def test_out_of_memory_twice_is_out_of_memory_with_the_size(tiny_engine, monkeypatch):
    freed: list[int] = []
    monkeypatch.setattr(tiny_engine.core, "free_memory", lambda: freed.append(1))
    unet_out_of_memory(monkeypatch, tiny_engine, failures=2)
    with pytest.raises(OutOfMemory, match="out of cpu memory for a 64x64 image") as caught:
        tiny_engine.generate(SMALL)
    assert caught.value.code == "out_of_memory" and caught.value.status == 503 and freed == [1, 1]
    monkeypatch.undo()
    assert not tiny_engine.pipeline.vae.use_tiling
    assert tiny_engine.generate(SMALL).image.size == (64, 64)


def test_prompts_are_encoded_once_and_give_the_pixels_the_pipeline_would(tiny_engine, monkeypatch):
    spec = replace(SMALL, prompt="a prompt seen for the first time here", seed=99)
    tiny_engine.pipeline.scheduler = make_scheduler(spec.sampler, tiny_engine.core.scheduler_config, seed=spec.seed)
    direct = tiny_engine.pipeline(prompt=spec.prompt, width=64, height=64, num_inference_steps=spec.steps,
                                  guidance_scale=spec.guidance_scale, output_type="pil",
                                  generator=torch.Generator("cpu").manual_seed(spec.seed))
    encoder = tiny_engine.pipeline.text_encoder
    forward, encoded = encoder.forward, []
    monkeypatch.setattr(encoder, "forward", lambda *a, **k: (encoded.append(1), forward(*a, **k))[1])
    first = tiny_engine.generate(spec).image
    assert len(encoded) == 2  # the prompt and the empty negative prompt
    again = tiny_engine.generate(spec).image
    tiny_engine.transform(spec, first, 0.5)
    assert len(encoded) == 2  # neither rendering again nor img2img encodes it again
    assert pixels_hash(first) == pixels_hash(again)
    assert pixels_hash(first) == pixels_hash(direct.images[0])  # what the pipeline gives with the prompt itself
