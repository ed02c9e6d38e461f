"""UnixFS file CIDs against an independent implementation: js-ipfs's importer, run by Node."""

import os
import subprocess
from pathlib import Path

import pytest

from aleaart.cid import CHUNK_SIZE, MAX_LINKS, file_cid, file_dag

NODE_TOOLS = Path(__file__).resolve().parent / "node"

SIZES = [0, 1, CHUNK_SIZE, CHUNK_SIZE + 1, 1024 * 1024, 5 * 1024 * 1024, MAX_LINKS * CHUNK_SIZE + 1]


def js_cids(paths: list[Path]) -> list[str]:
    if not (NODE_TOOLS / "node_modules").exists():
        pytest.fail("tests/node/node_modules is missing: run `npm ci --prefix tests/node` (./run_tests.sh does)")
    done = subprocess.run(["node", str(NODE_TOOLS / "unixfs-cid.mjs"), *map(str, paths)], capture_output=True,
                          text=True, timeout=120, check=True)
    return done.stdout.split()


def test_file_cids_equal_the_js_ipfs_importers(tmp_path):
    paths = []
    for size in SIZES:
        path = tmp_path / f"{size}.bin"
        path.write_bytes(os.urandom(size))
        paths.append(path)
    ours = [file_cid(p.read_bytes()) for p in paths]
    assert ours == js_cids(paths)
    assert ours[0] == "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"  # the empty file, as kubo says


def test_small_files_are_one_raw_block_and_large_ones_a_balanced_tree():
    assert file_cid(b"hello") == "bafkreibm6jg3ux5qumhcn2b3flc3tyu6dmlb4xa7u5bf44yegnrjhc4yeq"  # `ipfs add` of it
    root, blocks = file_dag(os.urandom(MAX_LINKS * CHUNK_SIZE + 1))
    assert str(root.cid).startswith("bafybei") and root.file_size == MAX_LINKS * CHUNK_SIZE + 1
    leaves = [b for b in blocks if b.cid.codec.name == "raw"]
    assert len(leaves) == MAX_LINKS + 1 and len(blocks) == len(leaves) + 2 + 1  # two parents and the root
