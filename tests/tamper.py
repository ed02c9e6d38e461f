"""Ways to tamper with a signed PNG, as someone might: change one pixel (keeping every other chunk), remove the
Content Credentials, or edit the aleaart assertion inside them."""

from __future__ import annotations

import io
import struct
import zlib

from PIL import Image

CREDENTIALS_CHUNK = b"caBX"  # C2PA's JUMBF manifest store in a PNG


def chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """(type, the whole chunk: length, type, data, CRC) of each chunk after the signature."""
    found, offset = [], 8
    while offset < len(data):
        length = struct.unpack(">I", data[offset:offset + 4])[0]
        found.append((data[offset + 4:offset + 8], data[offset:offset + 12 + length]))
        offset += 12 + length
    return found


def chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def one_pixel_changed(data: bytes) -> bytes:
    with Image.open(io.BytesIO(data)) as image:
        changed = image.convert("RGB")
    r, g, b = changed.getpixel((0, 0))
    changed.putpixel((0, 0), ((r + 1) % 256, g, b))
    buffer = io.BytesIO()
    changed.save(buffer, format="PNG")
    new_idat = b"".join(whole for kind, whole in chunks(buffer.getvalue()) if kind == b"IDAT")
    out, placed = [data[:8]], False
    for kind, whole in chunks(data):
        if kind == b"IDAT":
            if not placed:
                out.append(new_idat)
                placed = True
            continue
        out.append(whole)
    return b"".join(out)


def credentials_removed(data: bytes) -> bytes:
    return data[:8] + b"".join(whole for kind, whole in chunks(data) if kind != CREDENTIALS_CHUNK)


def assertion_edited(data: bytes, old: bytes, new: bytes) -> bytes:
    """``old`` replaced by ``new`` (the same length) inside the Content Credentials, the chunk's CRC fixed."""
    assert len(old) == len(new)
    out = [data[:8]]
    for kind, whole in chunks(data):
        if kind == CREDENTIALS_CHUNK:
            body = whole[8:-4]
            assert old in body, "the text to edit is not in the credentials"
            whole = chunk(kind, body.replace(old, new, 1))
        out.append(whole)
    return b"".join(out)
