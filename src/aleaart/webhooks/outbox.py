"""Subscriptions and the outbox of undelivered events, in the service's database.

Events are written in the caller's transaction (the job record's, when they tell of a state change), so an event
is never lost between a change and its delivery. A delivery is claimed with a lease (``next_at`` moved past its
timeout) before it is sent, so two processes sharing the database do not send it at once, and one killed mid-send
leaves it to be sent again (with the same webhook-id, as Standard Webhooks allows).
"""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from dataclasses import dataclass
from typing import Any

from aleaart.database import Database, Schema, declare
from aleaart.webhooks.events import Event, Sent, WebhookSpec
from aleaart.webhooks.targets import shown_url

# Each subscription (a job's, or the service's own) with what it has been sent, and the outbox of events not yet
# delivered, written in the same transaction as the job change they tell of.
WEBHOOKS = declare(Schema("webhooks", (
    """
CREATE TABLE webhook_subscriptions (
    id         TEXT PRIMARY KEY,
    job_id     TEXT,
    url        TEXT NOT NULL,
    events     TEXT NOT NULL,
    created_at REAL NOT NULL,
    started    INTEGER NOT NULL DEFAULT 0,
    outputs    INTEGER NOT NULL DEFAULT 0,
    completed  INTEGER NOT NULL DEFAULT 0,
    gone       INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX webhook_subscriptions_job ON webhook_subscriptions (job_id);
CREATE TABLE webhook_outbox (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    id           TEXT NOT NULL UNIQUE,
    subscription TEXT NOT NULL,
    event        TEXT NOT NULL,
    body         TEXT NOT NULL,
    state        TEXT NOT NULL,
    attempts     INTEGER NOT NULL,
    next_at      REAL NOT NULL,
    created_at   REAL NOT NULL,
    finished_at  REAL,
    last_status  INTEGER,
    error        TEXT
);
CREATE INDEX webhook_outbox_due ON webhook_outbox (state, next_at);
CREATE INDEX webhook_outbox_subscription ON webhook_outbox (subscription, state, seq);
""",
    # v2: whose subscription it is (the key that gave the URL): only its owner is shown it
    """
ALTER TABLE webhook_subscriptions ADD COLUMN owner TEXT;
""",
)))


SERVICE = "service"  # the subscription of ALEAART_WEBHOOK_URL


@dataclass(frozen=True)
class Subscription:
    id: str
    job_id: str | None
    spec: WebhookSpec
    sent: Sent


@dataclass(frozen=True)
class Delivery:
    seq: int
    id: str  # webhook-id: the same on every attempt
    subscription: str
    url: str
    event: str
    body: str
    attempts: int
    next_at: float
    created_at: float


def subscription_of(row: sqlite3.Row) -> Subscription:
    return Subscription(id=row["id"], job_id=row["job_id"], spec=WebhookSpec.of(row["url"], json.loads(row["events"])),
                        sent=Sent(bool(row["started"]), row["outputs"], bool(row["completed"])))


class Outbox:
    def __init__(self, db: Database) -> None:
        self.db = db
        db.require(WEBHOOKS)

    # Subscriptions

    def subscribe(self, conn: sqlite3.Connection, job_id: str | None, spec: WebhookSpec,
                  subscription_id: str | None = None, *, owner: str | None = None) -> Subscription:
        sid = subscription_id or "sub_" + uuid.uuid4().hex
        conn.execute("INSERT OR REPLACE INTO webhook_subscriptions (id, job_id, url, events, created_at, owner) "
                     "VALUES (?, ?, ?, ?, ?, ?)",
                     (sid, job_id, spec.url, json.dumps(sorted(spec.events)), time.time(), owner))
        return Subscription(sid, job_id, spec, Sent())

    def of_job(self, conn: sqlite3.Connection, job_id: str) -> list[Subscription]:
        rows = conn.execute("SELECT * FROM webhook_subscriptions WHERE job_id = ? AND gone = 0 ORDER BY created_at",
                            (job_id,)).fetchall()
        return [subscription_of(row) for row in rows]

    def open_jobs(self) -> set[str]:
        """Jobs with a subscription still to be told of their completion."""
        rows = self.db.query("SELECT DISTINCT job_id FROM webhook_subscriptions WHERE job_id IS NOT NULL "
                             "AND completed = 0 AND gone = 0")
        return {row["job_id"] for row in rows}

    def record(self, conn: sqlite3.Connection, subscription: Subscription, events: list[tuple[Event, dict[str, Any]]],
               sent: Sent) -> None:
        """Queue these events for the subscription and note what it has now been sent (in ``conn``'s
        transaction)."""
        now = time.time()
        conn.execute("UPDATE webhook_subscriptions SET started = ?, outputs = ?, completed = ? WHERE id = ?",
                     (int(sent.started), sent.outputs, int(sent.completed), subscription.id))
        self.add(conn, subscription.id, events, now=now)

    def add(self, conn: sqlite3.Connection, subscription_id: str, events: list[tuple[str, dict[str, Any]]], *,
            now: float) -> None:
        conn.executemany(
            "INSERT INTO webhook_outbox (id, subscription, event, body, state, attempts, next_at, created_at) "
            "VALUES (?, ?, ?, ?, 'pending', 0, ?, ?)",
            [("msg_" + uuid.uuid4().hex, subscription_id, event, json.dumps(body, separators=(",", ":")), now, now)
             for event, body in events])

    # Delivering

    def due(self, now: float, limit: int) -> list[Delivery]:
        """The oldest undelivered event of each subscription, if its time has come: a subscription's events go
        out in order, one at a time."""
        rows = self.db.query(
            "SELECT o.*, s.url FROM webhook_outbox o JOIN webhook_subscriptions s ON s.id = o.subscription "
            "WHERE o.seq IN (SELECT MIN(seq) FROM webhook_outbox WHERE state = 'pending' GROUP BY subscription) "
            "AND o.next_at <= ? ORDER BY o.next_at LIMIT ?", (now, limit))
        return [Delivery(seq=r["seq"], id=r["id"], subscription=r["subscription"], url=r["url"], event=r["event"],
                         body=r["body"], attempts=r["attempts"], next_at=r["next_at"], created_at=r["created_at"])
                for r in rows]

    def claim(self, delivery: Delivery, lease_until: float) -> bool:
        """Take the delivery for one attempt; False if another sender took it first."""
        return self.db.execute("UPDATE webhook_outbox SET next_at = ? WHERE seq = ? AND state = 'pending' AND "
                               "next_at = ?", (lease_until, delivery.seq, delivery.next_at)) == 1

    def delivered(self, delivery: Delivery, status: int) -> None:
        self.db.execute("UPDATE webhook_outbox SET state = 'delivered', attempts = attempts + 1, finished_at = ?, "
                        "last_status = ?, error = NULL WHERE seq = ?", (time.time(), status, delivery.seq))

    def retry(self, delivery: Delivery, *, at: float, status: int | None, error: str) -> None:
        self.db.execute("UPDATE webhook_outbox SET attempts = attempts + 1, next_at = ?, last_status = ?, error = ? "
                        "WHERE seq = ?", (at, status, error, delivery.seq))

    def give_up(self, delivery: Delivery, *, status: int | None, error: str) -> None:
        self.db.execute("UPDATE webhook_outbox SET state = 'failed', attempts = attempts + 1, finished_at = ?, "
                        "last_status = ?, error = ? WHERE seq = ?", (time.time(), status, error, delivery.seq))

    def gone(self, delivery: Delivery) -> int:
        """The receiver answered 410: this and every later event of the subscription are dropped; returns how
        many."""
        now = time.time()
        with self.db.transaction() as conn:
            conn.execute("UPDATE webhook_subscriptions SET gone = 1 WHERE id = ?", (delivery.subscription,))
            return conn.execute(
                "UPDATE webhook_outbox SET state = 'gone', finished_at = ?, last_status = 410, "
                "attempts = attempts + (seq = ?) WHERE subscription = ? AND state = 'pending'",
                (now, delivery.seq, delivery.subscription)).rowcount

    # What answers and metrics say

    def job_state(self, job_id: str, *, owner: str | None = None, every: bool = False,
                  subscription: str | None = None) -> list[dict[str, Any]]:
        """The job's webhooks one may be shown, with their deliveries by state: ``subscription`` alone, those of key
        ``owner`` ("": those given without a key, where none is needed: such callers cannot be told apart), or
        ``every`` one (the admin scope). Their URLs are shown without userinfo, path or query, where receivers keep
        secrets."""
        if subscription is not None:
            where, args = "id = ?", (subscription,)
        elif every:
            where, args = "1", ()
        else:
            where, args = "COALESCE(owner, '') = ?", (owner or "",)
        subs = self.db.query(f"SELECT * FROM webhook_subscriptions WHERE job_id = ? AND {where} ORDER BY created_at",
                             (job_id, *args))
        shown = []
        for sub in subs:
            counts = {row["state"]: row["n"] for row in self.db.query(
                "SELECT state, COUNT(*) AS n FROM webhook_outbox WHERE subscription = ? GROUP BY state", (sub["id"],))}
            last = self.db.query("SELECT error, last_status FROM webhook_outbox WHERE subscription = ? AND error IS "
                                 "NOT NULL ORDER BY seq DESC LIMIT 1", (sub["id"],))
            shown.append({
                "url": shown_url(sub["url"]),
                "events": json.loads(sub["events"]),
                "deliveries": {state: counts.get(state, 0) for state in ("pending", "delivered", "failed", "gone")},
                "lastError": last[0]["error"] if last else None,
            })
        return shown

    def depth(self) -> tuple[int, float | None]:
        """Undelivered events, and when the oldest of them was written."""
        row = self.db.query("SELECT COUNT(*) AS n, MIN(created_at) AS oldest FROM webhook_outbox "
                            "WHERE state = 'pending'")[0]
        return row["n"], row["oldest"]

    def prune(self, older_than: float) -> None:
        """Forget events that ended (delivered, failed, gone) and subscriptions of jobs long finished."""
        self.db.execute("DELETE FROM webhook_outbox WHERE state != 'pending' AND finished_at < ?", (older_than,))
        self.db.execute("DELETE FROM webhook_subscriptions WHERE id != ? AND created_at < ? AND id NOT IN "
                        "(SELECT subscription FROM webhook_outbox)", (SERVICE, older_than))
