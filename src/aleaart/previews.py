"""Live previews: what a running job shows of its picture before it is done (pure: Pillow, no torch, no HTTP).

A preview is the render's current estimate of the final image (the predicted clean latents, decoded cheaply by
engine/preview.py), encoded small: WebP at quality 60, or JPEG where a client asks. The service keeps only each
job's latest; previews are never stored, signed, pinned or counted as results.
"""

from __future__ import annotations

import base64
import io
import time
from collections.abc import Callable
from dataclasses import dataclass

from PIL import Image

PreviewSink = Callable[[int, int, list[Image.Image]], None]
"""(step, steps, the preview images: one per image of the batch), from the engine."""

QUALITY = 60
MAX_PER_SECOND = 4.0
FORMATS = {"image/webp": "WEBP", "image/jpeg": "JPEG"}


@dataclass(frozen=True)
class Preview:
    step: int
    steps: int
    data: bytes
    mime: str = "image/webp"

    def data_url(self) -> str:
        return f"data:{self.mime};base64,{base64.b64encode(self.data).decode()}"

    def to_event(self) -> dict[str, object]:
        return {"step": self.step, "steps": self.steps, "image": self.data_url()}


def strip(images: list[Image.Image]) -> Image.Image:
    """Several images (a batch of variations) side by side, as one preview."""
    if len(images) == 1:
        return images[0]
    width, height = sum(i.width for i in images), max(i.height for i in images)
    joined = Image.new("RGB", (width, height))
    left = 0
    for image in images:
        joined.paste(image, (left, 0))
        left += image.width
    return joined


def encode(image: Image.Image, mime: str = "image/webp") -> bytes:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format=FORMATS[mime], quality=QUALITY)
    return buffer.getvalue()


def sink_for(show: Callable[[Preview], None], progress: Callable[[], tuple[int, int]],
             clock: Callable[[], float] = time.monotonic) -> PreviewSink:
    """The engine's previews for one job, throttled, encoded and handed to ``show``, numbered by the job's own
    ``progress`` (step, steps: a batch of variations or an animation counts all its steps)."""
    throttle = Throttle(clock)

    def sink(step: int, steps: int, images: list[Image.Image]) -> None:
        done, total = progress()
        if throttle.allows(done, total):
            show(Preview(done, total, encode(strip(images))))

    return sink


def as_jpeg(preview: Preview) -> Preview:
    """The same preview as JPEG, for a client that does not take WebP."""
    if preview.mime == "image/jpeg":
        return preview
    with Image.open(io.BytesIO(preview.data)) as image:
        return Preview(preview.step, preview.steps, encode(image, "image/jpeg"), "image/jpeg")


def wants_jpeg(accept: str) -> bool:
    """An Accept header that names JPEG and not WebP (nor any image)."""
    accept = accept.lower()
    return "image/jpeg" in accept and "image/webp" not in accept and "image/*" not in accept


class Throttle:
    """At most MAX_PER_SECOND previews a second: one that comes sooner is dropped (the next will do), never queued.
    The last step is never dropped."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._last = -1e9

    def allows(self, step: int, steps: int) -> bool:
        now = self.clock()
        if step < steps and now - self._last < 1 / MAX_PER_SECOND:
            return False
        self._last = now
        return True
