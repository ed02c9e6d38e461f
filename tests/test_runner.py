"""jobs/runner.py: the one way a worker job runs, and how its ending becomes its outcome."""

from __future__ import annotations

import threading

from fakes import FakeEngine

from aleaart.errors import GenerationCancelled, InvalidParams
from aleaart.jobs import JobState, RenderRequest, Runner, outcome_of
from aleaart.params import RenderSpec

SPEC = RenderSpec(prompt="a runner", steps=3, guidance_scale=7.0, seed=5, sampler="Euler a", width=64, height=64)


def test_each_ending_is_one_outcome():
    def cancelled():
        raise GenerationCancelled("cancelled at step 2")

    def refused():
        raise InvalidParams("steps must be 18..64, got 70")

    def crashed():
        raise RuntimeError("CUDA error: an illegal memory access")

    assert outcome_of(lambda: {"step": 3}).result == {"step": 3}
    assert outcome_of(cancelled).failure == {"error": "cancelled at step 2", "code": "cancelled"}
    assert outcome_of(cancelled).state is JobState.CANCELLED
    assert (outcome_of(refused).state, outcome_of(refused).code) == (JobState.FAILED, "invalid_params")
    crash = outcome_of(crashed)
    assert crash.state is JobState.FAILED and crash.code == "generation_failed"
    assert crash.error == "generation failed: RuntimeError: CUDA error: an illegal memory access"


def test_a_run_is_its_render_then_its_encoding_with_the_engines_key():
    engine = FakeEngine()
    runner = Runner(engine)
    request = RenderRequest(SPEC, "9")
    steps: list[tuple[int, int]] = []
    [whole] = runner.run(request, on_step=lambda step, total: steps.append((step, total)))
    rendering = runner.render(request)
    [split] = rendering.encode()
    assert whole.data == split.data and whole.record.key == runner.key(request) == request.key(engine.recipe)
    assert rendering.context.store is None and rendering.context.credentials is None
    assert steps[-1] == (3, 3)
    [named] = runner.run(request, key="f" * 64)
    assert named.record.key == "f" * 64


def test_a_set_cancel_stops_the_run():
    cancel = threading.Event()
    cancel.set()
    outcome = outcome_of(lambda: Runner(FakeEngine()).run(RenderRequest(SPEC), cancel=cancel))
    assert outcome.state is JobState.CANCELLED
