"""A fake engine for queue and API tests: real PNG-able images, real steps, no torch."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from PIL import Image

from aleaart.errors import GenerationCancelled
from aleaart.params import RenderSpec


@dataclass(frozen=True)
class FakeRendered:
    image: Image.Image
    seconds: float


class FakeEngine:
    model_name = "fake"

    def __init__(self, *, step_seconds: float = 0.0, fail_with: Exception | None = None) -> None:
        self.step_seconds = step_seconds
        self.fail_with = fail_with
        self.calls: list[RenderSpec] = []
        self.started = threading.Event()
        self.release = threading.Event()  # set it to let a generation that waits for it go on
        self.release.set()

    @property
    def recipe(self) -> dict[str, str]:
        return {"model": "fake@1", "aleaart": "test"}

    def generate(self, spec: RenderSpec, *, on_step=None, cancel: threading.Event | None = None) -> FakeRendered:
        self.calls.append(spec)
        self.started.set()
        self.release.wait(10)
        if self.fail_with is not None:
            raise self.fail_with
        for step in range(1, spec.steps + 1):
            time.sleep(self.step_seconds)
            if on_step:
                on_step(step, spec.steps)
            if cancel is not None and cancel.is_set():
                raise GenerationCancelled(f"generation was cancelled after step {step}")
        colour = (spec.seed % 256, len(spec.prompt) % 256, spec.steps % 256)
        return FakeRendered(Image.new("RGB", (spec.width, spec.height), colour), seconds=0.01)
