"""The pipelines an engine keeps loaded: the service's own model and uploaded SD 1.x checkpoints, the least
recently used unloaded first (ALEAART_MAX_LOADED_MODELS), and uploaded LoRAs, applied for one job with
diffusers' LoRA loading (PEFT) and taken off after it, so the next job renders as if they never were."""

from __future__ import annotations

import contextlib
import gc
import logging
import tempfile
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from diffusers import StableDiffusionImg2ImgPipeline, StableDiffusionPipeline

from aleaart.engine.residency import MappedWeights
from aleaart.errors import AleaArtError, InvalidModel, NotFound
from aleaart.heap import freeze_loaded, thaw
from aleaart.params import LoraWeight

log = logging.getLogger(__name__)

DEFAULT = ""  # the shelf's key of the service's own model


@dataclass
class Loaded:
    """One loaded pipeline, and the img2img pipeline over its components once a job needed it."""

    pipeline: StableDiffusionPipeline
    img2img: StableDiffusionImg2ImgPipeline | None = None
    runtime: Any = None  # what the engine's runtime prepared for it (OpenVINO: its UNet and VAE decoder converted)
    weights: MappedWeights | None = None  # the files its PyTorch parts are mapped from, where they are

    def release(self, parts: Iterable[str]) -> None:
        """``parts``' pages dropped until they are used again, where they are mapped from files."""
        if self.weights is not None:
            self.weights.release(self.pipeline, parts)

    def image_to_image(self) -> StableDiffusionImg2ImgPipeline:
        """An img2img pipeline over the loaded components: no second copy of the weights."""
        if self.img2img is None:
            self.img2img = StableDiffusionImg2ImgPipeline(**self.pipeline.components, requires_safety_checker=False)
            self.img2img.set_progress_bar_config(disable=True)
        return self.img2img


def weights_file(models_dir: Path | None, sha256: str) -> Path:
    """Where an upload's weights are: named by their sha256 (uploads.CustomModel.filename)."""
    path = (models_dir or Path(".")) / f"{sha256}.safetensors"
    if models_dir is None or not path.is_file():
        raise NotFound(f"uploaded weights {sha256[:16]} are not in this machine's models folder "
                       f"({models_dir}); upload them again, or share ALEAART_MODELS_DIR with the workers")
    return path


def write_config_folder(pipeline: StableDiffusionPipeline, folder: Path) -> Path:
    """The default model's configs without its weights: what ``from_single_file`` needs, offline, to know the
    architecture of a checkpoint of the same kind."""
    if (folder / "model_index.json").is_file():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    pipeline.save_config(folder)
    for name, component in pipeline.components.items():
        if component is None:
            continue
        if hasattr(component, "save_config"):  # diffusers models and schedulers
            component.save_config(folder / name)
        elif hasattr(component, "save_vocabulary"):  # the tokenizer: its vocabulary is its config
            component.save_pretrained(folder / name)
        else:  # transformers models
            component.config.save_pretrained(folder / name)
    return folder


class ModelShelf:
    """Loaded pipelines by model (the default under DEFAULT, uploads under their sha256), at most ``max_loaded``.

    Without ``reload_default`` (an engine built around a pipeline it did not load) the default stays loaded.
    """

    def __init__(self, default: StableDiffusionPipeline, *, max_loaded: int, models_dir: Path | None,
                 config_dir: Path | None, reload_default: Callable[[], StableDiffusionPipeline] | None,
                 map_default: Callable[[StableDiffusionPipeline], MappedWeights] | None = None) -> None:
        self.max_loaded = max_loaded
        self.models_dir = models_dir
        self._reload_default = reload_default
        self._map_default = map_default
        self._device, self._dtype = default.device, default.unet.dtype
        self._loaded: OrderedDict[str, Loaded] = OrderedDict({DEFAULT: self._default(default)})
        # Written now, while the default is loaded (it may be unloaded before the first upload is).
        self._config_folder = write_config_folder(default, config_dir) if config_dir is not None else None

    @property
    def loaded(self) -> list[str]:
        return list(self._loaded)

    def get(self, model: str | None) -> Loaded:
        """The pipeline of ``model`` (an upload's sha256, or None for the default), loading it if need be."""
        key = model or DEFAULT
        if key in self._loaded:
            self._loaded.move_to_end(key)
            return self._loaded[key]
        self._make_room()
        pipeline = self._load(key)
        loaded = self._default(pipeline) if key == DEFAULT else Loaded(pipeline)
        freeze_loaded()
        pipeline.set_progress_bar_config(disable=True)
        self._loaded[key] = loaded
        return loaded

    def _default(self, pipeline: StableDiffusionPipeline) -> Loaded:
        """The default model's pipeline, its parts mapped from files where the engine asked for that."""
        return Loaded(pipeline, weights=self._map_default(pipeline) if self._map_default is not None else None)

    @contextlib.contextmanager
    def applied(self, loaded: Loaded, loras: tuple[LoraWeight, ...]) -> Iterator[None]:
        """``loras`` on ``loaded``'s pipeline for the block, then off (unloaded, not fused: the base weights are
        never touched)."""
        if not loras:
            yield
            return
        pipeline = loaded.pipeline
        names = [f"lora{i}" for i in range(len(loras))]
        try:
            for name, lora in zip(names, loras, strict=True):
                path = weights_file(self.models_dir, lora.sha256)
                try:
                    pipeline.load_lora_weights(str(path), adapter_name=name)
                except AleaArtError:
                    raise
                except Exception as error:  # the user's weights: a 422 naming them, not the service's 500
                    raise InvalidModel(f"the uploaded LoRA {lora.sha256[:12]} cannot be applied to this model: "
                                       f"{type(error).__name__}: {error}"[:400]) from None
            pipeline.set_adapters(names, adapter_weights=[lora.weight for lora in loras])
            yield
        finally:
            pipeline.unload_lora_weights()

    def _make_room(self) -> None:
        while len(self._loaded) >= self.max_loaded:
            victim = next((k for k in self._loaded if k != DEFAULT or self._reload_default is not None), None)
            if victim is None:
                return  # only the pinned default is loaded: keep it, and go one over
            thaw()
            del self._loaded[victim]
            log.info("unloaded model %s to make room (ALEAART_MAX_LOADED_MODELS=%d)", victim[:16] or "default",
                     self.max_loaded)
            gc.collect()
            if self._device.type == "cuda":
                torch.cuda.empty_cache()

    def _load(self, key: str) -> StableDiffusionPipeline:
        if key == DEFAULT:
            assert self._reload_default is not None  # a pinned default is never unloaded
            return self._reload_default()
        path = weights_file(self.models_dir, key)
        log.info("loading uploaded checkpoint %s", key[:16])
        if self._config_folder is None:  # no folder given: the default is pinned, so it is here to read
            folder = Path(tempfile.mkdtemp(prefix="aleaart-configs-"))
            self._config_folder = write_config_folder(self._loaded[DEFAULT].pipeline, folder)
        try:
            pipeline = StableDiffusionPipeline.from_single_file(
                str(path), config=str(self._config_folder), local_files_only=True, torch_dtype=self._dtype,
                safety_checker=None, requires_safety_checker=False)
        except Exception as error:  # diffusers raises many types; all mean this file will not load
            # The user's weights, not the service: 422 naming them (a 503 would have clients retry forever).
            raise InvalidModel(f"uploaded checkpoint {key[:16]} could not be loaded: "
                               f"{type(error).__name__}: {str(error)[:240]}") from error
        return pipeline.to(self._device)
