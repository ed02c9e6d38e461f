"""IPFS content ids of files, as ``ipfs add --cid-version=1`` computes them (pure).

A file is cut into 256 KiB chunks stored as raw blocks; with more than one chunk they are
linked by dag-pb nodes carrying UnixFS ``File`` data, at most 174 links a node, in a balanced
tree. A file of one chunk is that raw block itself (``bafkrei…``); a larger one is the root
node (``bafybei…``). The blocks are kept so a CAR file can be written from them.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from multiformats import CID, multihash

CHUNK_SIZE = 256 * 1024  # kubo's default chunker, size-262144
MAX_LINKS = 174  # kubo's and js-ipfs's balanced layout
UNIXFS_FILE = 2


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def field_varint(number: int, value: int) -> bytes:
    return varint(number << 3) + varint(value)


def field_bytes(number: int, value: bytes) -> bytes:
    return varint(number << 3 | 2) + varint(len(value)) + value


@dataclass(frozen=True)
class Node:
    """One block of the DAG and what a parent needs to link to it."""

    cid: CID
    block: bytes
    file_size: int  # bytes of the file under it
    dag_size: int  # bytes of all blocks under it (a link's Tsize)


def raw_leaf(chunk: bytes) -> Node:
    cid = CID("base32", 1, "raw", multihash.digest(chunk, "sha2-256"))
    return Node(cid=cid, block=chunk, file_size=len(chunk), dag_size=len(chunk))


def unixfs_file_data(children: list[Node]) -> bytes:
    data = field_varint(1, UNIXFS_FILE) + field_varint(3, sum(c.file_size for c in children))
    return data + b"".join(field_varint(4, c.file_size) for c in children)


def parent(children: list[Node]) -> Node:
    """A dag-pb node linking ``children`` (links first, then data, as dag-pb's canonical form)."""
    links = b"".join(
        field_bytes(2, field_bytes(1, bytes(c.cid)) + field_bytes(2, b"") + field_varint(3, c.dag_size))
        for c in children
    )
    block = links + field_bytes(1, unixfs_file_data(children))
    cid = CID("base32", 1, "dag-pb", multihash.digest(block, "sha2-256"))
    return Node(cid=cid, block=block, file_size=sum(c.file_size for c in children),
                dag_size=len(block) + sum(c.dag_size for c in children))


def chunks(data: bytes) -> Iterator[bytes]:
    if not data:
        yield b""
    for start in range(0, len(data), CHUNK_SIZE):
        yield data[start:start + CHUNK_SIZE]


def file_dag(data: bytes) -> tuple[Node, list[Node]]:
    """The root of ``data``'s UnixFS DAG and every block in it (leaves first)."""
    level = [raw_leaf(chunk) for chunk in chunks(data)]
    blocks = list(level)
    while len(level) > 1:
        level = [parent(level[i:i + MAX_LINKS]) for i in range(0, len(level), MAX_LINKS)]
        blocks.extend(level)
    return level[0], blocks


def file_cid(data: bytes) -> str:
    """The CID ``ipfs add --cid-version=1`` gives ``data``."""
    return str(file_dag(data)[0].cid)
