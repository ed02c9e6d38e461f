"""The CUDA path (float16) on the tiny model. CI and these machines have no GPU, so these run only where one
is: on a GPU host, `./run_tests.sh -k cuda` checks the path the service ships for it."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from aleaart.engine.pipeline import Engine, frames_per_batch
from aleaart.params import RenderSpec

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

SPEC = RenderSpec(prompt="cyberpunk cityscape", sampler="DPM++ 2M Karras", width=64, height=88, steps=4,
                  guidance_scale=7.5, seed=12345)


@pytest.fixture(scope="module")
def cuda_engine(tiny_settings):
    return Engine.load(tiny_settings.model_copy(update={"device": "cuda"}))


def test_cuda_renders_in_float16_the_same_every_time(cuda_engine, tiny_engine):
    assert cuda_engine.recipe["device"] == "cuda" and cuda_engine.recipe["dtype"] == "float16"
    first = np.asarray(cuda_engine.generate(SPEC).image, dtype=np.float64)
    again = np.asarray(cuda_engine.generate(SPEC).image, dtype=np.float64)
    assert first.shape == (88, 64, 3) and first.std() > 1
    assert first.tobytes() == again.tobytes()
    on_cpu = np.asarray(tiny_engine.generate(SPEC).image, dtype=np.float64)
    assert 10 * np.log10(255**2 / max(((first - on_cpu) ** 2).mean(), 1e-9)) > 25  # the seed means the same noise


def test_cuda_batches_animation_frames_and_variations(cuda_engine):
    assert frames_per_batch(cuda_engine.device, cuda_engine.dtype, 512, 512) == 12
    variations = cuda_engine.generate_variations(replace(SPEC, sampler="Euler a"), [1, 2, 3], 0.3)
    assert len(variations) == 3 and len({v.image.tobytes() for v in variations}) == 3
