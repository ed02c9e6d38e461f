"""The engine: load a Stable Diffusion pipeline once, then render with it. Each task (an image, variations, an
animation, img2img) only builds its inputs; ``core.RenderCore`` runs them, one job at a time, on the runtime
(``runtime.py``) the settings chose."""

from __future__ import annotations

import functools
import hashlib
import json
import threading
from pathlib import Path
from typing import Any

import diffusers
import torch
import transformers
from diffusers import StableDiffusionPipeline
from PIL import Image

from aleaart import __version__
from aleaart.config import Settings
from aleaart.engine.checkpoint import architecture
from aleaart.engine.core import Drawing, RenderCore, Rendered, StepCallback, seeded_generator
from aleaart.engine.footprint import measuring_largest, memory_profile, profile_path
from aleaart.engine.loading import MODEL_HINT, load_failure, load_pipeline, model_fingerprint, pick_device
from aleaart.engine.noise import BATCH_SHAPED_NOISE, seeded_noise, slerp
from aleaart.engine.preview import Previews, load_decoder
from aleaart.engine.residency import PARTS, cache_folder, kept_digest, map_weights
from aleaart.engine.runtime import Runtime, RuntimeSetup, open_runtime, pick_backend
from aleaart.engine.samplers import sampler
from aleaart.engine.shelf import ModelShelf
from aleaart.engine.source import ModelSource, resolve_source
from aleaart.engine.tiny import TINY_VERSION, cached_tiny_model
from aleaart.errors import ModelUnavailable
from aleaart.memory import MemoryProfile, RenderSize
from aleaart.motion import Frame
from aleaart.params import RenderSpec
from aleaart.weights import Architecture

# Activation memory of one 512² frame with guidance in float32 (measured on CPU: a batch of 4 peaks 2.7 GiB above a
# batch of 1); float16 needs half. On CUDA an animation renders as many frames per UNet batch as fit the budget.
# On CPU a batch is one frame: bench/bench_animation.py measured batches of 4 no faster per frame (35.1 s against
# 33.2 s) for 2.7 GiB more. The rule depends on device, dtype and size alone (all in the key), so a request always
# gets the same batches, and the same pixels.
FRAME_MB_512 = 1024
ANIMATION_MEMORY_MB = {"cuda": 6144}  # leaves room for SD 1.5's 2 GB of fp16 weights on an 8 GB card
MAX_FRAMES_PER_BATCH = 16


def frames_per_batch(device: torch.device, dtype: torch.dtype, width: int, height: int) -> int:
    """How many animation frames one UNet batch takes on this device at this size."""
    frame_mb = FRAME_MB_512 * width * height / 512**2 * (0.5 if dtype == torch.float16 else 1.0)
    budget = ANIMATION_MEMORY_MB.get(device.type, 0)
    return max(1, min(MAX_FRAMES_PER_BATCH, int(budget // frame_mb)))


def eager_runtime() -> Runtime:
    from aleaart.engine.eager import EagerRuntime

    return EagerRuntime()


class Engine:
    """The loaded model and the tasks it renders; ``core`` serialises them (one render at a time)."""

    def __init__(self, pipeline: StableDiffusionPipeline, *, model_name: str, model_identity: str,
                 shelf: ModelShelf | None = None, runtime: Runtime | None = None) -> None:
        shelf = shelf or ModelShelf(pipeline, max_loaded=1, models_dir=None, config_dir=None, reload_default=None)
        self.core = RenderCore(shelf, runtime or eager_runtime(), identity=model_identity)
        self.model_name = model_name
        self.model_identity = model_identity
        self.device = self.core.device
        self.dtype = self.core.dtype
        self.memory: MemoryProfile | None = None  # measured by Engine.load
        self.memory_path: Path | None = None  # where it is kept
        self.max_rss_gb: float | None = None

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

        root = Path(source.location) if source.kind in ("folder", "tiny") else None

        def load_default() -> StableDiffusionPipeline:
            try:
                return load_pipeline(source, settings, dtype).to(device)
            except Exception as error:  # diffusers/hub/torch raise many types; all mean "not loadable"
                raise ModelUnavailable(
                    f"model {settings.model!r} could not be loaded: {load_failure(source, error)}; {MODEL_HINT}"
                ) from error

        pipeline = load_default()
        identity = identity or f"{source.name}@{model_fingerprint(source)}"
        configs = settings.cache_dir / "configs" / hashlib.sha256(identity.encode()).hexdigest()[:16]
        weights = cache_folder(settings.cache_dir, identity, dtype)
        shelf = ModelShelf(pipeline, max_loaded=settings.max_loaded_models, models_dir=settings.models_path,
                           config_dir=configs, reload_default=load_default,
                           map_default=(lambda p: map_weights(p, root, weights)) if device.type == "cpu" else None)
        setup = RuntimeSetup(threads=settings.threads or torch.get_num_threads(),
                             folder=settings.cache_dir / backend, settings=settings)
        engine = cls(pipeline, model_name=source.name, model_identity=identity, shelf=shelf,
                     runtime=open_runtime(backend, setup))
        engine.weights_sha256 = kept_digest(weights / "weights.sha256", lambda: engine.digest_weights())
        engine.memory_path = profile_path(engine, settings.cache_dir)
        engine.memory = memory_profile(engine, engine.memory_path)
        engine.max_rss_gb = settings.max_rss_gb
        decoder = load_decoder(settings.preview_decoder, settings.preview_taesd, device)
        engine.core.previews = Previews(settings.preview_every, decoder)
        return engine

    @property
    def previews(self) -> Previews:
        """What the running job sees of its picture before it is done (engine/preview.py)."""
        return self.core.previews

    @property
    def pipeline(self) -> StableDiffusionPipeline:
        return self.core.pipeline

    @property
    def tile_above(self) -> int:
        return self.core.tile_above

    def require_memory(self, size: RenderSize) -> None:
        if self.memory is not None:
            self.memory.require(self.max_rss_gb, size)

    def architecture(self) -> Architecture:
        """What uploads are checked against: the service's own model's layout."""
        return architecture(self.core.default_pipeline(), self.model_name)

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
        if (backend := self.core.runtime.key) is not None:
            recipe["backend"] = backend
        return recipe

    @functools.cached_property
    def weights_sha256(self) -> str:
        """sha256 over the default model's tensors (UNet, VAE, text encoder; by name, in order): its weights'
        identity however they were stored. ``Engine.load`` keeps it in the cache; else computed when the first file
        is signed."""
        return self.digest_weights()

    def digest_weights(self) -> str:
        digest = hashlib.sha256()
        pipeline = self.core.default_pipeline()
        for part in PARTS:
            for name, tensor in sorted(getattr(pipeline, part).state_dict().items()):
                digest.update(f"{part}.{name}:{tuple(tensor.shape)}:{tensor.dtype}".encode())
                # Flattened and copied to plain strides: a channels_last tensor (or one with size-1 dims) can pass
                # for contiguous with strides a uint8 view refuses; the bytes are the tensor's in C order.
                flat = tensor.detach().cpu().reshape(-1).clone(memory_format=torch.contiguous_format)
                digest.update(flat.view(torch.uint8).numpy().tobytes())
        self.core.release_default(PARTS)  # every weight was read in: its pages go before the next render
        return digest.hexdigest()

    def recipe_details(self, spec: RenderSpec) -> dict[str, Any]:
        """What else shaped the pixels, for the Content Credentials (the recipe itself is in every key)."""
        chosen = sampler(spec.sampler)
        backend = self.recipe.get("backend", "torch")
        return {
            "weightsSha256": spec.model or self.weights_sha256,  # an upload is named by its file's sha256
            "scheduler": chosen.scheduler.__name__,
            "schedulerConfig": json.loads(json.dumps({**self.core.scheduler_config, **chosen.config}, default=str)),
            "precision": "bf16" if backend.endswith("-bf16") else str(self.dtype).removeprefix("torch."),
            "threads": torch.get_num_threads(),
            "libraries": {"torch": torch.__version__, "diffusers": diffusers.__version__,
                          "transformers": transformers.__version__, "backend": backend},
        }

    def generate(self, spec: RenderSpec, *, on_step: StepCallback | None = None,
                 cancel: threading.Event | None = None) -> Rendered:
        """Render one image of exactly spec.width x spec.height; raises GenerationCancelled if asked."""
        with measuring_largest(self, spec.width, spec.height):
            [rendered] = self.core.run(spec, cancel, lambda draw: draw.denoise(
                lambda: {"generator": seeded_generator(spec.seed)}, on_step))
        return rendered

    def generate_variations(self, spec: RenderSpec, seeds: list[int], strength: float, *,
                            on_step: StepCallback | None = None,
                            cancel: threading.Event | None = None) -> list[Rendered]:
        """One image per seed: ``spec`` rendered from its own starting noise blended (slerp, ``strength``)
        with that seed's, as A1111's "variation seed" does; the step noise stays the spec's. One UNet
        batch, except for samplers whose step noise is batch-shaped (one at a time, so strength 0 is the
        spec's own image exactly)."""

        def draw(drawing: Drawing) -> list[Image.Image]:
            shape = drawing.latent_shape()

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
                drawing.check_cancel("generation was cancelled before it started")
                images += drawing.denoise(lambda group=group: noise(group), _offset(on_step, done, len(groups)))
            return images

        return self.core.run(spec, cancel, draw)

    def animate(self, spec: RenderSpec, frames: list[Frame], *, morph_prompt: str | None = None,
                on_step: StepCallback | None = None, cancel: threading.Event | None = None) -> list[Rendered]:
        """One image per frame: ``spec`` rendered from the frame's blend of two seeds' starting noise, with its
        prompt embedding blended toward ``morph_prompt``'s by the frame's ``mix``; the step noise stays the
        spec's, so a frame at the spec's own seed and mix 0 is the spec's image. Frames go through the UNet in
        batches (``frames_per_batch``), one at a time for samplers whose step noise is batch-shaped. Progress
        counts frame-steps: (frames done x steps + step x frames in the batch, frames x steps), where a step is
        one denoising call (two a step for SDE samplers)."""

        def draw(drawing: Drawing) -> list[Image.Image]:
            shape = drawing.latent_shape()
            own = drawing.embeddings(spec.prompt)
            target = drawing.embeddings(morph_prompt) if morph_prompt is not None else own
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

            size = 1 if spec.sampler in BATCH_SHAPED_NOISE else frames_per_batch(self.device, self.dtype,
                                                                                   spec.width, spec.height)
            images: list[Image.Image] = []
            for first in range(0, len(frames), size):
                drawing.check_cancel(f"animation was cancelled after {first} of {len(frames)} frames")
                batch = frames[first:first + size]
                progress = _frame_progress(on_step, first, len(batch), len(frames))
                images += drawing.denoise(lambda batch=batch: inputs(batch), progress)
            return images

        return self.core.run(spec, cancel, draw)

    def transform(self, spec: RenderSpec, image: Image.Image, strength: float, *,
                  on_step: StepCallback | None = None, cancel: threading.Event | None = None) -> Rendered:
        """img2img: ``image`` noised to ``strength`` of ``spec``'s schedule and denoised with its prompt, seed,
        sampler and guidance, at the image's own size, by the loaded model's own components."""
        [rendered] = self.core.run(spec, cancel, lambda draw: [draw.img2img(image, strength, on_step)])
        return rendered


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

