"""What a kind of job is: a typed, serialisable request that knows its key and how to run.

A new kind is one module in ``jobs/`` with a frozen dataclass subclassing ``JobRequest`` (most often through
``spec_kind.SpecRequest`` or ``image_kind.FromStoredImage``), decorated with ``@register``; ``jobs/__init__.py``
imports every module of the package, so there is no list to add it to. Its options are fields declared with
``option(...)`` (checked, whichever way the request is made); its declaration also says its Content Credentials
action, its command-line form (``CliForm``), how the dashboard offers it (``Offer``) and what its events carry.
The queue, the job record, dedup, progress, cancel, SSE and the store treat every kind the same way; the README's
"Adding a job kind" walks through one.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, Self, TypeVar

from PIL import Image

from aleaart.errors import InvalidParams
from aleaart.memory import MemoryProfile, RenderSize
from aleaart.motion import Frame
from aleaart.params import RenderSpec, check_int
from aleaart.provenance.claim import Claim
from aleaart.store import FindImage, ImageStore, StoredImage
from aleaart.weights import Architecture

Recipe = dict[str, str]
"""Everything besides the request that shapes the pixels (model identity, dtype, versions)."""

StepCallback = Callable[[int, int], None]
PngReader = Callable[[str, str], bytes]
"""(image key, sha256) → the stored PNG's bytes; NotFound if it is gone or not those bytes."""


class Rendered(Protocol):
    image: Image.Image
    seconds: float


class Sealer(Protocol):
    """Signs a stored file's Content Credentials (provenance.credentials.Credentials)."""

    chain: dict[str, Any] | None  # the chain id and contract this deployment reads tokens from

    def sign(self, data: bytes, mime: str, claim: Claim) -> bytes: ...


class EngineLike(Protocol):
    """What jobs need of an engine (the real one, or a fake in tests)."""

    model_name: str
    memory: MemoryProfile | None  # what it measured of its memory, if it did
    max_rss_gb: float | None  # the most it may use (ALEAART_MAX_RSS_GB)

    @property
    def recipe(self) -> Recipe: ...

    def recipe_details(self, spec: RenderSpec) -> dict[str, Any]:
        """What else shaped the pixels, for the Content Credentials: the weights' sha256, the scheduler and its
        config, precision, library versions and threads."""
        ...

    def generate(self, spec: RenderSpec, *, on_step: StepCallback | None = None,
                 cancel: threading.Event | None = None) -> Rendered: ...

    def generate_variations(self, spec: RenderSpec, seeds: list[int], strength: float, *,
                            on_step: StepCallback | None = None,
                            cancel: threading.Event | None = None) -> list[Rendered]: ...

    def transform(self, spec: RenderSpec, image: Image.Image, strength: float, *,
                  on_step: StepCallback | None = None, cancel: threading.Event | None = None) -> Rendered: ...

    def animate(self, spec: RenderSpec, frames: list[Frame], *, morph_prompt: str | None = None,
                on_step: StepCallback | None = None, cancel: threading.Event | None = None) -> list[Rendered]: ...

    def architecture(self) -> Architecture: ...

    def require_memory(self, size: RenderSize) -> None:
        """Raise InsufficientMemory if a render of ``size`` would pass the memory it may use."""
        ...


@dataclass(frozen=True)
class Option:
    """One option of a kind, as a request body states it: its JSON name, what it means, and its range (numbers)
    or its choices (words)."""

    name: str
    description: str
    low: float | None = None
    high: float | None = None
    integer: bool = True
    choices: tuple[str, ...] | None = None


def check_option(opt: Option, value: Any) -> None:
    """``value`` within ``opt``'s range or choices, else InvalidParams naming it."""
    if opt.choices is not None:
        if value not in opt.choices:
            raise InvalidParams(f"{opt.name} must be one of {', '.join(opt.choices)}, got {value!r}")
    elif opt.integer:
        check_int(opt.name, value, int(opt.low or 0), int(opt.high or 0))
    elif isinstance(value, bool) or not isinstance(value, int | float) or not opt.low <= value <= opt.high:  # type: ignore[operator]
        raise InvalidParams(f"{opt.name} must be {opt.low:g}..{opt.high:g}, got {value!r}")


@dataclass(frozen=True)
class CliForm:
    """The kind as an ``aleaart`` command: ``aleaart <command>`` with a flag per option (``--<json-name>`` in
    kebab case, or the name ``flags`` gives it). A kind from an image's spec takes ``--params``/``--token-id`` and
    writes its files into ``--out`` (a folder); one from a stored image takes the PNG and writes ``--out``."""

    command: str
    help: str
    flags: dict[str, str] = dataclasses.field(default_factory=dict)  # option JSON name → flag


@dataclass(frozen=True)
class Offer:
    """How the dashboard offers the kind: a button under the image shown, asking with ``body``; ``pick`` an
    option chosen beside it from one of /params' tables (``pick_table``), named in ``heading`` as ``{pick}``."""

    label: str
    heading: str
    note: str
    body: dict[str, Any] = dataclasses.field(default_factory=dict)
    pick: str | None = None
    pick_table: str | None = None
    pick_label: str | None = None
    shows: str = "all"  # which results are shown: "all", or "video" (an animation's MP4, not its WebP)
    order: int = 0  # the buttons' order, left to right

    def to_json(self) -> dict[str, Any]:
        return {"label": self.label, "heading": self.heading, "note": self.note, "body": self.body,
                "pick": self.pick, "pickTable": self.pick_table, "pickLabel": self.pick_label, "shows": self.shows,
                "order": self.order}


def option(default: Any, description: str, *, low: float | None = None, high: float | None = None,
           name: str | None = None, integer: bool = True, choices: tuple[str, ...] | None = None) -> Any:
    """A dataclass field that is an option of its kind (``dataclasses.MISSING``: a required one); ``name`` is its
    JSON name (default: the field's)."""
    declared = {"name": name, "description": description, "low": low, "high": high, "integer": integer,
                "choices": choices}
    return dataclasses.field(default=default, metadata={"option": declared})


@dataclass(frozen=True)
class Artifact:
    """One result file of a job, with the index row that describes it."""

    record: StoredImage
    data: bytes


@dataclass(frozen=True)
class RunContext:
    """What a job gets to run with: the engine, its key, progress and cancel hooks, the store to reuse
    pixels from (None on a cluster worker, which has no store of its own), and where the stored images
    a job starts from are read (the store, the broker, or a file the CLI was given)."""

    engine: EngineLike
    key: str
    store: ImageStore | None
    on_step: StepCallback
    cancel: threading.Event
    read_png: PngReader | None = None
    credentials: Sealer | None = None  # None: files are stored unsigned (tests of other things)
    action: str = "c2pa.edited"  # the kind's, for its files' Content Credentials


@dataclass(frozen=True)
class CoordinatorContext:
    """What a coordinating job gets: no engine, but the queue to hand work to (at a priority) and the chain."""

    submit: Callable[[JobRequest, int], Any]  # (request, priority) → Job; may raise QueueFull
    cancel_job: Callable[[str], Any]
    store: ImageStore
    chain: Any  # a ChainReader, or None where the service has none
    on_progress: Callable[[int, int, dict[str, Any]], None]  # (done, total, summary so far)
    cancel: threading.Event


class JobRequest:
    """Base of every job kind; subclasses are frozen dataclasses.

    Most kinds ``run`` on the worker that owns the model. A kind with ``coordinates = True`` instead
    runs ``coordinate`` in a thread of its own and hands its work to the queue as jobs of other kinds
    (a collection renders each token as a ``render`` job at bulk priority).
    """

    kind: ClassVar[str]
    coordinates: ClassVar[bool] = False
    action: ClassVar[str] = "c2pa.edited"  # what its files' Content Credentials say was done (a C2PA action)
    cli: ClassVar[CliForm | None] = None  # its ``aleaart`` command, if it has one
    offer: ClassVar[Offer | None] = None  # its button on the dashboard, if it has one
    ended_event: ClassVar[str | None] = None  # the service's webhook event when it ends: "<ended_event>.<state>"

    def __post_init__(self) -> None:
        self.check_options()

    def check_options(self) -> None:
        """Every option in its declared range (None where its default is None), however the request is made (HTTP,
        the CLI, a job record, the Celery wire)."""
        defaults = self.option_defaults()
        for field, opt in self.options():
            value = getattr(self, field)
            if value is None and defaults[field] is None:
                continue
            check_option(opt, value)

    def outputs(self, status: Any) -> int:
        """How many results a status has announced (a webhook's ``output`` events): its images by default."""
        return len(status.images)

    @classmethod
    def options(cls) -> list[tuple[str, Option]]:
        """(field name, Option) of each field declared with ``option``, in declaration order."""
        found = []
        for field in dataclasses.fields(cls):  # type: ignore[arg-type]
            if (declared := field.metadata.get("option")) is not None:
                found.append((field.name, Option(**{**declared, "name": declared["name"] or field.name})))
        return found

    @classmethod
    def option_defaults(cls) -> dict[str, Any]:
        """Each option's default by field name (``dataclasses.MISSING`` where it is required)."""
        return {field.name: field.default for field in dataclasses.fields(cls)}  # type: ignore[arg-type]

    @property
    def token_id(self) -> str | None:
        return None

    def to_json(self) -> dict[str, Any]:
        raise NotImplementedError

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Self:
        raise NotImplementedError

    def key(self, recipe: Recipe) -> str:
        """The identity of the result: the same key means the same bytes."""
        raise NotImplementedError

    def total_steps(self) -> int:
        raise NotImplementedError

    def render_size(self) -> RenderSize | None:
        """The largest render it asks of the engine, for the memory check; None: it renders nothing itself."""
        return None

    def run(self, context: RunContext) -> list[Artifact]:
        """The whole job, on one thread: ``encode(render(context))``."""
        return self.encode(self.render(context), context)

    def render(self, context: RunContext) -> Any:
        """The part that needs the engine. The in-process queue runs it on the engine's thread and
        ``encode`` on another, so the next job renders while this one's PNG is encoded and stored."""
        raise NotImplementedError

    def encode(self, rendered: Any, context: RunContext) -> list[Artifact]:
        """The CPU-only rest (PNG encoding) of what ``render`` returned; by default it returned artifacts."""
        return rendered

    def sources(self) -> tuple[tuple[str, str], ...]:
        """The (key, sha256) of each stored image the job starts from; a cluster sends them with the job."""
        return ()

    def coordinate(self, context: CoordinatorContext) -> dict[str, Any]:
        """A coordinating kind's work; returns its summary."""
        raise NotImplementedError

    def stored(self, key: str, find: FindImage) -> tuple[StoredImage, ...] | None:
        """The result already stored, if ``find`` (the store's ``get``, or its memory-only ``known``) finds it;
        kinds with several images override it."""
        image = find(key)
        return (image,) if image is not None else None

    def same_picture(self, recipe: Recipe, store: Any) -> StoredImage | None:
        """A stored image under another key that answers this request as well (the same pixels, asked for through
        another body); None for kinds where there is no such thing."""
        return None


KINDS: dict[str, type[JobRequest]] = {}
K = TypeVar("K", bound=type[JobRequest])


def register(cls: K) -> K:
    if cls.kind in KINDS:
        raise RuntimeError(f"job kind {cls.kind!r} is registered twice")
    KINDS[cls.kind] = cls
    return cls


def request_from_json(kind: str, data: dict[str, Any]) -> JobRequest:
    try:
        cls = KINDS[kind]
    except KeyError:
        raise InvalidParams(f"kind must be one of {', '.join(KINDS)}, got {kind!r}") from None
    return cls.from_json(data)


@functools.lru_cache(maxsize=4096)
def identity(request: JobRequest) -> str:
    """The request's identity before the model is known: identical requests share one job. Requests are frozen
    dataclasses, so an identity is computed once per distinct request (a repeated one is a store hit's whole
    cost otherwise)."""
    payload = json.dumps({"kind": request.kind, "request": request.to_json()}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(payload.encode()).hexdigest()
