"""What the API and the GPU workers say to each other through Redis: key names, queue names and messages.

Pure data: no Redis or Celery here. Celery carries the jobs (``run_job(job_id, kind, request)``);
everything else lives in plain Redis keys so that it outlives any one process:

    aleaart:workers            set of worker names; each has aleaart:worker:<name> (WorkerInfo, expires)
    aleaart:claim:<key>        "<worker>|<job id>": who renders this key now (expires unless renewed)
    aleaart:done:<key>         the records of a key's finished images (so a redelivered job is not rendered twice)
    aleaart:png:<sha256>       a finished PNG, until the API has stored it
    aleaart:outcome:<job id>   how a job ended (Outcome), until the API has collected it
    aleaart:cancel:<job id>    set when a client cancels; workers check it at every step
    aleaart:sent:<job id>      set when the API handed the job to Celery (not sent again after a restart)
    aleaart:events             pub/sub channel: started, step and done events (progress for SSE)
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass
from typing import Any, Literal

from aleaart.store import StoredImage

PREFIX = "aleaart"
RUN_JOB = "aleaart.run_job"  # the one Celery task: (job id, kind, request JSON)
WORKERS = f"{PREFIX}:workers"
EVENTS = f"{PREFIX}:events"
MISSED_HEARTBEATS = 5  # a worker silent this many heartbeats is gone, and so is its claim


def queue_for_model(model: str) -> str:
    """The Celery queue of the workers that serve ``model`` (ALEAART_MODEL): readable, and unique per model."""
    slug = re.sub(r"[^a-z0-9]+", "-", model.lower()).strip("-")[-32:] or "model"
    return f"{PREFIX}.{slug}.{hashlib.sha256(model.encode()).hexdigest()[:8]}"


def worker_key(name: str) -> str:
    return f"{PREFIX}:worker:{name}"


def claim_key(key: str) -> str:
    return f"{PREFIX}:claim:{key}"


def done_key(key: str) -> str:
    return f"{PREFIX}:done:{key}"


def png_key(sha256: str) -> str:
    return f"{PREFIX}:png:{sha256}"


def outcome_key(job_id: str) -> str:
    return f"{PREFIX}:outcome:{job_id}"


def cancel_key(job_id: str) -> str:
    return f"{PREFIX}:cancel:{job_id}"


def sent_key(job_id: str) -> str:
    return f"{PREFIX}:sent:{job_id}"


def watch_key(job_id: str) -> str:
    """Set by the API while a client watches the job's previews (a short expiry it renews): a worker sends the
    job's previews only while it is there."""
    return f"{PREFIX}:watch:{job_id}"


def celery_priority(priority: int) -> int:
    """Our priority (0 interactive … 10 bulk) as Redis's Celery priority steps (0 first … 9 last)."""
    return max(0, min(9, int(priority)))


def records_to_json(images: tuple[StoredImage, ...]) -> list[dict[str, Any]]:
    return [asdict(image) for image in images]


def records_from_json(data: list[dict[str, Any]]) -> tuple[StoredImage, ...]:
    return tuple(StoredImage(**item) for item in data)


@dataclass(frozen=True)
class WorkerInfo:
    """What a worker says about itself at every heartbeat."""

    name: str
    device: str
    model: str  # ALEAART_MODEL, which routes jobs to it
    model_name: str
    recipe: dict[str, str]
    queue: str
    state: Literal["idle", "busy"] = "idle"
    job: str | None = None
    jobs: int = 0  # jobs it rendered (not counting those answered from a result already done)
    started_at: float = 0.0
    heartbeat_at: float = 0.0

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, raw: str | bytes) -> WorkerInfo:
        return cls(**json.loads(raw))

    def health(self, age: float) -> dict[str, Any]:
        """Its entry in the API's /health, ``age`` seconds after its last heartbeat."""
        return {"name": self.name, "device": self.device, "model": self.model, "model_name": self.model_name,
                "state": self.state, "job": self.job, "jobs": self.jobs, "queue": self.queue,
                "last_heartbeat": self.heartbeat_at, "seconds_since_heartbeat": age}


@dataclass(frozen=True)
class Outcome:
    """How a job ended on a worker; a succeeded one names its images, whose PNGs wait under png_key."""

    job: str
    state: Literal["succeeded", "failed", "cancelled"]
    worker: str
    key: str | None = None
    images: tuple[StoredImage, ...] = ()
    cached: bool = False  # the key was already done: nothing was rendered
    seconds: float = 0.0
    error: str | None = None
    code: str | None = None

    def to_json(self) -> str:
        data = asdict(self)
        data["images"] = records_to_json(self.images)
        return json.dumps(data, sort_keys=True)

    @classmethod
    def from_json(cls, raw: str | bytes) -> Outcome:
        data = json.loads(raw)
        data["images"] = records_from_json(data.get("images", []))
        return cls(**data)


@dataclass(frozen=True)
class Event:
    """A progress message on the events channel; lost messages are harmless (outcomes are keys)."""

    job: str
    kind: Literal["started", "step", "preview", "done"]
    worker: str = ""
    key: str | None = None
    step: int = 0
    total: int = 0
    image: str | None = None  # a preview's WebP, base64

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: str | bytes) -> Event:
        return cls(**json.loads(raw))
