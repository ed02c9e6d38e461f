"""Per-key limits that answer like the services people know: requests a minute (a token bucket), renders waiting
at once, renders a day. Over one: 429 with ``Retry-After`` and the IETF ``RateLimit-Policy`` / ``RateLimit``
fields, code ``rate_limited`` or ``quota_exceeded`` naming the limit.

A store hit is cheap: it counts against the request rate, never against renders. Renders a day are counted in the
journal (they survive a restart); the request buckets live in memory, for the 10,000 callers seen last (a restart
refills them). Callers without a key (where that is allowed) share ALEAART_KEYLESS_RATE per client address.
"""

from __future__ import annotations

import datetime
import math
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from cachetools import LRUCache

from aleaart.database import Database, Schema, declare
from aleaart.errors import InvalidParams, QuotaExceeded, RateLimited

USAGE = declare(Schema("usage", (
    """
CREATE TABLE key_usage (
    name    TEXT NOT NULL,
    day     TEXT NOT NULL,
    renders INTEGER NOT NULL,
    PRIMARY KEY (name, day)
);
""",
)))

PER = {"s": 1 / 60, "sec": 1 / 60, "second": 1 / 60, "min": 1.0, "minute": 1.0, "h": 60.0, "hour": 60.0}
RATE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*/\s*([a-z]+)\s*")
CALLERS_KEPT = 10_000


@dataclass(frozen=True)
class Rate:
    """Requests a minute, as ``120/min``, ``2/s`` or ``1000/hour`` says it."""

    per_minute: float

    @classmethod
    def parse(cls, text: str) -> Rate:
        matched = RATE.fullmatch(text.lower()) if isinstance(text, str) else None
        if matched is None or matched.group(2) not in PER or float(matched.group(1)) <= 0:
            raise InvalidParams(f"a rate is a positive number of requests per s, min or hour (120/min), got {text!r}")
        return cls(float(matched.group(1)) / PER[matched.group(2)])

    def __str__(self) -> str:
        return f"{self.per_minute:g}/min"


@dataclass(frozen=True)
class Limits:
    rate: Rate | None = None
    max_queued: int | None = None
    renders_per_day: int | None = None

    def to_json(self) -> dict[str, object]:
        return {"rate": str(self.rate) if self.rate else None, "maxQueued": self.max_queued,
                "rendersPerDay": self.renders_per_day}


NO_LIMITS = Limits()


class Bucket:
    """A token bucket of a minute's requests: full at first, refilled continuously."""

    def __init__(self, rate: Rate, now: float) -> None:
        self.capacity = max(1.0, rate.per_minute)
        self.tokens = self.capacity
        self.per_second = rate.per_minute / 60
        self.at = now

    def level(self, now: float) -> float:
        """The requests there are room for now (refilled up to ``now``)."""
        self.tokens = min(self.capacity, self.tokens + (now - self.at) * self.per_second)
        self.at = now
        return self.tokens

    def take(self, now: float) -> tuple[bool, float]:
        """(taken, seconds until one is there)."""
        if self.level(now) >= 1:
            self.tokens -= 1
            return True, 0.0
        return False, (1 - self.tokens) / self.per_second


def seconds_to_midnight(now: float) -> int:
    """Until the UTC day (the one renders a day count in) ends."""
    today = datetime.datetime.fromtimestamp(now, tz=datetime.UTC)
    tomorrow = (today + datetime.timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return max(1, math.ceil((tomorrow - today).total_seconds()))


class Limiter:
    def __init__(self, db: Database, *, keyless_rate: Rate | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.db = db
        db.require(USAGE)
        self.keyless_rate = keyless_rate
        self.clock = clock
        self._buckets: LRUCache[str, Bucket] = LRUCache(maxsize=CALLERS_KEPT)
        self._lock = threading.Lock()

    def request(self, caller: str, rate: Rate | None) -> None:
        """Count one request of ``caller`` (a key's name, or ``@`` and a client address); RateLimited past its rate."""
        if rate is None:
            return
        with self._lock:
            bucket = self._buckets.get(caller)
            if bucket is None or bucket.per_second != rate.per_minute / 60:
                bucket = self._buckets[caller] = Bucket(rate, self.clock())
            taken, wait = bucket.take(self.clock())
        if not taken:
            raise RateLimited(f"over this caller's {rate} requests; try again in {math.ceil(wait)} s",
                              retry_after=max(1, math.ceil(wait)), policy="requests",
                              quota=round(rate.per_minute), window=60)

    def render(self, name: str, limits: Limits, waiting: int, *, now: float | None = None) -> None:
        """Admit one more render of key ``name``, which has ``waiting`` queued or running: QuotaExceeded past
        its renders waiting at once or a day (one counted when admitted)."""
        if limits.max_queued is not None and waiting >= limits.max_queued:
            raise QuotaExceeded(f"key {name!r} has {waiting} renders waiting, its most at once; try again when one "
                                "ends", retry_after=10, policy="queued", quota=limits.max_queued, window=0)
        if limits.renders_per_day is None:
            return
        now = time.time() if now is None else now
        day = datetime.datetime.fromtimestamp(now, tz=datetime.UTC).date().isoformat()
        with self.db.transaction() as conn:
            conn.execute("INSERT OR IGNORE INTO key_usage (name, day, renders) VALUES (?, ?, 0)", (name, day))
            counted = conn.execute("UPDATE key_usage SET renders = renders + 1 WHERE name = ? AND day = ? "
                                   "AND renders < ?", (name, day, limits.renders_per_day)).rowcount
        if not counted:
            wait = seconds_to_midnight(now)
            raise QuotaExceeded(f"key {name!r} made its {limits.renders_per_day} renders today (UTC); more in "
                                f"{wait} s", retry_after=wait, policy="renders", quota=limits.renders_per_day,
                                window=86400)

    def requests_left(self, caller: str, rate: Rate | None) -> int | None:
        """Requests ``caller`` may make at once now (None: no limit)."""
        if rate is None:
            return None
        with self._lock:
            bucket = self._buckets.get(caller)
            return int(bucket.level(self.clock()) if bucket is not None else max(1.0, rate.per_minute))

    def renders_today(self, name: str, *, now: float | None = None) -> int:
        day = datetime.datetime.fromtimestamp(time.time() if now is None else now, tz=datetime.UTC).date().isoformat()
        rows = self.db.query("SELECT renders FROM key_usage WHERE name = ? AND day = ?", (name, day))
        return rows[0]["renders"] if rows else 0
