"""The loop that follows the contract: read confirmed blocks' EntropyFulfilled logs into the journal, undo what
a reorganisation replaced, and have every fulfilled token rendered through the queue at bulk priority.

One pass (``step``) reads up to the confirmed head in adaptive ranges; between ranges it hands the queue the
tokens that are due (a few at a time, so interactive requests still go first) and collects finished renders.
Passes come every poll interval, or sooner when the websocket subscription pushes a confirmed fulfilment;
between passes, a render that ends wakes the loop to collect it and hand out the next tokens.
A failure to reach the node is retried with backoff and shown in ``/health``; a token that fails to render is
retried with backoff and counted as failed after a few attempts, never dropped.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aleaart.errors import AleaArtError, ChainError, NotFound, QueueFull, ShuttingDown, TokenNotReady
from aleaart.jobs import Job, JobState, Priority, Queue, RenderRequest
from aleaart.params import PaletteChoice
from aleaart.watch.cursor import ChunkSize, backoff_seconds, common_ancestor, default_confirmations, latest_per_token
from aleaart.watch.journal import DueToken, WatchJournal
from aleaart.watch.rpc import ChainLog, RangeRefused
from aleaart.watch.subscription import Subscription

if TYPE_CHECKING:
    from aleaart.chain import ChainReader, TokenInfo
    from aleaart.config import Settings
    from aleaart.integrations.publisher import Publisher
    from aleaart.metrics import Metrics
    from aleaart.store import StoredImage

log = logging.getLogger(__name__)

WINDOW = 8  # renders handed to the queue at once (as a collection does): the rest wait in the journal
RENDER_RETRY_SECONDS = 10.0  # the first retry of a failed render; doubling up to an hour
RENDER_RETRY_CAP = 3600.0
RPC_RETRY_CAP = 60.0


@dataclass(frozen=True)
class WatchConfig:
    confirmations: int
    from_block: int | None
    poll_seconds: float
    max_blocks: int
    palette: PaletteChoice
    ws_url: str | None = None  # a websocket endpoint whose notifications wake the watcher between polls
    timeout: float = 5.0

    @classmethod
    def from_settings(cls, settings: Settings) -> WatchConfig:
        confirmations = settings.watch_confirmations
        return cls(confirmations=default_confirmations(settings.chain_id) if confirmations is None else confirmations,
                   from_block=settings.watch_from_block, poll_seconds=settings.watch_poll_seconds,
                   max_blocks=settings.watch_max_blocks, palette=settings.palette_choice,
                   ws_url=settings.watch_ws_url, timeout=settings.chain_timeout)

    @property
    def behind_after(self) -> float:
        """Seconds without reaching the confirmed head after which /health says the watcher is behind."""
        return max(30.0, 5 * self.poll_seconds)


@dataclass(frozen=True)
class ReadProgress:
    """Where reading stands, for a progress bar: blocks ``first``..``target``, read up to ``cursor``."""

    first: int
    cursor: int
    target: int


@dataclass
class InFlight:
    job: Job
    token: DueToken
    seen_at: float


class Watcher:
    def __init__(self, *, chain: ChainReader, queue: Queue, journal: WatchJournal, config: WatchConfig,
                 publisher: Publisher | None = None, metrics: Metrics | None = None,
                 chain_log: ChainLog | None = None, notify: Callable[[str, dict], None] | None = None) -> None:
        self.chain = chain
        self.queue = queue
        self.journal = journal
        self.config = config
        self.publisher = publisher
        self.metrics = metrics
        self.log = chain_log or ChainLog(chain)
        self.notify = notify  # the service's own webhook (ALEAART_WEBHOOK_URL): token.rendered
        self.chunk = ChunkSize(config.max_blocks)
        self.on_progress: Callable[[ReadProgress], None] | None = None
        self._in_flight: dict[int, InFlight] = {}
        self._stop = threading.Event()
        self._wake = threading.Event()  # the loop's wait ends: a render ended, or a pass is due now
        self._read_now = threading.Event()  # the subscription says a fulfilment is confirmed
        self.subscription: Subscription | None = None  # with ALEAART_WATCH_WS_URL, while running
        self._thread: threading.Thread | None = None

    # Running

    def start(self) -> None:
        """Follow the chain on a thread of its own (``serve`` with ALEAART_WATCH=1)."""
        self._thread = threading.Thread(target=self.run, name="chain-watcher", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def wake(self) -> None:
        """Read the chain now rather than at the end of the poll interval (a pushed fulfilment is confirmed)."""
        self._read_now.set()
        self._wake.set()

    def run(self) -> None:
        """Until ``stop``: a pass over the chain every poll interval (backing off while the node cannot be read),
        sooner when the websocket subscription (ALEAART_WATCH_WS_URL) says a fulfilment is confirmed; between
        passes, each render that ends is collected (stored, pinned, told) and the next token handed out."""
        if self.config.ws_url is not None:
            self.subscription = Subscription(self.config.ws_url, address=self.log.address, wake=self.wake,
                                             confirmations=self.config.confirmations, timeout=self.config.timeout)
            self.subscription.start()
        try:
            self._follow()
        finally:
            if self.subscription is not None:
                self.subscription.stop()

    def _follow(self) -> None:
        failures = 0
        next_pass = time.monotonic()
        while not self._stop.is_set():
            self._wake.clear()  # what ends or is pushed from here on ends the wait below at once
            if self._read_now.is_set() or time.monotonic() >= next_pass:
                self._read_now.clear()
                failures = self._pass(failures)
                wait = self.config.poll_seconds if failures == 0 else \
                    backoff_seconds(failures, base=self.config.poll_seconds, cap=RPC_RETRY_CAP)
                next_pass = time.monotonic() + wait
            else:
                self._settle()
            self._wake.wait(max(0.0, next_pass - time.monotonic()))

    def _pass(self, failures: int) -> int:
        """One pass, its failure said and recorded; returns the failures in a row."""
        try:
            self.step()
            return 0
        except ChainError as error:
            self._chain_failed(error, retry_in=backoff_seconds(failures + 1, base=self.config.poll_seconds,
                                                               cap=RPC_RETRY_CAP))
        except Exception:  # a bug must not end the watcher silently: said, and the pass is tried again
            log.exception("the chain watcher's pass failed; trying again")
        return failures + 1

    def _settle(self) -> None:
        """Between passes: note the renders that ended, and hand out the next tokens once half the window is free
        (one chain read for several tokens, and the queue still has the other half to work on meanwhile)."""
        try:
            self.collect()
            if len(self._in_flight) <= WINDOW // 2:
                self.dispatch()
        except ChainError as error:  # the next pass says it in /health
            log.warning("the chain watcher could not hand out tokens: %s", error)
        except Exception:
            log.exception("the chain watcher could not hand out tokens")

    def step(self) -> None:
        """One pass: read up to the confirmed head, handing out renders as tokens are found."""
        head = self.log.head()
        target = head - self.config.confirmations
        cursor = self._cursor_or_start(target)
        cursor = self._undo_reorganisation(cursor)
        first = cursor + 1
        while cursor < target and not self._stop.is_set():
            cursor = self._read_range(cursor + 1, min(target, cursor + self.chunk.blocks))
            if self.on_progress is not None:
                self.on_progress(ReadProgress(first, cursor, target))
            self.collect()
            self.dispatch()
        self.journal.note_head(head, synced=cursor >= target,
                               subscription=self.subscription.state if self.subscription is not None else None)
        self.collect()
        self.dispatch()

    # Reading the chain

    def _cursor_or_start(self, target: int) -> int:
        if (cursor := self.journal.cursor()) is not None:
            return cursor
        first = self.config.from_block if self.config.from_block is not None else self.log.deployment_block()
        log.info("the chain watcher starts at block %d (%s)", first,
                 "ALEAART_WATCH_FROM_BLOCK" if self.config.from_block is not None else "the contract's deployment")
        self.journal.start_at(first - 1)
        return first - 1

    def _read_range(self, first: int, last: int) -> int:
        """Read blocks first..last into the journal; returns the new cursor (``last``, or ``first - 1`` after a
        refusal, with the range halved for the next try)."""
        last_hash = self.log.block_hash(last)  # before the logs: if they come from a newer branch, the hash
        if last_hash is None:                  # kept no longer matches and the next pass reads them again
            raise ChainError(f"block {last} is not on the chain the RPC serves any more")
        try:
            found = self.log.fulfilments(first, last)
        except RangeRefused as refusal:
            if not self.chunk.refused(last - first + 1):
                raise
            log.info("%s; asking for %d blocks at a time", refusal, self.chunk.blocks)
            return first - 1
        self.chunk.answered()
        changed = self.journal.advance(last, last_hash, latest_per_token(found))
        if self.metrics is not None:
            self.metrics.watch_seen.inc(changed)
        return last

    def _undo_reorganisation(self, cursor: int) -> int:
        """If the last block read is no longer canonical, forget everything above the newest block that still is
        (its tokens are read again from the canonical chain); returns the cursor to read on from."""
        kept = self.journal.kept_blocks()
        if not kept:
            return cursor
        newest, newest_hash = kept[-1]
        if self.log.block_hash(newest) == newest_hash:
            return cursor
        ancestor = common_ancestor(kept, self.log.block_hash)
        if ancestor is None:
            ancestor = kept[0][0] - 1
            log.error("a reorganisation deeper than the %d blocks kept: reading again from block %d",
                      len(kept), ancestor + 1)
        gone = self.journal.rewind(ancestor)
        for token_id in gone:
            self.chain.forget(token_id)
        if self.metrics is not None:
            self.metrics.watch_reorgs.inc()
        log.warning("chain reorganisation: blocks %d..%d replaced; reading them again (tokens fulfilled there: %s)",
                    ancestor + 1, newest, ", ".join(map(str, gone)) or "none")
        return ancestor

    def _chain_failed(self, error: ChainError, *, retry_in: float) -> None:
        log.warning("the chain watcher cannot read the chain: %s; trying again in %.0f s", error, retry_in)
        if self.metrics is not None:
            self.metrics.watch_rpc_errors.inc()
        try:
            self.journal.note_error(str(error))
        except AleaArtError:
            log.exception("could not record the watcher's error")

    # Rendering

    def dispatch(self) -> None:
        """Hand the queue the tokens that are due, up to WINDOW in flight."""
        room = WINDOW - len(self._in_flight)
        if room <= 0:
            return
        due = self.journal.due(room, skip=frozenset(self._in_flight))
        read = self._read_tokens([d.token_id for d in due]) if due else {}
        for token in due:
            if self._stop.is_set() or not self._hand_out(token, read.get(token.token_id)):
                return

    def _read_tokens(self, ids: list[int]) -> dict[int, TokenInfo]:
        """The tokens' parameters as the chain has them now: a few batched requests for a run of ids (as a burst
        of mints gives), one read each for scattered ones. A token missing from the answer is not ready."""
        first, last = min(ids), max(ids)
        if last - first < 4 * len(ids):
            return {info.token_id: info for info in self.chain.tokens(first, last).ready if info.token_id in ids}
        found = {}
        for token_id in ids:
            with contextlib.suppress(TokenNotReady, NotFound):
                found[token_id] = self.chain.token(token_id)
        return found

    def _hand_out(self, due: DueToken, info: TokenInfo | None) -> bool:
        """Submit one token's render (or note it stored already); False when the queue takes no more now."""
        if info is None:  # the chain moved (a reorganisation the next pass will see)
            self._postpone(due, "the chain has no seed for this token now", attempt=False,
                           seconds=self.config.poll_seconds)
            return True
        if info.seed != due.seed:
            self.chain.forget(due.token_id)
            self._postpone(due, "the chain has another seed for this token now", attempt=False,
                           seconds=self.config.poll_seconds)
            return True
        request = RenderRequest.of_params(info.params, str(info.token_id), self.config.palette)
        if (stored := self.queue.lookup(request)) is not None:
            self._finished(due, stored[0])
            return True
        try:
            job = self.queue.submit(request, priority=Priority.BULK)
        except (QueueFull, ShuttingDown):
            return False
        except AleaArtError as error:  # the backend refused it (disk full, no workers): tried again later
            self._render_failed(due, str(error))
            return True
        self._in_flight[due.token_id] = InFlight(job, due, time.monotonic())
        job.when_done(self._wake.set)  # collected, pinned and told at once, and the next token handed out
        return True

    def collect(self) -> None:
        """Note every render that ended: stored (and pinned), or failed and due again later."""
        for token_id, flight in list(self._in_flight.items()):
            if not flight.job.state.is_terminal():
                continue
            del self._in_flight[token_id]
            status = flight.job.status
            if status.state is JobState.SUCCEEDED and status.image is not None:
                self._finished(flight.token, status.image)
                if self.metrics is not None:
                    self.metrics.watch_render_seconds.observe(time.monotonic() - flight.seen_at)
            else:
                self._render_failed(flight.token, status.error or f"the render {status.state.value}")

    def _finished(self, due: DueToken, image: StoredImage) -> None:
        if not self.journal.rendered(due.token_id, due.seed, image.key):
            return  # the token has another seed now: this image is no longer its
        if self.metrics is not None:
            self.metrics.watch_rendered.inc()
        pinned: dict[str, object] = {}
        if self.publisher is not None and self.publisher.pinner is not None:
            # A failed pin is retried by the publisher.
            pinned = self.publisher.publish(image, user_id=None, token_id=str(due.token_id))
        if self.notify is not None:
            self.notify("token.rendered", {"tokenId": str(due.token_id), "seed": "0x" + due.seed.hex(),
                                           "imageId": image.key, "sha256": image.sha256, "file": image.file,
                                           "ipfsHash": pinned.get("ipfsHash")})

    def _render_failed(self, due: DueToken, error: str) -> None:
        attempt = due.attempts + 1
        retry_in = backoff_seconds(attempt, base=RENDER_RETRY_SECONDS, cap=RENDER_RETRY_CAP)
        log.warning("token %d's render failed (attempt %d): %s; trying again in %.0f s",
                    due.token_id, attempt, error, retry_in)
        if self.metrics is not None:
            self.metrics.watch_render_failures.inc()
        self._postpone(due, error, attempt=True, seconds=retry_in)

    def _postpone(self, due: DueToken, error: str, *, attempt: bool, seconds: float) -> None:
        self.journal.postpone(due.token_id, due.seed, until=time.time() + seconds, error=error, attempt=attempt)
