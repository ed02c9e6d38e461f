"""Frames to files browsers play: H.264 MP4 (PyAV, FFmpeg's libx264) and animated WebP (Pillow)."""

from __future__ import annotations

import io
import json
import struct
import tempfile
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import av
from av.codec.context import Flags
from PIL import Image

from aleaart.provenance.claim import XMP

# Quality, not size, decides: a loop of a few seconds is small anyway. A constant quantiser of 18 (about what
# CRF 18, visually lossless, gives) on one thread: CRF's rate control gave other bytes for the same frames in a
# process that had loaded the model (floating point in its lookahead), a constant quantiser the same every time.
H264_OPTIONS = {"qp": "18", "preset": "medium", "threads": "1"}
WEBP_QUALITY = 90
METADATA_KEY = "comment"  # the MP4 tag ffprobe and most players show
XMP_UUID = uuid.UUID("be7acfcb-97a9-42e8-9c71-999491e3afac").bytes  # where ISO base media files keep XMP


def even_size(width: int, height: int) -> tuple[int, int]:
    """H.264 in 4:2:0 needs even sides; an odd side loses its last row or column."""
    return width - width % 2, height - height % 2


def encode_mp4(frames: Sequence[Image.Image], fps: int, metadata: dict[str, Any] | None = None) -> bytes:
    """An H.264 (yuv420p) MP4 with its index at the front (``faststart``: a browser plays it while loading),
    ``metadata`` as JSON in its comment tag; the same frames give the same bytes."""
    width, height = even_size(*frames[0].size)
    # faststart moves the index by reading the file back, which FFmpeg does by opening it again: a real file.
    with tempfile.TemporaryDirectory(prefix="aleaart-mp4-") as folder:
        path = Path(folder) / "animation.mp4"
        _write_mp4(path, frames, fps, (width, height), metadata)
        return path.read_bytes() + xmp_box(XMP.encode())


def xmp_box(xmp: bytes) -> bytes:
    """XMP as an MP4 reads it: a top-level ``uuid`` box of XMP's UUID. Appended after ``mdat``, so no offset in
    ``moov`` moves."""
    body = b"uuid" + XMP_UUID + xmp
    return struct.pack(">I", 4 + len(body)) + body


def _write_mp4(path: Path, frames: Sequence[Image.Image], fps: int, size: tuple[int, int],
               metadata: dict[str, Any] | None) -> None:
    width, height = size
    with av.open(str(path), mode="w", format="mp4", options={"movflags": "+faststart"}) as container:
        if metadata is not None:
            container.metadata[METADATA_KEY] = json.dumps(metadata, sort_keys=True, separators=(",", ":"))
        stream = container.add_stream("libx264", rate=fps, options=H264_OPTIONS)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.flags |= Flags.bitexact  # no encoder version string in the stream: bytes stay put
        for frame in frames:
            picture = av.VideoFrame.from_image(frame.convert("RGB").crop((0, 0, width, height)))
            container.mux(stream.encode(picture))
        container.mux(stream.encode())


def encode_webp(frames: Sequence[Image.Image], fps: int) -> bytes:
    """An animated WebP that loops forever (for places that show images but not videos)."""
    output = io.BytesIO()
    first, *rest = [frame.convert("RGB") for frame in frames]
    first.save(output, format="WEBP", save_all=True, append_images=rest, duration=round(1000 / fps), loop=0,
               quality=WEBP_QUALITY, method=4, xmp=XMP.encode())  # IPTC's DigitalSourceType, as PNGs carry it
    return output.getvalue()
