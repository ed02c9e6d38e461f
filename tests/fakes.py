"""A fake engine for queue and API tests: real PNG-able images, real steps, gates instead of sleeps."""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import dataclass

from PIL import Image
from waiting import eventually

from aleaart.errors import GenerationCancelled
from aleaart.memory import MemoryProfile, RenderSize
from aleaart.params import RenderSpec
from aleaart.weights import Architecture

# What uploads are checked against when the fake engine is loaded: a few tensors of a made-up SD 1.x layout.
FAKE_ARCHITECTURE = Architecture(
    name="fake",
    checkpoint={"model.diffusion_model.input_blocks.0.0.weight": (8, 4, 3, 3),
                "cond_stage_model.transformer.text_model.embeddings.token_embedding.weight": (16, 8),
                "first_stage_model.decoder.conv_out.weight": (3, 8, 3, 3)},
    modules={"unet.mid_block.attentions.0.transformer_blocks.0.attn2.to_k": (8, 8)},
    context_dim=8,
)


@dataclass(frozen=True)
class FakeRendered:
    image: Image.Image
    seconds: float


class FakePreviews:
    """engine/preview.Previews' seam for the fake engine: every ``every`` steps, a 16x16 picture of the step (its
    red channel grows with the step) to the running job's sink."""

    def __init__(self, every: int = 1) -> None:
        self.every = every
        self._sink = None

    @contextlib.contextmanager
    def watching(self, sink):
        self._sink = sink
        try:
            yield
        finally:
            self._sink = None

    def after_step(self, step: int, steps: int, colour: tuple[int, int, int]) -> None:
        if self._sink is not None and self.every and step % self.every == 0 and step < steps:
            self._sink(step, steps, [Image.new("RGB", (16, 16), colour)])


class FakeEngine:
    """Renders a flat colour from the spec. Gates: ``release`` (before the first step) and
    ``pause_at_step`` (after that step, it sets ``paused`` and waits for ``resume``)."""

    model_name = "fake"
    memory: MemoryProfile | None = None  # set, with max_rss_gb, to refuse sizes as the real engine does
    max_rss_gb: float | None = None

    def __init__(self, *, step_seconds: float = 0.0, fail_with: Exception | None = None,
                 model_id: str = "fake@1", fail_seeds: frozenset[int] = frozenset()) -> None:
        self.step_seconds = step_seconds
        self.fail_with = fail_with
        self.fail_seeds = fail_seeds  # these seeds always fail, as a broken token would
        self.model_id = model_id
        self.calls: list[RenderSpec] = []
        self.started = threading.Event()
        self.release = threading.Event()
        self.release.set()
        self.pause_at_step: int | None = None
        self.paused = threading.Event()
        self.resume = threading.Event()
        self.previews = FakePreviews()

    @property
    def recipe(self) -> dict[str, str]:
        return {"model": self.model_id, "aleaart": "test"}

    def recipe_details(self, spec: RenderSpec) -> dict:
        return {"weightsSha256": "f" * 64, "scheduler": "FlatColour", "threads": 1}

    def generate(self, spec: RenderSpec, *, on_step=None, cancel: threading.Event | None = None) -> FakeRendered:
        self.calls.append(spec)
        self.started.set()
        self._wait(self.release, cancel)
        if self.fail_with is not None:
            raise self.fail_with
        if spec.seed in self.fail_seeds:
            raise RuntimeError(f"seed {spec.seed} always fails here")
        for step in range(1, spec.steps + 1):
            if self.step_seconds:
                time.sleep(self.step_seconds)
            if on_step:
                on_step(step, spec.steps)
            self.previews.after_step(step, spec.steps, (step * 255 // spec.steps, 0, 0))
            if step == self.pause_at_step:
                self.paused.set()
                self._wait(self.resume, cancel)
            if cancel is not None and cancel.is_set():
                raise GenerationCancelled(f"generation was cancelled after step {step}")
        colour = (spec.seed % 256, len(spec.prompt) % 256, spec.steps % 256)
        return FakeRendered(Image.new("RGB", (spec.width, spec.height), colour), seconds=0.01)

    def generate_variations(self, spec: RenderSpec, seeds: list[int], strength: float, *, on_step=None,
                            cancel: threading.Event | None = None) -> list[FakeRendered]:
        """Strength 0: the spec's own image; else a colour of its own per seed and strength."""
        own = self.generate(spec, on_step=on_step, cancel=cancel)
        if strength == 0:
            return [own for _ in seeds]
        return [FakeRendered(Image.new("RGB", (spec.width, spec.height), (seed % 256, round(strength * 255), 7)),
                             seconds=0.01) for seed in seeds]

    def transform(self, spec: RenderSpec, image: Image.Image, strength: float, *, on_step=None,
                  cancel: threading.Event | None = None) -> FakeRendered:
        """``image`` blended (``strength``) toward a colour of the spec's seed and prompt, after int(steps x strength)
        steps through the same gates as ``generate``."""
        self.calls.append(spec)
        self.started.set()
        self._wait(self.release, cancel)
        if self.fail_with is not None:
            raise self.fail_with
        steps = int(spec.steps * strength)
        for step in range(1, steps + 1):
            if on_step:
                on_step(step, steps)
            if cancel is not None and cancel.is_set():
                raise GenerationCancelled(f"generation was cancelled after step {step}")
        colour = Image.new("RGB", image.size, (spec.seed % 256, len(spec.prompt) % 256, 99))
        return FakeRendered(Image.blend(image.convert("RGB"), colour, strength), seconds=0.01)

    def animate(self, spec: RenderSpec, frames, *, morph_prompt: str | None = None, on_step=None,
                cancel: threading.Event | None = None) -> list[FakeRendered]:
        """Frame i: the spec's own image (frame 0 is its still) blended toward red as far as i is from the loop's
        start, after the spec's steps once per frame, through the same gates as ``generate``."""
        own = self.generate(spec, cancel=cancel).image
        self.calls.extend([spec] * (len(frames) - 1))
        for done in range(len(frames)):
            for step in range(1, spec.steps + 1):
                if on_step:
                    on_step(done * spec.steps + step, len(frames) * spec.steps)
            if cancel is not None and cancel.is_set():
                raise GenerationCancelled(f"animation was cancelled after {done + 1} frames")
        red = Image.new("RGB", own.size, (255, 0, 0))
        return [FakeRendered(Image.blend(own, red, 1 - abs(1 - 2 * i / len(frames))), seconds=0.01)
                for i in range(len(frames))]

    def architecture(self) -> Architecture:
        return FAKE_ARCHITECTURE

    def require_memory(self, size: RenderSize) -> None:
        if self.memory is not None:
            self.memory.require(self.max_rss_gb, size)

    @staticmethod
    def _wait(gate: threading.Event, cancel: threading.Event | None) -> None:
        """Wait at a gate, but leave it as a real engine would when the job is cancelled (or the service stops)."""
        def passed() -> bool:
            if gate.is_set():
                return True
            if cancel is not None and cancel.is_set():
                raise GenerationCancelled("generation was cancelled while waiting")
            return False

        eventually(passed, every=0.01)  # a gate never opened lets the render go on after 30 s


def wait_done(client, job_id: str, timeout: float = 60) -> dict:
    """A job of an in-process TestClient app, once it ends, as GET /jobs/<id> shows it."""
    assert client.app.state.queue.get(job_id).wait_done(timeout)
    return client.get(f"/jobs/{job_id}").json()
