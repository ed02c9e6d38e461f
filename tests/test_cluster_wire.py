"""cluster/wire.py: what crosses Redis (pure)."""

from __future__ import annotations

from aleaart.cluster.wire import (
    Event,
    Outcome,
    WorkerInfo,
    celery_priority,
    queue_for_model,
)


def test_queue_names_are_readable_stable_and_differ_per_model():
    assert queue_for_model("tiny") == queue_for_model("tiny")
    assert queue_for_model("tiny").startswith("aleaart.tiny.")
    assert queue_for_model("/models/a.safetensors") != queue_for_model("/other/a.safetensors")
    assert " " not in queue_for_model("My Model v2")


def test_priorities_map_onto_redis_priority_steps():
    assert celery_priority(0) == 0 and celery_priority(10) == 9 and celery_priority(-3) == 0


def test_messages_round_trip(tmp_path):
    info = WorkerInfo(name="w", device="cuda:1", model="tiny", model_name="m", recipe={"a": "b"}, queue="q",
                      state="busy", job="j", jobs=3, heartbeat_at=5.0)
    assert WorkerInfo.from_json(info.to_json()) == info
    event = Event(job="j", kind="step", worker="w", key="k", step=2, total=4)
    assert Event.from_json(event.to_json()) == event
    outcome = Outcome(job="j", state="failed", worker="w", error="boom", code="generation_failed")
    assert Outcome.from_json(outcome.to_json()) == outcome
