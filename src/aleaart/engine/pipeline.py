"""Load a Stable Diffusion pipeline once, then render RenderSpecs with it, one at a time."""

from __future__ import annotations

import contextlib
import functools
import gc
import hashlib
import importlib.util
import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import diffusers
import torch
from diffusers import DiffusionPipeline, StableDiffusionImg2ImgPipeline, StableDiffusionPipeline
from PIL import Image

from aleaart import __version__
from aleaart.config import Backend, Precision, Settings
from aleaart.engine.checkpoint import architecture
from aleaart.engine.models import Loaded, ModelShelf
from aleaart.engine.noise import BATCH_SHAPED_NOISE, seeded_noise, slerp
from aleaart.engine.samplers import make_scheduler
from aleaart.engine.source import ModelSource, resolve_source
from aleaart.engine.tiny import TINY_VERSION, cached_tiny_model
from aleaart.errors import GenerationCancelled, ModelUnavailable, OutOfMemory
from aleaart.model_files import Architecture
from aleaart.motion import Frame
from aleaart.params import RenderSpec
from aleaart.resample import pad_to_multiple

if TYPE_CHECKING:
    from aleaart.engine.openvino import OpenVinoPipeline

log = logging.getLogger(__name__)

# Activation memory of one 512² frame with guidance in float32 (measured on CPU: a batch of 4 peaks 2.7 GiB above a
# batch of 1); float16 needs half. On CUDA an animation renders as many frames per UNet batch as fit the budget.
# On CPU a batch is one frame: bench/bench_animation.py measured batches of 4 no faster per frame (35.1 s against
# 33.2 s) for 2.7 GiB more. The rule depends on device, dtype and size alone (all in the key), so a request always
# gets the same batches, and the same pixels.
FRAME_MB_512 = 1024
ANIMATION_MEMORY_MB = {"cuda": 6144}  # leaves room for SD 1.5's 2 GB of fp16 weights on an 8 GB card
MAX_FRAMES_PER_BATCH = 16

# Every token prompt fits: 12 templates x 10 styles x 5 aspects (x 24 palettes in palette mode "prompt",
# where the least recently used go first). About 240 KB each for SD 1.5 in float32.
PROMPT_CACHE_SIZE = 600

StepCallback = Callable[[int, int], None]
"""Called after each denoising step with (steps done, steps in all)."""

MODEL_HINT = (
    "set ALEAART_MODEL=tiny to run without weights, or ALEAART_MODEL to a local diffusers folder "
    "or a .safetensors/.ckpt file (with ALEAART_MODEL_CONFIG offline)"
)


@dataclass(frozen=True)
class Rendered:
    image: Image.Image
    seconds: float


def cuda_available() -> bool:
    return torch.cuda.is_available()


def pick_device(requested: str | None) -> torch.device:
    if requested:
        return torch.device(requested)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def pick_backend(requested: Backend | Literal["auto"], device: torch.device) -> Backend:
    """What runs the UNet and VAE decoder: OpenVINO on the CPU, where bench/compare.py measured it 1.25x faster
    than PyTorch (when installed), PyTorch on any other device."""
    if requested == "openvino" and device.type != "cpu":
        raise ModelUnavailable(f"ALEAART_BACKEND=openvino runs on the CPU, not {device.type}: set "
                               "ALEAART_DEVICE=cpu, or ALEAART_BACKEND=torch for this device")
    if requested != "auto":
        return requested
    if device.type == "cpu" and importlib.util.find_spec("openvino") is not None:
        return "openvino"
    return "torch"


def _openvino_precision(backend: Backend, settings: Settings) -> Precision:
    if backend != "openvino":
        return "f32"  # unused: PyTorch's precision is its dtype
    from aleaart.engine.openvino import pick_precision

    return pick_precision(settings.openvino_precision)


def model_fingerprint(source: ModelSource) -> str:
    """A cheap identity of a local model's files (names, sizes, mtimes): new weights, new images."""
    root = Path(source.location)
    if not root.exists():
        return "hub"  # a hub id names its weights by itself
    digest = hashlib.sha256()
    paths = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
    for path in paths:
        stat = path.stat()
        digest.update(f"{path.relative_to(root.parent)}:{stat.st_size}:{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


def centre_crop(image: Image.Image, width: int, height: int) -> Image.Image:
    if image.size == (width, height):
        return image
    left = (image.width - width) // 2
    top = (image.height - height) // 2
    return image.crop((left, top, left + width, top + height))


def frames_per_batch(device: torch.device, dtype: torch.dtype, width: int, height: int) -> int:
    """How many animation frames one UNet batch takes on this device at this size."""
    frame_mb = FRAME_MB_512 * width * height / 512**2 * (0.5 if dtype == torch.float16 else 1.0)
    budget = ANIMATION_MEMORY_MB.get(device.type, 0)
    return max(1, min(MAX_FRAMES_PER_BATCH, int(budget // frame_mb)))


def _load_pipeline(source: ModelSource, settings: Settings, dtype: torch.dtype) -> StableDiffusionPipeline:
    common: dict[str, Any] = dict(dtype=dtype, safety_checker=None, requires_safety_checker=False)
    if source.kind == "single_file":
        config = settings.model_config_dir
        return StableDiffusionPipeline.from_single_file(
            source.location,
            config=str(config) if config else None,
            local_files_only=config is not None,
            **common,
        )
    if source.kind == "hub":
        try:  # a copy already in the HF cache loads without touching the network
            return StableDiffusionPipeline.from_pretrained(source.location, local_files_only=True, **common)
        except OSError:
            return StableDiffusionPipeline.from_pretrained(source.location, **common)
    return StableDiffusionPipeline.from_pretrained(source.location, local_files_only=True, **common)


def _load_failure(source: ModelSource, error: BaseException) -> str:
    """Why loading failed, in one line a user can act on."""
    if source.kind == "hub" and isinstance(error, OSError):
        return "it is not in the local Hugging Face cache and could not be downloaded (offline?)"
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0][:240] if lines else 'no details'}"


class Engine:
    """The loaded pipeline. ``generate`` is serialised: one render at a time on one pipeline."""

    def __init__(self, pipeline: StableDiffusionPipeline, *, model_name: str, model_identity: str,
                 shelf: ModelShelf | None = None, backend: Backend = "torch", threads: int | None = None,
                 converted_dir: Path | None = None, precision: Precision = "f32") -> None:
        self.pipeline = pipeline  # the one the job under the lock renders with (see _using)
        self.backend = backend
        self.precision = precision  # OpenVINO's; PyTorch's is its dtype
        self._threads = threads or torch.get_num_threads()
        self._converted_dir = converted_dir  # where OpenVINO models are saved, a folder per weights' identity
        self._shelf = shelf or ModelShelf(pipeline, max_loaded=1, models_dir=None, config_dir=None,
                                          reload_default=None)
        self._current = self._shelf.get(None)
        self._adapted = ""  # the current model and LoRAs, for the prompt cache
        self.model_name = model_name
        self.model_identity = model_identity
        self.device = pipeline.device
        self.dtype = pipeline.unet.dtype
        self._scheduler_config = dict(pipeline.scheduler.config)
        self._lock = threading.Lock()
        self._embeddings: OrderedDict[tuple[str, str], dict[str, torch.Tensor]] = OrderedDict()
        # Images longer than twice the VAE's native size are encoded and decoded in tiles, so a hires
        # 2048² fits where a 1024² render does; a fixed rule, so a size always gets the same pixels.
        self.tile_above = 2 * int(pipeline.vae.config.sample_size)
        pipeline.set_progress_bar_config(disable=True)
        self._runtime(self._current, self.model_identity)  # now: every render of the default is on one backend

    @classmethod
    def load(cls, settings: Settings) -> Engine:
        if settings.threads:
            torch.set_num_threads(settings.threads)
        source = resolve_source(settings.model)
        device = pick_device(settings.device)
        backend = pick_backend(settings.backend, device)
        dtype = torch.float16 if device.type == "cuda" else torch.float32
        identity = f"{source.name}-v{TINY_VERSION}" if source.kind == "tiny" else None
        if source.kind == "tiny":
            source = ModelSource("folder", str(cached_tiny_model(settings.cache_dir)), name=source.name)

        def load_default() -> StableDiffusionPipeline:
            try:
                return _load_pipeline(source, settings, dtype).to(device)
            except Exception as error:  # diffusers/hub/torch raise many types; all mean "not loadable"
                raise ModelUnavailable(
                    f"model {settings.model!r} could not be loaded: {_load_failure(source, error)}; {MODEL_HINT}"
                ) from error

        pipeline = load_default()
        identity = identity or f"{source.name}@{model_fingerprint(source)}"
        configs = settings.cache_dir / "configs" / hashlib.sha256(identity.encode()).hexdigest()[:16]
        shelf = ModelShelf(pipeline, max_loaded=settings.max_loaded_models, models_dir=settings.models_path,
                           config_dir=configs, reload_default=load_default)
        return cls(pipeline, model_name=source.name, model_identity=identity, shelf=shelf, backend=backend,
                   threads=settings.threads, converted_dir=settings.cache_dir / "openvino",
                   precision=_openvino_precision(backend, settings))

    @contextlib.contextmanager
    def _using(self, spec: RenderSpec) -> Iterator[None]:
        """The spec's model (loaded if need be) with its LoRAs on, for one job; called under the lock."""
        self._current = self._shelf.get(spec.model)
        self.pipeline = self._current.pipeline
        loras = tuple(lora for lora in spec.loras if lora.weight != 0)  # at weight 0 a LoRA adds nothing
        self._adapted = json.dumps([spec.model, [(lora.sha256, lora.weight) for lora in loras]])
        runtime = self._runtime(self._current, spec.model or self.model_identity)
        with self._shelf.applied(self._current, loras), \
                (runtime.suspended() if runtime is not None and loras else contextlib.nullcontext()):
            yield

    def _runtime(self, loaded: Loaded, identity: str) -> OpenVinoPipeline | None:
        """The loaded pipeline's OpenVINO runtime under the openvino backend, made on its first job from the
        models saved for these weights (``identity``: the model's, or an upload's sha256), or converted."""
        if self.backend != "openvino":
            return None
        if loaded.runtime is None:
            from aleaart.engine.openvino import VERSION, OpenVinoPipeline

            saved = None
            if self._converted_dir is not None:
                versions = f"{identity}|openvino-{VERSION}|torch-{torch.__version__}|diffusers-{diffusers.__version__}"
                saved = self._converted_dir / hashlib.sha256(versions.encode()).hexdigest()[:16]
            loaded.runtime = OpenVinoPipeline(loaded.pipeline, self._threads, saved, self.precision)
        return loaded.runtime

    def architecture(self) -> Architecture:
        """What uploads are checked against: the service's own model's layout."""
        with self._lock:
            return architecture(self._shelf.get(None).pipeline, self.model_name)

    @functools.cached_property
    def recipe(self) -> dict[str, str]:
        """Everything besides the spec that shapes the pixels; part of every image's key. Fixed for the engine's
        life, so built once: every job and every lookup of a stored result asks for it."""
        recipe = {
            "model": self.model_identity,
            "device": self.device.type,
            "dtype": str(self.dtype).removeprefix("torch."),
            "aleaart": __version__,
            "diffusers": diffusers.__version__,
            "torch": torch.__version__,
        }
        if self.backend == "openvino":  # absent on PyTorch, so keys from before backends were a choice still hold
            from aleaart.engine.openvino import VERSION

            # f32 keys stay as they were before bf16 was a choice
            recipe["backend"] = f"openvino-{VERSION}" + ("-bf16" if self.precision == "bf16" else "")
        return recipe

    def generate(
        self,
        spec: RenderSpec,
        *,
        on_step: StepCallback | None = None,
        cancel: threading.Event | None = None,
    ) -> Rendered:
        """Render one image of exactly spec.width x spec.height; raises GenerationCancelled if asked."""
        with self._lock, self._using(spec):
            if cancel is not None and cancel.is_set():
                raise GenerationCancelled("generation was cancelled before it started")
            started = time.perf_counter()
            images = self._denoise(spec, on_step, cancel, lambda: {"generator": seeded_generator(spec.seed)})
            return Rendered(image=images[0], seconds=time.perf_counter() - started)

    def generate_variations(
        self,
        spec: RenderSpec,
        seeds: list[int],
        strength: float,
        *,
        on_step: StepCallback | None = None,
        cancel: threading.Event | None = None,
    ) -> list[Rendered]:
        """One image per seed: ``spec`` rendered from its own starting noise blended (slerp, ``strength``)
        with that seed's, as A1111's "variation seed" does; the step noise stays the spec's. One UNet
        batch, except for samplers whose step noise is batch-shaped (one at a time, so strength 0 is the
        spec's own image exactly)."""
        with self._lock, self._using(spec):
            started = time.perf_counter()
            shape = self._latent_shape(spec)

            def noise(group: list[int]) -> dict[str, Any]:
                starts, generators = [], []
                for i in group:
                    own, generator = seeded_noise(shape, spec.seed, device=self.device, dtype=self.dtype)
                    other, _ = seeded_noise(shape, seeds[i], device=self.device, dtype=self.dtype)
                    starts.append(slerp(strength, own, other))
                    generators.append(generator)
                return {"num_images_per_prompt": len(group), "latents": torch.cat(starts), "generator": generators}

            one_by_one = spec.sampler in BATCH_SHAPED_NOISE or strength == 0
            groups = [[i] for i in range(len(seeds))] if one_by_one else [list(range(len(seeds)))]
            images: list[Image.Image] = []
            for done, group in enumerate(groups):
                if cancel is not None and cancel.is_set():
                    raise GenerationCancelled("generation was cancelled before it started")
                images += self._denoise(spec, _offset(on_step, done, len(groups)), cancel,
                                        lambda group=group: noise(group))
            seconds = (time.perf_counter() - started) / len(seeds)
            return [Rendered(image=image, seconds=seconds) for image in images]

    def animate(
        self,
        spec: RenderSpec,
        frames: list[Frame],
        *,
        morph_prompt: str | None = None,
        on_step: StepCallback | None = None,
        cancel: threading.Event | None = None,
    ) -> list[Rendered]:
        """One image per frame: ``spec`` rendered from the frame's blend of two seeds' starting noise, with its
        prompt embedding blended toward ``morph_prompt``'s by the frame's ``mix``; the step noise stays the
        spec's, so a frame at the spec's own seed and mix 0 is the spec's image. Frames go through the UNet in
        batches (``frames_per_batch``), one at a time for samplers whose step noise is batch-shaped. Progress
        counts frame-steps: (frames done x steps + step x frames in the batch, frames x steps), where a step is
        one denoising call (two a step for SDE samplers)."""
        with self._lock, self._using(spec):
            started = time.perf_counter()
            shape = self._latent_shape(spec)
            own = self._prompt_embeddings(spec.prompt)
            target = self._prompt_embeddings(morph_prompt) if morph_prompt is not None else own
            noises: dict[int, torch.Tensor] = {}

            def noise_of(seed: int) -> torch.Tensor:
                if seed not in noises:
                    noises[seed] = seeded_noise(shape, seed, device=self.device, dtype=self.dtype)[0]
                return noises[seed]

            def inputs(batch: list[Frame]) -> dict[str, Any]:
                starts = [slerp(f.t, noise_of(f.start_seed), noise_of(f.end_seed)) for f in batch]
                prompts = [torch.lerp(own["prompt_embeds"], target["prompt_embeds"], f.mix) for f in batch]
                return {"num_images_per_prompt": 1, "latents": torch.cat(starts),
                        "generator": [seeded_noise(shape, spec.seed, device=self.device, dtype=self.dtype)[1]
                                      for _ in batch],
                        "prompt_embeds": torch.cat(prompts),
                        "negative_prompt_embeds": own["negative_prompt_embeds"].repeat(len(batch), 1, 1)}

            size = 1 if spec.sampler in BATCH_SHAPED_NOISE else frames_per_batch(self.device, self.dtype, spec.width,
                                                                                   spec.height)
            images: list[Image.Image] = []
            for first in range(0, len(frames), size):
                if cancel is not None and cancel.is_set():
                    raise GenerationCancelled(f"animation was cancelled after {first} of {len(frames)} frames")
                batch = frames[first:first + size]
                progress = _frame_progress(on_step, first, len(batch), len(frames))
                images += self._denoise(spec, progress, cancel, lambda batch=batch: inputs(batch))
            seconds = (time.perf_counter() - started) / len(frames)
            return [Rendered(image=image, seconds=seconds) for image in images]

    def transform(
        self,
        spec: RenderSpec,
        image: Image.Image,
        strength: float,
        *,
        on_step: StepCallback | None = None,
        cancel: threading.Event | None = None,
    ) -> Rendered:
        """img2img: ``image`` noised to ``strength`` of ``spec``'s schedule and denoised with its prompt, seed,
        sampler and guidance, at the image's own size, by the loaded model's own components."""
        with self._lock, self._using(spec):
            if cancel is not None and cancel.is_set():
                raise GenerationCancelled("generation was cancelled before it started")
            started = time.perf_counter()
            pipeline = self._img2img_pipeline()
            tiled = max(image.size) > self.tile_above
            if tiled:
                pipeline.vae.enable_tiling()
            try:
                [result] = self._call(pipeline, spec, lambda: {"generator": seeded_generator(spec.seed)},
                                      image=pad_to_multiple(image, self.pipeline.vae_scale_factor), strength=strength,
                                      callback_on_step_end=self._step_callback(on_step, cancel))
            finally:
                if tiled:
                    pipeline.vae.disable_tiling()
            return Rendered(image=result.crop((0, 0, *image.size)), seconds=time.perf_counter() - started)

    def _latent_shape(self, spec: RenderSpec) -> tuple[int, int, int, int]:
        """The shape of one image's starting noise."""
        factor = self.pipeline.vae_scale_factor
        return 1, self.pipeline.unet.config.in_channels, spec.render_height // factor, spec.render_width // factor

    def _img2img_pipeline(self) -> StableDiffusionImg2ImgPipeline:
        return self._current.image_to_image()

    def _denoise(self, spec: RenderSpec, on_step: StepCallback | None, cancel: threading.Event | None,
                 inputs: Callable[[], dict[str, Any]]) -> list[Image.Image]:
        """Text to image for ``spec``, centre-cropped to its size; ``inputs`` makes the inputs that say where
        the noise comes from (a generator, or starting latents and their generators), and may replace the
        prompt's embeddings (an animation's morph)."""
        images = self._call(self.pipeline, spec, inputs, width=spec.render_width, height=spec.render_height,
                            callback_on_step_end=self._step_callback(on_step, cancel))
        return [centre_crop(image, spec.width, spec.height) for image in images]

    def _call(self, pipeline: DiffusionPipeline, spec: RenderSpec, inputs: Callable[[], dict[str, Any]],
              **arguments: Any) -> list[Image.Image]:
        """One pipeline call for ``spec``, with a fresh scheduler and fresh ``inputs`` (noise and generators keep
        state; they may replace the prompt's embeddings). Out of
        memory, it frees the cache and tries once more with VAE tiling and attention slicing (slower, and
        pixels a little different), then gives up with OutOfMemory."""

        def attempt() -> list[Image.Image]:
            pipeline.scheduler = make_scheduler(spec.sampler, self._scheduler_config, seed=spec.seed)
            call = {**self._prompt_embeddings(spec.prompt), **inputs()}
            return pipeline(num_inference_steps=spec.steps, guidance_scale=spec.guidance_scale, output_type="pil",
                            **arguments, **call).images

        try:
            return attempt()
        except torch.OutOfMemoryError:
            pass  # freed below, once this frame no longer holds the failed call's tensors
        self.free_memory()
        log.warning("out of memory rendering %dx%d: trying once more with VAE tiling and attention slicing",
                    spec.width, spec.height)
        try:
            with low_memory(pipeline):
                return attempt()
        except torch.OutOfMemoryError:
            pass
        self.free_memory()
        raise OutOfMemory(f"out of {self.device.type} memory for a {spec.width}x{spec.height} image, even with VAE "
                          "tiling and attention slicing; try again when fewer jobs share the device")

    def _prompt_embeddings(self, prompt: str) -> dict[str, torch.Tensor]:
        """The text encoder's output for ``prompt`` and for the empty negative prompt, computed once per
        prompt (a token's prompt is one of 600) and kept; the pipeline would compute exactly these."""
        key = (self._adapted, prompt)  # a LoRA may adapt the text encoder too
        if (cached := self._embeddings.get(key)) is not None:
            self._embeddings.move_to_end(key)
            return cached
        with torch.no_grad():
            positive, negative = self.pipeline.encode_prompt(prompt, self.device, 1, True)
        embeddings = {"prompt_embeds": positive, "negative_prompt_embeds": negative}
        self._embeddings[key] = embeddings
        if len(self._embeddings) > PROMPT_CACHE_SIZE:
            self._embeddings.popitem(last=False)
        return embeddings

    def free_memory(self) -> None:
        gc.collect()
        if self.device.type == "cuda":
            torch.cuda.empty_cache()

    @staticmethod
    def _step_callback(on_step: StepCallback | None, cancel: threading.Event | None) -> Callable[..., dict]:
        def callback(pipe: StableDiffusionPipeline, index: int, timestep: Any, kwargs: dict) -> dict:
            if on_step is not None:
                on_step(index + 1, pipe.num_timesteps)
            if cancel is not None and cancel.is_set():
                raise GenerationCancelled(f"generation was cancelled after step {index + 1}")
            return kwargs

        return callback


def seeded_generator(seed: int) -> torch.Generator:
    """A CPU generator: the seed means the same noise on every device."""
    return torch.Generator("cpu").manual_seed(seed)


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


def _frame_progress(on_step: StepCallback | None, done: int, batch: int, frames: int) -> StepCallback | None:
    """An animation's progress in frame-steps: the frames before this batch, plus this batch's steps."""
    if on_step is None:
        return None
    return lambda step, total: on_step(done * total + step * batch, frames * total)


def _offset(on_step: StepCallback | None, done: int, groups: int) -> StepCallback | None:
    """Progress over several pipeline calls as one count: steps of the calls before, plus this one's."""
    if on_step is None:
        return None
    return lambda step, total: on_step(done * total + step, groups * total)
