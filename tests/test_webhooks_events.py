"""Which webhook events are due, and how deliveries back off (pure)."""

import random

import pytest

from aleaart.webhooks.events import (
    MAX_RETRY_DELAY_SECONDS,
    Seen,
    Sent,
    WebhookSpec,
    due_events,
    outcome_of,
    retry_delay,
)

ALL = WebhookSpec.of("https://r.example/h", None)


def test_start_and_completed_are_always_wanted():
    assert WebhookSpec.of("u", ["logs"]).events == {"start", "logs", "completed"}
    assert ALL.events == {"start", "output", "logs", "completed"}


def test_events_come_in_order_and_never_twice():
    assert due_events(ALL, Sent(), Seen(False, 0, False), throttled=False) == []  # queued: nothing yet
    assert due_events(ALL, Sent(), Seen(True, 0, False), throttled=False) == ["start"]
    assert due_events(ALL, Sent(), Seen(True, 1, True), throttled=False) == ["start", "output", "completed"]
    done = Sent(started=True, outputs=1, completed=True)
    assert due_events(ALL, done, Seen(True, 1, True), throttled=False) == []


def test_output_waits_while_throttled_but_never_past_completion():
    running = Sent(started=True, outputs=2)
    assert due_events(ALL, running, Seen(True, 3, False), throttled=True) == []
    assert due_events(ALL, running, Seen(True, 3, False), throttled=False) == ["output"]
    assert due_events(ALL, running, Seen(True, 3, True), throttled=True) == ["output", "completed"]
    no_output = WebhookSpec.of("u", ["completed"])
    assert due_events(no_output, running, Seen(True, 3, True), throttled=False) == ["completed"]


def test_backoff_doubles_with_jitter_in_its_upper_half_up_to_an_hour():
    rng = random.Random(7)
    for attempt, ceiling in ((1, 5), (2, 10), (3, 20), (20, MAX_RETRY_DELAY_SECONDS)):
        delays = [retry_delay(attempt, base=5, rng=rng) for _ in range(200)]
        assert ceiling / 2 <= min(delays) and max(delays) <= ceiling
        assert len(set(delays)) > 100  # jittered, not one value


@pytest.mark.parametrize(("status", "outcome"), [(200, "delivered"), (204, "delivered"), (299, "delivered"),
                                                  (410, "gone"), (301, "retry"), (404, "retry"), (500, "retry")])
def test_what_an_answer_means(status, outcome):
    assert outcome_of(status) == outcome
