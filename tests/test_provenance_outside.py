"""Verify with files no one here made (tests/outside_files.py builds them with the SDK) and files made to hurt:
another tool's intact credentials are intact and not aleaart's, a broken ingredient is named, trust anchors make a
signer trusted, and decompression bombs are refused before a pixel is decoded."""

from __future__ import annotations

import io
import json
import struct
import subprocess
import sys
import threading
import zlib

import pytest
from fakes import FakeEngine
from fastapi.testclient import TestClient
from outside_files import OtherSigner, broken_ingredient_file, foreign_file, plain_png
from PIL import Image
from tamper import assertion_edited, chunk

from aleaart.api import create_app
from aleaart.cli import main
from aleaart.config import Settings
from aleaart.errors import ImageTooLarge, InvalidFile
from aleaart.provenance.credentials import LOCAL_FOLDER, ROOT_FILE
from aleaart.provenance.verify import MAX_SIDE, table, verify

FLAT = {"prompt": "outside files", "seed": 5, "steps": 2, "width": 256, "height": 256}


@pytest.fixture(scope="module")
def other(tmp_path_factory) -> OtherSigner:
    return OtherSigner.make(tmp_path_factory.mktemp("other") / "ca")


@pytest.fixture
def client(tmp_path):
    settings = Settings(images_dir=tmp_path / "images", cache_dir=tmp_path / "cache", verify_concurrency=1)
    with TestClient(create_app(settings, loader=FakeEngine)) as client:
        assert client.app.state.model.wait(60)
        yield client


def posted(client, data: bytes, **query):
    return client.post("/verify", params={"rerender": "false", **query}, files={"file": ("f.png", data, "image/png")})


def png_declaring(width: int, height: int, *, extra: bytes = b"", rows: bool = False) -> bytes:
    """A PNG whose header declares ``width`` x ``height`` (8-bit grey); with ``rows``, zlib of all-zero rows."""
    header = chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
    if rows:
        compressor, parts, row = zlib.compressobj(9), [], b"\0" * (width + 1)
        parts += [compressor.compress(row) for _ in range(height)]
        body = b"".join(parts) + compressor.flush()
    else:
        body = zlib.compress(b"\0" * 2)
    return b"\x89PNG\r\n\x1a\n" + header + extra + chunk(b"IDAT", body) + chunk(b"IEND", b"")


# 1. Two questions: intact credentials, and an aleaart image

def test_another_tools_intact_credentials_are_untrusted_not_invalid_and_not_aleaart(other, client):
    result = verify("photo.png", foreign_file(other))
    answer = result.to_json()["credentials"]
    assert answer["verdict"] == "untrusted" and answer["state"] == "Valid" and answer["aleaart"] is False
    assert answer["generator"] == "Other Camera App 5.1" and answer["failures"] == ["signingCredential.untrusted"]
    assert result.to_json()["ok"] is False  # not the token's image: nothing says it is aleaart's
    words = table(result)
    assert "untrusted: intact" in words and "no: Other Camera App 5.1 made these credentials" in words
    assert "another tool made them" in words and "invalid" not in words
    over_http = posted(client, foreign_file(other))
    assert over_http.status_code == 200 and over_http.json()["credentials"]["verdict"] == "untrusted"
    assert over_http.json()["credentials"]["aleaart"] is False and over_http.json()["ok"] is False


# 2. Every failing check, with where it failed

def test_a_broken_ingredient_is_invalid_and_named_where_it_failed(other):
    answer = verify("edit.png", broken_ingredient_file(other)).to_json()["credentials"]
    assert answer["verdict"] == "invalid" and answer["state"] == "Invalid"
    where = {(c["code"], c["where"]) for c in answer["failingChecks"]}
    assert ("ingredient.manifest.mismatch", "ingredient parent.png") in where
    assert ("signingCredential.untrusted", "active manifest") in where


# 3. Trust anchors

def test_a_signer_chaining_to_a_trust_anchor_is_valid_and_trusted(other, tmp_path, capsys, monkeypatch):
    data = foreign_file(other)
    assert verify("photo.png", data).inspection.verdict == "untrusted"
    trusted = verify("photo.png", data, trust_anchors=other.root).to_json()["credentials"]
    assert trusted["verdict"] == "valid" and trusted["signerTrusted"] is True and trusted["failures"] == []
    (tmp_path / "photo.png").write_bytes(data)
    (tmp_path / "anchors.pem").write_bytes(other.root)
    monkeypatch.setenv("ALEAART_CACHE_DIR", str(tmp_path / "cache"))
    with pytest.raises(SystemExit) as exited:  # trusted, intact, and still not an aleaart image
        main(["verify", str(tmp_path / "photo.png"), "--json", "--trust-anchors", str(tmp_path / "anchors.pem")])
    printed = json.loads(capsys.readouterr().out)
    assert printed["credentials"]["verdict"] == "valid" and printed["credentials"]["signerTrusted"] is True
    assert exited.value.code == 1 and not printed["ok"]


def test_the_services_own_root_in_the_bundle_makes_its_images_trusted(tmp_path):
    settings = Settings(images_dir=tmp_path / "images", cache_dir=tmp_path / "cache")
    with TestClient(create_app(settings, loader=FakeEngine)) as first:
        assert first.app.state.model.wait(60)
        made = first.post("/generate-image", json=FLAT).json()
        data = first.get(made["imageUrl"]).content
        assert posted(first, data).json()["credentials"]["verdict"] == "untrusted"
    anchors = tmp_path / "anchors.pem"
    anchors.write_bytes((tmp_path / "cache" / LOCAL_FOLDER / ROOT_FILE).read_bytes())
    trusting = settings.model_copy(update={"c2pa_trust_anchors": anchors})
    with TestClient(create_app(trusting, loader=FakeEngine)) as again:
        answer = posted(again, data).json()
    assert answer["credentials"]["verdict"] == "valid" and answer["credentials"]["signerTrusted"] and answer["ok"]


# 4, 5. Pixels bounded, bombs refused, checks bounded

@pytest.mark.parametrize(("data", "status", "code"), [
    (png_declaring(100_000, 100_000), 413, "image_too_large"),  # 74 bytes
    (png_declaring(20_000, 20_000), 413, "image_too_large"),
    (png_declaring(MAX_SIDE + 1, 16), 413, "image_too_large"),
    (png_declaring(64, 64, extra=chunk(b"zTXt", b"bomb\0\0" + zlib.compress(b"\0" * 50 * 2**20, 9))), 422,
     "invalid_file"),
    (png_declaring(64, 64, extra=chunk(b"iTXt", b"bomb\0\1\0\0\0" + zlib.compress(b"\0" * 50 * 2**20, 9))), 422,
     "invalid_file"),
], ids=["100000-square", "20000-square", "one-over-the-side", "ztxt-50mb", "itxt-50mb"])
def test_decompression_bombs_are_refused_before_decoding(client, data, status, code, tmp_path, capsys):
    answer = posted(client, data)
    assert answer.status_code == status and answer.json()["code"] == code, answer.text
    assert str(MAX_SIDE) in answer.json()["error"] or code == "invalid_file"
    (tmp_path / "bomb.png").write_bytes(data)
    exit_code = main(["verify", str(tmp_path / "bomb.png")])
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_code in (1, 2) and len(err) == 1 and err[0].startswith("aleaart: error:")


def test_the_bounds_are_the_errors_the_code_raises():
    from aleaart.provenance.verify import decoded

    with pytest.raises(ImageTooLarge, match=f"at most {MAX_SIDE} on a side"):
        decoded(png_declaring(13_000, 13_000))
    with pytest.raises(InvalidFile):
        decoded(png_declaring(8, 8, extra=chunk(b"zTXt", b"k\0\0" + zlib.compress(b"\0" * 2 * 2**20))))


def test_checks_past_the_pool_are_429_busy_with_retry_after(client, monkeypatch):
    import aleaart.api.verify as routes

    entered, leave = threading.Event(), threading.Event()
    real = routes.verify

    def slow(*args, **kwargs):
        entered.set()
        assert leave.wait(30)
        return real(*args, **kwargs)

    monkeypatch.setattr(routes, "verify", slow)
    first: list = []
    worker = threading.Thread(target=lambda: first.append(posted(client, plain_png())))
    worker.start()
    assert entered.wait(30)
    busy = posted(client, plain_png())  # ALEAART_VERIFY_CONCURRENCY=1 here
    leave.set()
    worker.join(30)
    assert busy.status_code == 429 and busy.json()["code"] == "busy" and int(busy.headers["retry-after"]) >= 1
    assert first[0].status_code == 200 and posted(client, plain_png()).status_code == 200  # the slot is free again


def test_the_largest_allowed_image_is_checked_within_a_few_frames_of_memory(tmp_path):
    """Peak RSS of a fresh process verifying a MAX_SIDE x MAX_SIDE PNG, over what it held before."""
    buffer = io.BytesIO()
    Image.new("RGB", (MAX_SIDE, MAX_SIDE), (10, 120, 200)).save(buffer, format="PNG")
    (tmp_path / "big.png").write_bytes(buffer.getvalue())
    script = f"""
import pathlib
from aleaart.provenance.verify import verify

def kib(field):
    return next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith(field + ":"))

data = pathlib.Path({str(tmp_path / "big.png")!r}).read_bytes()
verify("warm.png", {plain_png()!r})
pathlib.Path("/proc/self/clear_refs").write_text("5")  # the peak (VmHWM) starts again from now
before = kib("VmRSS")
result = verify("big.png", data)
print((kib("VmHWM") - before) * 1024, result.inspection.pixel_sha256 is not None)
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=True)
    grown, hashed = out.stdout.split()
    frame = MAX_SIDE * MAX_SIDE * 3  # 48 MiB of RGB
    print(f"peak growth verifying a {MAX_SIDE}² PNG: {int(grown) / 2**20:.0f} MiB ({int(grown) / frame:.2f} frames)")
    assert hashed == "True" and int(grown) <= 2.5 * frame


# 9. Bytes and pixels apart

def test_a_metadata_only_change_is_bytes_changed_not_pixels_changed(client):
    made = client.post("/generate-image", json=FLAT).json()
    data = client.get(made["imageUrl"]).content
    edited = posted(client, data + b"trailing bytes").json()["credentials"]
    assert edited["bytesChanged"] is True and edited["pixelsChanged"] is False and edited["verdict"] == "invalid"
    same = posted(client, data).json()["credentials"]
    assert same["bytesChanged"] is False and same["pixelsChanged"] is False
    renamed = posted(client, assertion_edited(data, b"outside files", b"outside filez")).json()["credentials"]
    assert renamed["verdict"] == "invalid" and renamed["pixelsChanged"] is False  # the manifest, not the pixels


def test_the_verify_upload_limit_names_the_real_limit(client):
    answer = client.post("/verify", files={"file": ("big.png", b"\0" * (66 * 2**20), "image/png")})
    assert answer.status_code == 413 and "64 MB" in answer.json()["error"]
    assert "ALEAART_MAX_UPLOAD_MB" not in answer.json()["error"]
