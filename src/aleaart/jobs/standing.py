"""Where a job stands as clients see it: its place in the queue and how long until it is done (pure)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from aleaart.jobs.state import Job, JobState


@dataclass(frozen=True)
class Progress:
    queue_position: int | None
    eta_seconds: float | None


def queue_position(job: Job, jobs: Iterable[Job], weight_of: Callable[[str], int] = lambda owner: 1) -> int | None:
    """1 for the next to run, among ``jobs`` (the queue's active ones), as jobs/fair.py orders them: the more
    urgent first; within a priority the owners take turns, each one's jobs oldest first, an owner of weight w
    taking w of them a turn (an owner that has waited longer than this job's owner goes first in each turn)."""
    if job.state is not JobState.QUEUED:
        return None
    queued = [j for j in jobs if j.state is JobState.QUEUED]
    urgent = sum(1 for j in queued if int(j.priority) < int(job.priority))
    by_owner: dict[str, list[Job]] = {}
    for j in sorted((j for j in queued if int(j.priority) == int(job.priority)), key=lambda j: j.created_at):
        by_owner.setdefault(j.owner, []).append(j)
    mine = by_owner.pop(job.owner, [job])
    rank = mine.index(job) if job in mine else 0
    turn = rank // max(1, weight_of(job.owner))  # the owner's turns before the one this job runs in
    others = sum(min(len(theirs), max(1, weight_of(owner)) * (turn + (theirs[0].created_at < mine[0].created_at)))
                 for owner, theirs in by_owner.items())
    return 1 + urgent + rank + others


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
