"""The schema version and the migration of a database written by v1."""

import hashlib
import sqlite3

import pytest
from test_store import make_image

from aleaart.database import IMAGES_V1, SCHEMA_VERSION, Database
from aleaart.store import ImageStore


def v1_database(folder, images):
    """A database exactly as v1 of the service wrote it (its schema, no user_version), with files."""
    folder.mkdir(parents=True)
    db = sqlite3.connect(folder / "index.db")
    db.executescript(IMAGES_V1)
    for record, png in images:
        row = record.to_row()
        del row["kind"], row["source"], row["pixels"], row["size"]  # columns v1 did not have
        db.execute(f"INSERT INTO images ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})", tuple(row.values()))
        (folder / record.file).write_bytes(png)
    db.commit()
    db.close()


def test_a_new_database_is_at_the_current_version(tmp_path):
    db = Database(tmp_path / "index.db")
    assert db.migrated_from == 0
    assert db.query("PRAGMA user_version")[0][0] == SCHEMA_VERSION
    assert {r["name"] for r in db.query("SELECT name FROM sqlite_master WHERE type = 'table'")} >= {"images", "jobs"}
    db.close()


def test_a_v1_database_is_migrated_and_all_its_images_still_served(tmp_path):
    folder = tmp_path / "images"
    images = [make_image(token_id=str(t), seed=t) for t in (1, 2, 3)]
    v1_database(folder, images)
    store = ImageStore.open(folder, folder / "index.db")
    try:
        assert store.db.migrated_from == 1
        assert store.db.query("PRAGMA user_version")[0][0] == SCHEMA_VERSION
        for record, png in images:
            found = store.get(record.key)
            assert found is not None and found.kind == "render" and found.source is None
            assert store.path_of(found.file).read_bytes() == png
        assert store.list(limit=10)[1] == 3
    finally:
        store.close()
    reopened = Database(folder / "index.db")  # a second open finds nothing to migrate
    assert reopened.migrated_from == SCHEMA_VERSION
    reopened.close()


def test_a_newer_database_is_refused_not_damaged(tmp_path):
    path = tmp_path / "index.db"
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.close()
    with pytest.raises(RuntimeError, match="newer than this aleaart"):
        Database(path)


def garble(path, how):
    data = path.read_bytes()
    if how == "half-truncated":
        path.write_bytes(data[: len(data) // 2])
    elif how == "garbled header":
        path.write_bytes(b"\xff" * 100 + data[100:])
    elif how == "garbled pages":
        path.write_bytes(data[:4096] + bytes(b ^ 0x5A for b in data[4096:]))
    elif how == "a text file":
        path.write_text("this is not a database\n")
    elif how == "a directory":
        path.unlink()
        path.mkdir()


@pytest.mark.parametrize("how", ["half-truncated", "garbled header", "garbled pages", "a text file", "a directory"])
def test_an_unreadable_index_is_moved_aside_and_rebuilt_from_the_pngs(tmp_path, how):
    folder = tmp_path / "images"
    store = ImageStore.open(folder, folder / "index.db")
    images = [make_image(token_id=str(t), seed=t) for t in range(1, 40)]  # enough rows for several pages
    for record, png in images:
        store.put(record, png)
    store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    store.close()
    garble(folder / "index.db", how)

    reopened = ImageStore.open(folder, folder / "index.db")
    try:
        aside = reopened.db.moved_aside
        assert aside is not None and aside.name.startswith("index.db.corrupt-") and aside.exists()
        assert reopened.list(limit=100)[1] == len(images)
        record, png = images[0]
        assert reopened.get(record.key).sha256 == hashlib.sha256(png).hexdigest()
    finally:
        reopened.close()
