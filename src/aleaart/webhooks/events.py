"""What a webhook is told and when, as pure logic: the events a job's state makes due, output and logs at most
one per THROTTLE_SECONDS, and how long a failed delivery waits before the next attempt."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Literal

Event = Literal["start", "output", "logs", "completed"]
EVENTS: tuple[Event, ...] = ("start", "output", "logs", "completed")
ALWAYS: frozenset[Event] = frozenset({"start", "completed"})  # sent whatever the filter says, as Replicate does
THROTTLE_SECONDS = 0.5  # output and logs events, at most one per subscription this often
ATTEMPT_TIMEOUT_SECONDS = 10.0
MAX_RETRY_DELAY_SECONDS = 3600.0


@dataclass(frozen=True)
class WebhookSpec:
    """Where to send a job's events and which (start and completed always)."""

    url: str
    events: frozenset[Event]

    @classmethod
    def of(cls, url: str, events: list[str] | None) -> WebhookSpec:
        wanted = frozenset(events) if events is not None else frozenset(EVENTS)
        return cls(url, frozenset(e for e in EVENTS if e in wanted) | ALWAYS)

    def wants(self, event: Event) -> bool:
        return event in self.events


@dataclass(frozen=True)
class Sent:
    """What a subscription has been sent so far (kept with it in the database)."""

    started: bool = False
    outputs: int = 0  # images (or a collection's rendered tokens) already announced
    completed: bool = False


@dataclass(frozen=True)
class Seen:
    """A job's state, reduced to what decides its events."""

    running_or_done: bool
    outputs: int  # images in the result, or a collection's tokens done so far
    terminal: bool


def due_events(spec: WebhookSpec, sent: Sent, seen: Seen, *, throttled: bool) -> list[Event]:
    """The events to send now, in order: start before output before completed, nothing twice. ``throttled``
    holds back output while the last one is too recent (the final output goes with completed regardless)."""
    if sent.completed:
        return []
    due: list[Event] = []
    if seen.running_or_done and not sent.started:
        due.append("start")
    if spec.wants("output") and seen.outputs > sent.outputs and (seen.terminal or not throttled):
        due.append("output")
    if seen.terminal:
        due.append("completed")
    return due


def retry_delay(attempt: int, *, base: float, rng: random.Random | None = None) -> float:
    """Exponential backoff with jitter: about base·2^(attempt-1), drawn from its upper half so that receivers
    coming back are not hit by every sender at once; at most MAX_RETRY_DELAY_SECONDS."""
    ceiling = min(MAX_RETRY_DELAY_SECONDS, base * 2 ** max(0, attempt - 1))
    return ceiling * (0.5 + 0.5 * (rng or random).random())


Outcome = Literal["delivered", "gone", "retry"]


def outcome_of(status: int) -> Outcome:
    """Any 2xx is delivered; 410 Gone stops all further deliveries to the subscription; anything else (redirects
    too: they are not followed) is tried again."""
    if 200 <= status < 300:
        return "delivered"
    return "gone" if status == 410 else "retry"
