"""Live previews: the engine's x0 decoded every N steps without changing a pixel of the result, the job's latest
preview over SSE and GET /jobs/{id}/preview.webp, throttled, and never queued for a slow reader."""

from __future__ import annotations

import asyncio
import io
import logging

import pytest
from fakes import FakeEngine
from fastapi.testclient import TestClient
from PIL import Image
from sse import sse_events

from aleaart.api import create_app
from aleaart.config import Settings
from aleaart.engine.preview import LinearDecoder, Previews, load_decoder, predicted_x0
from aleaart.jobs import Job, JobState, RenderRequest
from aleaart.params import SAMPLERS, RenderSpec
from aleaart.previews import MAX_PER_SECOND, Preview, Throttle, encode, strip
from aleaart.provenance.claim import pixel_hash

FLAT = {"prompt": "previews", "seed": 3, "steps": 6, "width": 256, "height": 256}


# Pure

def test_a_preview_is_small_webp_or_jpeg_and_a_batch_shows_side_by_side():
    images = [Image.new("RGB", (64, 64), (i * 80, 0, 0)) for i in range(3)]
    joined = strip(images)
    assert joined.size == (192, 64) and joined.getpixel((130, 5)) == (160, 0, 0)
    webp, jpeg = encode(joined), encode(joined, "image/jpeg")
    assert webp[8:12] == b"WEBP" and jpeg[:2] == b"\xff\xd8"
    preview = Preview(2, 6, webp)
    event = preview.to_event()
    assert event["step"] == 2 and event["image"].startswith("data:image/webp;base64,")


def test_the_throttle_drops_what_comes_sooner_than_a_quarter_second():
    now = [0.0]
    throttle = Throttle(lambda: now[0])
    assert throttle.allows(1, 10) and not throttle.allows(2, 10)
    now[0] += 1 / MAX_PER_SECOND
    assert throttle.allows(3, 10)


def test_bad_preview_settings_are_refused_at_the_start():
    for every in (-1, 100_000):
        with pytest.raises(ValueError, match="preview_every"):
            Settings(preview_every=every)


# The engine (tiny model)

def render_hash(engine, spec: RenderSpec, previews: Previews | None) -> tuple[str, list]:
    seen: list = []
    saved = engine.core.previews
    engine.core.previews = previews or Previews()
    try:
        with engine.previews.watching(lambda step, steps, images: seen.append((step, steps, images))):
            rendered = engine.generate(spec)
    finally:
        engine.core.previews = saved
    return pixel_hash(rendered.image), seen


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_previews_change_no_pixel_of_the_result_for_any_sampler(tiny_engine, sampler):
    spec = RenderSpec(prompt="previews", sampler=sampler, width=64, height=64, steps=5, guidance_scale=7.5, seed=11)
    plain, none = render_hash(tiny_engine, spec, None)
    previewed, seen = render_hash(tiny_engine, spec, Previews(1, LinearDecoder()))
    assert previewed == plain and none == []
    assert seen and all(images[0].size == (8, 8) for _, _, images in seen)  # the latent's size (64 / 8)
    assert [s for s, _, _ in seen] == sorted(s for s, _, _ in seen) and seen[-1][0] < seen[-1][1]


def test_each_scheduler_step_predicts_a_clean_latent(tiny_engine):
    import torch

    from aleaart.engine.samplers import make_scheduler

    for name in SAMPLERS:
        scheduler = make_scheduler(name, tiny_engine.core.scheduler_config, seed=1)
        scheduler.set_timesteps(4)
        sample = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(0)) * scheduler.init_noise_sigma
        output = scheduler.step(torch.zeros_like(sample), scheduler.timesteps[0], sample, return_dict=False)
        assert predicted_x0(scheduler, output) is not None, name


def test_a_tiny_taesd_decodes_at_eight_times_and_a_bad_one_falls_back_to_linear(tmp_path, caplog):
    import torch
    from diffusers import AutoencoderTiny

    AutoencoderTiny(encoder_block_out_channels=(8, 8, 8, 8), decoder_block_out_channels=(8, 8, 8, 8),
                    num_encoder_blocks=(1, 1, 1, 1), num_decoder_blocks=(1, 1, 1, 1)).save_pretrained(tmp_path / "t")
    decoder = load_decoder("taesd", str(tmp_path / "t"), torch.device("cpu"))
    assert decoder.name == "taesd"
    [picture] = decoder.decode(torch.zeros(1, 4, 8, 8))
    assert picture.size == (64, 64)
    caplog.set_level(logging.WARNING)
    for bad in (str(tmp_path / "missing"), str(tmp_path)):  # nothing there; a folder of something else
        assert load_decoder("taesd", bad, torch.device("cpu")).name == "linear"
    assert "is not a TAESD decoder that loads" in caplog.text and "previews use the linear factors" in caplog.text


# Over HTTP (the fake engine's previews: a picture a step)

@pytest.fixture
def client(tmp_path):
    engine = FakeEngine()
    with TestClient(create_app(Settings(images_dir=tmp_path / "images"), loader=lambda: engine)) as client:
        assert client.app.state.model.wait(60)
        client.engine = engine
        yield client


def test_the_latest_preview_over_http_404_then_200_with_an_etag_then_410(client):
    engine = client.engine
    engine.release.clear()
    engine.pause_at_step = 3
    job_id = client.post("/jobs", json=FLAT).json()["jobId"]
    assert engine.started.wait(10)
    before = client.get(f"/jobs/{job_id}/preview.webp")
    assert before.status_code == 404 and before.json()["code"] == "not_found"
    engine.release.set()
    assert engine.paused.wait(10)
    shown = client.get(f"/jobs/{job_id}/preview.webp")
    assert shown.status_code == 200 and shown.headers["content-type"] == "image/webp"
    assert shown.headers["etag"] in {f'"{job_id}-{step}-webp"' for step in (1, 2, 3)}  # the latest let through
    assert Image.open(io.BytesIO(shown.content)).size == (16, 16)
    jpeg = client.get(f"/jobs/{job_id}/preview.webp", headers={"Accept": "image/jpeg"})
    assert jpeg.headers["content-type"] == "image/jpeg" and jpeg.content[:2] == b"\xff\xd8"
    assert jpeg.headers["etag"] != shown.headers["etag"] and "Accept" in jpeg.headers["vary"]
    again = client.get(f"/jobs/{job_id}/preview.webp", headers={"If-None-Match": shown.headers["etag"]})
    assert again.status_code == 304
    engine.resume.set()
    assert client.app.state.queue.get(job_id).wait_done(10)
    over = client.get(f"/jobs/{job_id}/preview.webp")
    assert over.status_code == 410 and over.json()["code"] == "job_ended"
    assert over.json()["imageUrl"].startswith("/generated_images/art_")


def test_the_events_stream_sends_previews_before_the_result(client):
    client.engine.step_seconds = 0.3  # slower than the throttle: every step's preview is sent
    job_id = client.post("/jobs", json={**FLAT, "seed": 4}).json()["jobId"]
    with client.stream("GET", f"/jobs/{job_id}/events") as stream:
        events = list(sse_events(stream.iter_lines()))
    kinds = [kind for kind, _ in events]
    previews = [data for kind, data in events if kind == "preview"]
    assert kinds[-1] == "result" and len(previews) >= 2
    assert kinds.index("preview") < kinds.index("result")
    assert all(p["image"].startswith("data:image/webp;base64,") and p["steps"] == 6 for p in previews)
    assert [p["step"] for p in previews] == sorted(p["step"] for p in previews)


def test_a_slow_reader_gets_the_latest_preview_not_a_queue_of_them():
    from types import SimpleNamespace

    from aleaart.api.responses import _job_events
    from aleaart.jobs.standing import Progress

    job = Job(id="slow", request=RenderRequest(RenderSpec(prompt="p", sampler="Euler a", width=64, height=64,
                                                          steps=200, guidance_scale=7.5, seed=1)))
    job.move(JobState.QUEUED)
    job.move(JobState.RUNNING, step=0)
    queue = SimpleNamespace(draining=False, progress=lambda job: Progress(None, None), watch_previews=lambda job: None)

    async def first_events() -> list[str]:
        stream = _job_events(queue, job)
        for step in range(1, 150):  # 149 previews while the reader reads nothing
            job.show_preview(Preview(step, 200, b"x"))
        return [await stream.__anext__(), await stream.__anext__()]

    events = asyncio.run(first_events())
    assert events[0].startswith("event: preview") and '"step": 149' in events[0]  # the latest; none queued
    assert events[1].startswith("event: progress")
