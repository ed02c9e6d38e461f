"""Folders as IPFS has them, against independent implementations: js-ipfs's importer for the root CID,
and ipfs-car (npm) to unpack the CAR file."""

import os
import subprocess
from pathlib import Path

import pytest
from multiformats import CID
from test_cid import NODE_TOOLS

from aleaart.car import CarWriter


def pack_folder(folder: Path, car_path: Path) -> CID:  # a whole folder, as `ipfs-car pack` makes one
    """Write ``folder`` (files and subfolders) to ``car_path``; returns its root CID."""
    with open(car_path, "wb") as handle:
        writer = CarWriter(handle)
        root = writer.add_folder(folder)
        writer.finish(root.cid)
    return root.cid

IPFS_CAR = NODE_TOOLS / "node_modules" / ".bin" / "ipfs-car"


def node(*args: str) -> str:
    if not (NODE_TOOLS / "node_modules").exists():
        pytest.fail("tests/node/node_modules is missing: run `npm ci --prefix tests/node` (./run_tests.sh does)")
    return subprocess.run(args, capture_output=True, text=True, timeout=120, check=True).stdout.strip()


@pytest.fixture
def collection(tmp_path) -> Path:
    """A folder shaped like a collection export, with files of one chunk, several chunks and none."""
    folder = tmp_path / "collection"
    (folder / "images").mkdir(parents=True)
    (folder / "metadata").mkdir()
    for token_id, size in [(1, 600_000), (2, 262_145), (3, 1000), (10, 0)]:
        (folder / "images" / f"{token_id}.png").write_bytes(os.urandom(size))
        (folder / "metadata" / str(token_id)).write_text(f'{{"name": "AleaArt #{token_id}"}}')
    (folder / "manifest.json").write_text('{"tokens": 4}')
    return folder


def test_the_root_cid_is_the_js_ipfs_importers(collection, tmp_path):
    root = pack_folder(collection, tmp_path / "collection.car")
    assert str(root) == node("node", str(NODE_TOOLS / "unixfs-dir-cid.mjs"), str(collection))


def test_ipfs_car_unpacks_the_same_files(collection, tmp_path):
    car = tmp_path / "collection.car"
    root = pack_folder(collection, car)
    assert node(str(IPFS_CAR), "roots", str(car)) == str(root)
    out = tmp_path / "unpacked"
    node(str(IPFS_CAR), "unpack", str(car), "--output", str(out))
    ours = {p.relative_to(collection): p.read_bytes() for p in collection.rglob("*") if p.is_file()}
    theirs = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert theirs == ours


def test_a_large_folder_is_sharded_as_js_ipfs_shards_it(tmp_path):
    folder = tmp_path / "big"
    (folder / "images").mkdir(parents=True)
    for token_id in range(1, 6501):  # links estimated over 256 KiB: a HAMT-sharded directory
        (folder / "images" / f"{token_id}.png").write_bytes(token_id.to_bytes(4, "big"))
    root = pack_folder(folder, tmp_path / "big.car")
    assert str(root) == node("node", str(NODE_TOOLS / "unixfs-dir-cid.mjs"), str(folder))
    out = tmp_path / "unpacked"
    node(str(IPFS_CAR), "unpack", str(tmp_path / "big.car"), "--output", str(out))
    assert len(list((out / "images").iterdir())) == 6500
    assert (out / "images" / "6500.png").read_bytes() == (6500).to_bytes(4, "big")
