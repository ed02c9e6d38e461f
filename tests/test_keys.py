"""keys.py: keys are records (hash only), scoped, revocable and rotatable with a grace period."""

from __future__ import annotations

import json
import re

import pytest

from aleaart.database import Database
from aleaart.errors import InvalidParams, NotFound
from aleaart.keys import KeyRing, hash_of, parse_scopes


@pytest.fixture
def ring(tmp_path):
    db = Database(tmp_path / "journal.db")
    yield KeyRing(db)
    db.close()


def test_a_key_is_shown_once_and_only_its_hash_is_kept(ring):
    assert not ring.required()
    key, secret = ring.create("frontend", parse_scopes("read,generate"))
    assert re.fullmatch(r"aa_[A-Za-z0-9_-]{43}", secret)
    assert key.to_json()["scopes"] == ["read", "generate"] and "secret" not in key.to_json()
    stored = ring.db.query("SELECT * FROM api_keys")[0]
    assert secret not in [str(v) for v in stored] and stored["hash"] == hash_of(secret)
    assert ring.identify(secret).name == "frontend" and ring.identify(secret + "x") is None
    assert ring.get("frontend").last_used_at is not None  # noted (at most once a minute)
    assert ring.required() and not ring.can_upload()
    assert ring.counts() == {"issued": 1, "revoked": 0, "environment": 0}


def test_a_revoked_key_is_no_key_and_its_name_stays_taken(ring):
    key, secret = ring.create("team-b", parse_scopes(["generate"]))
    assert ring.revoke("team-b").revoked_at is not None
    assert ring.identify(secret) is None and not ring.required()
    with pytest.raises(InvalidParams, match="exists"):
        ring.create("team-b", parse_scopes("read"))
    assert [k.name for k in ring.list()] == ["team-b"]  # listed, marked revoked


def test_a_rotated_key_keeps_its_old_secret_for_the_grace_period_only(ring):
    _, old = ring.create("ci", parse_scopes("read"))
    _, new = ring.rotate("ci", grace_hours=24)
    assert ring.identify(old).name == ring.identify(new).name == "ci"
    _, newer = ring.rotate("ci", grace_hours=0)
    ring.forget()
    assert ring.identify(new) is None and ring.identify(old) is None and ring.identify(newer).name == "ci"


def test_the_environments_keys_keep_working_as_they_did(tmp_path):
    db = Database(tmp_path / "journal.db")
    ring = KeyRing(db, api_key="old-api", admin_key="old-admin")
    assert ring.identify("old-api").name == "env" and ring.identify("old-api").allows("generate")
    assert not ring.identify("old-api").allows("upload")
    assert ring.identify("old-admin").scopes == {"read", "generate", "upload", "admin"}
    assert ring.required() and ring.can_upload()
    assert KeyRing(db, admin_key="old-admin").required() is False  # the admin key alone guards uploads only
    with pytest.raises(InvalidParams, match="ALEAART_API_KEY"):
        ring.revoke("env")
    db.close()


@pytest.mark.parametrize(("name", "scopes", "message"), [
    ("Front End", "read", "name is 1..64"), ("env", "read", "ALEAART_API_KEY"), ("ok", "read,root", "root"),
    ("ok", "", "got none")])
def test_bad_names_and_scopes_are_refused(ring, name, scopes, message):
    with pytest.raises(InvalidParams, match=message):
        ring.create(name, parse_scopes(scopes))


def test_unknown_keys_are_not_found(ring):
    for act in (ring.revoke, ring.rotate, ring.get):
        with pytest.raises(NotFound):
            act("nobody")


def test_a_keys_weight_is_its_share_of_the_queue(ring):
    key, _ = ring.create("launch", parse_scopes("generate"), weight=3)
    assert key.weight == 3 and key.to_json()["weight"] == 3
    assert ring.weight_of("launch") == 3 and ring.weight_of("nobody") == 1 and ring.weight_of("") == 1
    for bad in (0, 101, 1.5, True):
        with pytest.raises(InvalidParams, match="weight"):
            ring.create("heavy", parse_scopes("read"), weight=bad)


def test_the_keys_command_creates_lists_rotates_and_revokes(tmp_path, monkeypatch, capsys):
    from aleaart.cli import main

    monkeypatch.setenv("ALEAART_IMAGES_DIR", str(tmp_path))

    def keys(*args):
        code = main(["keys", *args])
        out, err = capsys.readouterr()
        return code, json.loads(out) if out else err

    code, made = keys("create", "--name", "launch", "--scopes", "read,generate", "--rate", "2/s", "--max-queued",
                      "16", "--renders-per-day", "2000", "--weight", "3")
    assert code == 0 and made["secret"].startswith("aa_") and made["weight"] == 3
    assert made["limits"] == {"rate": "120/min", "maxQueued": 16, "rendersPerDay": 2000}
    _, listed = keys("list")
    assert [k["name"] for k in listed["keys"]] == ["launch"] and "secret" not in listed["keys"][0]
    _, rotated = keys("rotate", "launch", "--grace-hours", "1")
    assert rotated["secret"] != made["secret"] and rotated["previousUntil"] is not None
    _, revoked = keys("revoke", "launch")
    assert revoked["revokedAt"] is not None
    code, said = keys("create", "--name", "heavy", "--scopes", "generate", "--weight", "0")
    assert code == 2 and "weight" in said
