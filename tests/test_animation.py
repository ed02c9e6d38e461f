"""Animations: the request, frames on the tiny model, and the job, its files and routes (the loop's path is
test_motion.py, the encoders test_video.py)."""

from __future__ import annotations

import io
import json
import threading

import numpy as np
import pytest
from fakes import FakeEngine, wait_done
from PIL import Image
from pixels import decode_mp4, psnr

from aleaart.errors import GenerationCancelled, InvalidParams
from aleaart.jobs import AnimationRequest, RenderRequest, Runner
from aleaart.jobs.render import graded
from aleaart.motion import noise_walk, style_morph
from aleaart.params import STYLES, RenderParams, RenderSpec, spec_from_params

SEED_PARAMS = {"promptIndex": 3, "styleIndex": 1, "samplerIndex": 0, "aspectIndex": 0, "steps": 18, "cfg": 70,
               "latentSeed": 4242, "paletteId": 2}
TINY = dict(prompt="animation test, oil painting, dramatic lighting", sampler="DPM++ 2M Karras", width=96, height=96,
            steps=4, guidance_scale=7.5, seed=42)


def difference(a: Image.Image, b: Image.Image) -> float:
    return float(np.mean(np.abs(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64))))


# The request

def test_requests_check_their_ranges_and_keys_follow_the_settings():
    spec = spec_from_params(RenderParams.from_json(SEED_PARAMS))
    with pytest.raises(InvalidParams, match="frames"):
        AnimationRequest(spec, "9", frames=7)
    with pytest.raises(InvalidParams, match="fps"):
        AnimationRequest(spec, "9", fps=31)
    with pytest.raises(InvalidParams, match="neighbours"):
        AnimationRequest(spec, "9", neighbours=0)
    with pytest.raises(InvalidParams, match="morphStyle"):
        AnimationRequest(spec, "9", morph_style=10)
    with pytest.raises(InvalidParams, match="own style"):
        AnimationRequest(spec, "9", morph_style=1)
    recipe = {"model": "m"}
    base = AnimationRequest(spec, "9", frames=8)
    keys = {base.key(recipe), AnimationRequest(spec, "9", frames=9).key(recipe),
            AnimationRequest(spec, "9", frames=8, fps=24).key(recipe),
            AnimationRequest(spec, "9", frames=8, neighbours=2).key(recipe),
            AnimationRequest(spec, "9", frames=8, morph_style=4).key(recipe), base.key({"model": "other"})}
    assert len(keys) == 6
    morph = AnimationRequest(spec, "9", frames=8, morph_style=4)
    assert AnimationRequest.from_json(json.loads(json.dumps(morph.to_json()))) == morph
    assert STYLES[4].text in morph.morph_prompt() and STYLES[1].text not in morph.morph_prompt()
    assert base.total_steps() == 8 * spec.steps


# On the tiny model

def test_frame_zero_is_the_still_the_loop_is_smooth_and_repeats(tiny_engine):
    spec = RenderSpec(**TINY)
    still = tiny_engine.generate(spec).image
    walk = noise_walk(spec.seed, 8, 1)
    frames = [r.image for r in tiny_engine.animate(spec, walk)]
    assert len(frames) == 8 and all(f.size == (96, 96) for f in frames)
    assert psnr(frames[0], still) > 40  # batching may move a float's last bits, never the picture
    steps = [difference(frames[i], frames[(i + 1) % 8]) for i in range(8)]
    assert np.mean(steps) < difference(frames[0], frames[4])  # frame 4 is the neighbour's own noise
    assert [r.image.tobytes() for r in tiny_engine.animate(spec, walk)] == [f.tobytes() for f in frames]


def test_a_style_morph_starts_at_the_still_and_moves_toward_the_style(tiny_engine):
    spec = RenderSpec(**TINY)
    still = tiny_engine.generate(spec).image
    frames = [r.image for r in tiny_engine.animate(spec, style_morph(spec.seed, 8),
                                                    morph_prompt="animation test, watercolor, dramatic lighting")]
    assert psnr(frames[0], still) > 40
    assert difference(frames[0], frames[1]) < difference(frames[0], frames[4])


@pytest.mark.parametrize(("device_budget", "sampler", "batches"), [({}, "DPM++ 2M Karras", 8),
                                                                   ({"cpu": 4096}, "DPM++ 2M Karras", 1),
                                                                   ({"cpu": 4096}, "DPM++ SDE Karras", 8)])
def test_frames_render_in_batches_with_progress_per_frame(tiny_engine, monkeypatch, device_budget, sampler, batches):
    """On CPU a frame at a time (batches were measured no faster there); where the device has a memory budget
    (CUDA), as many as fit it, except for samplers whose step noise is batch-shaped."""
    from aleaart.engine import pipeline as engine_module

    monkeypatch.setattr(engine_module, "ANIMATION_MEMORY_MB", device_budget)
    spec = RenderSpec(**{**TINY, "sampler": sampler})
    calls: list[int] = []
    pipeline = tiny_engine.pipeline
    original = pipeline.__class__.__call__

    def counting(self, *args, **kwargs):
        calls.append(kwargs["latents"].shape[0])
        return original(self, *args, **kwargs)

    progress: list[tuple[int, int]] = []
    pipeline.__class__.__call__ = counting
    try:
        tiny_engine.animate(spec, noise_walk(spec.seed, 8, 2), on_step=lambda s, t: progress.append((s, t)))
    finally:
        pipeline.__class__.__call__ = original
    assert len(calls) == batches and sum(calls) == 8
    done = [s for s, _ in progress]
    assert done == sorted(done) and progress[-1][0] == progress[-1][1]
    if batches == 1:  # batched frames are the frames rendered one by one, up to a float's last bits
        walk = noise_walk(spec.seed, 8, 2)
        assert psnr(tiny_engine.animate(spec, walk)[5].image, tiny_engine.animate(spec, walk[5:6])[0].image) > 40


def test_an_animation_is_cancelled_between_batches(tiny_engine):
    spec = RenderSpec(**{**TINY, "sampler": "DPM++ SDE Karras"})  # one frame a batch
    cancel = threading.Event()

    def stop_after_first_frame(step: int, total: int) -> None:
        if step >= total // 8:
            cancel.set()

    with pytest.raises(GenerationCancelled):
        tiny_engine.animate(spec, noise_walk(spec.seed, 8, 1), on_step=stop_after_first_frame, cancel=cancel)


def test_the_job_stores_an_mp4_whose_first_frame_is_the_tokens_still(tiny_engine):
    spec = RenderSpec(**TINY)
    request = AnimationRequest(spec, "5", frames=8, fps=8)
    mp4, webp = Runner(tiny_engine).run(request)
    assert mp4.record.file.endswith(".mp4") and webp.record.file.endswith(".webp")
    assert mp4.record.kind == "animation" and mp4.record.source == RenderRequest(spec, "5").key(tiny_engine.recipe)
    frames, fps, tags = decode_mp4(mp4.data)
    assert len(frames) == 8 and fps == 8 and frames[0].size == (96, 96)
    still = graded(tiny_engine.generate(spec).image, spec)
    # After H.264: the luma keeps the still to within 35 dB; colour, subsampled 4:2:0, loses more of the tiny model's
    # pixel-sized noise (a real model's images are smooth), and still frame 0 is far nearer than any other frame.
    assert psnr(frames[0].convert("L"), still.convert("L")) > 35
    assert all(psnr(frames[0], still) > psnr(other, still) + 6 for other in frames[1:])
    assert json.loads(tags["comment"])["operation"] == {"frames": 8, "fps": 8, "neighbours": 3}
    with Image.open(io.BytesIO(webp.data)) as animated:
        assert animated.n_frames == 8


# The job and the routes (fake engine)

@pytest.fixture
def client(fake_client):
    return fake_client


def test_an_animation_is_two_stored_files_served_with_their_types_and_ranges(client):
    body = {"parameters": SEED_PARAMS, "tokenId": "9", "frames": 8, "fps": 6}
    made = client.post("/animations", json=body)
    assert made.status_code == 202 and made.json()["kind"] == "animation"
    done = wait_done(client, made.json()["jobId"])
    assert done["status"] == "succeeded" and done["totalSteps"] == 8 * 18 == done["step"]
    mp4, webp = done["results"]
    assert mp4["imageUrl"].endswith(".mp4") and webp["imageUrl"].endswith(".webp") and mp4["kind"] == "animation"
    video = client.get(mp4["imageUrl"])
    assert video.status_code == 200 and video.headers["content-type"] == "video/mp4"
    assert video.headers["accept-ranges"] == "bytes"
    frames, fps, _ = decode_mp4(video.content)
    assert len(frames) == 8 and fps == 6 and frames[0].size == (512, 512)
    seek = client.get(mp4["imageUrl"], headers={"Range": "bytes=1000-1999"})
    assert seek.status_code == 206 and seek.content == video.content[1000:2000]
    assert client.get(webp["imageUrl"]).headers["content-type"] == "image/webp"

    still = client.post("/generate-image", json={"parameters": SEED_PARAMS, "tokenId": "9"}).json()
    assert mp4["source"] == still["imageId"]
    assert psnr(frames[0], Image.open(io.BytesIO(client.get(still["imageUrl"]).content)).convert("RGB")) > 30
    listed = client.get("/images", params={"source": still["imageId"], "kind": "animation"}).json()
    assert listed["total"] == 2

    again = wait_done(client, client.post("/animations", json=body).json()["jobId"])
    assert again["results"][0]["cached"] is True and again["results"][0]["imageId"] == mp4["imageId"]


@pytest.mark.parametrize(("change", "field"), [({"frames": 7}, "frames"), ({"frames": 121}, "frames"),
                                               ({"fps": 5}, "fps"), ({"fps": 31}, "fps"),
                                               ({"neighbours": 9}, "neighbours"), ({"morphStyle": 10}, "morphStyle"),
                                               ({"morphStyle": 1}, "own style"), ({"frames": "many"}, "frames")])
def test_bad_animation_settings_are_422_naming_the_field(client, change, field):
    answer = client.post("/animations", json={"parameters": SEED_PARAMS, "tokenId": "9", **change})
    assert answer.status_code == 422 and answer.json()["code"] == "invalid_params"
    assert field in answer.json()["error"]


def test_a_cancelled_animation_stores_nothing(tmp_path):
    from fastapi.testclient import TestClient

    from aleaart.api import create_app
    from aleaart.config import Settings

    engine = FakeEngine()
    engine.release.clear()
    app = create_app(Settings(images_dir=tmp_path / "images"), loader=lambda: engine)
    with TestClient(app) as client:
        assert app.state.model.wait(60)
        made = client.post("/animations", json={"parameters": SEED_PARAMS, "tokenId": "9", "frames": 8}).json()
        assert engine.started.wait(10)
        assert client.delete(f"/jobs/{made['jobId']}").status_code == 200
        engine.release.set()
        assert wait_done(client, made["jobId"])["status"] == "cancelled"
        assert client.get("/images", params={"kind": "animation"}).json()["total"] == 0


def test_the_tokens_metadata_names_its_animation(tmp_path):
    import warnings

    from evm import deploy, mint_cheap
    from fastapi.testclient import TestClient
    from web3 import EthereumTesterProvider, Web3

    from aleaart.api import create_app
    from aleaart.chain import ChainReader
    from aleaart.config import Settings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        w3 = Web3(EthereumTesterProvider())
    contract = deploy(w3)
    reader = ChainReader(rpc_url="eth-tester", chain_id=w3.eth.chain_id, address=contract.address, web3=w3)
    token_id = mint_cheap(contract, w3)
    app = create_app(Settings(images_dir=tmp_path / "images"), loader=FakeEngine, chain=reader)
    with TestClient(app) as client:
        assert app.state.model.wait(60)
        assert "animation_url" not in client.get(f"/tokens/{token_id}/metadata.json").json()
        made = client.post(f"/tokens/{token_id}/animation", json={"frames": 8})
        assert made.status_code == 202, made.text
        mp4 = wait_done(client, made.json()["jobId"])["results"][0]
        metadata = client.get(f"/tokens/{token_id}/metadata.json").json()
        assert metadata["animation_url"] == f"http://testserver{mp4['imageUrl']}"
        bad = client.post(f"/tokens/{token_id}/animation", json={"frames": 8, "extra": 1})
        assert bad.status_code == 422 and "extra" in bad.json()["error"]

