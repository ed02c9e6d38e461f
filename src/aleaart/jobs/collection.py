"""The ``collection`` job kind: every token of the contract rendered, then exported for IPFS.

It coordinates rather than renders: tokens are read from the chain in batches, and each is
rendered as a ``render`` job at bulk priority, a few at a time, so an interactive request made
meanwhile starts next. A token already stored is a store hit, so a second run (or one resumed
after a restart) renders only what is missing. A failed token is retried, then reported.
"""

from __future__ import annotations

import collections
import hashlib
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from aleaart.errors import ChainUnavailable, GenerationCancelled, QueueFull, ShuttingDown
from aleaart.export import ExportedToken, export_collection
from aleaart.jobs.kind import CoordinatorContext, JobRequest, Recipe, register
from aleaart.jobs.render import RenderRequest
from aleaart.jobs.state import Job, JobState, Priority
from aleaart.params import DEFAULT_PALETTE, PaletteChoice
from aleaart.store import StoredImage
from aleaart.token_ids import MAX_TOKEN_ID

if TYPE_CHECKING:
    from aleaart.chain import TokenInfo

WINDOW = 8  # render jobs handed to the queue at once: enough to keep the workers busy, few enough to wait behind
ATTEMPTS = 2  # renders of one token before it is reported as failed
POLL_SECONDS = 0.2


@register
@dataclass(frozen=True)
class CollectionRequest(JobRequest):
    """Tokens ``first``..``last`` (``None``: up to the newest minted), exported to the folder ``out``."""

    out: str
    first: int = 1
    last: int | None = None
    palette: PaletteChoice = DEFAULT_PALETTE

    kind: ClassVar[str] = "collection"
    ended_event: ClassVar[str] = "collection"
    coordinates: ClassVar[bool] = True

    def to_json(self) -> dict[str, Any]:
        return {"out": self.out, "first": self.first, "last": self.last, "palette": asdict(self.palette)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CollectionRequest:
        palette = PaletteChoice(**data["palette"]) if "palette" in data else DEFAULT_PALETTE
        return cls(out=data["out"], first=data["first"], last=data["last"], palette=palette)

    def token_request(self, info: TokenInfo) -> RenderRequest:
        """A token of the collection, rendered the way the collection asks."""
        return RenderRequest.of_params(info.params, str(info.token_id), self.palette)

    def key(self, recipe: Recipe) -> str:
        payload = json.dumps({"collection": self.to_json(), "recipe": recipe}, sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()

    def total_steps(self) -> int:
        return 0  # known once the chain is read

    def outputs(self, status: Any) -> int:
        """Its tokens rendered so far: each lands as an ``output`` event."""
        return int((status.summary or {}).get("rendered", 0) or 0)

    def coordinate(self, context: CoordinatorContext) -> dict[str, Any]:
        if context.chain is None:
            raise ChainUnavailable("no chain to read the collection from: set ALEAART_RPC_URL")
        batch = context.chain.tokens(self.first, self.last if self.last is not None else MAX_TOKEN_ID)
        progress = Progress(total=len(batch.ready), pending=batch.pending)
        images = render_all(context, batch.ready, progress, self.token_request)
        exported = [ExportedToken(info, images[info.token_id]) for info in batch.ready if info.token_id in images]
        export = export_collection(Path(self.out), exported, context.store)
        return {**progress.summary(), "out": self.out, **export.to_json()}


@dataclass
class Progress:
    total: int
    pending: list[int]
    rendered: int = 0
    failed: dict[str, str] = field(default_factory=dict)  # token id → why its last attempt failed

    def summary(self) -> dict[str, Any]:
        return {"tokens": self.total, "rendered": self.rendered, "failed": self.failed, "pending": self.pending}


def render_all(context: CoordinatorContext, tokens: list[Any], progress: Progress,
               request_of: Callable[[TokenInfo], RenderRequest]) -> dict[int, StoredImage]:
    """Render every token through the queue, ``WINDOW`` at a time; returns the stored image of each."""
    by_id = {info.token_id: info for info in tokens}
    todo = collections.deque(tokens)
    attempts: collections.Counter[int] = collections.Counter()
    running: dict[int, Job] = {}
    images: dict[int, StoredImage] = {}
    while todo or running:
        if context.cancel.is_set():
            raise GenerationCancelled("the collection was cancelled")
        hand_out(context, todo, running, request_of)
        if running:
            next(iter(running.values())).wait_done(POLL_SECONDS)  # the queue runs them in the order handed out
        for token_id, job in list(running.items()):
            if not job.state.is_terminal():
                continue
            del running[token_id]
            status = job.status
            attempts[token_id] += 1
            if status.state is JobState.SUCCEEDED and status.image is not None:
                images[token_id] = status.image
                progress.rendered += 1
            elif attempts[token_id] < ATTEMPTS:
                todo.append(by_id[token_id])
            else:
                progress.failed[str(token_id)] = status.error or status.state.value
        context.on_progress(progress.rendered + len(progress.failed), progress.total, progress.summary())
    return images


def hand_out(context: CoordinatorContext, todo: collections.deque, running: dict[int, Job],
             request_of: Callable[[TokenInfo], RenderRequest]) -> None:
    while todo and len(running) < WINDOW:
        info = todo.popleft()
        try:
            job = context.submit(request_of(info), Priority.BULK)
        except QueueFull:
            todo.appendleft(info)  # the queue is busy with other work: hand it out when it has room
            return
        except ShuttingDown:
            raise GenerationCancelled("the service is stopping; the collection resumes after the restart") from None
        running[info.token_id] = job
