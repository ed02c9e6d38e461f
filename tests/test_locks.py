"""locks.py: no I/O under a state lock, kept by the database itself."""

from __future__ import annotations

import threading
from dataclasses import replace

import pytest

from aleaart.database import Database
from aleaart.locks import StateLock, held, refuse_io


def test_a_statement_under_a_state_lock_is_refused_and_names_the_lock(tmp_path):
    db = Database(tmp_path / "x.db")
    lock = StateLock("the queue's lock")
    with lock, pytest.raises(RuntimeError, match="while holding the queue's lock"):
        db.query("SELECT 1")
    with lock, pytest.raises(RuntimeError), db.transaction():
        pass
    assert db.query("SELECT 1")[0][0] == 1  # after it is released
    db.close()


def test_held_is_per_thread_and_nested_locks_unwind():
    outer, inner = StateLock("outer"), StateLock("inner")
    seen: list[tuple[str, ...]] = []
    with outer:
        with inner:
            assert held() == ("outer", "inner")
            thread = threading.Thread(target=lambda: seen.append(held()))
            thread.start()
            thread.join()
        assert held() == ("outer",)
    assert held() == () and seen == [()]
    refuse_io("anything")  # nothing held: allowed


def test_the_queue_writes_no_record_under_its_lock(tmp_path):
    """Every path of a job (submit, dedup, a store hit, cancel, run, finish) runs with the database's check on."""
    from fakes import FakeEngine
    from waiting import eventually

    from aleaart.config import Settings
    from aleaart.jobs import JobState, RenderRequest
    from aleaart.params import RenderSpec
    from aleaart.services import Services

    services = Services.open(Settings(images_dir=tmp_path / "images"), loader=FakeEngine)
    services.start()
    try:
        spec = RenderSpec(prompt="locks", steps=2, guidance_scale=7.0, seed=1, sampler="Euler a", width=64,
                          height=64)
        queue = services.queue
        first = queue.submit(RenderRequest(spec))
        joined = queue.submit(RenderRequest(spec))
        assert joined is first and first.wait_done(30) and first.state is JobState.SUCCEEDED
        assert eventually(lambda: queue.submit(RenderRequest(spec)).status.cached)  # once the queue let it go
        services.model.engine.release.clear()  # the next render waits at its first step
        other = queue.submit(RenderRequest(replace(spec, seed=2)))
        queue.cancel(other.id)
        services.model.engine.release.set()
        assert other.wait_done(30) and other.state is JobState.CANCELLED
        assert services.journal_db.query("SELECT state FROM jobs WHERE id = ?", (other.id,))[0][0] == "cancelled"
    finally:
        services.close()
