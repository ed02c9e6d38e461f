"""What the cluster's tests share: a spec, settings for a real redis-server, a job's wire form and outcome."""

from __future__ import annotations

import os
import shutil

import pytest
from fakes import FakeEngine

from aleaart.cluster.wire import (
    Outcome,
    outcome_key,
)
from aleaart.config import Settings
from aleaart.jobs import RenderRequest, Runner
from aleaart.params import RenderSpec

needs_redis = pytest.mark.skipif(shutil.which("redis-server") is None and not os.environ.get("CI"),
                                 reason="redis-server is not installed (run_tests.sh installs it; CI fails instead)")


SPEC = RenderSpec(prompt="cluster", steps=4, guidance_scale=7.5, seed=3, sampler="Euler a", width=64, height=64)


def settings_for(redis_server, **extra) -> Settings:
    return Settings(broker_url=redis_server.url, model="fake", heartbeat_seconds=0.2, redeliver_seconds=5, **extra)


def request_json() -> dict:
    return RenderRequest(SPEC, "7").to_json()


def outcome_of(client, job_id: str) -> Outcome:
    return Outcome.from_json(client.get(outcome_key(job_id)))


def finished_artifact(engine: FakeEngine):
    request = RenderRequest(SPEC, "7")
    [artifact] = Runner(engine).run(request)
    return request, Runner(engine).key(request), artifact
