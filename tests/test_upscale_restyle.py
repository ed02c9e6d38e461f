"""Upscale and restyle: the requests, img2img on the tiny model, and the jobs, stored images and routes."""

from __future__ import annotations

import io
import json
from dataclasses import replace

import numpy as np
import pytest
from fakes import wait_done
from fastapi.testclient import TestClient
from PIL import Image

from aleaart.api import create_app
from aleaart.config import Settings
from aleaart.errors import InvalidParams
from aleaart.jobs import RestyleRequest, SourceImage, UpscaleRequest
from aleaart.jobs.image_kind import img2img_steps
from aleaart.metadata import JSON_KEY, PARAMETERS_KEY, read_png_text
from aleaart.params import RenderSpec
from aleaart.resample import lanczos

SPEC = RenderSpec(prompt="a lighthouse, painterly | max detail", sampler="DPM++ 2M Karras", width=100, height=60,
                  steps=18, guidance_scale=7.0, seed=5)
SOURCE = SourceImage(key="a" * 64, sha256="b" * 64, spec=SPEC, token="3")
SEED_PARAMS = {"promptIndex": 3, "styleIndex": 1, "samplerIndex": 0, "aspectIndex": 4, "steps": 18, "cfg": 70,
               "latentSeed": 4242, "paletteId": 2}


# The requests (pure)

def test_upscale_settings_defaults_and_limits():
    hires = UpscaleRequest(SOURCE)
    assert hires.settings() == {"scale": 2, "mode": "hires", "strength": 0.35}
    assert hires.result_spec().width == 200 and hires.result_spec().height == 120
    assert hires.total_steps() == img2img_steps(18, 0.35) == 6
    lanczos4 = UpscaleRequest(SOURCE, 4, "lanczos")
    assert lanczos4.settings() == {"scale": 4, "mode": "lanczos"} and lanczos4.total_steps() == 1
    with pytest.raises(InvalidParams, match="scale must be 2 with mode hires"):
        UpscaleRequest(SOURCE, 3)
    with pytest.raises(InvalidParams, match="scale must be 2..4 with lanczos, got 5"):
        UpscaleRequest(SOURCE, 5, "lanczos")
    with pytest.raises(InvalidParams, match="strength applies to mode hires only"):
        UpscaleRequest(SOURCE, 2, "lanczos", 0.3)
    with pytest.raises(InvalidParams, match="strength must be 0.1..0.75, got 0.9"):
        UpscaleRequest(SOURCE, strength=0.9)
    with pytest.raises(InvalidParams, match="mode must be one of hires, lanczos"):
        UpscaleRequest(SOURCE, mode="bicubic")  # type: ignore[arg-type]
    big = replace(SOURCE, spec=replace(SPEC, width=1536, height=1024))
    with pytest.raises(InvalidParams, match="the hires image would be 3072x2048, over 2048"):
        UpscaleRequest(big)
    assert UpscaleRequest(big, 2, "lanczos").result_spec().width == 3072


def test_restyle_replaces_the_style_and_checks_its_ranges():
    restyle = RestyleRequest(SOURCE, 8)
    assert restyle.result_spec().prompt == "a lighthouse, painterly, watercolor, soft, flowing | max detail"
    assert restyle.settings() == {"styleIndex": 8, "strength": 0.5} and restyle.total_steps() == 9
    with pytest.raises(InvalidParams, match="strength must be 0.2..0.8, got 0.1"):
        RestyleRequest(SOURCE, 8, 0.1)
    with pytest.raises(InvalidParams, match="styleIndex must be 0..9, got 10"):
        RestyleRequest(SOURCE, 10)
    with pytest.raises(InvalidParams, match="not one denoising step"):
        RestyleRequest(replace(SOURCE, spec=replace(SPEC, steps=2)), 1, 0.2)


def test_keys_follow_the_source_the_settings_and_the_recipe_and_requests_round_trip():
    recipe = {"model": "m"}
    keys = {UpscaleRequest(SOURCE).key(recipe), UpscaleRequest(SOURCE, strength=0.4).key(recipe),
            UpscaleRequest(SOURCE, 2, "lanczos").key(recipe), UpscaleRequest(SOURCE).key({"model": "other"}),
            UpscaleRequest(replace(SOURCE, key="c" * 64)).key(recipe), RestyleRequest(SOURCE, 1).key(recipe)}
    assert len(keys) == 6
    assert UpscaleRequest(SOURCE).key(recipe) == UpscaleRequest(SOURCE, 2, "hires", 0.35).key(recipe)
    for request in (UpscaleRequest(SOURCE), UpscaleRequest(SOURCE, 3, "lanczos"), RestyleRequest(SOURCE, 4, 0.6)):
        assert type(request).from_json(json.loads(json.dumps(request.to_json()))) == request
        assert request.sources() == ((SOURCE.key, SOURCE.sha256),) and request.token_id == "3"


# img2img on the tiny model

def test_img2img_keeps_the_size_runs_the_last_part_of_the_schedule_and_repeats(tiny_engine):
    source = tiny_engine.generate(SPEC).image
    steps: list[tuple[int, int]] = []
    first = tiny_engine.transform(SPEC, source, 0.5, on_step=lambda step, total: steps.append((step, total)))
    assert first.image.size == (100, 60)  # not a multiple of 8: padded for the VAE, cropped back
    assert steps == [(i, 9) for i in range(1, 10)]
    assert tiny_engine.transform(SPEC, source, 0.5).image.tobytes() == first.image.tobytes()
    assert first.image.tobytes() != source.tobytes()
    stronger = np.asarray(tiny_engine.transform(SPEC, source, 0.8).image, dtype=float)
    change = lambda image: np.abs(np.asarray(image, dtype=float) - np.asarray(source, dtype=float)).mean()  # noqa: E731
    assert change(first.image) < change(stronger)


def test_large_images_go_through_the_vae_in_tiles(tiny_engine, monkeypatch):
    vae = tiny_engine.pipeline.vae
    tiled: list[str] = []
    for name in ("_tiled_encode", "tiled_decode"):
        original = getattr(vae, name)
        monkeypatch.setattr(vae, name, lambda *a, _o=original, _n=name, **k: (tiled.append(_n), _o(*a, **k))[1])
    monkeypatch.setattr(vae, "tile_sample_min_size", 64)  # the tiny VAE's tiles, small enough to show here
    monkeypatch.setattr(vae, "tile_latent_min_size", 8)
    source = lanczos(tiny_engine.generate(SPEC).image, 2)
    spec = replace(SPEC, width=200, height=120)
    whole = tiny_engine.transform(spec, source, 0.35).image
    assert tiled == []
    monkeypatch.setattr(tiny_engine.core, "tile_above", 128)
    in_tiles = tiny_engine.transform(spec, source, 0.35).image
    assert set(tiled) == {"_tiled_encode", "tiled_decode"} and not vae.use_tiling  # switched off again
    assert in_tiles.size == whole.size == (200, 120)
    assert tiny_engine.transform(spec, source, 0.35).image.tobytes() == in_tiles.tobytes()


# The jobs and routes (fake engine)

@pytest.fixture
def client(fake_client):
    return fake_client


def stored_source(client) -> dict:
    return client.post("/generate-image", json={"parameters": SEED_PARAMS, "tokenId": "9"}).json()


def pixels_of(client, url: str) -> Image.Image:
    return Image.open(io.BytesIO(client.get(url).content))


def test_hires_upscale_is_a_stored_image_under_its_source_and_asking_twice_gives_it(client):
    source = stored_source(client)
    made = client.post(f"/images/{source['imageId']}/upscale", json={})
    assert made.status_code == 202 and made.json()["kind"] == "upscale"
    done = wait_done(client, made.json()["jobId"])
    assert done["status"] == "succeeded" and done["totalSteps"] == 6
    [result] = done["results"]
    assert result["kind"] == "upscale" and result["source"] == source["imageId"] and result["tokenId"] == "9"
    assert pixels_of(client, result["imageUrl"]).size == (1024, 1366)
    text = read_png_text(client.get(result["imageUrl"]).content)
    chunk = json.loads(text[JSON_KEY])
    assert chunk["kind"] == "upscale" and chunk["source"] == source["imageId"]
    assert chunk["operation"] == {"scale": 2, "mode": "hires", "strength": 0.35}
    assert "Hires upscale: 2, Mode: hires, Denoising strength: 0.35" in text[PARAMETERS_KEY]
    assert "Size: 1024x1366" in text[PARAMETERS_KEY]
    listed = client.get("/images", params={"source": source["imageId"]}).json()
    assert [i["imageId"] for i in listed["images"]] == [result["imageId"]]

    again = wait_done(client, client.post(f"/images/{source['imageId']}/upscale", json={"scale": 2}).json()["jobId"])
    assert again["results"][0]["cached"] is True and again["results"][0]["imageId"] == result["imageId"]
    assert len(client.app.state.model.engine.calls) == 2  # the source's render and one img2img


def test_lanczos_upscale_is_the_sources_pixels_resized_without_the_model(client):
    source = stored_source(client)
    done = wait_done(client, client.post(f"/images/{source['imageId']}/upscale",
                                         json={"mode": "lanczos", "scale": 4}).json()["jobId"])
    upscaled = pixels_of(client, done["results"][0]["imageUrl"])
    assert upscaled.size == (2048, 2732)
    assert upscaled.tobytes() == lanczos(pixels_of(client, source["imageUrl"]), 4).tobytes()
    assert len(client.app.state.model.engine.calls) == 1  # only the source's render


def test_restyle_redraws_with_the_new_style_in_the_prompt(client):
    source = stored_source(client)
    done = wait_done(client, client.post(f"/images/{source['imageId']}/restyle",
                                         json={"styleIndex": 8, "strength": 0.6}).json()["jobId"])
    [result] = done["results"]
    painterly, watercolor = "artistic, painterly, brush strokes", "watercolor, soft, flowing"
    assert result["prompt"] == source["prompt"].replace(painterly, watercolor)
    assert pixels_of(client, result["imageUrl"]).size == (512, 683)
    assert json.loads(read_png_text(client.get(result["imageUrl"]).content)[JSON_KEY])["operation"] == \
        {"styleIndex": 8, "strength": 0.6}
    assert client.app.state.model.engine.calls[-1].prompt == result["prompt"]


@pytest.mark.parametrize(("path", "body", "field"), [
    ("upscale", {"scale": 5}, "scale"), ("upscale", {"scale": 3}, "scale"), ("upscale", {"mode": "bicubic"}, "mode"),
    ("upscale", {"strength": 0.9}, "strength"), ("upscale", {"mode": "lanczos", "strength": 0.3}, "strength"),
    ("upscale", {"size": 2}, "size"), ("restyle", {}, "styleIndex"), ("restyle", {"styleIndex": 10}, "styleIndex"),
    ("restyle", {"styleIndex": 1, "strength": 0.1}, "strength"), ("restyle", {"styleIndex": "two"}, "styleIndex"),
])
def test_bad_settings_are_422_naming_the_field(client, path, body, field):
    source = stored_source(client)
    answer = client.post(f"/images/{source['imageId']}/{path}", json=body)
    assert answer.status_code == 422 and answer.json()["code"] == "invalid_params"
    assert field in answer.json()["error"]


def test_an_unknown_or_malformed_image_key(client):
    unknown = client.post(f"/images/{'0' * 64}/upscale", json={})
    assert unknown.status_code == 404 and unknown.json()["code"] == "not_found"
    malformed = client.post("/images/..%2F..%2Fetc/restyle", json={"styleIndex": 1})
    assert malformed.status_code in (404, 422) and malformed.json()["code"] in ("not_found", "invalid_params")
    short = client.post(f"/images/{'0' * 63}/upscale", json={})
    assert short.status_code == 422 and "key" in short.json()["error"]


# On the tiny model, end to end

def test_hires_and_restyle_of_a_tiny_model_render(tiny_engine, tmp_path):
    app = create_app(Settings(images_dir=tmp_path / "images", threads=2), loader=lambda: tiny_engine)
    with TestClient(app) as client:
        client.app.state.model.wait(30)
        source = client.post("/generate-image", json={"prompt": "a harbour, painterly", "width": 256, "height": 256,
                                                      "steps": 18, "seed": 11}).json()
        hires = wait_done(client, client.post(f"/images/{source['imageId']}/upscale", json={}).json()["jobId"])
        restyled = wait_done(client, client.post(f"/images/{source['imageId']}/restyle",
                                                 json={"styleIndex": 3}).json()["jobId"])
        big = pixels_of(client, hires["results"][0]["imageUrl"])
        assert big.size == (512, 512)
        # hires redraws, but at strength 0.35 it stays near the Lanczos enlargement it started from
        plain = np.asarray(lanczos(pixels_of(client, source["imageUrl"]), 2), dtype=float)
        assert 0 < np.abs(np.asarray(big, dtype=float) - plain).mean() < 60
        assert restyled["results"][0]["prompt"] == "a harbour, painterly, baroque, ornate, decorative"
        assert pixels_of(client, restyled["results"][0]["imageUrl"]).size == (256, 256)
