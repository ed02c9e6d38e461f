"""jobs/standing.py: a job's place in the queue and its ETA, from the jobs around it and a clock (pure)."""

from __future__ import annotations

from aleaart.jobs import Job, JobState, Priority, RenderRequest
from aleaart.jobs.standing import eta_seconds, queue_position
from aleaart.params import RenderSpec

SPEC = RenderSpec(prompt="p", sampler="Euler a", width=16, height=16, steps=10, guidance_scale=7.5, seed=1)


def job(name: str, created: float, priority: int = Priority.INTERACTIVE, state: JobState = JobState.QUEUED,
        owner: str = "") -> Job:
    made = Job(id=name, request=RenderRequest(SPEC), priority=priority, created_at=created, owners=[owner])
    made.move(JobState.QUEUED)
    if state is JobState.RUNNING:
        made.move(JobState.RUNNING, started_at=100.0)
    return made


def test_the_more_urgent_go_first_then_the_older():
    old, new = job("old", 1.0), job("new", 2.0)
    bulk = job("bulk", 0.5, priority=Priority.BULK)
    running = job("running", 0.1, state=JobState.RUNNING)
    jobs = [bulk, new, old, running]
    assert [queue_position(j, jobs) for j in (old, new, bulk)] == [1, 2, 3]
    assert queue_position(running, jobs) is None


def test_owners_take_turns_so_one_key_waits_behind_one_job_of_each_other_key():
    many = [job(f"a{i}", float(i), owner="a") for i in range(200)]
    single = job("b0", 500.0, owner="b")
    jobs = [*many, single]
    assert queue_position(single, jobs) == 2  # after a's oldest, whose owner waited longer
    assert queue_position(many[0], jobs) == 1 and queue_position(many[1], jobs) == 3
    assert queue_position(many[199], jobs) == 201
    many[0].move(JobState.RUNNING)  # once a's oldest runs, a has had its share: b is next
    assert queue_position(single, jobs) == 1 and queue_position(many[1], jobs) == 2


def test_a_running_jobs_eta_is_its_pace_so_far_and_a_queued_ones_the_average_before_it():
    running = job("r", 0.0, state=JobState.RUNNING)
    running.progress(4, 10)
    assert eta_seconds(running, None, 1, 99.0, now=108.0) == 12.0  # 2 s a step, 6 steps left
    queued = job("q", 1.0)
    assert eta_seconds(queued, 3, 1, 10.0) == 30.0  # two before it and one running, at 10 s each
    assert eta_seconds(queued, 1, 0, 0.0) is None  # nothing has run yet: no average to go by


def test_an_owner_of_weight_three_gets_three_for_one():
    heavy = [job(f"h{i}", float(i), owner="heavy") for i in range(6)]
    light = [job(f"l{i}", 10.0 + i, owner="light") for i in range(3)]
    weights = {"heavy": 3, "light": 1}.__getitem__
    jobs = [*heavy, *light]
    order = sorted(jobs, key=lambda j: queue_position(j, jobs, weights))
    assert [j.id for j in order] == ["h0", "l0", "h1", "h2", "h3", "l1", "h4", "h5", "l2"]  # as jobs/fair.py
    assert [queue_position(j, jobs, weights) for j in order] == list(range(1, 10))
