"""Where the limits (limits.py) keep their counts: in this process and its journal (the embedded default), or in
the Redis that several API processes share (with ALEAART_BROKER_URL), so a key's limits hold across all of them.

Both count the same things: a token bucket of requests per caller, the renders a key has waiting or running
(each by its job id, entered when admitted and left when it ends), and a key's renders per UTC day.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Protocol

import redis
from cachetools import LRUCache

from aleaart.database import Database, Schema, declare

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

CALLERS_KEPT = 10_000


class Tally(Protocol):
    blocking: bool
    """Whether counting a request waits on I/O (then the API counts it off its event loop)."""

    def take(self, caller: str, per_minute: float) -> tuple[bool, float]:
        """One request from ``caller``'s bucket (a minute's worth, refilled continuously): (taken, seconds until
        one is there)."""
        ...

    def level(self, caller: str, per_minute: float) -> float:
        """The requests ``caller``'s bucket has room for now (full for a caller not seen)."""
        ...

    def enter(self, name: str, job_id: str, most: int) -> int | None:
        """Count a render of key ``name`` as waiting, unless it has ``most`` already: then how many it has."""
        ...

    def leave(self, name: str, job_id: str) -> None:
        """The render ended, or ``name`` no longer wants it."""
        ...

    def waiting(self, name: str) -> int:
        ...

    def count_render(self, name: str, day: str, most: int) -> bool:
        """Count one of key ``name``'s renders on ``day``, unless it made ``most`` already (False)."""
        ...

    def renders_on(self, name: str, day: str) -> int:
        ...


class Bucket:
    """A token bucket of a minute's requests: full at first, refilled continuously."""

    def __init__(self, per_minute: float, now: float) -> None:
        self.capacity = max(1.0, per_minute)
        self.tokens = self.capacity
        self.per_second = per_minute / 60
        self.at = now

    def level(self, now: float) -> float:
        self.tokens = min(self.capacity, self.tokens + (now - self.at) * self.per_second)
        self.at = now
        return self.tokens

    def take(self, now: float) -> tuple[bool, float]:
        if self.level(now) >= 1:
            self.tokens -= 1
            return True, 0.0
        return False, (1 - self.tokens) / self.per_second


class LocalTally:
    """Buckets in memory for the CALLERS_KEPT callers seen last (a restart refills them), renders a day in the
    journal, renders waiting as the queue counts them (``waiting_of``: its jobs survive a restart)."""

    blocking = False  # a request is counted in memory

    def __init__(self, db: Database, waiting_of: Callable[[str], int] = lambda name: 0, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.db = db
        db.require(USAGE)
        self.waiting_of = waiting_of
        self.clock = clock
        self._buckets: LRUCache[str, Bucket] = LRUCache(maxsize=CALLERS_KEPT)
        self._lock = threading.Lock()

    def take(self, caller: str, per_minute: float) -> tuple[bool, float]:
        with self._lock:
            return self._bucket(caller, per_minute).take(self.clock())

    def level(self, caller: str, per_minute: float) -> float:
        with self._lock:
            bucket = self._buckets.get(caller)
            return bucket.level(self.clock()) if bucket is not None else max(1.0, per_minute)

    def _bucket(self, caller: str, per_minute: float) -> Bucket:
        bucket = self._buckets.get(caller)
        if bucket is None or bucket.per_second != per_minute / 60:  # new, or its key's rate changed
            bucket = self._buckets[caller] = Bucket(per_minute, self.clock())
        return bucket

    def enter(self, name: str, job_id: str, most: int) -> int | None:
        waiting = self.waiting_of(name)
        return waiting if waiting >= most else None

    def leave(self, name: str, job_id: str) -> None:
        """Nothing to do: the queue's count drops by itself."""

    def waiting(self, name: str) -> int:
        return self.waiting_of(name)

    def count_render(self, name: str, day: str, most: int) -> bool:
        with self.db.transaction() as conn:
            conn.execute("INSERT OR IGNORE INTO key_usage (name, day, renders) VALUES (?, ?, 0)", (name, day))
            return bool(conn.execute("UPDATE key_usage SET renders = renders + 1 WHERE name = ? AND day = ? "
                                     "AND renders < ?", (name, day, most)).rowcount)

    def renders_on(self, name: str, day: str) -> int:
        rows = self.db.query("SELECT renders FROM key_usage WHERE name = ? AND day = ?", (name, day))
        return rows[0]["renders"] if rows else 0


# Each script runs whole inside Redis: no two API processes interleave, and Redis's clock is the one clock.
TAKE = """
local capacity, per_second = tonumber(ARGV[1]), tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at', 'rate')
local tokens, at = tonumber(state[1]), tonumber(state[2])
if tokens == nil or state[3] ~= ARGV[2] then tokens, at = capacity, now end
tokens = math.min(capacity, tokens + math.max(0, now - at) * per_second)
if ARGV[3] == 'look' then return {0, '0', tostring(tokens)} end
local taken, wait = 0, 0
if tokens >= 1 then tokens, taken = tokens - 1, 1 else wait = (1 - tokens) / per_second end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now), 'rate', ARGV[2])
redis.call('EXPIRE', KEYS[1], math.ceil(capacity / per_second) + 1)
return {taken, tostring(wait), tostring(tokens)}
"""
ENTER = """
local t = redis.call('TIME')
local now = tonumber(t[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local waiting = redis.call('ZCARD', KEYS[1])
if waiting >= tonumber(ARGV[2]) and not redis.call('ZSCORE', KEYS[1], ARGV[1]) then return waiting end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[3]))
return -1
"""
COUNT = """
local made = redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], 172800)
if made > tonumber(ARGV[1]) then redis.call('DECR', KEYS[1]) return 0 end
return 1
"""


class RedisTally:
    """The same counts in Redis, under ``aleaart:limits:``: buckets expire once full again, a key's waiting renders
    are a sorted set of job ids (each forgotten after ``waiting_seconds`` should its API process never say it
    ended), renders a day one counter a day."""

    blocking = True

    def __init__(self, client: redis.Redis, *, waiting_seconds: int = 86400) -> None:
        self.redis = client
        self.waiting_seconds = waiting_seconds
        self._take, self._enter, self._count = (client.register_script(s) for s in (TAKE, ENTER, COUNT))

    def take(self, caller: str, per_minute: float) -> tuple[bool, float]:
        taken, wait, _ = self._take(keys=[bucket_key(caller)], args=[max(1.0, per_minute), repr(per_minute / 60),
                                                                      "take"])
        return bool(taken), float(wait)

    def level(self, caller: str, per_minute: float) -> float:
        _, _, tokens = self._take(keys=[bucket_key(caller)], args=[max(1.0, per_minute), repr(per_minute / 60),
                                                                    "look"])
        return float(tokens)

    def enter(self, name: str, job_id: str, most: int) -> int | None:
        waiting = int(self._enter(keys=[waiting_key(name)], args=[job_id, most, self.waiting_seconds]))
        return None if waiting < 0 else waiting

    def leave(self, name: str, job_id: str) -> None:
        self.redis.zrem(waiting_key(name), job_id)

    def waiting(self, name: str) -> int:
        seconds, _ = self.redis.time()  # the clock the scores were written with
        return int(self.redis.zcount(waiting_key(name), f"({seconds}", "+inf"))

    def count_render(self, name: str, day: str, most: int) -> bool:
        return bool(self._count(keys=[renders_key(name, day)], args=[most]))

    def renders_on(self, name: str, day: str) -> int:
        return int(self.redis.get(renders_key(name, day)) or 0)


def bucket_key(caller: str) -> str:
    return f"aleaart:limits:bucket:{caller}"


def waiting_key(name: str) -> str:
    return f"aleaart:limits:waiting:{name}"


def renders_key(name: str, day: str) -> str:
    return f"aleaart:limits:renders:{name}:{day}"
