"""Variations: blended starting noise on the tiny model, and the job, its stored images and its routes."""

from __future__ import annotations

import io
import json

import pytest
import torch
from fakes import wait_done
from PIL import Image

from aleaart.engine.noise import slerp
from aleaart.metadata import JSON_KEY, PARAMETERS_KEY, read_png_text
from aleaart.params import RenderSpec

SPEC = dict(prompt="variation test", width=96, height=96, steps=5, guidance_scale=7.5, seed=42)
SEED_PARAMS = {"promptIndex": 3, "styleIndex": 1, "samplerIndex": 0, "aspectIndex": 0, "steps": 18, "cfg": 70,
               "latentSeed": 4242, "paletteId": 2}


# The noise blend

def test_slerp_starts_at_the_start_ends_at_the_end_and_keeps_the_norm():
    a, b = torch.randn(4, 8, 8, generator=torch.Generator().manual_seed(1)), torch.randn(4, 8, 8)
    assert torch.equal(slerp(0.0, a, b), a)
    assert torch.allclose(slerp(1.0, a, b), b, atol=1e-5)
    middle = slerp(0.5, a, b)
    assert abs(middle.norm() / ((a.norm() + b.norm()) / 2) - 1) < 0.05  # a straight line would lose ~30 %
    assert torch.allclose(middle, slerp(0.5, a, b))


# On the tiny model

@pytest.mark.parametrize("sampler", ["DPM++ 2M Karras", "Euler a", "DPM++ SDE Karras"])
def test_strength_zero_is_the_images_own_pixels_and_the_rest_is_deterministic(tiny_engine, sampler):
    spec = RenderSpec(sampler=sampler, **SPEC)
    own = tiny_engine.generate(spec).image.tobytes()
    assert [r.image.tobytes() for r in tiny_engine.generate_variations(spec, [43, 44], 0.0)] == [own, own]
    first = tiny_engine.generate_variations(spec, [43, 44, 45], 0.35)
    again = tiny_engine.generate_variations(spec, [43, 44, 45], 0.35)
    assert [r.image.tobytes() for r in first] == [r.image.tobytes() for r in again]
    assert len({r.image.tobytes() for r in first} | {own}) == 4
    assert all(r.image.size == (96, 96) for r in first)


@pytest.mark.parametrize(("sampler", "passes"), [("DPM++ 2M Karras", 1), ("Euler a", 1), ("DPM++ SDE Karras", 3)])
def test_variations_are_one_unet_batch_unless_the_samplers_noise_is_batch_shaped(tiny_engine, sampler, passes):
    spec = RenderSpec(sampler=sampler, **SPEC)
    alone: list[int] = []
    tiny_engine.generate(spec, on_step=lambda step, total: alone.append(total))
    per_pass = alone[-1]  # the denoising calls of one pass (SDE samplers make two a step)
    steps: list[tuple[int, int]] = []
    tiny_engine.generate_variations(spec, [1, 2, 3], 0.5, on_step=lambda step, total: steps.append((step, total)))
    assert steps[-1] == (per_pass * passes, per_pass * passes)
    assert [s for s, _ in steps] == list(range(1, per_pass * passes + 1))


# The job and the routes (fake engine)

@pytest.fixture
def client(fake_client):
    return fake_client


def test_variations_are_stored_images_linked_to_their_source(client):
    made = client.post("/variations", json={"parameters": SEED_PARAMS, "tokenId": "9", "count": 3, "strength": 0.4})
    assert made.status_code == 202 and made.json()["kind"] == "variations"
    done = wait_done(client, made.json()["jobId"])
    assert done["status"] == "succeeded" and len(done["results"]) == 3
    assert len({r["imageId"] for r in done["results"]}) == 3

    source = client.post("/generate-image", json={"parameters": SEED_PARAMS, "tokenId": "9"}).json()["imageId"]
    listed = client.get("/images", params={"source": source}).json()
    assert listed["total"] == 3 and {i["imageId"] for i in listed["images"]} == {r["imageId"] for r in done["results"]}

    png = client.get(done["results"][0]["imageUrl"]).content
    text = read_png_text(png)
    chunk = json.loads(text[JSON_KEY])
    assert chunk["kind"] == "variation" and chunk["source"] == source
    assert chunk["operation"] == {"seed": 4243, "strength": 0.4, "index": 0}
    assert "Variation seed: 4243, Variation seed strength: 0.4" in text[PARAMETERS_KEY]
    assert Image.open(io.BytesIO(png)).size == (512, 512)

    again = client.post("/variations", json={"parameters": SEED_PARAMS, "tokenId": "9", "count": 3, "strength": 0.4})
    repeat = wait_done(client, again.json()["jobId"])
    assert repeat["results"][0]["cached"] is True
    assert [r["imageId"] for r in repeat["results"]] == [r["imageId"] for r in done["results"]]


def test_strength_zero_variations_are_the_tokens_image(client):
    image = client.post("/generate-image", json={"parameters": SEED_PARAMS, "tokenId": "9"}).json()
    made = client.post("/variations", json={"parameters": SEED_PARAMS, "tokenId": "9", "count": 2, "strength": 0})
    done = wait_done(client, made.json()["jobId"])
    own = Image.open(io.BytesIO(client.get(image["imageUrl"]).content)).tobytes()
    for result in done["results"]:
        assert Image.open(io.BytesIO(client.get(result["imageUrl"]).content)).tobytes() == own


@pytest.mark.parametrize(("change", "field"), [({"count": 9}, "count"), ({"count": 0}, "count"),
                                               ({"strength": 1.5}, "strength"), ({"strength": "a lot"}, "strength")])
def test_bad_counts_and_strengths_are_422_naming_the_field(client, change, field):
    answer = client.post("/variations", json={"parameters": SEED_PARAMS, "tokenId": "9", **change})
    assert answer.status_code == 422 and answer.json()["code"] == "invalid_params"
    assert field in answer.json()["error"]
