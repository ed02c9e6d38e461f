"""Job records in SQLite (the store's database), so accepted jobs survive a restart."""

from __future__ import annotations

import dataclasses
import json
import logging
import sqlite3
import time
from collections.abc import Callable
from typing import Any

from aleaart.database import Database, Schema, declare
from aleaart.errors import AleaArtError, DiskFull
from aleaart.jobs.kind import request_from_json
from aleaart.jobs.state import Job, JobState, JobStatus
from aleaart.store import ImageStore

# Every job accepted, written on each change of state, so queued and interrupted jobs run after a restart.
JOBS = declare(Schema("jobs", (
    """
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
""",
    # v2: the keys that asked for each job: whose it is to read and withdraw
    """
ALTER TABLE jobs ADD COLUMN owners TEXT NOT NULL DEFAULT '[]';
""",
)))


log = logging.getLogger(__name__)

UNFINISHED = (JobState.QUEUED.value, JobState.RUNNING.value)


class JobBook:
    """Writes each job's record on every state change and reads it back after a restart."""

    def __init__(self, db: Database, store: ImageStore) -> None:
        self.db = db
        db.require(JOBS)
        self.store = store
        # Called in the record's transaction on every save: what must be written with the change (webhook events).
        self.on_save: Callable[[sqlite3.Connection, Job], None] | None = None

    def save(self, job: Job) -> None:
        with job.recording:
            self._write(job)

    def _write(self, job: Job) -> None:
        row = job_row(job)
        with self.db.transaction() as conn:
            conn.execute(f"INSERT OR REPLACE INTO jobs ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
                         tuple(row.values()))
            if self.on_save is not None:
                self.on_save(conn, job)

    def save_once(self, job: Job) -> None:
        """Record a finished job whose id names its request (a store hit): the first time only, so repeat requests
        add nothing to the database (they were ~0.9 KB each, kept a day). A disk too full for the record does not
        stop the answer, which is the store's."""
        row = job_row(job)
        try:
            self.db.execute(f"INSERT OR IGNORE INTO jobs ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
                            tuple(row.values()))
        except DiskFull:
            log.warning("disk full: store hit %s answered without its job record", job.id)

    def load(self, job_id: str) -> Job | None:
        rows = self.db.query("SELECT rowid, * FROM jobs WHERE id = ?", (job_id,))
        return self._job(rows[0]) if rows else None

    def unfinished(self) -> list[Job]:
        """Queued and interrupted jobs, in the order they should run."""
        rows = self.db.query(
            "SELECT rowid, * FROM jobs WHERE state IN (?, ?) ORDER BY priority, created_at", UNFINISHED
        )
        return [job for row in rows if (job := self._job(row)) is not None]

    def prune(self, *, older_than_seconds: float) -> int:
        """Forget finished jobs that ended more than ``older_than_seconds`` ago."""
        cutoff = time.time() - older_than_seconds
        return self.db.execute(
            "DELETE FROM jobs WHERE state NOT IN (?, ?) AND finished_at < ?", (*UNFINISHED, cutoff)
        )

    def _job(self, row: sqlite3.Row) -> Job | None:
        """The job a record holds; None, with the record quarantined, when it cannot be read."""
        try:
            request = request_from_json(row["kind"], json.loads(row["request"]))
            keys = json.loads(row["images"])
            if not isinstance(keys, list):
                raise TypeError("its images are not a list")
            status = JobStatus(
                state=JobState(row["state"]), step=row["step"], total_steps=row["total_steps"], key=row["key"],
                started_at=row["started_at"], finished_at=row["finished_at"],
                cached=bool(row["cached"]), error=row["error"], code=row["code"], attempts=row["attempts"],
                summary=json.loads(row["summary"]) if row["summary"] else None,
            )
            owners = owners_of(row["owners"])
        except (AleaArtError, KeyError, TypeError, ValueError) as error:
            self.db.quarantine("jobs", row["rowid"], {k: row[k] for k in row.keys() if k != "rowid"},
                               f"job {row['id']}: {error}"[:200])
            return None
        images = tuple(image for key in keys if isinstance(key, str) and (image := self.store.get(key)) is not None)
        return Job(id=row["id"], request=request, priority=row["priority"], created_at=row["created_at"],
                   owners=owners,
                   status=dataclasses.replace(status, images=images))


def owners_of(text: str) -> list[str]:
    owners = json.loads(text)
    if not isinstance(owners, list) or not all(isinstance(o, str) for o in owners):
        raise TypeError("its owners are not a list of key names")
    return owners


def job_row(job: Job) -> dict[str, Any]:
    status = job.status
    # Field by field, not asdict: that would deep-copy every image record on every save.
    fields = {f.name: getattr(status, f.name) for f in dataclasses.fields(status)
              if f.name not in ("version", "images", "summary")} | {"state": status.state.value}
    return {
        "id": job.id,
        "kind": job.kind,
        "request": json.dumps(job.request.to_json(), sort_keys=True),
        "identity": job.identity,
        "priority": int(job.priority),
        "created_at": job.created_at,
        **fields,
        "images": json.dumps([image.key for image in status.images]),
        "summary": json.dumps(status.summary) if status.summary is not None else None,
        "cached": int(status.cached),
        "owners": json.dumps(job.owners),
    }
