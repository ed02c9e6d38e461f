"""Jobs: typed, serialisable requests of several kinds, their durable records, and the queue that runs them.

    state.py       JobState, Priority, JobStatus (an immutable snapshot) and the live Job
    kind.py        JobRequest (the base of every kind), option(), the kind registry, Artifact, RunContext
    spec_kind.py   SpecRequest: the base of kinds made from an image's spec (their bodies and routes derive from it)
    image_kind.py  FromStoredImage and SourceImage: the base of kinds that start from a stored image
    render.py      the ``render`` kind and the one render path (spec → pixels → file → record)
    collection.py  the ``collection`` kind: every token rendered through the queue, then exported
    variations.py  the ``variations`` kind: images from the same parameters with blended starting noise
    upscale.py     the ``upscale`` kind: Lanczos, or Lanczos then img2img, of a stored image
    restyle.py     the ``restyle`` kind: img2img of a stored image in another style
    animation.py   the ``animation`` kind: a looping MP4 and WebP of a token's world
    book.py        job records in SQLite
    holder.py      ModelHolder: the engine, loaded in the background
    standing.py    where a job stands: its place in the queue and its ETA (pure)
    queue.py       the queue: dedup, records, priorities, progress, cancel, coordinators
    runner.py      Runner: the one way a worker job runs (in process, on a cluster worker, in the CLI), and outcome_of
    backend.py     the protocol a queue backend implements (where worker jobs run)
    inprocess.py   the in-process backend (one worker thread owns the model), and JobQueue: the queue on it

Every module of this package is imported here, so a kind registers itself by being a module: there is no list to
add it to.
"""

import importlib
import pkgutil

from aleaart.jobs.animation import AnimationRequest
from aleaart.jobs.book import JobBook
from aleaart.jobs.collection import CollectionRequest
from aleaart.jobs.holder import ModelHolder
from aleaart.jobs.image_kind import SourceImage
from aleaart.jobs.inprocess import JobQueue
from aleaart.jobs.kind import KINDS, Artifact, EngineLike, JobRequest, RunContext, identity, request_from_json
from aleaart.jobs.queue import Queue
from aleaart.jobs.render import RenderRequest
from aleaart.jobs.restyle import RestyleRequest
from aleaart.jobs.runner import Outcome, Runner, outcome_of
from aleaart.jobs.standing import Progress
from aleaart.jobs.state import Job, JobState, JobStatus, Priority
from aleaart.jobs.upscale import UpscaleRequest
from aleaart.jobs.variations import VariationsRequest

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

__all__ = [
    "KINDS", "AnimationRequest", "Artifact", "CollectionRequest", "EngineLike", "Job", "JobBook", "JobQueue",
    "JobRequest", "JobState", "JobStatus", "ModelHolder", "Outcome", "Priority", "Progress", "Queue", "RenderRequest",
    "RestyleRequest", "RunContext", "Runner", "SourceImage", "UpscaleRequest", "VariationsRequest", "identity",
    "outcome_of", "request_from_json",
]
