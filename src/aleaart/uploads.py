"""Weights users uploaded: SD 1.x checkpoints and LoRAs, each a file named by its sha256 in the models folder
(never by the name it was sent with) and a row in the ``models`` table."""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
import sqlite3
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from aleaart.database import Database, Schema, declare
from aleaart.errors import BodyTooLarge, InvalidParams, NotFound
from aleaart.files import TEMP_PREFIX, clip
from aleaart.weights import (
    Architecture,
    ModelKind,
    classify,
    display_name,
    read_dtypes,
    read_layout,
    refuse_pickle_name,
)

# Weights users uploaded (SD 1.x checkpoints and LoRAs), their files named by sha256 in the models folder.
MODELS = declare(Schema("models", (
    """
CREATE TABLE models (
    sha256     TEXT PRIMARY KEY,
    id         TEXT NOT NULL UNIQUE,
    name       TEXT NOT NULL,
    kind       TEXT NOT NULL,
    base       TEXT NOT NULL,
    size       INTEGER NOT NULL,
    created_at REAL NOT NULL
);
""",
)))


log = logging.getLogger(__name__)

CHUNK = 1024 * 1024
ID_LENGTH = 16  # hex digits of the sha256 an upload is named by in requests
Reader = Callable[[int], bytes]


@dataclass(frozen=True)
class CustomModel:
    """An uploaded weights file: ``id`` (its sha256's first 16 hex digits) is what requests name it by."""

    sha256: str
    id: str
    name: str
    kind: ModelKind
    base: str  # the architecture it was checked against (the default model's)
    size: int
    created_at: float

    @property
    def filename(self) -> str:
        return f"{self.sha256}.safetensors"

    def to_json(self) -> dict[str, object]:
        return {"id": self.id, "name": self.name, "kind": self.kind, "base": self.base, "size": self.size,
                "sha256": self.sha256, "createdAt": self.created_at}


class ModelRegistry:
    """The models folder and its rows. Thread-safe (the database serialises)."""

    def __init__(self, folder: Path, db: Database) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.db = db
        db.require(MODELS)
        for temp in self.folder.glob(TEMP_PREFIX + "*"):  # an upload cut off by a crash
            temp.unlink(missing_ok=True)

    def path_of(self, model: CustomModel) -> Path:
        return self.folder / model.filename

    def add(self, read: Reader, *, filename: str | None, claimed: ModelKind | None, architecture: Architecture,
            max_bytes: int) -> tuple[CustomModel, bool]:
        """Stream an upload to disk (``read(n)`` gives the next bytes, b"" at the end), hashing and counting it,
        check it is what it claims, and keep it under its sha256; returns (the model, whether it is new)."""
        if filename:
            refuse_pickle_name(filename)
        temp = self.folder / f"{TEMP_PREFIX}{secrets.token_hex(8)}.safetensors"
        try:
            sha256, size = copy_hashed(read, temp, max_bytes)
            facts = classify(read_layout(temp), architecture, claimed, dtypes=read_dtypes(temp))
            existing = self.find(sha256)
            if existing is not None:
                return existing, False
            model = CustomModel(sha256=sha256, id=sha256[:ID_LENGTH], name=display_name(filename, sha256[:16]),
                                kind=facts.kind, base=facts.base, size=size, created_at=time.time())
            os.replace(temp, self.path_of(model))
            self.db.execute(f"INSERT INTO models ({', '.join(asdict(model))}) VALUES ({', '.join('?' * 7)})",
                            tuple(asdict(model).values()))
            log.info("uploaded %s %s (%s, %d bytes)", model.kind, model.id, model.name, model.size)
            return model, True
        finally:
            temp.unlink(missing_ok=True)

    def list(self) -> list[CustomModel]:
        rows = self.db.query("SELECT * FROM models ORDER BY created_at")
        return [model for model in map(from_row, rows) if self._present(model)]

    def find(self, sha256: str) -> CustomModel | None:
        rows = self.db.query("SELECT * FROM models WHERE sha256 = ?", (sha256,))
        return from_row(rows[0]) if rows and self._present(from_row(rows[0])) else None

    def get(self, model_id: str) -> CustomModel:
        """The upload named ``model_id`` (its id or its whole sha256), or NotFound."""
        rows = self.db.query("SELECT * FROM models WHERE id = ? OR sha256 = ?", (model_id, model_id))
        if not rows or not self._present(model := from_row(rows[0])):
            raise NotFound(f"no uploaded model with id {clip(model_id)} (GET /models lists them)")
        return model

    def resolve(self, model_id: str, kind: ModelKind) -> CustomModel:
        model = self.get(model_id)
        if model.kind != kind:
            raise InvalidParams(f"model {model_id} is a {model.kind}, not a {kind}")
        return model

    def delete(self, model_id: str) -> CustomModel:
        model = self.get(model_id)
        self.db.execute("DELETE FROM models WHERE sha256 = ?", (model.sha256,))
        self.path_of(model).unlink(missing_ok=True)
        return model

    def _present(self, model: CustomModel) -> bool:
        if (self.folder / model.filename).is_file():
            return True
        log.warning("uploaded model %s is indexed but its file is gone; forgetting it", model.id)
        self.db.execute("DELETE FROM models WHERE sha256 = ?", (model.sha256,))
        return False


def from_row(row: sqlite3.Row) -> CustomModel:
    return CustomModel(**dict(row))


def copy_hashed(read: Reader, target: Path, max_bytes: int) -> tuple[str, int]:
    """Write what ``read`` gives to ``target`` in chunks (never all in memory); (sha256, size), or BodyTooLarge."""
    digest, size = hashlib.sha256(), 0
    with open(target, "wb") as handle:
        while chunk := read(CHUNK):
            size += len(chunk)
            if size > max_bytes:
                raise BodyTooLarge(f"the upload is over the limit of {max_bytes // 2**20} MB (ALEAART_MAX_UPLOAD_MB)")
            digest.update(chunk)
            handle.write(chunk)
        handle.flush()
        os.fsync(handle.fileno())
    return digest.hexdigest(), size

