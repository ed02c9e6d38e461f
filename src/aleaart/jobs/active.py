"""The queue's in-memory table: the jobs queued or running now, by id and by identity (what dedup joins).

Not locked by itself: the queue holds its lock around every use (jobs/queue.py)."""

from __future__ import annotations

from collections.abc import Iterator

from aleaart.jobs.state import Job, JobState


class ActiveJobs:
    def __init__(self) -> None:
        self._by_id: dict[str, Job] = {}
        self._by_identity: dict[str, Job] = {}

    def __contains__(self, job_id: str) -> bool:
        return job_id in self._by_id

    def __iter__(self) -> Iterator[Job]:
        return iter(self._by_id.values())

    def get(self, job_id: str) -> Job | None:
        return self._by_id.get(job_id)

    def with_identity(self, ident: str) -> Job | None:
        """The job an identical request would join."""
        return self._by_identity.get(ident)

    def add(self, job: Job) -> None:
        self._by_id[job.id] = job
        self._by_identity[job.identity] = job

    def remove(self, job: Job) -> None:
        self._by_id.pop(job.id, None)
        if self._by_identity.get(job.identity) is job:
            del self._by_identity[job.identity]

    def workers(self) -> list[Job]:
        """The jobs a backend runs (renders, not coordinators)."""
        return [job for job in self._by_id.values() if not job.request.coordinates]

    def queued_workers(self) -> int:
        return sum(1 for job in self.workers() if job.state is JobState.QUEUED)

    def running(self) -> int:
        return sum(1 for job in self._by_id.values() if job.state is JobState.RUNNING)

    def interrupt(self, *, coordinators_only: bool = False) -> None:
        """Stop running jobs at their next step, marked interrupted: they run again after the restart."""
        for job in self._by_id.values():
            if job.state is JobState.RUNNING and (job.request.coordinates or not coordinators_only):
                job.interrupted = True
                job.cancel_event.set()
