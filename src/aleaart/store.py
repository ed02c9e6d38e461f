"""Stored images: PNG files written atomically, indexed in SQLite (WAL)."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import sqlite3
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from aleaart.errors import NotFound
from aleaart.metadata import JSON_KEY, read_png_text

log = logging.getLogger(__name__)

FILENAME = re.compile(r"^art_token_(?:[0-9]{1,78}|manual)_[0-9a-f]{16}\.png$")
TEMP_PREFIX = ".tmp-"

SCHEMA = """
CREATE TABLE IF NOT EXISTS images (
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
CREATE INDEX IF NOT EXISTS images_token ON images (token_id, created_at);
CREATE INDEX IF NOT EXISTS images_created ON images (created_at);
"""


@dataclass(frozen=True)
class StoredImage:
    key: str
    token_id: str | None
    file: str
    prompt: str
    params: dict[str, int] | None
    spec: dict[str, Any]
    sampler: str
    width: int
    height: int
    model: str
    seconds: float
    sha256: str
    created_at: float

    def to_row(self) -> dict[str, Any]:
        row = asdict(self)
        row["params"] = json.dumps(self.params) if self.params is not None else None
        row["spec"] = json.dumps(self.spec, sort_keys=True)
        return row

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> StoredImage:
        data = dict(row)
        data["params"] = json.loads(data["params"]) if data["params"] else None
        data["spec"] = json.loads(data["spec"])
        return cls(**data)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomically(path: Path, data: bytes) -> None:
    """Temp file in the same folder, fsync, rename: readers see the old file or the whole new one."""
    fd, temp = tempfile.mkstemp(prefix=TEMP_PREFIX, suffix=".png", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


class ImageStore:
    """The image folder and its index. Thread-safe; one instance per process."""

    def __init__(self, folder: Path, db_path: Path) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        db_path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(db_path, check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)
        self._lock = threading.Lock()
        self.reconcile()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # Writing and reading

    def put(self, image: StoredImage, png: bytes) -> StoredImage:
        """Write the PNG, then index it; the file is in place before the row that points to it."""
        if not FILENAME.match(image.file):
            raise ValueError(f"refusing to store an image under the name {image.file!r}")
        write_atomically(self.folder / image.file, png)
        row = image.to_row()
        with self._lock:
            self._db.execute(
                f"INSERT OR REPLACE INTO images ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
                tuple(row.values()),
            )
        return image

    def get(self, key: str) -> StoredImage | None:
        """The stored image for ``key``, if both its row and its file are there."""
        with self._lock:
            row = self._db.execute("SELECT * FROM images WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        image = StoredImage.from_row(row)
        if not (self.folder / image.file).is_file():
            log.warning("image %s is indexed but its file is gone; it will be generated again", image.file)
            self._delete_rows([image.key])
            return None
        return image

    def list(self, *, token_id: str | None = None, limit: int = 20, offset: int = 0) -> tuple[list[StoredImage], int]:
        """Newest first, optionally one token's; returns (page, total)."""
        where, args = ("WHERE token_id = ?", [token_id]) if token_id is not None else ("", [])
        with self._lock:
            total = self._db.execute(f"SELECT COUNT(*) FROM images {where}", args).fetchone()[0]
            rows = self._db.execute(
                f"SELECT * FROM images {where} ORDER BY created_at DESC, key LIMIT ? OFFSET ?",
                [*args, limit, offset],
            ).fetchall()
        return [StoredImage.from_row(r) for r in rows], total

    def path_of(self, filename: str) -> Path:
        """The path of a stored PNG by name; anything that is not one of ours is NotFound."""
        if not FILENAME.match(filename):
            raise NotFound(f"no image named {filename!r}")
        path = self.folder / filename
        if path.is_symlink() or not path.is_file():
            raise NotFound(f"no image named {filename!r}")
        return path

    # Start-up reconciliation

    def reconcile(self) -> dict[str, int]:
        """Remove stray temp files, forget rows whose file is gone, index PNGs the index lost."""
        removed = 0
        for temp in self.folder.glob(TEMP_PREFIX + "*"):
            temp.unlink(missing_ok=True)
            removed += 1
        with self._lock:
            rows = self._db.execute("SELECT key, file FROM images").fetchall()
        missing = [r["key"] for r in rows if not (self.folder / r["file"]).is_file()]
        self._delete_rows(missing)
        known = {r["file"] for r in rows}
        recovered = 0
        for path in sorted(self.folder.glob("art_token_*.png")):
            if path.name not in known and FILENAME.match(path.name) and not path.is_symlink():
                recovered += self._reindex(path)
        report = {"temp_removed": removed, "missing_files": len(missing), "reindexed": recovered}
        if any(report.values()):
            log.warning("image store reconciled: %s", report)
        return report

    def _delete_rows(self, keys: list[str]) -> None:
        with self._lock:
            self._db.executemany("DELETE FROM images WHERE key = ?", [(k,) for k in keys])

    def _reindex(self, path: Path) -> int:
        """Rebuild a lost row from the metadata chunk every stored PNG carries."""
        data = path.read_bytes()
        try:
            meta = json.loads(read_png_text(data)[JSON_KEY])
            spec = meta["spec"]
            image = StoredImage(
                key=meta["key"], token_id=meta["tokenId"], file=path.name, prompt=spec["prompt"],
                params=meta["renderParams"], spec=spec, sampler=spec["sampler"], width=spec["width"],
                height=spec["height"], model=meta["model"], seconds=0.0,
                sha256=hashlib.sha256(data).hexdigest(), created_at=path.stat().st_mtime,
            )
        except (KeyError, ValueError, OSError) as error:
            log.warning("cannot reindex %s (%s); leaving it unlisted", path.name, error)
            return 0
        row = image.to_row()
        with self._lock:
            self._db.execute(
                f"INSERT OR IGNORE INTO images ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
                tuple(row.values()),
            )
        return 1


def new_record(**fields: Any) -> StoredImage:
    """A StoredImage stamped now."""
    return StoredImage(created_at=time.time(), **fields)
