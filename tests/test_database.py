"""The schema: each package's tables and versions, their migrations (from a database written by v1 too), and
what a damaged database is made into."""

import hashlib
import sqlite3

import pytest
from test_store import make_image

import aleaart.services  # noqa: F401  (every package, so every schema is declared, as in the service)
from aleaart.database import PER_OWNER, SCHEMAS, Database, Schema
from aleaart.records import IMAGES
from aleaart.store import ImageStore

CURRENT = {schema.owner: schema.version for schema in SCHEMAS.values()}


def versions(db: Database) -> dict[str, int]:
    return {row["owner"]: row["version"] for row in db.query("SELECT owner, version FROM schema_versions")}


def v1_database(folder, images):
    """A database exactly as v1 of the service wrote it (its schema, no user_version), with files."""
    folder.mkdir(parents=True)
    db = sqlite3.connect(folder / "index.db")
    db.executescript(IMAGES.steps[0])
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
    assert db.query("PRAGMA user_version")[0][0] == PER_OWNER and versions(db) == CURRENT
    assert set(CURRENT) >= {"images", "jobs", "pins", "user_records", "models", "watch", "webhooks", "quarantine"}
    assert {r["name"] for r in db.query("SELECT name FROM sqlite_master WHERE type = 'table'")} >= {"images", "jobs"}
    db.close()


def test_a_v1_database_is_migrated_and_all_its_images_still_served(tmp_path):
    folder = tmp_path / "images"
    images = [make_image(token_id=str(t), seed=t) for t in (1, 2, 3)]
    v1_database(folder, images)
    store = ImageStore.open(folder, folder / "index.db")
    try:
        assert store.db.migrated_from == 1
        assert store.db.query("PRAGMA user_version")[0][0] == PER_OWNER and versions(store.db) == CURRENT
        for record, png in images:
            found = store.get(record.key)
            assert found is not None and found.kind == "render" and found.source is None
            assert store.path_of(found.file).read_bytes() == png
        assert store.list(limit=10)[1] == 3
    finally:
        store.close()
    reopened = Database(folder / "index.db")  # a second open finds nothing to migrate
    assert reopened.migrated_from == PER_OWNER
    reopened.close()


def test_a_database_of_one_version_for_everything_gets_its_owners_versions_and_the_steps_it_missed(tmp_path):
    """A database the service wrote at whole-database v6: the watcher's tables had no subscription column yet, jobs
    no owners, webhook subscriptions no owner, and there were no keys or their usage."""
    path = tmp_path / "journal.db"
    Database(path).close()
    db = sqlite3.connect(path)
    db.execute("ALTER TABLE watch_cursor DROP COLUMN subscription")
    db.execute("ALTER TABLE jobs DROP COLUMN owners")
    db.execute("ALTER TABLE webhook_subscriptions DROP COLUMN owner")
    db.execute("DROP TABLE api_keys")
    db.execute("DROP TABLE key_usage")
    db.execute("DROP TABLE schema_versions")
    db.execute("PRAGMA user_version = 6")
    db.close()
    older = Database(path)
    assert older.migrated_from == 6 and versions(older) == CURRENT
    columns = {row["name"] for row in older.query("PRAGMA table_info(watch_cursor)")}
    assert "subscription" in columns
    assert "owners" in {row["name"] for row in older.query("PRAGMA table_info(jobs)")}
    assert "owner" in {row["name"] for row in older.query("PRAGMA table_info(webhook_subscriptions)")}
    older.close()


@pytest.mark.parametrize("newer", ["user_version", "an owner's version"])
def test_a_newer_database_is_refused_not_damaged(tmp_path, newer):
    path = tmp_path / "index.db"
    if newer == "user_version":
        db = sqlite3.connect(path)
        db.execute("PRAGMA user_version = 8")
    else:
        Database(path).close()
        db = sqlite3.connect(path)
        db.execute("UPDATE schema_versions SET version = 99 WHERE owner = 'images'")
    db.commit()
    db.close()
    with pytest.raises(RuntimeError, match="newer than this aleaart"):
        Database(path)
    db = sqlite3.connect(path)
    kept = db.execute("PRAGMA user_version").fetchone()[0] if newer == "user_version" else \
        db.execute("SELECT version FROM schema_versions WHERE owner = 'images'").fetchone()[0]
    db.close()
    assert kept == (8 if newer == "user_version" else 99)


def test_a_package_declared_after_the_database_opened_gets_its_tables_when_it_requires_them(tmp_path):
    db = Database(tmp_path / "x.db")
    first = Schema("late", ("CREATE TABLE late (a TEXT)",))
    db.require(first)
    db.require(first)  # once
    assert versions(db)["late"] == 1
    db.close()
    db = Database(tmp_path / "x.db")
    db.require(Schema("late", (*first.steps, "ALTER TABLE late ADD COLUMN b TEXT")))  # its next version
    assert versions(db)["late"] == 2 and {r["name"] for r in db.query("PRAGMA table_info(late)")} == {"a", "b"}
    db.close()


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


# Damage that passes quick_check: one bad row or a missing table never stops the start.

def stored(tmp_path, count=2):
    store = ImageStore.open(tmp_path / "images", tmp_path / "images" / "index.db")
    images = [make_image(token_id=str(i), seed=i) for i in range(1, count + 1)]
    for record, png in images:
        store.put(record, png)
    store.close()
    return images


def raw(tmp_path, sql, args=()):
    db = sqlite3.connect(tmp_path / "images" / "index.db")
    db.execute(sql, args)
    db.commit()
    db.close()


def test_a_missing_table_is_made_again_and_the_rest_kept(tmp_path):
    images = stored(tmp_path)
    raw(tmp_path, "DROP TABLE jobs")
    store = ImageStore.open(tmp_path / "images", tmp_path / "images" / "index.db")
    assert store.db.query("SELECT COUNT(*) FROM jobs")[0][0] == 0
    assert all(store.get(record.key) is not None for record, _ in images)  # not moved aside: still indexed
    assert store.db.moved_aside is None
    store.close()


@pytest.mark.parametrize("damage", ["key not utf-8", "spec not json", "spec not an object"])
def test_an_unreadable_image_row_is_quarantined_and_indexed_again_from_its_png(tmp_path, damage):
    images = stored(tmp_path)
    (bad, _), (good, _) = images
    if damage == "key not utf-8":
        raw(tmp_path, "UPDATE images SET key = CAST(X'ff61' AS TEXT) WHERE key = ?", (bad.key,))
    else:
        raw(tmp_path, "UPDATE images SET spec = ? WHERE key = ?",
            ("{not json" if damage == "spec not json" else "[1, 2]", bad.key))
    store = ImageStore.open(tmp_path / "images", tmp_path / "images" / "index.db")
    listed, _ = store.list(limit=10)
    assert {image.key for image in listed} == {bad.key, good.key}  # the PNG says what its row said
    assert store.db.quarantined() == 1
    [(table, why)] = store.db.query("SELECT tbl, why FROM quarantined_rows")
    assert table == "images" and why
    store.close()


def test_a_job_record_that_does_not_parse_is_quarantined_not_fatal(tmp_path):
    from aleaart.jobs import JobBook

    stored(tmp_path, count=1)
    raw(tmp_path, "INSERT INTO jobs (id, kind, request, identity, priority, state, step, total_steps, created_at, "
                  "images, cached, attempts) VALUES ('j1', 'render', '{}', 'i', 0, 'queued', 0, 1, 0, 'not json', "
                  "0, 0)")
    store = ImageStore.open(tmp_path / "images", tmp_path / "images" / "index.db")
    book = JobBook(store.db, store)
    assert book.unfinished() == [] and book.load("j1") is None
    assert store.db.quarantined() == 1
    store.close()


def test_a_row_damaged_while_the_service_runs_is_quarantined_when_read_not_a_500(tmp_path):
    (bad, _), (good, _) = stored(tmp_path)
    store = ImageStore.open(tmp_path / "images", tmp_path / "images" / "index.db")
    store.db.execute("UPDATE images SET spec = '{not json' WHERE key = ?", (bad.key,))
    listed, _ = store.list(limit=10)
    assert [image.key for image in listed] == [good.key] and store.get(bad.key) is None
    assert store.db.quarantined() == 1
    store.close()


def test_the_journal_tables_of_an_older_single_file_index_move_to_their_own_file(tmp_path):
    from aleaart.database import JOURNAL_TABLES, move_journal_out_of_the_index

    index = Database(tmp_path / "index.db")
    index.execute("INSERT INTO jobs (id, kind, request, identity, priority, state, step, total_steps, created_at, "
                  "images, cached, attempts) VALUES ('j1', 'render', '{}', 'i', 0, 'queued', 0, 1, 0, '[]', 0, 0)")
    index.execute("INSERT INTO user_records (id, image_key, document, attempts) VALUES ('r1', 'k', '{}', 0)")
    index.execute("INSERT INTO pins (key, cid, attempts) VALUES ('k', 'bafy', 1)")
    journal = Database(tmp_path / "journal.db")
    assert move_journal_out_of_the_index(index, journal) == 2
    assert [r["id"] for r in journal.query("SELECT id FROM jobs")] == ["j1"]
    assert journal.query("SELECT COUNT(*) FROM user_records")[0][0] == 1
    assert all(index.query(f"SELECT COUNT(*) FROM {t}")[0][0] == 0 for t in JOURNAL_TABLES)
    assert index.query("SELECT cid FROM pins")[0]["cid"] == "bafy"  # pins stay with the images
    assert move_journal_out_of_the_index(index, journal) == 0  # once
    index.close()
    journal.close()


def test_the_jobs_a_lost_journal_still_shows_are_named_or_unknown(tmp_path):
    from aleaart.database import unfinished_jobs_in

    journal = Database(tmp_path / "journal.db")
    for job_id, state in (("q1", "queued"), ("r1", "running"), ("done", "succeeded")):
        journal.execute("INSERT INTO jobs (id, kind, request, identity, priority, state, step, total_steps, "
                        "created_at, images, cached, attempts) VALUES (?, 'render', '{}', ?, 0, ?, 0, 1, 0, '[]', 0, "
                        "0)", (job_id, job_id, state))
    journal.close()
    assert sorted(unfinished_jobs_in(tmp_path / "journal.db")) == ["q1", "r1"]
    (tmp_path / "garbled.db").write_bytes(b"\xff" * 4096)
    assert unfinished_jobs_in(tmp_path / "garbled.db") is None  # which were lost cannot be told


def test_a_journal_that_cannot_be_read_is_reported_in_health(tmp_path):
    from fakes import FakeEngine
    from fastapi.testclient import TestClient

    from aleaart.api import create_app
    from aleaart.config import Settings

    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "journal.db").write_bytes(b"\xff" * 4096)
    with TestClient(create_app(Settings(images_dir=tmp_path / "images"), loader=FakeEngine)) as client:
        lost = client.get("/health").json()["journal_lost"]
        assert ".corrupt-" in lost["movedAside"] and lost["lostJobs"] is None
        assert client.post("/jobs", json={"prompt": "after", "width": 256, "height": 256}).status_code == 202
