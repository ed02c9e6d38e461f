"""The watcher's durable state in the service's database: the cursor (the last block read, with the hashes of
recent blocks to notice a reorganisation) and each fulfilled token until its image is stored.

A range's tokens and the cursor past it are written in one transaction, so a restart (or ``kill -9``) resumes
from the cursor with nothing missed: a token seen is a row until it is rendered.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from aleaart.database import Database, Schema, declare
from aleaart.watch.cursor import Fulfilment

# How far the watcher has read (with the hashes of the blocks it read, to notice a reorganisation) and every
# fulfilled token it has seen until its image is stored. Token ids are uint256: TEXT. v2: the state of its
# websocket subscription, for /health in any process.
WATCH = declare(Schema("watch", (
    """
CREATE TABLE watch_cursor (
    chain     TEXT PRIMARY KEY,
    block     INTEGER NOT NULL,
    head      INTEGER,
    head_at   REAL,
    synced_at REAL,
    error     TEXT,
    reorgs    INTEGER NOT NULL,
    updated_at REAL NOT NULL
);
CREATE TABLE watch_blocks (
    chain  TEXT NOT NULL,
    number INTEGER NOT NULL,
    hash   TEXT NOT NULL,
    PRIMARY KEY (chain, number)
);
CREATE TABLE watch_tokens (
    chain       TEXT NOT NULL,
    token_id    TEXT NOT NULL,
    seed        TEXT NOT NULL,
    block       INTEGER NOT NULL,
    block_hash  TEXT NOT NULL,
    state       TEXT NOT NULL,
    key         TEXT,
    attempts    INTEGER NOT NULL,
    next_at     REAL NOT NULL,
    error       TEXT,
    seen_at     REAL NOT NULL,
    rendered_at REAL,
    PRIMARY KEY (chain, token_id)
);
CREATE INDEX watch_tokens_due ON watch_tokens (chain, state, next_at);
CREATE INDEX watch_tokens_block ON watch_tokens (chain, block);
""",
    """
ALTER TABLE watch_cursor ADD COLUMN subscription TEXT;
""",
)))


KEPT_BLOCKS = 256  # recent block hashes kept: a reorganisation deeper than this re-reads from the oldest kept
FAILED_AFTER = 3  # attempts after which a token counts as failed (it is still retried, less often)


@dataclass(frozen=True)
class DueToken:
    token_id: int
    seed: bytes
    attempts: int


@dataclass(frozen=True)
class WatchStatus:
    """What /health and /metrics say of the watcher."""

    block: int | None  # the last block read (the cursor)
    head: int | None  # the chain's head when last asked
    synced_at: float | None  # the last time the cursor reached the confirmed head
    error: str | None
    subscription: str | None  # the websocket subscription: live, connecting, refused; None without one
    reorgs: int
    seen: int
    rendered: int
    pending: int
    failed: int

    def lag_blocks(self) -> int | None:
        return None if self.head is None or self.block is None else max(0, self.head - self.block)

    def lag_seconds(self, now: float) -> float | None:
        return None if self.synced_at is None else max(0.0, now - self.synced_at)

    def gauges(self, now: float) -> dict[str, float | None]:
        return {"head_block": self.head, "cursor_block": self.block, "lag_blocks": self.lag_blocks(),
                "lag_seconds": self.lag_seconds(now), "seen": self.seen, "rendered": self.rendered,
                "pending": self.pending, "failed": self.failed}

    def to_json(self, *, now: float, confirmations: int, behind_after: float) -> dict[str, Any]:
        lag = self.lag_seconds(now)
        behind = self.error is not None or lag is None or lag > behind_after
        return {
            "status": "behind" if behind else "following",
            "headBlock": self.head, "cursorBlock": self.block, "confirmations": confirmations,
            "lagBlocks": self.lag_blocks(), "lagSeconds": None if lag is None else round(lag, 1),
            "tokens": {"seen": self.seen, "rendered": self.rendered, "pending": self.pending, "failed": self.failed},
            "reorgs": self.reorgs, "lastError": self.error, "subscription": self.subscription,
        }


class WatchJournal:
    def __init__(self, db: Database, *, chain_id: int, address: str) -> None:
        self.db = db
        db.require(WATCH)
        self.chain = f"{chain_id}:{address.lower()}"

    # The cursor

    def cursor(self) -> int | None:
        rows = self.db.query("SELECT block FROM watch_cursor WHERE chain = ?", (self.chain,))
        return rows[0]["block"] if rows else None

    def kept_blocks(self) -> list[tuple[int, str]]:
        rows = self.db.query("SELECT number, hash FROM watch_blocks WHERE chain = ? ORDER BY number", (self.chain,))
        return [(row["number"], row["hash"]) for row in rows]

    def start_at(self, block: int) -> None:
        """A first cursor: the next block read is ``block + 1``."""
        self.db.execute("INSERT OR IGNORE INTO watch_cursor (chain, block, reorgs, updated_at) VALUES (?, ?, 0, ?)",
                        (self.chain, block, time.time()))

    def advance(self, last: int, last_hash: str, fulfilments: list[Fulfilment], *, now: float | None = None) -> int:
        """Blocks up to ``last`` (hash ``last_hash``) are read and these are their fulfilments, latest per token:
        one transaction. Returns how many tokens are new or got a new seed."""
        now = time.time() if now is None else now
        changed = 0
        with self.db.transaction() as db:
            for f in fulfilments:
                seed = f.seed.hex()
                row = db.execute("SELECT seed FROM watch_tokens WHERE chain = ? AND token_id = ?",
                                 (self.chain, str(f.token_id))).fetchone()
                if row is not None and row["seed"] == seed:
                    db.execute("UPDATE watch_tokens SET block = ?, block_hash = ? WHERE chain = ? AND token_id = ?",
                               (f.block_number, f.block_hash, self.chain, str(f.token_id)))
                    continue
                changed += 1
                db.execute(
                    "INSERT OR REPLACE INTO watch_tokens (chain, token_id, seed, block, block_hash, state, key, "
                    "attempts, next_at, error, seen_at, rendered_at) VALUES (?, ?, ?, ?, ?, 'pending', NULL, 0, ?, "
                    "NULL, ?, NULL)",
                    (self.chain, str(f.token_id), seed, f.block_number, f.block_hash, now, now))
            hashes = {(f.block_number, f.block_hash) for f in fulfilments} | {(last, last_hash)}
            db.executemany("INSERT OR REPLACE INTO watch_blocks (chain, number, hash) VALUES (?, ?, ?)",
                           [(self.chain, number, block_hash) for number, block_hash in hashes])
            db.execute("DELETE FROM watch_blocks WHERE chain = ? AND number NOT IN (SELECT number FROM watch_blocks "
                       "WHERE chain = ? ORDER BY number DESC LIMIT ?)", (self.chain, self.chain, KEPT_BLOCKS))
            db.execute(
                "INSERT INTO watch_cursor (chain, block, reorgs, updated_at) VALUES (?, ?, 0, ?) "
                "ON CONFLICT (chain) DO UPDATE SET block = excluded.block, updated_at = excluded.updated_at",
                (self.chain, last, now))
        return changed

    def rewind(self, ancestor: int) -> list[int]:
        """A reorganisation: forget what was read above ``ancestor`` (its tokens are read again, with whatever
        seed the canonical chain gives them). Returns the tokens whose fulfilment is now unknown."""
        with self.db.transaction() as db:
            gone = [int(row["token_id"]) for row in db.execute(
                "SELECT token_id FROM watch_tokens WHERE chain = ? AND block > ?", (self.chain, ancestor))]
            db.execute("DELETE FROM watch_tokens WHERE chain = ? AND block > ?", (self.chain, ancestor))
            db.execute("DELETE FROM watch_blocks WHERE chain = ? AND number > ?", (self.chain, ancestor))
            db.execute("UPDATE watch_cursor SET block = ?, reorgs = reorgs + 1, updated_at = ? WHERE chain = ?",
                       (ancestor, time.time(), self.chain))
        return gone

    def note_head(self, head: int, *, synced: bool, subscription: str | None = None) -> None:
        now = time.time()
        self.db.execute(
            "UPDATE watch_cursor SET head = ?, head_at = ?, error = NULL, subscription = ?, synced_at = CASE WHEN ? "
            "THEN ? ELSE synced_at END WHERE chain = ?", (head, now, subscription, synced, now, self.chain))

    def note_error(self, error: str) -> None:
        self.db.execute("UPDATE watch_cursor SET error = ?, updated_at = ? WHERE chain = ?",
                        (error, time.time(), self.chain))

    # The tokens

    def due(self, limit: int, *, now: float | None = None, skip: frozenset[int] = frozenset()) -> list[DueToken]:
        """Tokens whose image is still to be made and whose turn it is, oldest fulfilment first."""
        rows = self.db.query(
            "SELECT token_id, seed, attempts FROM watch_tokens WHERE chain = ? AND state = 'pending' AND next_at <= ? "
            "ORDER BY block, token_id LIMIT ?", (self.chain, time.time() if now is None else now, limit + len(skip)))
        due = [DueToken(int(r["token_id"]), bytes.fromhex(r["seed"]), r["attempts"]) for r in rows]
        return [t for t in due if t.token_id not in skip][:limit]

    def rendered(self, token_id: int, seed: bytes, key: str) -> bool:
        """The token's image is stored; False if the token has meanwhile another seed (a reorganisation)."""
        return self.db.execute(
            "UPDATE watch_tokens SET state = 'rendered', key = ?, error = NULL, rendered_at = ? "
            "WHERE chain = ? AND token_id = ? AND seed = ?",
            (key, time.time(), self.chain, str(token_id), seed.hex())) == 1

    def postpone(self, token_id: int, seed: bytes, *, until: float, error: str | None, attempt: bool) -> None:
        self.db.execute(
            "UPDATE watch_tokens SET next_at = ?, error = ?, attempts = attempts + ? "
            "WHERE chain = ? AND token_id = ? AND seed = ?",
            (until, error, int(attempt), self.chain, str(token_id), seed.hex()))

    def token(self, token_id: int) -> dict[str, Any] | None:
        rows = self.db.query("SELECT * FROM watch_tokens WHERE chain = ? AND token_id = ?", (self.chain, str(token_id)))
        return dict(rows[0]) if rows else None

    def started(self) -> bool:
        """Whether a watcher has followed this contract with this database (here or in another process)."""
        return self.cursor() is not None

    def status(self) -> WatchStatus:
        cursor = self.db.query("SELECT * FROM watch_cursor WHERE chain = ?", (self.chain,))
        counts = self.db.query(
            "SELECT COUNT(*) AS seen, COALESCE(SUM(state = 'rendered'), 0) AS rendered, "
            "COALESCE(SUM(state = 'pending'), 0) AS pending, "
            "COALESCE(SUM(state = 'pending' AND attempts >= ?), 0) AS failed "
            "FROM watch_tokens WHERE chain = ?", (FAILED_AFTER, self.chain))[0]
        c = cursor[0] if cursor else None
        return WatchStatus(
            block=c["block"] if c else None, head=c["head"] if c else None,
            synced_at=c["synced_at"] if c else None, error=c["error"] if c else None,
            subscription=c["subscription"] if c else None, reorgs=c["reorgs"] if c else 0,
            seen=counts["seen"], rendered=counts["rendered"],
            pending=counts["pending"], failed=counts["failed"])
