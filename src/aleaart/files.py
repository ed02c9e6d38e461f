"""A stored file on disk: written atomically, and what it is served as (its media type, size and ETag)."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

MEDIA_TYPES = {"png": "image/png", "mp4": "video/mp4", "webp": "image/webp"}
TEMP_PREFIX = ".tmp-"
CORRUPT_PREFIX = ".corrupt-"  # damaged files are renamed so: kept for a look, never served or indexed


@dataclass(frozen=True)
class ServedFile:
    """What serving a stored file needs, kept in memory: no database or hashing work per request."""

    file: str
    key: str
    size: int
    sha256: str

    @property
    def media_type(self) -> str:
        return media_type(self.file)

    @property
    def etag(self) -> str:
        """A strong validator: the file's sha256, the same on every host and after every restart."""
        return f'"{self.sha256}"'


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomically(path: Path, data: bytes) -> None:
    """Temp file in the same folder, fsync, rename: readers see the old file or the whole new one.

    The file gets the umask's normal mode (0644 usually), so a proxy or another user can serve it.
    """
    temp = path.parent / f"{TEMP_PREFIX}{secrets.token_hex(8)}{path.suffix}"
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
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


def media_type(filename: str) -> str:
    """The Content-Type of a stored file, by its extension (FILENAME allows only these)."""
    return MEDIA_TYPES[filename.rpartition(".")[2]]


def clip(text: str, limit: int = 80) -> str:
    """A name quoted for a message, cut short: a 100 KB path is not echoed back."""
    return repr(text if len(text) <= limit else text[:limit] + "…")
