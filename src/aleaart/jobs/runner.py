"""The one way a worker job runs, and the one way how it ended becomes its outcome.

``Runner`` holds what a job runs with (a loaded engine, the store to reuse pixels from, where the stored images a
job starts from are read, the signing identity) and is the only place a ``RunContext`` is made. The in-process
queue, a cluster worker and the CLI's commands all run jobs through it. ``outcome_of`` maps what a job's work
raised (or returned) to its state, error and code, for the queue and a cluster worker alike.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aleaart.errors import AleaArtError, GenerationCancelled
from aleaart.jobs.kind import Artifact, EngineLike, JobRequest, PngReader, RunContext, Sealer, StepCallback
from aleaart.jobs.state import JobState
from aleaart.previews import PreviewSink
from aleaart.store import ImageStore

log = logging.getLogger(__name__)

GENERATION_FAILED = "generation_failed"


@dataclass(frozen=True)
class Outcome:
    """How a job's work ended: ``result`` is what it returned when it succeeded."""

    state: JobState
    result: Any = None
    error: str | None = None
    code: str | None = None

    @property
    def failure(self) -> dict[str, str | None]:
        """The error and code, as a job's status records them."""
        return {"error": self.error, "code": self.code}


def outcome_of(work: Callable[[], Any], *, job_id: str = "") -> Outcome:
    """Do ``work`` and say how it ended: cancelled, failed with the error's code, failed with an error no one
    expected (logged with its traceback: one job's failure is that job's, not its worker's), or succeeded."""
    try:
        result = work()
    except GenerationCancelled as error:
        return Outcome(JobState.CANCELLED, error=str(error), code=error.code)
    except AleaArtError as error:
        return Outcome(JobState.FAILED, error=str(error), code=error.code)
    except Exception as error:
        log.exception("job %s failed", job_id)
        return Outcome(JobState.FAILED, error=f"generation failed: {type(error).__name__}: {error}",
                       code=GENERATION_FAILED)
    return Outcome(JobState.SUCCEEDED, result=result)


def no_progress(step: int, total: int) -> None:
    pass


@dataclass(frozen=True)
class Rendering:
    """A job's engine part done; ``encode`` is the CPU-only rest, on whichever thread calls it."""

    request: JobRequest
    context: RunContext
    rendered: Any

    def encode(self) -> list[Artifact]:
        return self.request.encode(self.rendered, self.context)


@dataclass(frozen=True)
class Runner:
    """Runs worker jobs on one loaded engine. ``store`` None: no pixels are reused (a cluster worker, the CLI)."""

    engine: EngineLike
    store: ImageStore | None = None
    read_png: PngReader | None = None
    credentials: Sealer | None = None  # None: files are stored unsigned (tests of other things)

    def key(self, request: JobRequest) -> str:
        return request.key(self.engine.recipe)

    def render(self, request: JobRequest, *, key: str | None = None, on_step: StepCallback = no_progress,
               cancel: threading.Event | None = None, on_preview: PreviewSink | None = None) -> Rendering:
        """The part of ``request`` that needs the engine, on this thread; ``on_preview`` sees its picture form
        (where the engine makes previews: engine/preview.py)."""
        context = RunContext(engine=self.engine, key=key or self.key(request), store=self.store, on_step=on_step,
                             cancel=cancel or threading.Event(), read_png=self.read_png,
                             credentials=self.credentials, action=request.action)
        if (size := request.render_size()) is not None:
            self.engine.require_memory(size)
        previews = getattr(self.engine, "previews", None)
        with previews.watching(on_preview) if previews is not None else contextlib.nullcontext():
            return Rendering(request, context, request.render(context))

    def run(self, request: JobRequest, *, key: str | None = None, on_step: StepCallback = no_progress,
            cancel: threading.Event | None = None, on_preview: PreviewSink | None = None) -> list[Artifact]:
        """The whole job on this thread: its artifacts (files and records), not yet stored anywhere."""
        return self.render(request, key=key, on_step=on_step, cancel=cancel, on_preview=on_preview).encode()
