"""jobs/fair.py: priorities first, then owners in turn, each owner's jobs in arrival order."""

from __future__ import annotations

from aleaart.jobs.fair import FairQueue


def drain(queue: FairQueue[str]) -> list[str]:
    out = []
    while (item := queue.pop()) is not None:
        out.append(item)
    return out


def test_a_key_with_200_waiting_delays_another_keys_single_job_by_one():
    queue: FairQueue[str] = FairQueue()
    for i in range(200):
        queue.push(f"a{i}", priority=0, owner="a")
    assert queue.pop() == "a0"  # running when b arrives
    queue.push("b0", priority=0, owner="b")
    assert [queue.pop(), queue.pop()] == ["a1", "b0"]
    assert len(queue) == 198 and drain(queue) == [f"a{i}" for i in range(2, 200)]


def test_urgent_work_goes_first_and_owners_alternate_within_a_priority():
    queue: FairQueue[str] = FairQueue()
    for item, priority, owner in [("bulk-a1", 10, "a"), ("bulk-a2", 10, "a"), ("bulk-b1", 10, "b"),
                                  ("now-c1", 0, "c"), ("now-c2", 0, "c"), ("now-d1", 0, "d")]:
        queue.push(item, priority=priority, owner=owner)
    assert drain(queue) == ["now-c1", "now-d1", "now-c2", "bulk-a1", "bulk-b1", "bulk-a2"]
    assert queue.pop() is None


def test_an_owner_of_weight_three_takes_three_in_a_row_each_turn():
    queue: FairQueue[str] = FairQueue()
    for i in range(6):
        queue.push(f"h{i}", priority=0, owner="heavy", weight=3)
    for i in range(3):
        queue.push(f"l{i}", priority=0, owner="light")
    assert drain(queue) == ["h0", "h1", "h2", "l0", "h3", "h4", "h5", "l1", "l2"]


def test_an_item_pushed_back_first_is_the_next_to_pop():
    queue: FairQueue[str] = FairQueue()
    for item, owner in [("a0", "a"), ("a1", "a"), ("b0", "b")]:
        queue.push(item, priority=0, owner=owner)
    first = queue.pop()
    queue.push_back_first(first, priority=0, owner="a")  # it could not be sent: it keeps its place
    assert drain(queue) == ["a0", "b0", "a1"]
