"""Where a job stands as clients see it: its place in the queue and how long until it is done (pure)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from fractions import Fraction

from aleaart.jobs.state import Job, JobState


@dataclass(frozen=True)
class Progress:
    queue_position: int | None
    eta_seconds: float | None


def queue_position(job: Job, jobs: Iterable[Job], weight_of: Callable[[str], int] = lambda owner: 1) -> int | None:
    """1 for the next to run, among ``jobs`` (the queue's active ones), as jobs/fair.py orders them: the more
    urgent first; within a priority by start tags, each owner's jobs oldest first, each taking 1/weight of a
    share after the owner's running ones (ties to the older job). An estimate: the live queue also remembers
    shares taken by jobs that have ended."""
    if job.state is not JobState.QUEUED:
        return None
    jobs = list(jobs)
    urgent = sum(1 for j in jobs if j.state is JobState.QUEUED and int(j.priority) < int(job.priority))
    level = [j for j in jobs if int(j.priority) == int(job.priority)]
    taken: dict[str, int] = {}
    for j in level:
        if j.state is JobState.RUNNING:
            taken[j.owner] = taken.get(j.owner, 0) + 1
    tags: dict[str, tuple[Fraction, float]] = {}
    for j in sorted((j for j in level if j.state is JobState.QUEUED), key=lambda j: j.created_at):
        share = Fraction(taken.get(j.owner, 0), max(1, weight_of(j.owner)))
        tags[j.id] = (share, j.created_at)
        taken[j.owner] = taken.get(j.owner, 0) + 1
    mine = tags.get(job.id, (Fraction(0), job.created_at))
    return 1 + urgent + sum(1 for other, tag in tags.items() if other != job.id and tag < mine)


def eta_seconds(job: Job, position: int | None, running: int, seconds_per_job: float, *,
                now: float | None = None) -> float | None:
    """A running job's from its pace so far; a queued one's from the jobs before it and those running, at the
    average seconds a job takes; None while nothing says."""
    status = job.status
    if status.state is JobState.RUNNING and status.step and status.started_at:
        per_step = ((now or time.time()) - status.started_at) / status.step
        return round(per_step * (status.total_steps - status.step), 1)
    if position is not None and seconds_per_job:
        return round(seconds_per_job * (position - 1 + running), 1)
    return None
