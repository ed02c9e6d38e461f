"""Per-key limits that answer like the services people know: requests a minute (a token bucket), renders waiting
at once, renders a day. Over one: 429 with ``Retry-After`` and the IETF ``RateLimit-Policy`` / ``RateLimit``
fields, code ``rate_limited`` or ``quota_exceeded`` naming the limit.

A store hit is cheap: it counts against the request rate, never against renders. The counts are kept in a tally
(tally.py): this process's and its journal's, or, with ALEAART_BROKER_URL, the Redis every API process shares.
Callers without a key (where that is allowed) share ALEAART_KEYLESS_RATE per client address.
"""

from __future__ import annotations

import datetime
import math
import re
import time
from dataclasses import dataclass

from aleaart.errors import InvalidParams, QuotaExceeded, RateLimited
from aleaart.tally import Tally

PER = {"s": 1 / 60, "sec": 1 / 60, "second": 1 / 60, "min": 1.0, "minute": 1.0, "h": 60.0, "hour": 60.0}
RATE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*/\s*([a-z]+)\s*")


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


def seconds_to_midnight(now: float) -> int:
    """Until the UTC day (the one renders a day count in) ends."""
    today = datetime.datetime.fromtimestamp(now, tz=datetime.UTC)
    tomorrow = (today + datetime.timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return max(1, math.ceil((tomorrow - today).total_seconds()))


class Limiter:
    """The limits of keys and keyless callers, counted in a ``Tally`` (tally.py: this process's, or Redis's)."""

    def __init__(self, tally: Tally, *, keyless_rate: Rate | None = None) -> None:
        self.tally = tally
        self.keyless_rate = keyless_rate

    def request(self, caller: str, rate: Rate | None) -> None:
        """Count one request of ``caller`` (a key's name, or ``@`` and a client address); RateLimited past its rate."""
        if rate is None:
            return
        taken, wait = self.tally.take(caller, rate.per_minute)
        if not taken:
            raise RateLimited(f"over this caller's {rate} requests; try again in {math.ceil(wait)} s",
                              retry_after=max(1, math.ceil(wait)), policy="requests",
                              quota=round(rate.per_minute), window=60)

    def render(self, name: str, limits: Limits, job_id: str, *, now: float | None = None) -> None:
        """Admit render ``job_id`` of key ``name``: QuotaExceeded past its renders waiting at once or a day (one
        counted when admitted); ``done`` when it ends."""
        if limits.max_queued is not None and (waiting := self.tally.enter(name, job_id, limits.max_queued)) is not None:
            raise QuotaExceeded(f"key {name!r} has {waiting} renders waiting, its most at once; try again when one "
                                "ends", retry_after=10, policy="queued", quota=limits.max_queued, window=0)
        if limits.renders_per_day is None:
            return
        now = time.time() if now is None else now
        if not self.tally.count_render(name, utc_day(now), limits.renders_per_day):
            self.tally.leave(name, job_id)
            wait = seconds_to_midnight(now)
            raise QuotaExceeded(f"key {name!r} made its {limits.renders_per_day} renders today (UTC); more in "
                                f"{wait} s", retry_after=wait, policy="renders", quota=limits.renders_per_day,
                                window=86400)

    def done(self, name: str, job_id: str) -> None:
        """Key ``name``'s render ``job_id`` ended, or the key no longer wants it."""
        self.tally.leave(name, job_id)

    def requests_left(self, caller: str, rate: Rate | None) -> int | None:
        """Requests ``caller`` may make at once now (None: no limit)."""
        return None if rate is None else int(self.tally.level(caller, rate.per_minute))

    def waiting(self, name: str) -> int:
        return self.tally.waiting(name)

    def renders_today(self, name: str, *, now: float | None = None) -> int:
        return self.tally.renders_on(name, utc_day(time.time() if now is None else now))


def utc_day(now: float) -> str:
    return datetime.datetime.fromtimestamp(now, tz=datetime.UTC).date().isoformat()
