"""api/responses.py: byte ranges, conditional GETs and a job as clients see it."""

from __future__ import annotations

import pytest
from fakes import wait_done

from aleaart.api.responses import byte_range, if_none_match, job_snapshot
from aleaart.errors import RangeNotSatisfiable
from aleaart.jobs import RenderRequest
from aleaart.params import RenderSpec


@pytest.mark.parametrize(("header", "expected"), [
    (None, None), ("bytes=0-9", (0, 9)), ("bytes=90-", (90, 99)), ("bytes=-10", (90, 99)), ("bytes=-500", (0, 99)),
    ("bytes=10-5", None), ("bytes=0-1,5-6", None), ("items=0-5", None), ("bytes=0-500", (0, 99)), ("garbage", None)])
def test_one_range_is_answered_and_anything_else_is_the_whole_file(header, expected):
    assert byte_range(header, 100) == expected


@pytest.mark.parametrize("header", ["bytes=100-", "bytes=-0"])
def test_a_range_past_the_end_is_416(header):
    with pytest.raises(RangeNotSatisfiable):
        byte_range(header, 100)


def test_conditional_tags_compare_weak_as_strong():
    assert if_none_match(None) == set()
    assert if_none_match('"a", W/"b"') == {'"a"', '"b"'}


def test_a_job_snapshot_says_where_it_stands_then_what_it_made(fake_client):
    queue = fake_client.app.state.queue
    engine = fake_client.app.state.model.engine
    engine.release.clear()
    spec = RenderSpec(prompt="snap", sampler="Euler a", width=256, height=256, steps=3, guidance_scale=7.0, seed=2)
    running = queue.submit(RenderRequest(spec, "4"))
    assert engine.started.wait(10)  # it runs: the next is the first to wait
    queued = queue.submit(RenderRequest(spec, "5"))
    first = job_snapshot(queue, queued)
    assert first["status"] == "queued" and first["queuePosition"] == 1 and first["tokenId"] == "5"
    assert "result" not in first and first["statusUrl"] == f"/jobs/{queued.id}"
    assert job_snapshot(queue, queued, placed=False)["queuePosition"] is None  # a webhook's body
    engine.release.set()
    wait_done(fake_client, running.id)
    wait_done(fake_client, queued.id)
    done = job_snapshot(queue, queue.get(queued.id))
    assert done["status"] == "succeeded" and done["etaSeconds"] is None
    assert done["result"] == done["results"][0] and done["result"]["cached"] is False
