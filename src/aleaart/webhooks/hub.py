"""Webhooks tied to the jobs: a request's webhook becomes a subscription of its job; the job record's every save
writes, in its transaction, the events its new state makes due (start, output, completed); a follower thread per
watched job sends what is not saved (start on a worker's claim, output of a collection's tokens as they land, logs
of steps), throttled. The service's own events (ALEAART_WEBHOOK_URL) go through the same outbox."""

from __future__ import annotations

import datetime
import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from typing import Any

from aleaart.config import Settings
from aleaart.database import Database
from aleaart.jobs import Job, JobStatus
from aleaart.locks import StateLock
from aleaart.metrics import Metrics
from aleaart.webhooks.delivery import Deliverer, DeliveryPolicy
from aleaart.webhooks.events import THROTTLE_SECONDS, Event, Seen, Sent, WebhookSpec, due_events
from aleaart.webhooks.outbox import SERVICE, Outbox, Subscription
from aleaart.webhooks.targets import check_url

log = logging.getLogger(__name__)

Snapshot = Callable[[Job, JobStatus], dict[str, Any]]


def seen_of(job: Job, status: JobStatus) -> Seen:
    return Seen(running_or_done=status.state.value != "queued", outputs=job.request.outputs(status),
                terminal=status.state.is_terminal())


class Webhooks:
    def __init__(self, db: Database, settings: Settings, metrics: Metrics) -> None:
        self.db = db
        self.outbox = Outbox(db)
        self.allow_private = settings.webhook_allow_private
        self.service_url = settings.webhook_url
        self.keep_seconds = settings.keep_jobs_hours * 3600 + settings.webhook_horizon_hours * 3600
        self.deliverer = Deliverer(self.outbox, DeliveryPolicy(
            secret=settings.webhook_secret, allow_private=settings.webhook_allow_private,
            retry_seconds=settings.webhook_retry_seconds, horizon_seconds=settings.webhook_horizon_hours * 3600,
            timeout=settings.webhook_timeout_seconds), metrics)
        self.snapshot: Snapshot = lambda job, status: {"jobId": job.id, "status": status.state.value}
        self._watched: set[str] = set()  # jobs with a subscription not yet told of completion
        self._followed: set[str] = set()
        self._last_sent: dict[tuple[str, str], float] = {}  # (subscription, output|logs) → when
        self._lock = StateLock("the webhook hub's lock")
        self._stop = threading.Event()
        metrics.watch_outbox(self._depth)

    # Lifecycle

    def start(self) -> None:
        """Deliver what the outbox holds (from before a restart too) and watch the jobs that still owe events."""
        if self.service_url:
            with self.db.transaction() as conn:
                self.outbox.subscribe(conn, None, WebhookSpec(self.service_url, frozenset()), SERVICE)
        self._watched = self.outbox.open_jobs()
        self.deliverer.housekeeping = self._prune
        self.deliverer.start()

    def stop(self) -> None:
        self._stop.set()
        self.deliverer.stop()

    # Requests

    def check(self, url: str) -> None:
        """Refuse (422) a URL a webhook may not go to; resolves the host, so call it off the event loop."""
        check_url(url, allow_private=self.allow_private)

    def subscribe(self, job: Job, spec: WebhookSpec, owner: str = "") -> str:
        """``job`` notifies ``spec.url`` (``owner``'s: only that key is shown it): what it has done already is sent
        at once, the rest as it happens. Returns the subscription's id."""
        with self.db.transaction() as conn:
            subscription = self.outbox.subscribe(conn, job.id, spec, owner=owner)
            with self._lock:
                self._watched.add(job.id)
            self._record(conn, job, job.status, [subscription], final=False)
        self.deliverer.wake()
        if not job.status.state.is_terminal():
            self._follow(job)
        return subscription.id

    def job_state(self, job_id: str, **shown: Any) -> list[dict[str, Any]]:
        """The job's webhooks one may see (Outbox.job_state says which)."""
        return self.outbox.job_state(job_id, **shown)

    # The job record's saves (JobBook's hook, in its transaction)

    def on_job_saved(self, conn: sqlite3.Connection, job: Job) -> None:
        status = job.status
        if job.id in self._watched:
            self._record(conn, job, status, self.outbox.of_job(conn, job.id), final=True)
            if status.state.is_terminal():
                ended = self._subscription_ids(conn, job)
                with self._lock:
                    self._watched.discard(job.id)
                    for key in [k for k in self._last_sent if k[0] in ended]:
                        del self._last_sent[key]
            self.deliverer.wake()
        if self.service_url and status.state.is_terminal() and (event := job.request.ended_event) is not None:
            self.service_event(f"{event}.{status.state.value}", self.snapshot(job, status), conn=conn)

    def _record(self, conn: sqlite3.Connection, job: Job, status: JobStatus, subscriptions: list[Subscription], *,
                final: bool, logs: bool = False) -> None:
        seen = seen_of(job, status)
        body = None
        now = time.monotonic()
        for subscription in subscriptions:
            output_throttled = self._throttled(subscription.id, "output", now) and not final
            events: list[Event] = due_events(subscription.spec, subscription.sent, seen, throttled=output_throttled)
            if logs and subscription.spec.wants("logs") and seen.running_or_done and not seen.terminal \
                    and not self._throttled(subscription.id, "logs", now):  # progress once it runs: after start
                events.append("logs")
            if not events:
                continue
            body = body or self.snapshot(job, status)
            sent = Sent(started=subscription.sent.started or "start" in events,
                        outputs=seen.outputs if "output" in events else subscription.sent.outputs,
                        completed="completed" in events)
            self.outbox.record(conn, subscription, [(event, body) for event in events], sent)
            for event in ("output", "logs"):
                if event in events:
                    self._last_sent[(subscription.id, event)] = now

    def _throttled(self, subscription_id: str, event: str, now: float) -> bool:
        return now - self._last_sent.get((subscription_id, event), -THROTTLE_SECONDS) < THROTTLE_SECONDS

    # What is not saved: followed in memory

    def _follow(self, job: Job) -> None:
        with self._lock:
            if job.id in self._followed:
                return
            self._followed.add(job.id)
        threading.Thread(target=self._follower, args=(job,), name=f"webhook-follow-{job.id[:8]}", daemon=True).start()

    def _follower(self, job: Job) -> None:
        """Until the job ends (its completion is written with its record): start, output and logs as they come."""
        seen = -1
        try:
            while not self._stop.is_set():
                status = job.wait_change(seen, timeout=1.0)
                if status.state.is_terminal():
                    return
                if status.version == seen:
                    continue
                seen = status.version
                with self.db.transaction() as conn:
                    self._record(conn, job, status, self.outbox.of_job(conn, job.id), final=False, logs=True)
                self.deliverer.wake()
                time.sleep(THROTTLE_SECONDS / 5)  # progress comes faster than it is sent: look a little later
        except Exception:
            log.exception("following job %s for its webhooks failed (its completion is still sent)", job.id)
        finally:
            with self._lock:
                self._followed.discard(job.id)

    # The service's own events

    def service_event(self, event_type: str, data: dict[str, Any], *, conn: sqlite3.Connection | None = None) -> None:
        """An event of the service (``token.rendered``, ``collection.succeeded``…) for ALEAART_WEBHOOK_URL, in the
        Standard Webhooks body shape: type, timestamp, data."""
        if not self.service_url:
            return
        body = {"type": event_type, "timestamp": datetime.datetime.now(tz=datetime.UTC).isoformat(),
                "data": data}
        if conn is not None:
            self.outbox.add(conn, SERVICE, [(event_type, body)], now=time.time())
        else:
            with self.db.transaction() as own:
                self.outbox.add(own, SERVICE, [(event_type, body)], now=time.time())
        self.deliverer.wake()

    def _subscription_ids(self, conn: sqlite3.Connection, job: Job) -> set[str]:
        return {row["id"] for row in conn.execute("SELECT id FROM webhook_subscriptions WHERE job_id = ?", (job.id,))}

    def _prune(self) -> None:
        """Forget delivered and given-up events (and their subscriptions) once their jobs' records are gone."""
        self.outbox.prune(time.time() - self.keep_seconds)

    def _depth(self) -> dict[str, float | None]:
        count, oldest = self.outbox.depth()
        return {"depth": count, "oldest_seconds": None if oldest is None else max(0.0, time.time() - oldest)}

