"""Sending the outbox: one attempt per due event, signed per Standard Webhooks, to an address checked as it is
connected to; retried with backoff and jitter until the horizon. Its own threads: a slow receiver holds a delivery
thread, never a render, and at most PER_TARGET of them (a target is a scheme, host and port), so receivers that
never answer cannot hold up another's deliveries; a target whose attempts keep failing without an answer rests as
a whole (its events wait in the outbox, their attempts not spent) for a while that doubles."""

from __future__ import annotations

import datetime
import logging
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import httpx
from standardwebhooks.webhooks import Webhook

from aleaart import __version__
from aleaart.errors import InvalidWebhook
from aleaart.metrics import Metrics
from aleaart.webhooks.events import ATTEMPT_TIMEOUT_SECONDS, outcome_of, retry_delay
from aleaart.webhooks.outbox import Delivery, Outbox
from aleaart.webhooks.targets import checked_addresses, parse_target, shown_url, target_of

log = logging.getLogger(__name__)

EVENT_HEADER = "aleaart-event"  # which event (start, output, logs, completed; token.rendered…): the body is the job
SENDERS = 16  # deliveries at once (each to a different subscription: one subscription's go out in order)
PER_TARGET = 2  # of them to one receiver (scheme, host and port)
REST_AFTER = 3  # failed attempts in a row without an answer before a target rests
MAX_REST_SECONDS = 600.0
IDLE_POLL_SECONDS = 0.5
HOUSEKEEPING_SECONDS = 3600.0


@dataclass(frozen=True)
class DeliveryPolicy:
    secret: str | None  # whsec_…: signed; None: unsigned
    allow_private: bool
    retry_seconds: float  # the first retry's delay, doubling (with jitter) to an hour between attempts
    horizon_seconds: float  # no attempt after this long since the event was written
    timeout: float = ATTEMPT_TIMEOUT_SECONDS


class Deliverer:
    def __init__(self, outbox: Outbox, policy: DeliveryPolicy, metrics: Metrics) -> None:
        self.outbox = outbox
        self.policy = policy
        self.metrics = metrics
        self.signer = Webhook(policy.secret) if policy.secret else None
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pool = ThreadPoolExecutor(SENDERS, thread_name_prefix="webhook")
        self._sending: set[str] = set()  # subscriptions with an attempt under way here
        self._busy: dict[str, int] = {}  # target → attempts under way to it
        self._silent: dict[str, int] = {}  # target → failed attempts in a row without an answer
        self._resting: dict[str, float] = {}  # target → when it may be tried again (monotonic)
        self._lock = threading.Lock()
        self._client = httpx.Client(follow_redirects=False, timeout=policy.timeout)
        self.housekeeping: Callable[[], None] | None = None  # run at start and hourly (pruning the outbox)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="webhook-outbox", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        """New events were written: look now rather than at the next poll."""
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(5)
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._client.close()

    def _run(self) -> None:
        tidied = 0.0
        while not self._stop.is_set():
            try:
                if self.housekeeping is not None and (not tidied or time.monotonic() - tidied > HOUSEKEEPING_SECONDS):
                    tidied = time.monotonic()
                    self.housekeeping()
                self.send_due()
            except Exception:  # the outbox keeps the events: said, and tried again at the next poll
                log.exception("reading the webhook outbox failed")
            self._wake.wait(IDLE_POLL_SECONDS)
            self._wake.clear()

    def send_due(self) -> None:
        now = time.time()
        for delivery in self.outbox.due(now, limit=4 * SENDERS):
            target = target_of(delivery.url)
            with self._lock:
                if len(self._sending) >= SENDERS or delivery.subscription in self._sending:
                    continue
                if self._busy.get(target, 0) >= PER_TARGET or self._resting.get(target, 0.0) > time.monotonic():
                    continue
                if not self.outbox.claim(delivery, now + self.policy.timeout + 5):
                    continue
                self._sending.add(delivery.subscription)
                self._busy[target] = self._busy.get(target, 0) + 1
            self._pool.submit(self._attempt, delivery, target)

    def _attempt(self, delivery: Delivery, target: str) -> None:
        status: int | None = None
        try:
            status, error = self._post(delivery)
            self._settle(delivery, status, error)
        except Exception:
            log.exception("webhook %s: the attempt failed unexpectedly", delivery.id)
            self._settle(delivery, None, "internal error sending the webhook")
        finally:
            with self._lock:
                self._sending.discard(delivery.subscription)
                self._busy[target] -= 1
                if not self._busy[target]:
                    del self._busy[target]
                self._note_answer(target, status is not None)
            self._wake.set()  # the subscription's next event may be due

    def _note_answer(self, target: str, answered: bool) -> None:
        """Count a target's attempts without an answer; past REST_AFTER in a row it rests, a while that doubles."""
        if answered:
            self._silent.pop(target, None)
            self._resting.pop(target, None)
            return
        silent = self._silent[target] = self._silent.get(target, 0) + 1
        if silent >= REST_AFTER:
            rest = min(MAX_REST_SECONDS, self.policy.retry_seconds * 2 ** (silent - REST_AFTER))
            self._resting[target] = time.monotonic() + rest
            if silent == REST_AFTER:
                log.warning("webhook target %s did not answer %d attempts in a row: it rests %.0f s (its events wait)",
                            target, silent, rest)

    def _post(self, delivery: Delivery) -> tuple[int | None, str | None]:
        now = datetime.datetime.now(tz=datetime.UTC)
        headers = {"content-type": "application/json", "user-agent": f"aleaart/{__version__}",
                   "webhook-id": delivery.id, "webhook-timestamp": str(int(now.timestamp())),
                   EVENT_HEADER: delivery.event}
        if self.signer is not None:
            headers["webhook-signature"] = self.signer.sign(delivery.id, now, delivery.body)
        try:
            url, extensions = self._pinned(delivery.url, headers)
            response = self._client.post(url, content=delivery.body.encode(), headers=headers, extensions=extensions)
        except InvalidWebhook as error:
            return None, str(error)
        except httpx.HTTPError as error:
            return None, f"{type(error).__name__}: {error}"[:300]
        return response.status_code, None if 200 <= response.status_code < 300 else f"answered {response.status_code}"

    def _pinned(self, url: str, headers: dict[str, str]) -> tuple[str, dict[str, str]]:
        """The URL to connect to: the host replaced by an address just checked to be public (so what is
        connected to is what was checked), with the Host header and TLS name of the original."""
        target = parse_target(url)
        if self.policy.allow_private:
            return url, {}
        address = checked_addresses(target)[0]
        literal = f"[{address}]" if address.version == 6 else str(address)
        pinned = httpx.URL(url).copy_with(host=literal.strip("[]"))
        headers["host"] = target.host if target.port in (80, 443) else f"{target.host}:{target.port}"
        return str(pinned), ({"sni_hostname": target.host} if target.scheme == "https" else {})

    def _settle(self, delivery: Delivery, status: int | None, error: str | None) -> None:
        outcome = "retry" if status is None else outcome_of(status)
        if outcome == "delivered":
            self.outbox.delivered(delivery, status or 0)
        elif outcome == "gone":
            dropped = self.outbox.gone(delivery)
            log.warning("webhook %s answered 410 Gone: %d event(s) of it dropped, no more are sent",
                        shown_url(delivery.url), dropped)
        else:
            attempt = delivery.attempts + 1
            at = time.time() + retry_delay(attempt, base=self.policy.retry_seconds, rng=random)
            if at > delivery.created_at + self.policy.horizon_seconds:
                outcome = "failed"
                self.outbox.give_up(delivery, status=status, error=error or "failed")
                log.error("webhook %s: %s event %s not delivered after %d attempts: %s", shown_url(delivery.url),
                          delivery.event, delivery.id, attempt, error)
            else:
                self.outbox.retry(delivery, at=at, status=status, error=error or "failed")
                log.info("webhook %s: attempt %d failed (%s); next in %.0f s", delivery.id, attempt, error,
                         at - time.time())
        self.metrics.webhook_deliveries.labels(outcome).inc()
