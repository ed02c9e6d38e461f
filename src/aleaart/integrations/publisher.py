"""The original backend's side effects of a generation: pin the PNG to IPFS, record it for the user.

Both are optional and neither can lose an image: the answer always carries the image, with
``ipfsError`` / ``mongoError`` saying what did not happen, and a background thread retries
until it does. An image is pinned once; its CID is kept in the database and checked against
the CID computed here.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from aleaart.cid import file_cid
from aleaart.config import Settings
from aleaart.database import Database, Schema, declare
from aleaart.errors import PinningFailed, RecordFailed
from aleaart.integrations.ipfs import Pinner, gateway_url, pinner_from_settings
from aleaart.store import ImageStore, StoredImage

# Pins live in the index, with the images they are of (a pin found missing is made again: the CID is the file's).
PINS = declare(Schema("pins", (
    """
CREATE TABLE pins (
    key       TEXT PRIMARY KEY,
    cid       TEXT,
    error     TEXT,
    attempts  INTEGER NOT NULL,
    next_at   REAL,
    pinned_at REAL
);
""",
)))

# The frontend's MongoDB records, in the journal until they are written.
USER_RECORDS = declare(Schema("user_records", (
    """
CREATE TABLE user_records (
    id          TEXT PRIMARY KEY,
    image_key   TEXT NOT NULL,
    document    TEXT NOT NULL,
    inserted_at REAL,
    error       TEXT,
    attempts    INTEGER NOT NULL,
    next_at     REAL
);
""",
)))


if TYPE_CHECKING:
    from aleaart.integrations.mongo import MongoRecorder

log = logging.getLogger(__name__)

MAX_BACKOFF = 3600.0
BATCH = 20  # pins or records retried per pass


def backoff(attempts: int, base: float) -> float:
    return min(MAX_BACKOFF, base * 2 ** max(0, attempts - 1))


class Publisher:
    def __init__(self, *, store: ImageStore, index: Database, journal: Database, pinner: Pinner | None,
                 recorder: MongoRecorder | None, gateway: str, retry_seconds: float, image_data: bool = True) -> None:
        self.store = store
        self.image_data = image_data  # the frontend's record carries the PNG as a data URL
        self.journal = journal  # the records owed
        self.index = index  # the pins, which live with the images they are of
        journal.require(USER_RECORDS)
        self.index.require(PINS)
        self.pinner = pinner
        self.recorder = recorder
        self.gateway = gateway
        self.retry_seconds = retry_seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._retry_loop, name="aleaart-publisher", daemon=True)

    @classmethod
    def from_settings(cls, settings: Settings, store: ImageStore, *, index: Database, journal: Database) -> Publisher:
        recorder: MongoRecorder | None = None
        if settings.mongodb_uri:
            from aleaart.integrations.mongo import MongoRecorder  # pymongo only when it is used

            recorder = MongoRecorder(settings.mongodb_uri)
        return cls(store=store, index=index, journal=journal, pinner=pinner_from_settings(settings), recorder=recorder,
                   gateway=settings.ipfs_gateway, retry_seconds=settings.retry_seconds,
                   image_data=settings.mongodb_image_data)

    def start(self) -> None:
        if self.pinner is not None or self.recorder is not None:
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(10)
        if self.recorder is not None:
            self.recorder.close()

    # What answers carry

    def publish(self, image: StoredImage, *, user_id: str | None, token_id: str | None) -> dict[str, Any]:
        """Pin (once) and record (once per user), now; the answer's IPFS and MongoDB fields."""
        fields: dict[str, Any] = {"ipfsHash": None, "ipfsUrl": None}
        if self.pinner is not None:
            try:
                fields.update(self.ipfs_fields(self._pin(image)))
            except PinningFailed as error:
                fields["ipfsError"] = str(error)
        if self.recorder is not None and user_id is not None:
            try:
                self._record(image, user_id=user_id, token_id=token_id)
            except RecordFailed as error:
                fields["mongoError"] = str(error)
        return fields

    def ipfs_fields(self, cid: str | None) -> dict[str, Any]:
        return {"ipfsHash": cid, "ipfsUrl": gateway_url(self.gateway, cid) if cid else None}

    def pinned_cid(self, key: str) -> str | None:
        rows = self.index.query("SELECT cid FROM pins WHERE key = ?", (key,))
        return rows[0]["cid"] if rows else None

    # Pinning

    def _pin(self, image: StoredImage) -> str:
        if (cid := self.pinned_cid(image.key)) is not None:
            return cid
        assert self.pinner is not None
        data = self.store.path_of(image.file).read_bytes()
        expected = file_cid(data)
        try:
            answered = self.pinner.pin(data, image.file)
            if answered != expected:
                raise PinningFailed(f"{self.pinner.name} answered CID {answered}, but the PNG's CID is {expected}; "
                                    "not recorded, will pin again")
        except PinningFailed as error:
            self._pin_failed(image.key, str(error))
            raise
        self.index.execute(
            "INSERT OR REPLACE INTO pins (key, cid, error, attempts, next_at, pinned_at) VALUES (?, ?, NULL, "
            "COALESCE((SELECT attempts FROM pins WHERE key = ?), 0) + 1, NULL, ?)",
            (image.key, expected, image.key, time.time()),
        )
        return expected

    def _pin_failed(self, key: str, error: str) -> None:
        rows = self.index.query("SELECT attempts FROM pins WHERE key = ?", (key,))
        attempts = (rows[0]["attempts"] if rows else 0) + 1
        self.index.execute(
            "INSERT OR REPLACE INTO pins (key, cid, error, attempts, next_at, pinned_at) "
            "VALUES (?, NULL, ?, ?, ?, NULL)",
            (key, error, attempts, time.time() + backoff(attempts, self.retry_seconds)),
        )
        log.warning("pinning %s failed (attempt %d): %s", key, attempts, error)

    # The frontend's record

    def _record(self, image: StoredImage, *, user_id: str, token_id: str | None) -> None:
        from aleaart.integrations.mongo import record_id

        rid = str(record_id(user_id, token_id, image.key))
        fields = {"userId": user_id, "tokenId": token_id, "createdAt": datetime.now(UTC).isoformat()}
        self.journal.execute(
            "INSERT OR IGNORE INTO user_records (id, image_key, document, attempts) VALUES (?, ?, ?, 0)",
            (rid, image.key, json.dumps(fields)),
        )
        self._insert_record(rid)

    def _insert_record(self, rid: str) -> None:
        from aleaart.integrations.mongo import frontend_document

        row = self.journal.query("SELECT * FROM user_records WHERE id = ?", (rid,))[0]
        if row["inserted_at"] is not None:
            return
        image = self.store.get(row["image_key"])
        if image is None:  # the image is gone: nothing to record
            self.journal.execute("DELETE FROM user_records WHERE id = ?", (rid,))
            return
        cid = self.pinned_cid(image.key)
        if self.pinner is not None and cid is None:
            self._record_failed(rid, row["attempts"], "waiting for the image to be pinned (the record carries its CID)")
            raise RecordFailed("not recorded yet: the image is not pinned; it is recorded once it is")
        fields = json.loads(row["document"])
        document = frontend_document(user_id=fields["userId"], token_id=fields["tokenId"], image=image,
                                     created_at=datetime.fromisoformat(fields["createdAt"]), **self._ipfs(cid),
                                     image_data=self.store.data_url(image) if self.image_data else None)
        assert self.recorder is not None
        try:
            self.recorder.insert(document)
        except RecordFailed as error:
            self._record_failed(rid, row["attempts"], str(error))
            raise
        self.journal.execute(
            "UPDATE user_records SET inserted_at = ?, error = NULL, attempts = attempts + 1 WHERE id = ?",
            (time.time(), rid))

    def _ipfs(self, cid: str | None) -> dict[str, str | None]:
        fields = self.ipfs_fields(cid)
        return {"ipfs_hash": fields["ipfsHash"], "ipfs_url": fields["ipfsUrl"]}

    def _record_failed(self, rid: str, attempts: int, error: str) -> None:
        self.journal.execute("UPDATE user_records SET error = ?, attempts = ?, next_at = ? WHERE id = ?",
                        (error, attempts + 1, time.time() + backoff(attempts + 1, self.retry_seconds), rid))

    # Retrying in the background

    def retry_pending(self) -> None:
        """One pass: pin what is due (and stored images never pinned), then write due records."""
        now = time.time()
        if self.pinner is not None:
            keys = [r["key"] for r in self.index.query(  # pins live with the images they are of
                "SELECT images.key FROM images LEFT JOIN pins ON pins.key = images.key "
                "WHERE pins.key IS NULL OR (pins.cid IS NULL AND pins.next_at <= ?) LIMIT ?", (now, BATCH))]
            for key in keys:
                if (image := self.store.get(key)) is not None:
                    self._quietly(self._pin, image)
        if self.recorder is not None:
            for row in self.journal.query("SELECT id FROM user_records WHERE inserted_at IS NULL AND "
                                     "(next_at IS NULL OR next_at <= ?) LIMIT ?", (now, BATCH)):
                self._quietly(self._insert_record, row["id"])

    @staticmethod
    def _quietly(action: Any, argument: Any) -> None:
        try:
            action(argument)
        except (PinningFailed, RecordFailed):
            pass  # recorded with its backoff; the next pass tries again

    def _retry_loop(self) -> None:
        while not self._stop.wait(self.retry_seconds):
            try:
                self.retry_pending()
            except Exception:  # the loop must outlive a bug in one pass
                log.exception("retrying pins and records failed")
