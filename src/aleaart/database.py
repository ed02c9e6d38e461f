"""The SQLite database (WAL) shared by the image index and the job records, with its migrations.

The schema's version is ``PRAGMA user_version``. v1 of the service never set it, so a database
with an ``images`` table and version 0 is a v1 database; it is migrated in place on open.
"""

from __future__ import annotations

import json
import logging
import shutil
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from aleaart.errors import DiskFull
from aleaart.locks import refuse_io

log = logging.getLogger(__name__)

IMAGES_V1 = """
CREATE TABLE images (
    key        TEXT PRIMARY KEY,
    token_id   TEXT,
    file       TEXT NOT NULL UNIQUE,
    prompt     TEXT NOT NULL,
    params     TEXT,
    spec       TEXT NOT NULL,
    sampler    TEXT NOT NULL,
    width      INTEGER NOT NULL,
    height     INTEGER NOT NULL,
    model      TEXT NOT NULL,
    seconds    REAL NOT NULL,
    sha256     TEXT NOT NULL,
    created_at REAL NOT NULL
);
CREATE INDEX images_token ON images (token_id, created_at);
CREATE INDEX images_created ON images (created_at);
"""

# v2: an image may derive from another (``source``) by an operation (``kind``) and has a pixel
# identity; jobs are durable; pins and the frontend's MongoDB records are kept until done.
V1_TO_V2 = """
ALTER TABLE images ADD COLUMN kind TEXT NOT NULL DEFAULT 'render';
ALTER TABLE images ADD COLUMN source TEXT;
ALTER TABLE images ADD COLUMN pixels TEXT;
ALTER TABLE images ADD COLUMN size INTEGER;
CREATE INDEX images_source ON images (source);
CREATE INDEX images_pixels ON images (pixels);
CREATE TABLE jobs (
    id          TEXT PRIMARY KEY,
    kind        TEXT NOT NULL,
    request     TEXT NOT NULL,
    identity    TEXT NOT NULL,
    priority    INTEGER NOT NULL,
    state       TEXT NOT NULL,
    key         TEXT,
    step        INTEGER NOT NULL,
    total_steps INTEGER NOT NULL,
    created_at  REAL NOT NULL,
    started_at  REAL,
    finished_at REAL,
    images      TEXT NOT NULL,
    summary     TEXT,
    cached      INTEGER NOT NULL,
    error       TEXT,
    code        TEXT,
    attempts    INTEGER NOT NULL
);
CREATE INDEX jobs_state ON jobs (state, priority, created_at);
CREATE INDEX jobs_finished ON jobs (finished_at);
CREATE TABLE pins (
    key       TEXT PRIMARY KEY,
    cid       TEXT,
    error     TEXT,
    attempts  INTEGER NOT NULL,
    next_at   REAL,
    pinned_at REAL
);
CREATE TABLE user_records (
    id          TEXT PRIMARY KEY,
    image_key   TEXT NOT NULL,
    document    TEXT NOT NULL,
    inserted_at REAL,
    error       TEXT,
    attempts    INTEGER NOT NULL,
    next_at     REAL
);
"""

# v3: weights users uploaded (SD 1.x checkpoints and LoRAs), their files named by sha256 in the models folder.
V2_TO_V3 = """
CREATE TABLE models (
    sha256     TEXT PRIMARY KEY,
    id         TEXT NOT NULL UNIQUE,
    name       TEXT NOT NULL,
    kind       TEXT NOT NULL,
    base       TEXT NOT NULL,
    size       INTEGER NOT NULL,
    created_at REAL NOT NULL
);
"""

# v4: the chain watcher's journal: how far it has read (with the hashes of the blocks it read, to notice a
# reorganisation) and every fulfilled token it has seen until its image is stored. Token ids are uint256: TEXT.
V3_TO_V4 = """
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
"""

# v5: webhooks: each subscription (a job's, or the service's own) with what it has been sent, and the outbox of
# events not yet delivered, written in the same transaction as the job change they tell of.
V4_TO_V5 = """
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
"""

# v6: rows that could not be read (a key that is not UTF-8, JSON that does not parse) are moved here, with why,
# rather than stopping the start or answering 500 until someone edits the database.
V5_TO_V6 = """
CREATE TABLE quarantined_rows (
    tbl    TEXT NOT NULL,
    data   TEXT NOT NULL,
    why    TEXT NOT NULL,
    at     REAL NOT NULL
);
"""

# v7: the state of the chain watcher's websocket subscription, for /health in any process.
V6_TO_V7 = """
ALTER TABLE watch_cursor ADD COLUMN subscription TEXT;
"""

# MIGRATIONS[n] takes version n to n + 1
MIGRATIONS: tuple[str, ...] = (IMAGES_V1, V1_TO_V2, V2_TO_V3, V3_TO_V4, V4_TO_V5, V5_TO_V6, V6_TO_V7)
SCHEMA_VERSION = len(MIGRATIONS)


class Database:
    """One SQLite connection, serialised by a lock; thread-safe, one instance per process.

    An index that cannot be read (truncated, garbled, not a database, a folder in its place) is
    moved aside with a timestamp and a new one is made: the image store rebuilds it from the
    PNGs' own metadata, so a broken index never keeps the service from starting.
    """

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.RLock()
        self.moved_aside: Path | None = None
        try:
            self._db, self.migrated_from = open_checked(path)
        except sqlite3.DatabaseError as error:
            if is_disk_full(error, path.parent):
                raise DiskFull(f"disk full: cannot open the database {path} ({error})") from None
            self.moved_aside = move_aside(path)
            log.error("the database %s could not be read (%s); moved it to %s and starting a new one",
                      path, error, self.moved_aside)
            self._db, self.migrated_from = open_checked(path)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def quarantine(self, table: str, rowid: int, data: dict[str, Any], why: str) -> None:
        """Move a row that cannot be read out of ``table``, keeping what it held and why."""
        with self.transaction() as db:
            db.execute("INSERT INTO quarantined_rows (tbl, data, why, at) VALUES (?, ?, ?, ?)",
                       (table, json.dumps(data, default=str), why, time.time()))
            db.execute(f"DELETE FROM {table} WHERE rowid = ?", (rowid,))
        log.error("a row of %s could not be read (%s): moved to quarantined_rows", table, why)

    def quarantined(self) -> int:
        return self.query("SELECT COUNT(*) FROM quarantined_rows")[0][0]

    def execute(self, sql: str, args: Sequence[Any] = ()) -> int:
        """Run one statement; returns the number of rows it changed."""
        with self._using():
            return self._db.execute(sql, args).rowcount

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        with self._using():
            self._db.executemany(sql, rows)

    def query(self, sql: str, args: Sequence[Any] = ()) -> list[sqlite3.Row]:
        with self._using():
            return self._db.execute(sql, args).fetchall()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        with self._using():
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    @contextmanager
    def _using(self) -> Iterator[None]:
        """The connection, never under a state lock (locks.py). A write the disk has no room for is DiskFull
        (507 ``disk_full``, a job's ``disk_full``), as a file that cannot be written is: not a bug's 500."""
        refuse_io(f"a statement on the database {self.path.name}")
        try:
            with self._lock:
                yield
        except sqlite3.OperationalError as error:
            if is_disk_full(error, self.path.parent):
                raise DiskFull(f"disk full: the database {self.path.name} cannot be written ({error})") from None
            raise


def open_checked(path: Path) -> tuple[sqlite3.Connection, int]:
    """Connect, check every page (quick_check), migrate; any of it failing is a DatabaseError."""
    if path.exists() and not path.is_file():
        raise sqlite3.DatabaseError(f"{path} is not a file")
    db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    try:
        db.row_factory = sqlite3.Row
        # A byte that is not UTF-8 in a text column is shown, not raised on every read of its row.
        db.text_factory = lambda data: data.decode("utf-8", "backslashreplace")
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        problems = [row[0] for row in db.execute("PRAGMA quick_check").fetchall()]
        if problems != ["ok"]:
            raise sqlite3.DatabaseError(f"quick_check found: {'; '.join(problems[:3])}")
        found = migrate(db)
        restore_missing_tables(db)
        return db, found
    except BaseException:
        db.close()
        raise


def move_aside(path: Path) -> Path:
    """Rename the index (and its WAL files) to ``<name>.corrupt-<timestamp>``; returns the new name."""
    stamp = time.strftime("%Y%m%dT%H%M%S")
    target = path.with_name(f"{path.name}.corrupt-{stamp}")
    for suffix in ("", "-wal", "-shm"):
        part = path.with_name(path.name + suffix)
        if part.exists() or part.is_symlink():
            part.rename(target.with_name(target.name + suffix))
    return target


def is_disk_full(error: BaseException, folder: Path) -> bool:
    """SQLite says "disk I/O error" for many things; it means a full disk when the disk is full."""
    text = str(error).lower()
    if "disk is full" in text:
        return True
    return "disk i/o error" in text and shutil.disk_usage(folder).free < 1024 * 1024


def schema_version(db: sqlite3.Connection) -> int:
    version = db.execute("PRAGMA user_version").fetchone()[0]
    if version == 0 and db.execute("SELECT 1 FROM sqlite_master WHERE name = 'images'").fetchone():
        return 1  # written by v1, which never set user_version
    return version


# What is not derived from the PNGs, kept in the journal (its own file): losing the index loses nothing accepted.
# The index keeps the images and their pins (a pin found missing is made again: the CID is the file's).
JOURNAL_TABLES = ("jobs", "user_records", "models", "watch_cursor", "watch_blocks", "watch_tokens",
                  "webhook_subscriptions", "webhook_outbox")


def move_journal_out_of_the_index(index: Database, journal: Database) -> int:
    """Before the journal had a file of its own, its tables were in the index: move their rows over (copied with
    INSERT OR IGNORE, then deleted from the index, so a crash between the two only repeats the copy). Returns how
    many rows moved."""
    counts = {t: index.query(f"SELECT COUNT(*) FROM {t}")[0][0] for t in JOURNAL_TABLES}
    if not any(counts.values()):
        return 0
    with journal.transaction() as db:  # one transaction: a crash here leaves the index as it was
        for table, count in counts.items():
            if not count:
                continue
            rows = index.query(f"SELECT * FROM {table}")
            columns = rows[0].keys()
            db.executemany(f"INSERT OR IGNORE INTO {table} ({', '.join(columns)}) VALUES "
                           f"({', '.join('?' * len(columns))})", [tuple(row) for row in rows])
    with index.transaction() as db:
        for table in JOURNAL_TABLES:
            db.execute(f"DELETE FROM {table}")
    moved = sum(counts.values())
    log.warning("moved %d rows of jobs, records, uploads, watcher and webhooks from %s to their own journal %s",
                moved, index.path.name, journal.path.name)
    return moved


def unfinished_jobs_in(path: Path) -> list[str] | None:
    """The ids of the jobs still queued or running in a journal that was moved aside, if any of it can be read
    (the damage may be elsewhere in the file); None when it cannot."""
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            return [row[0] for row in db.execute("SELECT id FROM jobs WHERE state IN ('queued', 'running')")]
        finally:
            db.close()
    except sqlite3.Error:
        return None


def current_schema() -> list[tuple[str, str, str]]:
    """(type, name, sql) of every table and index the migrations make, tables first, as a new database has."""
    fresh = sqlite3.connect(":memory:", isolation_level=None)
    try:
        migrate(fresh)
        return fresh.execute("SELECT type, name, sql FROM sqlite_master WHERE sql IS NOT NULL "
                             "AND name NOT LIKE 'sqlite_%' ORDER BY type DESC, name").fetchall()
    finally:
        fresh.close()


def restore_missing_tables(db: sqlite3.Connection) -> None:
    """Make again a table (and its indexes) that is missing from a database of the current version: its rows are
    gone, the rest of the database is kept."""
    present = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
    missing = [(kind, name, sql) for kind, name, sql in current_schema() if name not in present]
    for kind, name, sql in missing:
        db.execute(sql)
        if kind == "table":
            log.error("the database had no %s table: made an empty one", name)


def migrate(db: sqlite3.Connection) -> int:
    """Bring the schema to SCHEMA_VERSION, each step in one transaction; returns the version found."""
    found = schema_version(db)
    if found > SCHEMA_VERSION:
        raise RuntimeError(f"the database is schema v{found}, newer than this aleaart (v{SCHEMA_VERSION})")
    for version in range(found, SCHEMA_VERSION):
        db.execute("BEGIN IMMEDIATE")
        try:
            for statement in MIGRATIONS[version].split(";"):
                if statement.strip():
                    db.execute(statement)
            db.execute(f"PRAGMA user_version = {version + 1}")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
    if 0 < found < SCHEMA_VERSION:
        log.warning("database migrated from schema v%d to v%d", found, SCHEMA_VERSION)
    return found
