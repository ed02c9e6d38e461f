"""Stored images (PNG) and animations (MP4, animated WebP): files written atomically, indexed in SQLite (WAL)."""

from __future__ import annotations

import base64
import errno
import hashlib
import json
import logging
import re
import secrets
import shutil
import sqlite3
import threading
from dataclasses import replace
from pathlib import Path

from cachetools import LRUCache

from aleaart.database import Database
from aleaart.errors import DiskFull, NotFound
from aleaart.files import CORRUPT_PREFIX, TEMP_PREFIX, ServedFile, clip, write_atomically
from aleaart.metadata import JSON_KEY, read_png_text
from aleaart.records import IMAGES, FindImage, StoredImage, new_record

__all__ = ["FindImage", "ImageStore", "ServedFile", "StoredImage", "new_record", "write_atomically"]

log = logging.getLogger(__name__)

# art_token_<token id or label, or "manual">_<key prefix>.<png|mp4|webp>; matched whole, never with $ (a trailing
# \n passes $).
KEY = re.compile(r"[0-9a-f]{64}")
FILENAME = re.compile(r"art_token_(?:[0-9]{1,77}|[A-Za-z0-9_-]{1,64})_[0-9a-f]{16}\.(?:png|mp4|webp)")
class ImageStore:
    """The image folder and its index. Thread-safe; one instance per process."""

    def __init__(self, folder: Path, db: Database, *, min_free_mb: int = 0, cache_mb: int = 0) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.db = db
        db.require(IMAGES)
        self.min_free_mb = min_free_mb
        self._served: dict[str, ServedFile] = {}
        self._found: dict[str, StoredImage] = {}  # what get() found, by key: known() answers from it
        # file bytes and a PNG's base64 text (ASCII: its length is its size), by (form, sha256)
        self._cache: LRUCache[tuple[str, str], bytes | str] = LRUCache(maxsize=max(cache_mb, 0) * 2**20,
                                                                      getsizeof=len)
        self._cache_lock = threading.Lock()
        self.reconcile()
        if (free := self.free_mb()) < min_free_mb:
            log.error("disk full: %d MB free in %s, below ALEAART_MIN_FREE_MB=%d; stored images are served, "
                      "new ones are refused (507) until space is freed", free, self.folder, min_free_mb)

    @classmethod
    def open(cls, folder: Path, db_path: Path) -> ImageStore:
        """A store with a database of its own (the CLI and tests; the service shares its Database)."""
        return cls(folder, Database(db_path))

    def free_mb(self) -> int:
        return shutil.disk_usage(self.folder).free // (1024 * 1024)

    def require_free_space(self) -> None:
        """DiskFull unless ALEAART_MIN_FREE_MB is free: checked before a render, not after it."""
        if (free := self.free_mb()) < self.min_free_mb:
            raise DiskFull(f"disk full: {free} MB free where images are stored, below ALEAART_MIN_FREE_MB="
                           f"{self.min_free_mb}; free some space and try again")

    def close(self) -> None:
        self.db.close()

    # Writing and reading

    def put(self, image: StoredImage, data: bytes) -> StoredImage:
        """Write the file, then index it; the file is in place before the row that points to it."""
        if not FILENAME.fullmatch(image.file):
            raise ValueError(f"refusing to store an image under the name {image.file!r}")
        image = replace(image, size=len(data))
        self._clear_the_way(self.folder / image.file)
        try:
            write_atomically(self.folder / image.file, data)
        except OSError as error:
            if error.errno == errno.ENOSPC:
                raise DiskFull(f"disk full: no space left to store {image.file}") from None
            raise
        self._insert(image, "INSERT OR REPLACE")
        self._served.pop(image.file, None)
        self._found.pop(image.key, None)
        return image

    def _clear_the_way(self, path: Path) -> None:
        """Something that is not a file where the image goes (a folder, a link) would fail every render of it:
        it is moved aside, once, and said."""
        if path.is_symlink() or (path.exists() and not path.is_file()):
            aside = path.with_name(f"{CORRUPT_PREFIX}{secrets.token_hex(4)}-{path.name}")
            path.rename(aside)
            log.error("%s was in the place of image %s: moved to %s", "a link" if aside.is_symlink() else
                      "a folder" if aside.is_dir() else "something", path.name, aside.name)

    def get(self, key: str) -> StoredImage | None:
        """The stored image for ``key``, if both its row and its file are there."""
        rows = self.db.query("SELECT rowid, * FROM images WHERE key = ?", (key,))
        if not rows or (image := self._readable(rows[0])) is None:
            return None
        if not (self.folder / image.file).is_file():
            log.warning("image %s is indexed but its file is gone; it will be generated again", image.file)
            self._delete_rows([image.key])
            return None
        self._found[key] = image
        return image

    def known(self, key: str) -> StoredImage | None:
        """The stored image for ``key`` if get() found it before (memory only: safe on the event loop)."""
        return self._found.get(key)

    def read_png(self, key: str, sha256: str) -> bytes:
        """The PNG stored under ``key``, checked to be the bytes ``sha256`` names (an image a job starts from)."""
        image = self.get(key)
        if image is None:
            raise NotFound(f"no stored image with key {clip(key)}")
        data = (self.folder / image.file).read_bytes()
        if hashlib.sha256(data).hexdigest() != sha256:
            raise NotFound(f"image {clip(key)} is not the one this job was asked for (it was stored again)")
        return data

    def with_pixels(self, pixels: str) -> StoredImage | None:
        """A stored image with these pixels (under any token id), if there is one."""
        for row in self.db.query("SELECT key FROM images WHERE pixels = ? ORDER BY created_at", (pixels,)):
            if (image := self.get(row["key"])) is not None:
                return image
        return None

    def list(self, *, token_id: str | None = None, source: str | None = None, kind: str | None = None,
             limit: int = 20, offset: int = 0) -> tuple[list[StoredImage], int]:
        """Newest first, optionally one token's, those derived from one image, or those one operation made;
        returns (page, total)."""
        filters = {"token_id": token_id, "source": source, "kind": kind}
        where_parts = [f"{column} = ?" for column, value in filters.items() if value is not None]
        args = [value for value in filters.values() if value is not None]
        where = f"WHERE {' AND '.join(where_parts)}" if where_parts else ""
        total = self.db.query(f"SELECT COUNT(*) FROM images {where}", args)[0][0]
        rows = self.db.query(f"SELECT rowid, * FROM images {where} ORDER BY created_at DESC, key LIMIT ? OFFSET ?",
                             [*args, limit, offset])
        return [image for r in rows if (image := self._readable(r)) is not None], total

    def _readable(self, row: sqlite3.Row) -> StoredImage | None:
        """The row as a StoredImage; None, with the row quarantined, when it cannot be one (a key that is not
        ours, JSON that does not parse)."""
        data = {k: row[k] for k in row.keys() if k != "rowid"}
        try:
            if not KEY.fullmatch(data["key"]) or not FILENAME.fullmatch(data["file"]):
                raise ValueError("its key or file name is not one this service writes")
            image = StoredImage.from_row(data)
            if not isinstance(image.spec, dict):
                raise ValueError("its spec is not a JSON object")
            return image
        except (ValueError, TypeError, KeyError) as error:
            self.db.quarantine("images", row["rowid"], data, str(error)[:200])
            return None

    def path_of(self, filename: str) -> Path:
        """The path of a stored file by name; anything that is not one of ours is NotFound."""
        if not FILENAME.fullmatch(filename):
            raise NotFound(f"no image named {clip(filename)}")
        path = self.folder / filename
        if path.is_symlink() or not path.is_file():
            raise NotFound(f"no image named {clip(filename)}")
        return path

    # Serving: the hot path of repeat requests, answered from memory once seen

    def known_file(self, filename: str) -> ServedFile | None:
        """The served file named so, if it was served before (memory only: safe on the event loop)."""
        return self._served.get(filename)

    def served_file(self, filename: str) -> ServedFile:
        """An indexed file that is whole (its size is the indexed one), for serving."""
        if (known := self._served.get(filename)) is not None:
            return known
        path = self.path_of(filename)
        rows = self.db.query("SELECT key, size, sha256 FROM images WHERE file = ?", (filename,))
        if not rows:
            raise NotFound(f"no image named {clip(filename)}")
        size = path.stat().st_size
        if rows[0]["size"] is not None and size != rows[0]["size"]:
            self._quarantine(path, rows[0]["key"], f"{size} bytes, indexed as {rows[0]['size']}")
            raise NotFound(f"image {clip(filename)} was damaged on disk; it is generated again when asked for")
        served = ServedFile(file=filename, key=rows[0]["key"], size=size, sha256=rows[0]["sha256"])
        self._served[filename] = served
        return served

    def cached_bytes(self, served: ServedFile) -> bytes | None:
        """The file's bytes if they are in memory (safe on the event loop)."""
        with self._cache_lock:
            data = self._cache.get(("file", served.sha256))
        return data if isinstance(data, bytes) else None

    def file_bytes(self, served: ServedFile) -> bytes:
        """The file's bytes, from memory or from disk (then kept, after checking they are the bytes its sha256
        names); a file of another size or content is damaged."""
        if (data := self.cached_bytes(served)) is not None:
            return data
        path = self.folder / served.file
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            self._forget_served([served.key])
            raise NotFound(f"no image named {clip(served.file)}") from None
        if len(data) != served.size or hashlib.sha256(data).hexdigest() != served.sha256:
            why = (f"{len(data)} bytes, indexed as {served.size}" if len(data) != served.size
                   else "its bytes are not the sha256 it was stored with")
            self._quarantine(path, served.key, why)
            self._forget_served([served.key])
            raise NotFound(f"image {clip(served.file)} was damaged on disk; it is generated again when asked for")
        self._remember(("file", served.sha256), data)
        return data

    def data_url(self, image: StoredImage) -> str:
        """The PNG as a ``data:`` URL (the seed's imageBase64), encoded once and kept."""
        with self._cache_lock:
            cached = self._cache.get(("base64", image.sha256))
        if isinstance(cached, str):
            return cached
        data = self.file_bytes(self.served_file(image.file))
        url = "data:image/png;base64," + base64.b64encode(data).decode("ascii")
        self._remember(("base64", image.sha256), url)
        return url

    def _remember(self, key: tuple[str, str], data: bytes | str) -> None:
        if len(data) <= self._cache.maxsize:  # one too big for the whole cache is just not kept
            with self._cache_lock:
                self._cache[key] = data

    def _forget_served(self, keys: list[str]) -> None:
        gone = set(keys)
        for key in gone:
            self._found.pop(key, None)
        for served in [s for s in list(self._served.values()) if s.key in gone]:
            self._served.pop(served.file, None)

    def _quarantine(self, path: Path, key: str, why: str) -> None:
        log.error("image %s is damaged (%s): moved aside and unindexed", path.name, why)
        self._delete_rows([key])
        try:
            path.rename(path.with_name(CORRUPT_PREFIX + path.name))
        except OSError:
            pass

    # Start-up reconciliation

    def reconcile(self) -> dict[str, int]:
        """Remove stray temp files, forget rows whose file is gone or damaged, index PNGs the index lost."""
        removed = 0
        for temp in self.folder.glob(TEMP_PREFIX + "*"):
            if temp.is_file():
                temp.unlink(missing_ok=True)
                removed += 1
        for row in self.db.query("SELECT rowid, * FROM images"):
            self._readable(row)  # unreadable rows are quarantined before anything reads them
        rows = self.db.query("SELECT key, file, size FROM images")
        missing = [r["key"] for r in rows if not (self.folder / r["file"]).is_file()]
        self._delete_rows(missing)
        gone = set(missing)
        damaged = self._check_sizes([r for r in rows if r["key"] not in gone])
        known = {r["file"] for r in rows}
        recovered = skipped = 0
        for path in sorted(self.folder.glob("art_token_*.png")):
            if path.name in known or not FILENAME.fullmatch(path.name):
                continue
            if path.is_symlink() or not path.is_file():
                log.warning("skipping %s: not a regular file", path.name)
                skipped += 1
            elif self._reindex(path):
                recovered += 1
            else:
                skipped += 1
        report = {"temp_removed": removed, "missing_files": len(missing), "damaged": damaged,
                  "reindexed": recovered, "skipped": skipped}
        if any(report.values()):
            log.warning("image store reconciled: %s", report)
        return report

    def _check_sizes(self, rows: list[sqlite3.Row]) -> int:
        """Record the size of rows written before sizes were (v1); quarantine files of another size."""
        damaged = 0
        for row in rows:
            path = self.folder / row["file"]
            size = path.stat().st_size
            if row["size"] is None:
                self.db.execute("UPDATE images SET size = ? WHERE key = ?", (size, row["key"]))
            elif size != row["size"]:
                self._quarantine(path, row["key"], f"{size} bytes, indexed as {row['size']}")
                damaged += 1
        return damaged

    def _delete_rows(self, keys: list[str]) -> None:
        self._forget_served(keys)
        self.db.executemany("DELETE FROM images WHERE key = ?", [(k,) for k in keys])

    def _reindex(self, path: Path) -> bool:
        """Rebuild a lost row from the metadata chunk every stored PNG carries."""
        try:
            data = path.read_bytes()
            meta = json.loads(read_png_text(data)[JSON_KEY])
            spec = meta["spec"]
            image = StoredImage(
                key=meta["key"], token_id=meta["tokenId"], file=path.name, prompt=spec["prompt"],
                params=meta["renderParams"], spec=spec, sampler=spec["sampler"], width=spec["width"],
                height=spec["height"], model=meta["model"], seconds=0.0,
                sha256=hashlib.sha256(data).hexdigest(), created_at=path.stat().st_mtime,
                kind=meta.get("kind", "render"), source=meta.get("source"), pixels=meta.get("pixels"),
                size=len(data),
            )
            self._insert(image, "INSERT OR IGNORE")
        except Exception as error:  # any file can be anything: one bad entry must not stop the start
            log.warning("cannot reindex %s (%s: %s); leaving it unlisted", path.name, type(error).__name__, error)
            return False
        return True

    def _insert(self, image: StoredImage, verb: str) -> None:
        row = image.to_row()
        self.db.execute(f"{verb} INTO images ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
                        tuple(row.values()))
