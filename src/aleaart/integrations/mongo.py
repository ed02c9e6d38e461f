"""The AleaArt frontend's MongoDB record of a user's image, as the original backend wrote it.

The frontend's gallery reads ``aleart.generatedImages`` by ``{userId, tokenId: parseInt(id)}``,
so a numeric token id is written as a number.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

from bson import ObjectId
from pymongo import MongoClient
from pymongo.errors import DuplicateKeyError, PyMongoError

from aleaart.errors import RecordFailed
from aleaart.store import StoredImage

DATABASE = "aleart"
COLLECTION = "generatedImages"
INT64_MAX = 2**63 - 1


def mongo_token_id(token_id: str | None) -> int | str | None:
    if token_id is not None and token_id.isdigit() and int(token_id) <= INT64_MAX:
        return int(token_id)
    return token_id


def record_id(user_id: str, token_id: str | None, image_key: str) -> ObjectId:
    """The same (user, token, image) always gets the same _id, so a retried insert cannot duplicate."""
    digest = hashlib.sha256(f"{user_id}\0{token_id}\0{image_key}".encode()).digest()
    return ObjectId(digest[:12])


def frontend_document(*, user_id: str, token_id: str | None, image: StoredImage, ipfs_hash: str | None,
                      ipfs_url: str | None, created_at: datetime, image_data: str | None = None) -> dict[str, Any]:
    """The original backend's document (plus a deterministic _id), and ``imageData``: the PNG as the data URL the
    answer carries, which the frontend's token card shows (the original backend never wrote it, so the card
    waited for a refresh)."""
    spec = image.spec
    document = {
        "_id": record_id(user_id, token_id, image.key),
        "userId": user_id,
        "tokenId": mongo_token_id(token_id),
        "ipfsHash": ipfs_hash,
        "ipfsUrl": ipfs_url,
        "prompt": image.prompt,
        "parameters": {"steps": spec["steps"], "cfg_scale": spec["guidance_scale"], "seed": spec["seed"],
                       "width": image.width, "height": image.height},
        "status": "completed",
        "createdAt": created_at,
    }
    if image_data is not None:
        document["imageData"] = image_data
    return document


class MongoRecorder:
    """Inserts documents into aleart.generatedImages; a failure is RecordFailed, never a crash."""

    def __init__(self, uri: str, *, timeout_ms: int = 3000) -> None:
        self.client: MongoClient = MongoClient(uri, serverSelectionTimeoutMS=timeout_ms, connectTimeoutMS=timeout_ms,
                                               socketTimeoutMS=timeout_ms * 3)

    def insert(self, document: dict[str, Any]) -> None:
        try:
            self.client[DATABASE][COLLECTION].insert_one(document)
        except DuplicateKeyError:
            return  # written by an earlier attempt whose answer was lost
        except PyMongoError as error:
            raise RecordFailed(f"MongoDB did not take the record: {str(error).splitlines()[0][:200]}") from None

    def close(self) -> None:
        self.client.close()
