"""jobs/fair.py: priorities first, then owners share by start-time fair queueing, each owner's jobs in order."""

from __future__ import annotations

import pytest

from aleaart.jobs.fair import FairQueue


def drain(queue: FairQueue[str]) -> list[str]:
    out = []
    while (item := queue.pop()) is not None:
        out.append(item)
    return out


def test_a_key_with_200_waiting_delays_another_keys_single_job_by_at_most_one():
    queue: FairQueue[str] = FairQueue()
    for i in range(200):
        queue.push(f"a{i}", priority=0, owner="a")
    assert queue.pop() == "a0"  # running when b arrives
    queue.push("b0", priority=0, owner="b")
    assert queue.pop() == "b0"  # a had its share: b's comes first
    assert len(queue) == 199 and drain(queue) == [f"a{i}" for i in range(1, 200)]


def test_one_sent_ahead_still_leaves_the_newcomer_next():
    """As with a Celery worker: a0 runs and a1 waits at the broker when b arrives; b goes before a2."""
    queue: FairQueue[str] = FairQueue()
    for i in range(5):
        queue.push(f"a{i}", priority=0, owner="a")
    assert [queue.pop(), queue.pop()] == ["a0", "a1"]
    queue.push("b0", priority=0, owner="b")
    assert drain(queue) == ["b0", "a2", "a3", "a4"]


def test_urgent_work_goes_first_and_owners_alternate_within_a_priority():
    queue: FairQueue[str] = FairQueue()
    for item, priority, owner in [("bulk-a1", 10, "a"), ("bulk-a2", 10, "a"), ("bulk-b1", 10, "b"),
                                  ("now-c1", 0, "c"), ("now-c2", 0, "c"), ("now-d1", 0, "d")]:
        queue.push(item, priority=priority, owner=owner)
    assert drain(queue) == ["now-c1", "now-d1", "now-c2", "bulk-a1", "bulk-b1", "bulk-a2"]
    assert queue.pop() is None


def test_an_owner_of_weight_three_gets_three_for_one():
    queue: FairQueue[str] = FairQueue()
    for i in range(6):
        queue.push(f"h{i}", priority=0, owner="heavy", weight=3)
    for i in range(3):
        queue.push(f"l{i}", priority=0, owner="light")
    assert drain(queue) == ["h0", "l0", "h1", "h2", "h3", "l1", "h4", "h5", "l2"]


def test_an_owner_that_was_idle_gets_no_credit_for_it():
    queue: FairQueue[str] = FairQueue()
    for i in range(4):
        queue.push(f"a{i}", priority=0, owner="a")
    queue.push("b0", priority=0, owner="b")
    assert drain(queue)[:3] == ["a0", "b0", "a1"]
    for i in range(3):  # both wait again; a3 started last, and its share is a's until b has had one
        queue.push(f"a{4 + i}", priority=0, owner="a")
        queue.push(f"b{1 + i}", priority=0, owner="b")
    assert drain(queue) == ["b1", "a4", "b2", "a5", "b3", "a6"]


def test_an_item_put_back_is_the_next_to_pop():
    queue: FairQueue[str] = FairQueue()
    for item, owner in [("a0", "a"), ("a1", "a"), ("b0", "b")]:
        queue.push(item, priority=0, owner=owner)
    assert queue.pop() == "a0"
    queue.unpop()  # it could not be sent: it keeps its place
    assert drain(queue) == ["a0", "b0", "a1"]
    with pytest.raises(RuntimeError):
        queue.unpop()  # only once, right after a pop
    queue.push("c0", priority=5, owner="c")
    assert queue.pop() == "c0"
    queue.unpop()  # the pop emptied the queue: it comes back all the same
    assert drain(queue) == ["c0"] and len(queue) == 0
