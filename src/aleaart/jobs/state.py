"""A job's states, its status snapshot and the live job that watchers wait on."""

from __future__ import annotations

import enum
import functools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from aleaart.jobs.kind import JobRequest, identity
from aleaart.previews import Preview

if TYPE_CHECKING:
    from aleaart.store import StoredImage


class JobState(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    def is_terminal(self) -> bool:
        return self in (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED)


ALLOWED = {
    # QUEUED → SUCCEEDED: the worker found the result already stored; → FAILED: the model never loaded.
    JobState.QUEUED: {JobState.RUNNING, JobState.CANCELLED, JobState.SUCCEEDED, JobState.FAILED},
    # RUNNING → QUEUED: interrupted by a shutdown; it runs again after the restart.
    JobState.RUNNING: {JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED, JobState.QUEUED},
}


class Priority(enum.IntEnum):
    """Lower runs first: an interactive request goes before the waiting bulk work."""

    INTERACTIVE = 0
    BULK = 10


@dataclass(frozen=True)
class JobStatus:
    """Everything about a job that changes, as one immutable value: readers never see half a change."""

    state: JobState = JobState.QUEUED
    step: int = 0
    total_steps: int = 0
    key: str | None = None
    started_at: float | None = None
    finished_at: float | None = None
    images: tuple[StoredImage, ...] = ()
    summary: dict[str, Any] | None = None  # a coordinating kind's result (a collection's counts and CIDs)
    cached: bool = False
    error: str | None = None
    code: str | None = None
    attempts: int = 0
    version: int = 0

    @property
    def image(self) -> StoredImage | None:
        """The first (for most kinds, the only) image of the result."""
        return self.images[0] if self.images else None


@dataclass(eq=False)
class Job:
    """A request being worked on. ``status`` is replaced whole, under the lock, on every change."""

    id: str
    request: JobRequest
    priority: int = Priority.INTERACTIVE
    created_at: float = field(default_factory=time.time)
    status: JobStatus = field(default_factory=JobStatus)
    cancel_event: threading.Event = field(default_factory=threading.Event, repr=False)
    interrupted: bool = False  # set with cancel_event when the service stops: re-queue, don't cancel
    # The keys that asked for it, the first its maker ("" for a caller without a key): whose it is to read and
    # withdraw, and whose turn it takes in the queue's round of owners. Changed only under the queue's lock.
    owners: list[str] = field(default_factory=list)
    _changed: threading.Condition = field(default_factory=threading.Condition, repr=False)
    # Held while the job's record is written, from reading its status to the commit: the newest status is the
    # last written, whichever threads save it at once (a cancel and the job's own start, say).
    recording: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _when_done: list[Callable[[], None]] = field(default_factory=list, repr=False)
    preview: Preview | None = field(default=None, repr=False)  # the latest, in memory only (previews.py)

    def show_preview(self, preview: Preview) -> None:
        """The running job's latest preview: replaced whole, never queued (a reader that is slow skips some)."""
        self.preview = preview

    @property
    def kind(self) -> str:
        return self.request.kind

    @functools.cached_property
    def identity(self) -> str:
        """The request's identity (jobs.kind.identity), computed once: dedup and records use it often."""
        return identity(self.request)

    @property
    def owner(self) -> str:
        """Whose turn it takes: its maker's key name ("" without one)."""
        return self.owners[0] if self.owners else ""

    def owned_by(self, name: str) -> bool:
        """Whether the key ``name`` asked for it; a job no key asked for is everyone's who holds its id."""
        return not any(self.owners) or name in self.owners

    @property
    def state(self) -> JobState:
        return self.status.state

    def move(self, state: JobState, **changes: Any) -> JobStatus:
        """Change state (checked) with its data in one step, and wake everyone watching this job."""
        with self._changed:
            current = self.status
            if state is not current.state and state not in ALLOWED.get(current.state, set()):
                raise RuntimeError(f"job {self.id}: {current.state.value} → {state.value} is not allowed")
            if state.is_terminal():
                changes.setdefault("finished_at", current.finished_at or time.time())
            self.status = replace(current, **changes, state=state, version=current.version + 1)
            self._changed.notify_all()
            moved = self.status
            ended, self._when_done = (self._when_done, []) if state.is_terminal() else ([], self._when_done)
        for callback in ended:
            callback()
        return moved

    def when_done(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` (quick, non-blocking: it runs on the thread that ends the job) once the job ends;
        at once if it has."""
        with self._changed:
            if not self.status.state.is_terminal():
                self._when_done.append(callback)
                return
        callback()

    def progress(self, step: int, total: int, summary: dict[str, Any] | None = None) -> None:
        """Steps done (and, for a coordinating kind, its summary so far); kept in memory, not recorded."""
        with self._changed:
            changes: dict[str, Any] = {"step": step, "total_steps": total}
            if summary is not None:
                changes["summary"] = summary
            self.status = replace(self.status, **changes, version=self.status.version + 1)
            self._changed.notify_all()

    def wait_change(self, since: int, timeout: float) -> JobStatus:
        """Block until the version passes ``since`` or the job is terminal (or timeout)."""
        with self._changed:
            self._changed.wait_for(lambda: self.status.version > since or self.status.state.is_terminal(), timeout)
            return self.status

    def wait_done(self, timeout: float | None = None) -> bool:
        with self._changed:
            return self._changed.wait_for(lambda: self.status.state.is_terminal(), timeout)
