"""The SQLite database (WAL) shared by the image index and the job records, with the one migration mechanism.

Each package declares its own tables next to its code, as a ``Schema`` with its versions (``declare``: the store's
in records.py, the jobs' in jobs/book.py, pins and records in integrations/publisher.py, uploads in
uploads.py, the watcher's in watch/journal.py, webhooks' in webhooks/outbox.py). A database is brought to every
declared schema's version when it is opened, and a class that owns tables ``require``s its schema of the database
it is given, so no import order can leave them out. Each owner's version is a row of ``schema_versions``; a
database from before that (one ``user_version`` for everything, 1..7) is read as what those versions held.
"""

from __future__ import annotations

import json
import logging
import shutil
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aleaart.errors import DiskFull
from aleaart.locks import refuse_io

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class Schema:
    """A package's tables, declared next to its code: ``steps[n]`` takes them from version n to n + 1 (the first
    makes them). Each owner's version is kept in ``schema_versions``; a database is brought to the version of every
    schema declared so far when it is opened (``declare`` at import, as job kinds register)."""

    owner: str
    steps: tuple[str, ...]

    @property
    def version(self) -> int:
        return len(self.steps)


SCHEMAS: dict[str, Schema] = {}


def declare(schema: Schema) -> Schema:
    if (known := SCHEMAS.get(schema.owner)) is not None and known != schema:
        raise RuntimeError(f"the tables of {schema.owner!r} are declared twice")
    SCHEMAS[schema.owner] = schema
    return schema


# Rows that could not be read (a key that is not UTF-8, JSON that does not parse) are moved here, with why,
# rather than stopping the start or answering 500 until someone edits the database.
QUARANTINE = declare(Schema("quarantine", ("""
CREATE TABLE quarantined_rows (
    tbl    TEXT NOT NULL,
    data   TEXT NOT NULL,
    why    TEXT NOT NULL,
    at     REAL NOT NULL
);
""",)))

VERSIONS_TABLE = "CREATE TABLE IF NOT EXISTS schema_versions (owner TEXT PRIMARY KEY, version INTEGER NOT NULL)"
PER_OWNER = 100
"""``PRAGMA user_version`` of a database whose versions are its owners' (in ``schema_versions``): an aleaart from
before that refuses it as newer than itself, rather than reading tables it does not know."""

# Before each package owned its tables, the whole database had one version (user_version 1..7; v1 of the service
# never set it). What each of those held, by owner, for a database written then:
WHOLE_VERSIONS: tuple[dict[str, int], ...] = (
    {"images": 1},
    {"images": 2, "jobs": 1, "pins": 1, "user_records": 1},  # durable jobs, pins and the frontend's records
    {"models": 1},  # uploads
    {"watch": 1},  # the chain watcher's journal
    {"webhooks": 1},
    {"quarantine": 1},
    {"watch": 2},  # its websocket subscription's state
)


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
            self._db, self.migrated_from, self._owners = open_checked(path)
        except sqlite3.DatabaseError as error:
            if is_disk_full(error, path.parent):
                raise DiskFull(f"disk full: cannot open the database {path} ({error})") from None
            self.moved_aside = move_aside(path)
            log.error("the database %s could not be read (%s); moved it to %s and starting a new one",
                      path, error, self.moved_aside)
            self._db, self.migrated_from, self._owners = open_checked(path)

    def require(self, schema: Schema) -> None:
        """Bring ``schema``'s tables to its version here, if opening did not (it was declared after)."""
        if schema.owner in self._owners:
            return
        with self._using():
            migrate(self._db, [schema])
            restore_missing_tables(self._db, [schema])
            self._owners.add(schema.owner)

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


def open_checked(path: Path) -> tuple[sqlite3.Connection, int, set[str]]:
    """Connect, check every page (quick_check), migrate every declared schema; any of it failing is a
    DatabaseError. The ``user_version`` found, and the owners whose tables are now current."""
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
        schemas = list(SCHEMAS.values())
        found = migrate(db, schemas)
        restore_missing_tables(db, schemas)
        return db, found, {schema.owner for schema in schemas}
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


def whole_version(db: sqlite3.Connection) -> int:
    """The database's ``user_version`` (PER_OWNER once its owners are versioned; 0 for a new one)."""
    version = db.execute("PRAGMA user_version").fetchone()[0]
    if version == 0 and db.execute("SELECT 1 FROM sqlite_master WHERE name = 'images'").fetchone():
        return 1  # written by v1, which never set user_version
    return version


def owner_versions(db: sqlite3.Connection, found: int) -> dict[str, int]:
    """Each owner's version in a database whose ``user_version`` is ``found``."""
    if found == PER_OWNER:
        return dict(db.execute("SELECT owner, version FROM schema_versions").fetchall())
    versions: dict[str, int] = {}
    for held in WHOLE_VERSIONS[:found]:
        versions.update(held)
    return versions


# What is not derived from the PNGs, kept in the journal (its own file): losing the index loses nothing accepted.
# The index keeps the images and their pins (a pin found missing is made again: the CID is the file's).
JOURNAL_TABLES = ("jobs", "user_records", "models", "watch_cursor", "watch_blocks", "watch_tokens",
                  "webhook_subscriptions", "webhook_outbox")


def move_journal_out_of_the_index(index: Database, journal: Database) -> int:
    """Before the journal had a file of its own, its tables were in the index: move their rows over (copied with
    INSERT OR IGNORE, then deleted from the index, so a crash between the two only repeats the copy). Returns how
    many rows moved."""
    present = {row[0] for row in index.query("SELECT name FROM sqlite_master WHERE type = 'table'")}
    tables = [t for t in JOURNAL_TABLES if t in present]
    counts = {t: index.query(f"SELECT COUNT(*) FROM {t}")[0][0] for t in tables}
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
        for table in tables:
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


def current_schema(schemas: Iterable[Schema]) -> list[tuple[str, str, str]]:
    """(type, name, sql) of every table and index ``schemas`` make, tables first, as a new database has."""
    fresh = sqlite3.connect(":memory:", isolation_level=None)
    try:
        migrate(fresh, schemas)
        return fresh.execute("SELECT type, name, sql FROM sqlite_master WHERE sql IS NOT NULL "
                             "AND name NOT LIKE 'sqlite_%' ORDER BY type DESC, name").fetchall()
    finally:
        fresh.close()


def restore_missing_tables(db: sqlite3.Connection, schemas: Iterable[Schema]) -> None:
    """Make again a table (and its indexes) that is missing from a database of the current versions: its rows are
    gone, the rest of the database is kept."""
    present = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
    missing = [(kind, name, sql) for kind, name, sql in current_schema(schemas) if name not in present]
    for kind, name, sql in missing:
        db.execute(sql)
        if kind == "table":
            log.error("the database had no %s table: made an empty one", name)


def migrate(db: sqlite3.Connection, schemas: Iterable[Schema]) -> int:
    """Bring each schema's tables to its version, each step in one transaction; returns the ``user_version`` found.
    A database from before owners were versioned gets its owners' versions first."""
    found = whole_version(db)
    if found > len(WHOLE_VERSIONS) and found != PER_OWNER:
        raise RuntimeError(f"the database is schema v{found}, newer than this aleaart")
    if found != PER_OWNER:
        with immediate(db):
            db.execute(VERSIONS_TABLE)
            db.executemany("INSERT OR REPLACE INTO schema_versions (owner, version) VALUES (?, ?)",
                           owner_versions(db, found).items())
            db.execute(f"PRAGMA user_version = {PER_OWNER}")
    versions = owner_versions(db, PER_OWNER)
    for schema in schemas:
        have = versions.get(schema.owner, 0)
        if have > schema.version:
            raise RuntimeError(f"the database's {schema.owner} tables are v{have}, newer than this aleaart "
                               f"(v{schema.version})")
        for version in range(have, schema.version):
            with immediate(db):
                for statement in schema.steps[version].split(";"):
                    if statement.strip():
                        db.execute(statement)
                db.execute("INSERT OR REPLACE INTO schema_versions (owner, version) VALUES (?, ?)",
                           (schema.owner, version + 1))
        if 0 < have < schema.version:
            log.warning("the %s tables migrated from v%d to v%d", schema.owner, have, schema.version)
    return found


@contextmanager
def immediate(db: sqlite3.Connection) -> Iterator[None]:
    """One write transaction on an autocommit connection: committed, or rolled back on any error."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
