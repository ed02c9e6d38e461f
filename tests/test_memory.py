"""What a render needs in memory: the profile's arithmetic, the 507 a size too large for ALEAART_MAX_RSS_GB gets
(at submit, and from a worker's runner), and /health showing the profile."""

from __future__ import annotations

from dataclasses import replace

import pytest
from fakes import FakeEngine
from fastapi.testclient import TestClient

from aleaart.api import create_app
from aleaart.config import Settings
from aleaart.errors import InsufficientMemory
from aleaart.jobs.image_kind import SourceImage
from aleaart.jobs.render import RenderRequest
from aleaart.jobs.runner import Runner
from aleaart.jobs.upscale import UpscaleRequest
from aleaart.jobs.variations import VariationsRequest
from aleaart.memory import MemoryProfile, Peak, RenderSize
from aleaart.params import RenderParams, spec_from_params

PROFILE = MemoryProfile(resident_gib=1.0, small=Peak(512, 512, 3.5), largest=Peak(768, 1024, 4.5))
BODY = {"prompt": "a fox", "seed": 1, "steps": 3}


def test_a_size_needs_the_measured_peaks_joined_by_a_line_in_pixels():
    assert PROFILE.needs_gib(RenderSize(768, 1024)) == pytest.approx(4.5)
    assert PROFILE.needs_gib(RenderSize(512, 512)) == pytest.approx(3.5)
    per_square = 1.0 / 2  # Portrait is 3 squares of 512x512: 1 GiB more over 2 squares more
    assert PROFILE.needs_gib(RenderSize(1536, 2048)) == pytest.approx(3.5 + per_square * 11)  # a hires of Portrait
    assert PROFILE.needs_gib(RenderSize(512, 512, images=4)) == pytest.approx(3.5 + per_square * 3)
    assert PROFILE.needs_gib(RenderSize(8, 8)) == pytest.approx(3.0, abs=0.01)
    assert MemoryProfile(3.4, Peak(512, 512, 3.5), Peak(768, 1024, 4.5)).needs_gib(RenderSize(8, 8)) == 3.4
    assert MemoryProfile(1.0, Peak(512, 512, 3.5), Peak(512, 683, 3.4)).needs_gib(RenderSize(768, 1024)) == 3.5
    measured = replace(PROFILE, estimated=True).measured(5.5)  # the largest, rendered: the line through it now
    assert not measured.estimated and measured.needs_gib(RenderSize(768, 1024)) == 5.5
    assert MemoryProfile.from_record(measured.to_record()) == measured


def test_a_size_past_the_limit_is_refused_naming_it_and_none_without_a_limit():
    PROFILE.require(None, RenderSize(4096, 4096))
    PROFILE.require(4.5, RenderSize(768, 1024))
    with pytest.raises(InsufficientMemory, match=r"a render of 4 images of 512x512 needs about 5\.0 GiB here, more "
                                                 r"than ALEAART_MAX_RSS_GB=4\.5") as refused:
        PROFILE.require(4.5, RenderSize(512, 512, images=4))
    assert refused.value.status == 507 and refused.value.code == "insufficient_memory"


def test_each_kind_says_the_largest_render_it_asks_for():
    spec = spec_from_params(RenderParams(0, 0, 0, 2, 20, 75, 1, 0))  # Portrait
    assert RenderRequest(spec=spec, token=None).render_size() == RenderSize(768, 1024)
    assert VariationsRequest(spec, None, count=3).render_size() == RenderSize(768, 1024, images=3)
    source = SourceImage(key="k" * 64, sha256="s" * 64, spec=spec, token=None)
    assert UpscaleRequest(source, scale=2, mode="hires").render_size() == RenderSize(1536, 2048)
    assert UpscaleRequest(source, scale=4, mode="lanczos").render_size() is None  # no model


def test_a_worker_refuses_a_job_too_large_for_its_memory_before_rendering():
    engine = FakeEngine()
    engine.memory, engine.max_rss_gb = PROFILE, 4.0
    runner = Runner(engine)
    small = RenderRequest(spec=spec_from_params(RenderParams(0, 0, 0, 0, 20, 75, 1, 0)), token=None)
    large = RenderRequest(spec=spec_from_params(RenderParams(0, 0, 0, 2, 20, 75, 1, 0)), token=None)
    assert runner.run(small)
    with pytest.raises(InsufficientMemory, match="768x1024"):
        runner.run(large)
    assert [spec.width for spec in engine.calls] == [512]  # the large one never reached the engine


def test_the_service_answers_507_for_a_size_past_its_limit_and_health_shows_the_profile(tmp_path):
    def loader() -> FakeEngine:
        engine = FakeEngine()
        engine.memory, engine.max_rss_gb = PROFILE, 4.0
        return engine

    with TestClient(create_app(Settings(images_dir=tmp_path / "images"), loader=loader)) as client:
        assert client.get("/ready").status_code == 200
        refused = client.post("/jobs", json={**BODY, "width": 768, "height": 1024})
        assert refused.status_code == 507
        assert refused.json()["code"] == "insufficient_memory" and "768x1024" in refused.json()["error"]
        assert client.post("/jobs", json={**BODY, "width": 512, "height": 512}).status_code == 202
        assert client.get("/health").json()["memory"] == {"residentGiB": 1.0, "maxRssGB": 4.0,
                                                          "peakGiB": {"512x512": 3.5, "768x1024": 4.5},
                                                          "largestEstimated": False}
