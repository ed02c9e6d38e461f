"""jobs/state.py: a job's checked states, one status snapshot at a time, and its request's record form."""

import threading

import pytest
from test_jobs_queue import render

from aleaart.jobs import Job, JobState, RenderRequest, request_from_json
from aleaart.jobs.state import JobStatus
from aleaart.params import RenderParams, spec_from_params


def test_state_transitions_are_checked():
    assert JobState.CANCELLED.is_terminal() and not JobState.RUNNING.is_terminal()
    job = Job(id="j", request=render())
    job.move(JobState.RUNNING)
    job.move(JobState.SUCCEEDED)
    with pytest.raises(RuntimeError, match="succeeded → running is not allowed"):
        job.move(JobState.RUNNING)


def test_a_job_tells_once_when_it_ends_and_at_once_when_it_has():
    job = Job(id="j", request=render())
    told = []
    job.when_done(lambda: told.append(job.state))
    job.move(JobState.RUNNING)
    assert told == []
    job.move(JobState.FAILED, error="x")
    job.when_done(lambda: told.append("late"))
    assert told == [JobState.FAILED, "late"]


def test_a_finished_state_is_never_seen_without_its_result():
    """Regression: v1 set ``state`` before ``image``, so a poller could see SUCCEEDED with no image."""
    seen_inconsistent = []
    stop = threading.Event()
    jobs = [Job(id=str(i), request=render(seed=i)) for i in range(3000)]

    def poll():
        while not stop.is_set():
            for job in jobs:
                status = job.status  # one read: state and data come from the same snapshot
                if status.state is JobState.SUCCEEDED and status.image is None:
                    seen_inconsistent.append(job.id)

    reader = threading.Thread(target=poll)
    reader.start()
    try:
        for job in jobs:
            job.move(JobState.RUNNING)
            job.move(JobState.SUCCEEDED, images=("an image",), step=5)
    finally:
        stop.set()
        reader.join(10)
    assert seen_inconsistent == []
    assert isinstance(jobs[0].status, JobStatus) and jobs[0].status.version == 2


def test_a_job_request_round_trips_through_its_record():
    params = RenderParams(1, 2, 3, 4, 20, 75, 99, 5)
    for request in (render(seed=3, token="12"), RenderRequest(spec_from_params(params), "1")):
        assert request_from_json(request.kind, request.to_json()) == request
    recipe = {"model": "m"}
    assert render(token="1").key(recipe) != render(token="2").key(recipe) != render(token="1").key({"model": "n"})
