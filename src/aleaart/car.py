"""A folder as IPFS has it: UnixFS directories over cid.py's files, written as one CARv1 file (pure I/O,
no network). The root CID is what ``ipfs add -r --cid-version=1 <folder>`` gives, and pinning the
CAR with any pinning service publishes the whole folder.

Directories are plain UnixFS directories up to an estimated 256 KiB of links (about 5,900
entries named like ``1234.png``); above that they are HAMT-sharded directories (fanout 256,
murmur3-x64-64 of the names), as kubo and js-ipfs shard them.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import BinaryIO

import mmh3
from multiformats import CID, multihash

from aleaart.cid import Node, field_bytes, field_varint, file_dag, varint

UNIXFS_DIRECTORY = 1
UNIXFS_HAMT_SHARD = 5
SHARD_THRESHOLD = 256 * 1024  # kubo's and js-ipfs's: links estimated at more than this are sharded
HAMT_FANOUT = 256
MURMUR3_X64_64 = 0x22


def dag_pb(links: list[tuple[str, Node]], data: bytes) -> Node:
    """A dag-pb node (links first, then data, as dag-pb's canonical form) with UnixFS ``data``."""
    encoded = b"".join(
        field_bytes(2, field_bytes(1, bytes(node.cid)) + field_bytes(2, name.encode()) + field_varint(3, node.dag_size))
        for name, node in links
    )
    block = encoded + field_bytes(1, data)
    cid = CID("base32", 1, "dag-pb", multihash.digest(block, "sha2-256"))
    return Node(cid=cid, block=block, file_size=0, dag_size=len(block) + sum(node.dag_size for _, node in links))


def directory(entries: dict[str, Node]) -> list[Node]:
    """The blocks of a UnixFS directory linking ``entries`` by name; the last one is its root."""
    estimated = sum(len(name.encode()) + len(bytes(node.cid)) for name, node in entries.items())
    if estimated > SHARD_THRESHOLD:
        return hamt_shard(entries)
    links = sorted(entries.items(), key=lambda item: item[0].encode())
    return [dag_pb(links, field_varint(1, UNIXFS_DIRECTORY))]


def hamt_hash(name: str) -> bytes:
    """murmur3-x64-128's first 64-bit word, big-endian: the bytes go-ipfs (and so js-ipfs) index shards by,
    one byte a level."""
    return mmh3.hash64(name.encode(), x64arch=True, signed=False)[0].to_bytes(8, "big")


def hamt_shard(entries: dict[str, Node], depth: int = 0) -> list[Node]:
    """A HAMT shard of ``entries``: a bucket per hash byte at this depth, a sub-shard where several collide."""
    buckets: dict[int, dict[str, Node]] = {}
    for name, node in entries.items():
        buckets.setdefault(hamt_hash(name)[depth], {})[name] = node
    blocks: list[Node] = []
    links: list[tuple[str, Node]] = []
    for index in sorted(buckets):
        prefix = f"{index:02X}"
        if len(buckets[index]) == 1:
            [(name, node)] = buckets[index].items()
            links.append((prefix + name, node))
        else:
            child = hamt_shard(buckets[index], depth + 1)
            blocks.extend(child)
            links.append((prefix, child[-1]))
    bitmap = sum(1 << index for index in buckets)
    data = (field_varint(1, UNIXFS_HAMT_SHARD)
            + field_bytes(2, bitmap.to_bytes(max(1, (bitmap.bit_length() + 7) // 8), "big"))
            + field_varint(5, MURMUR3_X64_64) + field_varint(6, HAMT_FANOUT))
    blocks.append(dag_pb(links, data))
    return blocks


def car_header(root: CID) -> bytes:
    """The CARv1 header, ``{"roots": [root], "version": 1}`` in canonical dag-cbor."""
    cid_bytes = b"\x00" + bytes(root)  # dag-cbor's CID: tag 42 over the bytes with a 0x00 prefix
    body = (b"\xa2" + b"\x65roots" + b"\x81" + b"\xd8\x2a" + b"\x58" + bytes([len(cid_bytes)]) + cid_bytes
            + b"\x67version" + b"\x01")
    return varint(len(body)) + body


class CarWriter:
    """Blocks are written as they come; the root, known last, goes into a header of fixed size."""

    def __init__(self, handle: BinaryIO) -> None:
        self.handle = handle
        self._written: set[bytes] = set()  # a block that occurs twice (the same chunk in two files) is written once
        self._placeholder = CID("base32", 1, "dag-pb", multihash.digest(b"", "sha2-256"))
        handle.write(car_header(self._placeholder))  # the same length as any CIDv1 sha2-256 root's

    def add(self, node: Node) -> None:
        cid = bytes(node.cid)
        if cid in self._written:
            return
        self._written.add(cid)
        self.handle.write(varint(len(cid) + len(node.block)) + cid + node.block)

    def finish(self, root: CID) -> None:
        header = car_header(root)
        if len(header) != len(car_header(self._placeholder)):
            raise ValueError(f"the root {root} does not fit the header written first")
        self.handle.seek(0)
        self.handle.write(header)
        self.handle.seek(0, os.SEEK_END)


    def add_folder(self, path: Path) -> Node:
        """Write a file's or a folder's blocks (depth first); returns its root, without block data, to link to."""
        if path.is_dir():
            blocks = directory({child.name: self.add_folder(child) for child in sorted(path.iterdir())})
        else:
            blocks = file_dag(path.read_bytes())[1]  # the root is the last block
        for block in blocks:
            self.add(block)
        return replace(blocks[-1], block=b"")  # a collection's thousands of files are not kept in memory

    def add_directory(self, entries: dict[str, Node]) -> Node:
        blocks = directory(entries)
        for block in blocks:
            self.add(block)
        return replace(blocks[-1], block=b"")
