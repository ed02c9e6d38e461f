"""The index row of a stored file: what the store, the job records and the cluster's wire all carry."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from aleaart.database import Schema, declare

# The index: one row per stored file. v2: an image may derive from another (``source``) by an operation (``kind``)
# and has a pixel identity.
IMAGES = declare(Schema("images", (
    """
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
""",
    """
ALTER TABLE images ADD COLUMN kind TEXT NOT NULL DEFAULT 'render';
ALTER TABLE images ADD COLUMN source TEXT;
ALTER TABLE images ADD COLUMN pixels TEXT;
ALTER TABLE images ADD COLUMN size INTEGER;
CREATE INDEX images_source ON images (source);
CREATE INDEX images_pixels ON images (pixels);
""",
)))


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
    kind: str = "render"  # the operation that made it: render, or one applied to ``source``
    source: str | None = None  # the key of the stored image it derives from
    pixels: str | None = None  # metadata.pixel_key: images with the same one have the same pixels
    size: int | None = None  # bytes of the file; a file of another size is damaged and not served

    def to_row(self) -> dict[str, Any]:
        row = asdict(self)
        row["params"] = json.dumps(self.params) if self.params is not None else None
        row["spec"] = json.dumps(self.spec, sort_keys=True)
        return row

    @classmethod
    def from_row(cls, row: sqlite3.Row | dict[str, Any]) -> StoredImage:
        data = dict(row)
        data["params"] = json.loads(data["params"]) if data["params"] else None
        data["spec"] = json.loads(data["spec"])
        return cls(**data)


FindImage = Callable[[str], StoredImage | None]  # a stored image by its key: ImageStore.get, or .known


def new_record(**fields: Any) -> StoredImage:
    """A StoredImage stamped now."""
    return StoredImage(created_at=time.time(), **fields)
