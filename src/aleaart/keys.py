"""API keys: records, not one setting. Each key has a name, scopes, and a secret shown once.

The secret is ``aa_`` and 43 URL-safe characters (256 random bits): the fixed prefix lets secret scanners find a
leaked one. Only its sha256 is kept (a secret of that entropy needs no slow hash), in the journal database. A
rotation gives a key a new secret; the old one keeps working until its grace period ends. A revoked key and one
never issued are told apart nowhere: both are "not a key".

ALEAART_API_KEY and ALEAART_ADMIN_KEY keep working as keys of their own, never stored: ``env`` (read, generate
and admin) and ``env-admin`` (every scope).
"""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
import sqlite3
import threading
import time
from dataclasses import dataclass
from typing import Literal, get_args

from aleaart.database import Database, Schema, declare
from aleaart.errors import InvalidParams, NotFound
from aleaart.limits import NO_LIMITS, Limits, Rate

log = logging.getLogger(__name__)

Scope = Literal["read", "generate", "upload", "admin"]
SCOPES: tuple[Scope, ...] = get_args(Scope)
PREFIX = "aa_"
SECRET_BYTES = 32
DEFAULT_GRACE_HOURS = 24.0
ENV, ENV_ADMIN = "env", "env-admin"
NAME = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")
LAST_USED_EVERY = 60.0  # seconds between two writes of a key's last use: not a write per request
MAX_WEIGHT = 100
REMEMBER_SECONDS = 1.0  # what the table said is trusted this long: another process's change shows within it

KEYS = declare(Schema("keys", (
    """
CREATE TABLE api_keys (
    name           TEXT PRIMARY KEY,
    hash           TEXT NOT NULL UNIQUE,
    previous       TEXT,
    previous_until REAL,
    scopes         TEXT NOT NULL,
    created_at     REAL NOT NULL,
    rotated_at     REAL,
    last_used_at   REAL,
    revoked_at     REAL
);
CREATE INDEX api_keys_previous ON api_keys (previous);
""",
    # v2: each key's limits (limits.py)
    """
ALTER TABLE api_keys ADD COLUMN rate_per_minute REAL;
ALTER TABLE api_keys ADD COLUMN max_queued INTEGER;
ALTER TABLE api_keys ADD COLUMN renders_per_day INTEGER;
""",
    # v3: each key's share of the queue (jobs/fair.py)
    """
ALTER TABLE api_keys ADD COLUMN weight INTEGER NOT NULL DEFAULT 1;
""",
)))


@dataclass(frozen=True)
class ApiKey:
    name: str
    scopes: frozenset[Scope]
    created_at: float | None = None
    rotated_at: float | None = None
    previous_until: float | None = None  # the old secret works until then, after a rotation
    last_used_at: float | None = None
    revoked_at: float | None = None
    source: Literal["issued", "env"] = "issued"
    limits: Limits = NO_LIMITS
    weight: int = 1  # its share of the fair queue (jobs/fair.py): its renders for one of a key of weight 1

    def allows(self, scope: Scope) -> bool:
        return scope in self.scopes

    def to_json(self) -> dict[str, object]:
        """What anyone may be shown of a key: never its secret or its hash."""
        return {"name": self.name, "scopes": [s for s in SCOPES if s in self.scopes], "source": self.source,
                "createdAt": self.created_at, "rotatedAt": self.rotated_at, "previousUntil": self.previous_until,
                "lastUsedAt": self.last_used_at, "revokedAt": self.revoked_at, "limits": self.limits.to_json(),
                "weight": self.weight}


def new_secret() -> str:
    return PREFIX + secrets.token_urlsafe(SECRET_BYTES)


def hash_of(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def parse_scopes(text: str | list[str]) -> frozenset[Scope]:
    """``read,generate`` (or a list) as scopes; each must be one of SCOPES."""
    names = [s.strip() for s in (text.split(",") if isinstance(text, str) else text) if s.strip()]
    unknown = [s for s in names if s not in SCOPES]
    if unknown or not names:
        raise InvalidParams(f"scopes must be some of {', '.join(SCOPES)}, got {', '.join(unknown) or 'none'}")
    return frozenset(names)  # type: ignore[arg-type]


def check_name(name: str) -> str:
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise InvalidParams("a key's name is 1..64 of a-z, 0-9, '.', '_' and '-', starting with a letter or digit, "
                            f"got {str(name)[:70]!r}")
    if name in (ENV, ENV_ADMIN):
        raise InvalidParams(f"{name!r} is the name of the key ALEAART_API_KEY or ALEAART_ADMIN_KEY sets; pick another")
    return name


def env_keys(api_key: str | None, admin_key: str | None) -> list[tuple[str, ApiKey]]:
    """(the secret's hash, its key) of ALEAART_API_KEY and ALEAART_ADMIN_KEY."""
    found = []
    if api_key:
        found.append((hash_of(api_key), ApiKey(ENV, frozenset(("read", "generate", "admin")), source="env")))
    if admin_key:
        found.append((hash_of(admin_key), ApiKey(ENV_ADMIN, frozenset(SCOPES), source="env")))
    return found


class KeyRing:
    """The issued keys (rows of the journal) and the environment's. Thread-safe (the database serialises)."""

    def __init__(self, db: Database, *, api_key: str | None = None, admin_key: str | None = None) -> None:
        self.db = db
        db.require(KEYS)
        self.env = env_keys(api_key, admin_key)
        self._used: dict[str, float] = {}  # name → when its last use was written
        self._lock = threading.Lock()
        # What the table said, and when (monotonic): whether keys are required, and who a secret's hash is.
        self._required: tuple[float, bool] | None = None
        self._identified: dict[str, tuple[float, ApiKey | None]] = {}
        self._weights: dict[str, tuple[float, int]] = {}

    # Who is asking

    def remembered(self, secret: str) -> tuple[bool, ApiKey | None]:
        """(True, the key) if ``identify(secret)`` was answered within REMEMBER_SECONDS; no I/O (the event loop's)."""
        seen = self._identified.get(hash_of(secret))
        if seen is None or time.monotonic() - seen[0] > REMEMBER_SECONDS:
            return False, None
        return True, seen[1]

    def remembered_required(self) -> bool | None:
        """``required()`` as answered within REMEMBER_SECONDS, else None; no I/O."""
        seen = self._required
        return seen[1] if seen is not None and time.monotonic() - seen[0] <= REMEMBER_SECONDS else None

    def identify(self, secret: str) -> ApiKey | None:
        """The key ``secret`` is, or None: never issued, revoked, or a rotated-out secret past its grace."""
        digest = hash_of(secret)
        found = None
        for env_hash, key in self.env:  # every one compared, in constant time
            if secrets.compare_digest(env_hash, digest):
                found = key
        now = time.time()
        rows = self.db.query("SELECT * FROM api_keys WHERE (hash = ? OR (previous = ? AND previous_until > ?)) "
                             "AND revoked_at IS NULL", (digest, digest, now))
        if found is None and rows:
            found = key_of(rows[0])
            self._note_use(found.name, now)
        if len(self._identified) > 10_000:  # bounded: secrets never seen again (guesses) are not kept forever
            self._identified.clear()
        self._identified[digest] = (time.monotonic(), found)
        return found

    def required(self) -> bool:
        """Whether generating needs a key: one was issued, or ALEAART_API_KEY is set (ALEAART_ADMIN_KEY alone only
        guards uploads, as it always did)."""
        required = any(key.name == ENV for _, key in self.env) or bool(
            self.db.query("SELECT 1 FROM api_keys WHERE revoked_at IS NULL LIMIT 1"))
        self._required = (time.monotonic(), required)
        return required

    def forget(self) -> None:
        """Drop what was remembered: a key changed here is in force at once."""
        self._required = None
        self._identified.clear()
        self._weights.clear()

    def limits_of(self, name: str) -> Limits:
        """The limits of the key ``name`` (the environment's keys have none)."""
        rows = self.db.query("SELECT * FROM api_keys WHERE name = ?", (name,))
        return key_of(rows[0]).limits if rows else NO_LIMITS

    def weight_of(self, name: str) -> int:
        """The share of the key ``name`` in the fair queue (1 for the environment's keys and keyless callers)."""
        seen = self._weights.get(name)
        if seen is not None and time.monotonic() - seen[0] <= REMEMBER_SECONDS:
            return seen[1]
        rows = self.db.query("SELECT weight FROM api_keys WHERE name = ?", (name,)) if name else []
        weight = rows[0]["weight"] if rows else 1
        if len(self._weights) > 10_000:
            self._weights.clear()
        self._weights[name] = (time.monotonic(), weight)
        return weight

    def counts(self) -> dict[str, int]:
        """How many keys there are (for /health): issued and not revoked, revoked, and the environment's."""
        rows = self.db.query("SELECT revoked_at IS NULL AS live, COUNT(*) AS n FROM api_keys GROUP BY live")
        found = {bool(row["live"]): row["n"] for row in rows}
        return {"issued": found.get(True, 0), "revoked": found.get(False, 0), "environment": len(self.env)}

    def can_upload(self) -> bool:
        """Whether any key may upload: uploads are off until one can."""
        return any(key.allows("upload") for _, key in self.env) or any(
            "upload" in row["scopes"].split(",") for row in
            self.db.query("SELECT scopes FROM api_keys WHERE revoked_at IS NULL"))

    # Managing keys (the CLI, and /keys for the admin scope)

    def create(self, name: str, scopes: frozenset[Scope], limits: Limits = NO_LIMITS, *,
               weight: int = 1) -> tuple[ApiKey, str]:
        """A new key and its secret, which is shown this once."""
        check_name(name)
        check_limits(limits)
        check_weight(weight)
        secret = new_secret()
        now = time.time()
        try:
            self.db.execute(
                "INSERT INTO api_keys (name, hash, scopes, created_at, rate_per_minute, max_queued, renders_per_day, "
                "weight) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (name, hash_of(secret), ",".join(s for s in SCOPES if s in scopes), now,
                 limits.rate.per_minute if limits.rate else None, limits.max_queued, limits.renders_per_day, weight))
        except sqlite3.IntegrityError:
            raise InvalidParams(f"a key named {name!r} exists (revoked keys keep their names); pick another") \
                from None
        log.info("API key %r created with scopes %s", name, ",".join(sorted(scopes)))
        self.forget()
        return self.get(name), secret

    def list(self) -> list[ApiKey]:
        """The environment's keys, then every issued one (revoked ones too, marked)."""
        issued = [key_of(row) for row in self.db.query("SELECT * FROM api_keys ORDER BY created_at")]
        return [key for _, key in self.env] + issued

    def get(self, name: str) -> ApiKey:
        rows = self.db.query("SELECT * FROM api_keys WHERE name = ?", (name,))
        if not rows:
            raise NotFound(f"no key named {str(name)[:70]!r} (aleaart keys list, or GET /keys)")
        return key_of(rows[0])

    def revoke(self, name: str) -> ApiKey:
        """Stop the key at once (its rotated-out secret too); its name stays taken."""
        self._refuse_env(name)
        key = self.get(name)
        if key.revoked_at is None:
            self.db.execute("UPDATE api_keys SET revoked_at = ?, previous = NULL, previous_until = NULL "
                            "WHERE name = ?", (time.time(), name))
            log.warning("API key %r revoked", name)
        self.forget()
        return self.get(name)

    def rotate(self, name: str, *, grace_hours: float = DEFAULT_GRACE_HOURS) -> tuple[ApiKey, str]:
        """A new secret for the key; the current one keeps working for ``grace_hours`` (0: not at all)."""
        self._refuse_env(name)
        if not 0 <= grace_hours <= 24 * 90:
            raise InvalidParams(f"the grace period must be 0..2160 hours, got {grace_hours}")
        key = self.get(name)
        if key.revoked_at is not None:
            raise InvalidParams(f"key {name!r} is revoked: create a new one")
        secret, now = new_secret(), time.time()
        self.db.execute("UPDATE api_keys SET previous = hash, previous_until = ?, hash = ?, rotated_at = ? "
                        "WHERE name = ?", (now + grace_hours * 3600, hash_of(secret), now, name))
        log.warning("API key %r rotated; its old secret works for %g more hours", name, grace_hours)
        self.forget()
        return self.get(name), secret

    def _refuse_env(self, name: str) -> None:
        if name in (ENV, ENV_ADMIN):
            raise InvalidParams(f"key {name!r} is ALEAART_API_KEY or ALEAART_ADMIN_KEY: change it in the environment")

    def _note_use(self, name: str, now: float) -> None:
        with self._lock:
            if now - self._used.get(name, 0.0) < LAST_USED_EVERY:
                return
            self._used[name] = now
        self.db.execute("UPDATE api_keys SET last_used_at = ? WHERE name = ?", (now, name))


def key_of(row: sqlite3.Row) -> ApiKey:
    rate = Rate(row["rate_per_minute"]) if row["rate_per_minute"] else None
    return ApiKey(name=row["name"], scopes=frozenset(row["scopes"].split(",")),  # type: ignore[arg-type]
                  created_at=row["created_at"], rotated_at=row["rotated_at"],
                  previous_until=row["previous_until"] if row["previous"] else None,
                  last_used_at=row["last_used_at"], revoked_at=row["revoked_at"],
                  limits=Limits(rate, row["max_queued"], row["renders_per_day"]), weight=row["weight"])


def check_weight(weight: int) -> None:
    if isinstance(weight, bool) or not isinstance(weight, int) or not 1 <= weight <= MAX_WEIGHT:
        raise InvalidParams(f"a key's weight is a whole number 1..{MAX_WEIGHT} (its renders for one of a key of "
                            f"weight 1), got {weight!r}")


def check_limits(limits: Limits) -> None:
    for name, value in (("max queued", limits.max_queued), ("renders a day", limits.renders_per_day)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise InvalidParams(f"{name} must be a whole number of at least 1, got {value!r}")
