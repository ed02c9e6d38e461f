"""Fair shares across GPU workers: the API holds jobs back and hands the broker only as many as the workers can
start next, in the fair queue's order (jobs/fair.py). A job the broker holds is first come, first served, so what
waits there is kept to one per live worker: one key's 200 renders then delay another key's single render by at
most one render per worker, as in process.

A released job leaves the count once it starts (a worker's event or heartbeat says so) or ends. Pure of Redis:
the backend passes how to send a job and how many workers there are."""

from __future__ import annotations

import threading
from collections.abc import Callable

from aleaart.jobs.fair import FairQueue
from aleaart.jobs.state import Job, JobState


class Release:
    def __init__(self, send: Callable[[Job], None]) -> None:
        self._send = send
        self._held: FairQueue[Job] = FairQueue()
        self._held_ids: set[str] = set()
        self._unstarted: set[str] = set()  # released, and no worker has said it started them
        self._lock = threading.Lock()

    @property
    def held(self) -> int:
        return len(self._held_ids)

    @property
    def unstarted(self) -> int:
        return len(self._unstarted)

    def holds(self, job_id: str) -> bool:
        return job_id in self._held_ids

    def hold(self, job: Job, weight: int = 1) -> None:
        """Wait for the job's turn (a job the broker lost is held again)."""
        with self._lock:
            self._unstarted.discard(job.id)
            if job.id not in self._held_ids:
                self._held_ids.add(job.id)
                self._held.push(job, priority=int(job.priority), owner=job.owner, weight=weight)

    def sent_earlier(self, job_id: str) -> None:
        """A job the broker holds already (sent before a restart): it counts as waiting there."""
        with self._lock:
            if job_id not in self._held_ids:
                self._unstarted.add(job_id)

    def withdraw(self, job_id: str) -> None:
        """A job cancelled while held or sent: it counts nowhere (a held one is skipped when its turn comes)."""
        with self._lock:
            self._held_ids.discard(job_id)
            self._unstarted.discard(job_id)

    def started(self, job_id: str) -> bool:
        """A released job started, ended or was withdrawn: room for the next (True if there is more now)."""
        with self._lock:
            if job_id not in self._unstarted:
                return False
            self._unstarted.discard(job_id)
            return True

    def release(self, capacity: int) -> int:
        """Send held jobs, in turn, until ``capacity`` wait unstarted at the broker; how many were sent. A job
        that could not be sent keeps its place, and the send's error is raised."""
        sent = 0
        with self._lock:
            while len(self._unstarted) < capacity and (job := self._held.pop()) is not None:
                if job.state is not JobState.QUEUED:  # cancelled (or refused) while it was held
                    self._held_ids.discard(job.id)
                    continue
                try:
                    self._send(job)
                except BaseException:
                    self._held.unpop()
                    raise
                self._held_ids.discard(job.id)
                self._unstarted.add(job.id)
                sent += 1
        return sent
