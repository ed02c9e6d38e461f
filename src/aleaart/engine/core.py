"""The render core: one job at a time on the loaded pipelines, whatever the task.

``RenderCore.run`` owns what every task shares: the lock, the model a spec names (loaded if need be), its LoRAs
on for the job, the runtime, cancel, timing, the out-of-memory retry and the prompt cache. A task (txt2img,
variations, img2img, animation: ``engine/pipeline.py``) only builds its inputs, and draws with the ``Drawing``
that ``run`` hands it, which is valid for that job alone.
"""

from __future__ import annotations

import contextlib
import gc
import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from diffusers import DiffusionPipeline, StableDiffusionPipeline
from PIL import Image

from aleaart.engine.preview import Previews
from aleaart.engine.runtime import Runtime
from aleaart.engine.samplers import make_scheduler
from aleaart.engine.shelf import Loaded, ModelShelf
from aleaart.errors import GenerationCancelled, OutOfMemory
from aleaart.params import RenderSpec
from aleaart.resample import pad_to_multiple

log = logging.getLogger(__name__)

# Every token prompt fits: 12 templates x 10 styles x 5 aspects (x 24 palettes in palette mode "prompt",
# where the least recently used go first). About 240 KB each for SD 1.5 in float32.
PROMPT_CACHE_SIZE = 600

StepCallback = Callable[[int, int], None]
"""Called after each denoising step with (steps done, steps in all)."""
Inputs = Callable[[], dict[str, Any]]
"""Fresh pipeline inputs for one call (noise and generators keep state): where the noise comes from, and
perhaps the prompt's embeddings."""


@dataclass(frozen=True)
class Rendered:
    image: Image.Image
    seconds: float


class RenderCore:
    def __init__(self, shelf: ModelShelf, runtime: Runtime, *, identity: str) -> None:
        self.shelf = shelf
        self.runtime = runtime
        self.identity = identity  # the default model's; an upload's is its sha256
        self.current = shelf.get(None)
        default = self.current.pipeline
        self.device, self.dtype = default.device, default.unet.dtype
        self.scheduler_config = dict(default.scheduler.config)
        # Images longer than twice the VAE's native size are encoded and decoded in tiles, so a hires
        # 2048² fits where a 1024² render does; a fixed rule, so a size always gets the same pixels.
        self.tile_above = 2 * int(default.vae.config.sample_size)
        self.native_pixels = int(default.vae.config.sample_size) ** 2
        self._lock = threading.Lock()
        self._embeddings: OrderedDict[tuple[str, str], dict[str, torch.Tensor]] = OrderedDict()
        self.previews = Previews()  # off until the engine is loaded with ALEAART_PREVIEW_EVERY
        default.set_progress_bar_config(disable=True)
        runtime.prepare(self.current, identity)  # now: every render of the default is on one runtime

    @property
    def pipeline(self) -> StableDiffusionPipeline:
        """The pipeline of the last job (the default model's until another is asked for)."""
        return self.current.pipeline

    def run(self, spec: RenderSpec, cancel: threading.Event | None,
            draw: Callable[[Drawing], list[Image.Image]]) -> list[Rendered]:
        """``draw``'s images for ``spec``, each timed as its share of the whole job."""
        with self._lock, self._using(spec, cancel) as drawing:
            drawing.check_cancel("generation was cancelled before it started")
            started = time.perf_counter()
            images = draw(drawing)
            seconds = (time.perf_counter() - started) / len(images)
            return [Rendered(image=image, seconds=seconds) for image in images]

    def default_pipeline(self) -> StableDiffusionPipeline:
        """The service's own model's pipeline, between jobs (what uploads are checked against)."""
        with self._lock:
            return self.shelf.get(None).pipeline

    def release_default(self, parts: Iterable[str]) -> None:
        """The service's own model's ``parts`` let go between jobs (read in again when used)."""
        with self._lock:
            self.shelf.get(None).release(parts)

    @contextlib.contextmanager
    def _using(self, spec: RenderSpec, cancel: threading.Event | None) -> Iterator[Drawing]:
        self.current = loaded = self.shelf.get(spec.model)
        loras = tuple(lora for lora in spec.loras if lora.weight != 0)  # at weight 0 a LoRA adds nothing
        adapted = json.dumps([spec.model, [(lora.sha256, lora.weight) for lora in loras]])
        self.runtime.prepare(loaded, spec.model or self.identity)
        drawing = Drawing(self, loaded, spec, adapted, cancel, adapters=bool(loras))
        drawing.make_room()  # for an img2img's encode: the UNet as compiled for the last job waits otherwise
        try:
            with self.shelf.applied(loaded, loras), self.runtime.job(loaded, adapted=bool(loras)):
                yield drawing
        finally:  # with the LoRAs off: what this job read and did not release as it went goes now
            loaded.release(sorted(drawing.used | ({"unet", "text_encoder"} if loras else set())))

    def prompt_embeddings(self, pipeline: StableDiffusionPipeline, adapted: str,
                          prompt: str) -> dict[str, torch.Tensor]:
        """The text encoder's output for ``prompt`` and for the empty negative prompt, computed once per
        prompt and weights (a LoRA may adapt the text encoder too) and kept; the pipeline would compute exactly
        these."""
        key = (adapted, prompt)
        if (cached := self._embeddings.get(key)) is not None:
            self._embeddings.move_to_end(key)
            return cached
        with torch.no_grad():
            positive, negative = pipeline.encode_prompt(prompt, self.device, 1, True)
        if not loras_on(pipeline):  # run once per prompt: its weights go until the next new prompt
            self.current.release(["text_encoder"])
        embeddings = {"prompt_embeds": positive, "negative_prompt_embeds": negative}
        self._embeddings[key] = embeddings
        if len(self._embeddings) > PROMPT_CACHE_SIZE:
            self._embeddings.popitem(last=False)
        return embeddings

    def free_memory(self) -> None:
        gc.collect()
        if self.device.type == "cuda":
            torch.cuda.empty_cache()


class Drawing:
    """One job's pipeline, spec and cancel, handed to a task by ``RenderCore.run`` (under its lock)."""

    def __init__(self, core: RenderCore, loaded: Loaded, spec: RenderSpec, adapted: str,
                 cancel: threading.Event | None, *, adapters: bool = False) -> None:
        self.core = core
        self.loaded = loaded
        self.spec = spec
        self._adapted = adapted  # the model and LoRAs on, for the prompt cache
        self._cancel = cancel
        self._adapters = adapters  # LoRAs are on: the parts are PEFT's until the job ends, not to be remapped
        self.used: set[str] = set()  # parts read outside the runtime's calls (img2img's encoder), released after

    @property
    def pipeline(self) -> StableDiffusionPipeline:
        return self.loaded.pipeline

    def check_cancel(self, message: str) -> None:
        if self._cancel is not None and self._cancel.is_set():
            raise GenerationCancelled(message)

    def latent_shape(self) -> tuple[int, int, int, int]:
        """The shape of one image's starting noise."""
        factor = self.pipeline.vae_scale_factor
        spec = self.spec
        return 1, self.pipeline.unet.config.in_channels, spec.render_height // factor, spec.render_width // factor

    def embeddings(self, prompt: str) -> dict[str, torch.Tensor]:
        return self.core.prompt_embeddings(self.pipeline, self._adapted, prompt)

    def denoise(self, inputs: Inputs, on_step: StepCallback | None) -> list[Image.Image]:
        """Text to image for the spec, centre-cropped to its size."""
        spec = self.spec
        images = self._call(self.pipeline, inputs, width=spec.render_width, height=spec.render_height,
                            callback_on_step_end=self._step_callback(on_step))
        return [centre_crop(image, spec.width, spec.height) for image in images]

    def img2img(self, image: Image.Image, strength: float, on_step: StepCallback | None) -> Image.Image:
        """``image`` noised to ``strength`` of the spec's schedule and denoised with its prompt, seed, sampler and
        guidance, at the image's own size, by the loaded model's own components."""
        pipeline = self.loaded.image_to_image()
        self.used.add("vae")  # its encoder
        tiled = max(image.size) > self.core.tile_above
        if tiled:
            pipeline.vae.enable_tiling()
        try:
            [result] = self._call(pipeline, lambda: {"generator": seeded_generator(self.spec.seed)},
                                  image=pad_to_multiple(image, self.pipeline.vae_scale_factor), strength=strength,
                                  callback_on_step_end=self._step_callback(on_step))
        finally:
            if tiled:
                pipeline.vae.disable_tiling()
        return result.crop((0, 0, *image.size))

    def _call(self, pipeline: DiffusionPipeline, inputs: Inputs, **arguments: Any) -> list[Image.Image]:
        """One pipeline call, with a fresh scheduler and fresh ``inputs``. Out of memory, it frees the cache and
        tries once more with VAE tiling and attention slicing (slower, and pixels a little different), then gives
        up with OutOfMemory."""
        spec, core = self.spec, self.core

        def attempt() -> list[Image.Image]:
            pipeline.scheduler = make_scheduler(spec.sampler, core.scheduler_config, seed=spec.seed)
            core.previews.tap(pipeline.scheduler)
            call = {**self.embeddings(spec.prompt), **inputs()}
            images = pipeline(num_inference_steps=spec.steps, guidance_scale=spec.guidance_scale, output_type="pil",
                              **arguments, **call).images
            self._done_with("vae")  # decoded
            return images

        try:
            return attempt()
        except torch.OutOfMemoryError:
            pass  # freed below, once this frame no longer holds the failed call's tensors
        core.free_memory()
        log.warning("out of memory rendering %dx%d: trying once more with VAE tiling and attention slicing",
                    spec.width, spec.height)
        try:
            with low_memory(pipeline):
                return attempt()
        except torch.OutOfMemoryError:
            pass
        core.free_memory()
        raise OutOfMemory(f"out of {core.device.type} memory for a {spec.width}x{spec.height} image, even with VAE "
                          "tiling and attention slicing; try again when fewer jobs share the device")

    def make_room(self) -> None:
        """Before a phase larger than a native-size image's that does not use the UNet (the encode and decode of
        a larger image), the runtime lets go what it can build again (runtime.make_room): their activations
        then come in its place, not on top of it."""
        spec = self.spec
        if spec.render_width * spec.render_height > self.core.native_pixels and not self._adapters:
            self.core.runtime.make_room(self.loaded)

    def _done_with(self, part: str) -> None:
        """What ``part`` holds beyond its weights let go for the rest of the call (runtime.done_with), rather than
        held through the phases that do not use it: the UNet through the VAE decode, the VAE through the next job's
        steps. With LoRAs on, the parts are PEFT's until the job ends, which releases them then."""
        if not self._adapters:
            self.core.runtime.done_with(self.loaded, part)

    def _step_callback(self, on_step: StepCallback | None) -> Callable[..., dict]:
        def callback(pipe: StableDiffusionPipeline, index: int, timestep: Any, kwargs: dict) -> dict:
            if on_step is not None:
                on_step(index + 1, pipe.num_timesteps)
            self.core.previews.after_step(index + 1, pipe.num_timesteps)
            if index + 1 == pipe.num_timesteps:
                self._done_with("unet")  # the decode that comes next does not need it
                self.make_room()
            self.check_cancel(f"generation was cancelled after step {index + 1}")
            return kwargs

        return callback


def loras_on(pipeline: DiffusionPipeline) -> bool:
    """Whether LoRA adapters are loaded into the pipeline now (its modules are then PEFT's, not to be remapped)."""
    return bool(pipeline.get_list_adapters()) if hasattr(pipeline, "get_list_adapters") else False


def seeded_generator(seed: int) -> torch.Generator:
    """A CPU generator: the seed means the same noise on every device."""
    return torch.Generator("cpu").manual_seed(seed)


def centre_crop(image: Image.Image, width: int, height: int) -> Image.Image:
    if image.size == (width, height):
        return image
    left = (image.width - width) // 2
    top = (image.height - height) // 2
    return image.crop((left, top, left + width, top + height))


@contextlib.contextmanager
def low_memory(pipeline: DiffusionPipeline) -> Iterator[None]:
    """VAE tiling and attention slicing for one call, then as before."""
    was_tiling = pipeline.vae.use_tiling
    pipeline.vae.enable_tiling()
    pipeline.enable_attention_slicing()
    try:
        yield
    finally:
        pipeline.disable_attention_slicing()
        if not was_tiling:
            pipeline.vae.disable_tiling()
