"""The engine on the tiny model: samplers, sizes, reproducibility, loading paths and errors (the render core's
cancel, out-of-memory retry and prompt cache are test_core.py)."""

import hashlib
import json
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest
import torch
from pixels import psnr

from aleaart.config import Settings
from aleaart.engine.pipeline import Engine, frames_per_batch
from aleaart.errors import ModelUnavailable
from aleaart.params import ASPECTS, SAMPLERS, RenderParams, RenderSpec, spec_from_params

SMALL = RenderSpec(prompt="cyberpunk cityscape", sampler="Euler a", width=64, height=64, steps=4,
                   guidance_scale=7.5, seed=12345)


def pixels_hash(image) -> str:
    return hashlib.sha256(np.asarray(image).tobytes()).hexdigest()


# Renders SMALL with every sampler and two seeds (0 included) in a fresh process.
HASHES_SCRIPT = """
import hashlib, json, os, sys
os.environ["HF_HUB_OFFLINE"] = "1"
import numpy as np
from dataclasses import replace
from aleaart.config import Settings
from aleaart.engine.pipeline import Engine, frames_per_batch
from aleaart.params import RenderSpec
spec = RenderSpec(**json.loads(sys.argv[1]))
engine = Engine.load(Settings())
out = {}
for sampler in json.loads(sys.argv[2]):
    for seed in (0, 12345):
        image = engine.generate(replace(spec, sampler=sampler, seed=seed)).image
        out[f"{sampler}/{seed}"] = hashlib.sha256(np.asarray(image).tobytes()).hexdigest()
print(json.dumps(out))
"""


def hashes_in_subprocess(env) -> dict[str, str]:
    fields = {k: v for k, v in SMALL.canonical().items() if k != "params"}
    cmd = [sys.executable, "-c", HASHES_SCRIPT, json.dumps(fields), json.dumps(list(SAMPLERS))]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_every_sampler_renders_a_real_image(tiny_engine, sampler):
    spec = spec_from_params(RenderParams(3, 2, SAMPLERS.index(sampler), 0, 18, 75, 7, 0))
    steps = []
    rendered = tiny_engine.generate(spec, on_step=lambda done, total: steps.append((done, total)))
    assert rendered.image.size == (512, 512) and rendered.image.mode == "RGB"
    assert np.asarray(rendered.image).std() > 1  # not a blank frame
    done = [d for d, _ in steps]
    assert done == list(range(1, len(steps) + 1)) and steps[-1][0] == steps[-1][1] >= 18


def test_same_params_same_pixels_across_processes(tiny_engine, tiny_env):
    first = hashes_in_subprocess(tiny_env)
    second = hashes_in_subprocess(tiny_env)
    assert first == second
    assert len(first) == 2 * len(SAMPLERS)
    here = {f"{s}/{seed}": pixels_hash(tiny_engine.generate(replace(SMALL, sampler=s, seed=seed)).image)
            for s in SAMPLERS for seed in (0, 12345)}
    assert here == first  # the in-process engine uses the same threads, so the same pixels


def test_different_seeds_differ(tiny_engine):
    a = np.asarray(tiny_engine.generate(replace(SMALL, seed=1)).image, dtype=np.int16)
    b = np.asarray(tiny_engine.generate(replace(SMALL, seed=2)).image, dtype=np.int16)
    assert np.abs(a - b).mean() > 1


@pytest.mark.parametrize("aspect", ASPECTS, ids=lambda a: a.name)
def test_every_aspect_has_its_exact_size(tiny_engine, aspect):
    spec = replace(SMALL, width=aspect.width, height=aspect.height, steps=2)
    assert tiny_engine.generate(spec).image.size == (aspect.width, aspect.height)


def test_tall_is_the_centre_crop_of_the_rendered_688_rows(tiny_engine):
    tall = tiny_engine.generate(replace(SMALL, width=512, height=683, steps=2)).image
    full = tiny_engine.generate(replace(SMALL, width=512, height=688, steps=2)).image
    assert np.array_equal(np.asarray(tall), np.asarray(full)[2:685])


def test_recipe_names_model_and_settings(tiny_engine):
    recipe = tiny_engine.recipe
    assert recipe["model"].startswith("aleaart-tiny-v")
    assert (recipe["device"], recipe["dtype"]) == ("cpu", "float32")


def test_the_weights_hash_does_not_depend_on_the_memory_layout(tiny_engine, tiny_settings):
    """A UNet in channels_last (as a faster path would put it) has the same weights, so the same hash."""
    from diffusers import StableDiffusionPipeline

    from aleaart.engine.tiny import cached_tiny_model

    pipeline = StableDiffusionPipeline.from_pretrained(cached_tiny_model(tiny_settings.cache_dir),
                                                       local_files_only=True, safety_checker=None)
    pipeline.unet.to(memory_format=torch.channels_last)
    assert not all(p.is_contiguous() for p in pipeline.unet.parameters() if p.dim() == 4)
    relaid = Engine(pipeline, model_name="tiny", model_identity="tiny")
    assert relaid.weights_sha256 == tiny_engine.weights_sha256


def test_single_file_checkpoint_renders_the_same_pixels(tiny_engine, tiny_settings, tmp_path):
    from aleaart.engine.checkpoint import export_single_file

    path = export_single_file(tiny_engine.pipeline, tmp_path / "tiny.safetensors")
    folder = tiny_engine.pipeline.name_or_path
    single = Engine.load(replace_settings(tiny_settings, model=str(path), model_config_dir=folder))
    assert single.model_name == "tiny"
    assert pixels_hash(single.generate(SMALL).image) == pixels_hash(tiny_engine.generate(SMALL).image)


def test_local_folder_loads_like_tiny(tiny_engine, tiny_settings):
    folder = Engine.load(replace_settings(tiny_settings, model=tiny_engine.pipeline.name_or_path))
    assert pixels_hash(folder.generate(SMALL).image) == pixels_hash(tiny_engine.generate(SMALL).image)
    assert folder.recipe["model"] != tiny_engine.recipe["model"]


def test_unreachable_hub_model_fails_fast_with_a_hint(tmp_path, tiny_env):
    env = {**tiny_env, "HF_HOME": str(tmp_path / "empty-hf-home"), "ALEAART_MODEL": "someone/not-cached-model"}
    code = "from aleaart.config import Settings\nfrom aleaart.engine.pipeline import Engine\nEngine.load(Settings())"
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert "ModelUnavailable: model 'someone/not-cached-model' could not be loaded" in last
    assert "not in the local Hugging Face cache" in last and "ALEAART_MODEL=tiny" in last


def test_corrupt_checkpoint_is_reported(tiny_settings, tmp_path):
    bad = tmp_path / "broken.safetensors"
    bad.write_bytes(b"this is not a checkpoint")
    expected = "model '.*broken.safetensors' could not be loaded: .*set ALEAART_MODEL=tiny"
    with pytest.raises(ModelUnavailable, match=expected):
        Engine.load(replace_settings(tiny_settings, model=str(bad), model_config_dir=str(tmp_path)))


def replace_settings(settings: Settings, **changes) -> Settings:
    return settings.model_copy(update=changes)


# Out of memory


# The CUDA path (float16). CI and these machines have no GPU, so these run only where one is: on a GPU host,
# `./run_tests.sh -k cuda` checks the path the service ships for it.
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
ODD_SIZE = replace(SMALL, sampler="DPM++ 2M Karras", height=88)  # 11 latent rows


@pytest.fixture(scope="module")
def cuda_engine(tiny_settings):
    return Engine.load(tiny_settings.model_copy(update={"device": "cuda"}))


@needs_cuda
def test_cuda_renders_in_float16_the_same_every_time(cuda_engine, tiny_engine):
    assert cuda_engine.recipe["device"] == "cuda" and cuda_engine.recipe["dtype"] == "float16"
    assert "backend" not in cuda_engine.recipe  # auto: PyTorch on a GPU
    first = cuda_engine.generate(ODD_SIZE).image
    assert first.size == (64, 88) and np.asarray(first).std() > 1
    assert first.tobytes() == cuda_engine.generate(ODD_SIZE).image.tobytes()
    assert psnr(first, tiny_engine.generate(ODD_SIZE).image) > 25  # the seed means the same noise on every device


@needs_cuda
def test_cuda_batches_animation_frames_and_variations(cuda_engine):
    assert frames_per_batch(cuda_engine.device, cuda_engine.dtype, 512, 512) == 12
    variations = cuda_engine.generate_variations(SMALL, [1, 2, 3], 0.3)
    assert len(variations) == 3 and len({v.image.tobytes() for v in variations}) == 3
