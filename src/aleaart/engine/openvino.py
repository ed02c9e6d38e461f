"""ALEAART_BACKEND=openvino: a loaded pipeline's UNet and VAE decoder run on OpenVINO's CPU runtime.

Diffusers keeps everything else (the scheduler loop, guidance, the text encoder, the VAE encoder), so samplers,
callbacks, cancelling and the prompt cache work as on PyTorch. The two modules are converted once from the loaded
PyTorch weights with ``openvino.convert_model`` (no export step, no optimum-intel, which pins another torch), then
compiled once per input shape (an aspect, a batch) with the precision hint set, never left to OpenVINO's
per-CPU default. ALEAART_OPENVINO_PRECISION=auto is bf16 where the CPU computes it natively (bench/compare.py:
twice f32's speed, the image 48 dB from f32's), else f32; bf16 asked for on a CPU without it is refused, since
OpenVINO would quietly run f32 under a key that says bf16. A pipeline with LoRAs on runs on PyTorch for that job
(``suspended``): the converted graph holds the base weights only. Converted models are saved as OpenVINO IR in a
folder named by the weights' identity, so a restart reads them instead of converting again.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import logging
import os
import shutil
import tempfile
import time
import warnings
from collections import OrderedDict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal

import diffusers
import openvino
import torch
from diffusers import StableDiffusionPipeline
from diffusers.models.unets.unet_2d_condition import UNet2DConditionOutput

from aleaart.config import Precision
from aleaart.engine.pages import shedding_pages, trim_heap
from aleaart.engine.runtime import RuntimeSetup
from aleaart.engine.shelf import Loaded
from aleaart.errors import ModelUnavailable

log = logging.getLogger(__name__)

VERSION = openvino.__version__.split("-")[0]

Shape = tuple[tuple[int, ...], ...]


class _UNetCall(torch.nn.Module):
    """The UNet as a function of the three tensors the pipeline's loop gives it."""

    def __init__(self, unet: torch.nn.Module) -> None:
        super().__init__()
        self.unet = unet

    def forward(self, sample: torch.Tensor, timestep: torch.Tensor, states: torch.Tensor) -> torch.Tensor:
        return type(self.unet).forward(self.unet, sample, timestep, states, return_dict=False)[0]


class _DecoderCall(torch.nn.Module):
    def __init__(self, decoder: torch.nn.Module) -> None:
        super().__init__()
        self.decoder = decoder

    def forward(self, latents: torch.Tensor) -> torch.Tensor:
        return type(self.decoder).forward(self.decoder, latents)


class CompiledByShape:
    """One converted model, compiled for each set of input shapes it is called with (static shapes run faster
    than a dynamic graph on CPU). Each compilation holds its own copy of the weights, so only the ``keep`` most
    recently used are kept (ALEAART_OPENVINO_SHAPES); one is dropped before the next is compiled."""

    def __init__(self, source: ModelSource, config: dict[str, Any], name: str, keep: int = 1) -> None:
        self._source = source
        self._config = config
        self._name = name
        self._keep = keep
        self._core = openvino.Core()
        self._requests: OrderedDict[Shape, openvino.InferRequest] = OrderedDict()

    @property
    def shapes(self) -> list[Shape]:
        return list(self._requests)

    def release_memory(self) -> None:
        """The buffers its compilations keep for activations freed (they are made again by the next call): a
        UNet's at 1024x1024 are gigabytes, and the decode and the next job's steps do not need them."""
        for request in self._requests.values():
            request.get_compiled_model().release_memory()
        trim_heap()

    def drop(self) -> None:
        """Every compilation let go (the next call compiles its shape again)."""
        if self._requests:
            log.info("OpenVINO dropped the %s compiled for %s", self._name, list(self._requests))
        self._requests.clear()
        gc.collect()
        trim_heap()

    def __call__(self, *inputs: torch.Tensor) -> torch.Tensor:
        arrays = [t.detach().to(torch.float32).contiguous().numpy() for t in inputs]
        shape = tuple(a.shape for a in arrays)
        if (request := self._requests.get(shape)) is not None:
            self._requests.move_to_end(shape)
        else:
            request = self._compile(shape)
        request.infer(arrays, share_inputs=True)
        return torch.from_numpy(request.get_output_tensor(0).data.copy())

    def _compile(self, shape: Shape) -> openvino.InferRequest:
        while len(self._requests) >= self._keep:
            dropped = next(iter(self._requests))  # not popitem: its value would live on in this frame
            del self._requests[dropped]
            log.info("OpenVINO dropped the %s compiled for %s (ALEAART_OPENVINO_SHAPES=%d)", self._name, dropped,
                     self._keep)
        gc.collect()  # the dropped compilation's weights go before the next one's come
        trim_heap()
        started = time.perf_counter()
        model = self._source.read()
        model.reshape({i: openvino.PartialShape(list(s)) for i, s in enumerate(shape)})
        with self._source.shedding():
            request = self._core.compile_model(model, "CPU", self._config).create_infer_request()
        del model
        trim_heap()  # what compiling allocated for itself
        self._requests[shape] = request
        log.info("OpenVINO compiled the %s for %s in %.1f s", self._name, shape, time.perf_counter() - started)
        return request


class ModelSource:
    """Where a converted model is read from for each compilation: its IR on disk, mapped, whose pages are dropped
    as the compiler reads them (it copies every weight into its own layout), or the converted model in hand when
    there is no folder to save it in."""

    def __init__(self, xml: Path | None = None, model: openvino.Model | None = None) -> None:
        assert (xml is None) != (model is None)
        self.xml, self._model = xml, model

    def read(self) -> openvino.Model:
        if self._model is not None:
            return self._model.clone()
        assert self.xml is not None
        return openvino.Core().read_model(self.xml)

    def shedding(self) -> contextlib.AbstractContextManager[None]:
        if self.xml is None:
            return contextlib.nullcontext()
        return shedding_pages(self.xml.with_suffix(".bin"))


def has_native_bf16() -> bool:
    """Whether OpenVINO's CPU plugin computes bf16 in hardware here (AVX512_BF16 or AMX)."""
    return "BF16" in openvino.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")


def pick_precision(requested: Precision | Literal["auto"]) -> Precision:
    """``auto``: bf16 where the CPU has it natively, f32 elsewhere (where bf16 would be emulated, and slower)."""
    if requested == "auto":
        return "bf16" if has_native_bf16() else "f32"
    return requested


class OpenVinoPipeline:
    """``pipeline``'s UNet and VAE decoder, converted and swapped in place (their ``forward``); ``threads`` CPU
    threads, fixed, since the pixels depend on them, and ``precision``."""

    def __init__(self, pipeline: StableDiffusionPipeline, threads: int, saved: Path | None = None,
                 precision: Precision = "f32", keep: int = 1) -> None:
        if precision == "bf16" and not has_native_bf16():
            raise ModelUnavailable("ALEAART_OPENVINO_PRECISION=bf16 needs a CPU with native bf16 (AVX512_BF16 or "
                                   "AMX), and this one has none: set ALEAART_OPENVINO_PRECISION=f32")
        config = {"INFERENCE_PRECISION_HINT": precision, "INFERENCE_NUM_THREADS": threads,
                  "PERFORMANCE_HINT": "LATENCY"}
        unet, vae = pipeline.unet, pipeline.vae
        self._unet, self._decoder = unet, vae.decoder
        self._torch_forwards = (type(unet).forward.__get__(unet), type(vae.decoder).forward.__get__(vae.decoder))
        unet_model = _saved_or_converted(saved, "unet",
                                         lambda: _convert(_UNetCall(unet), _unet_example(unet, pipeline)))
        decoder_model = _saved_or_converted(saved, "vae_decoder",
                                            lambda: _convert(_DecoderCall(vae.decoder), _decoder_example(vae)))
        self.unet = CompiledByShape(unet_model, config, "UNet", keep)
        self.decoder = CompiledByShape(decoder_model, config, "VAE decoder", keep)
        self._swap_in()

    @contextlib.contextmanager
    def suspended(self) -> Iterator[None]:
        """PyTorch's forwards for the block (a job with LoRAs), then OpenVINO's again."""
        self._unet.forward, self._decoder.forward = self._torch_forwards
        try:
            yield
        finally:
            self._swap_in()

    def _swap_in(self) -> None:
        self._unet.forward = _unet_forward(self.unet, self._torch_forwards[0], self._unet.dtype)
        self._decoder.forward = _decoder_forward(self.decoder, self._torch_forwards[1])


class OpenVinoRuntime:
    """The runtime: each loaded pipeline converted on its first job (or read from the IR saved for its weights),
    and on PyTorch for a job with LoRAs."""

    def __init__(self, setup: RuntimeSetup) -> None:
        self.precision = pick_precision(setup.settings.openvino_precision)
        self.threads = setup.threads
        self.folder = setup.folder
        self.shapes = setup.settings.openvino_shapes

    @property
    def key(self) -> str:
        return f"openvino-{VERSION}" + ("-bf16" if self.precision == "bf16" else "")  # f32 keys predate bf16

    def prepare(self, loaded: Loaded, identity: str) -> None:
        if loaded.runtime is None:
            loaded.runtime = OpenVinoPipeline(loaded.pipeline, self.threads, self._saved(identity), self.precision,
                                              self.shapes)
            loaded.release(("unet", "vae"))  # read through once by the conversion; OpenVINO holds its own copy

    def job(self, loaded: Loaded, *, adapted: bool) -> contextlib.AbstractContextManager[None]:
        return loaded.runtime.suspended() if adapted else contextlib.nullcontext()

    def make_room(self, loaded: Loaded) -> None:
        # With one shape kept, the UNet's next call would compile its shape anyway unless it is this job's again
        # (a compile of a few seconds); with more kept, the operator chose memory for fewer compiles.
        if self.shapes == 1:
            loaded.runtime.unet.drop()

    def done_with(self, loaded: Loaded, part: str) -> None:
        compiled = {"unet": loaded.runtime.unet, "vae": loaded.runtime.decoder}[part]
        compiled.release_memory()

    def _saved(self, identity: str) -> Path | None:
        """Where the IR of these weights (the model's identity, or an upload's sha256) is saved, by versions."""
        if self.folder is None:
            return None
        versions = f"{identity}|openvino-{VERSION}|torch-{torch.__version__}|diffusers-{diffusers.__version__}"
        return self.folder / hashlib.sha256(versions.encode()).hexdigest()[:16]


def open_runtime(setup: RuntimeSetup) -> OpenVinoRuntime:
    return OpenVinoRuntime(setup)


def _saved_or_converted(folder: Path | None, name: str, convert: Callable[[], openvino.Model]) -> ModelSource:
    """The model saved in ``folder`` as OpenVINO IR by an earlier process with the same weights, or converted now
    and saved there: conversion traces the whole network (about 30 s for SD 1.5), reading the IR does not. A
    model that could not be saved is kept as converted."""
    path = folder / f"{name}.xml" if folder is not None else None
    if path is not None and path.is_file():
        try:
            openvino.Core().read_model(path)  # mapped: reading it checks it, touching no weight
            return ModelSource(xml=path)
        except RuntimeError as error:  # a damaged or foreign file: convert again, and replace it
            log.warning("OpenVINO could not read %s (%s); converting again", path, error)
    model = convert()
    if folder is not None and _save(model, folder, name):
        return ModelSource(xml=path)
    return ModelSource(model=model)


def _save(model: openvino.Model, folder: Path, name: str) -> bool:
    """``name``.xml/.bin in ``folder``, whole or not at all: written aside, the weights moved in before the graph
    (whose presence says the pair is complete)."""
    folder.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=folder))
    try:
        openvino.save_model(model, staging / f"{name}.xml", compress_to_fp16=False)
        for suffix in (".bin", ".xml"):
            os.replace(staging / f"{name}{suffix}", folder / f"{name}{suffix}")
        return True
    except (OSError, RuntimeError) as error:  # a full or read-only disk costs the next start a conversion
        log.warning("could not save the converted %s to %s: %s", name, folder, error)
        return False
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _convert(module: torch.nn.Module, example: tuple[torch.Tensor, ...]) -> openvino.Model:
    started = time.perf_counter()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)  # shape checks frozen by tracing, as meant
        warnings.filterwarnings("ignore", "`torch.jit.trace", DeprecationWarning)  # OpenVINO's tracer of torch
        model = openvino.convert_model(module, example_input=example)
    _forget_traces()
    log.info("OpenVINO converted the %s in %.1f s", type(module).__name__.strip("_"), time.perf_counter() - started)
    return model


def _forget_traces() -> None:
    """The types TorchScript registered while OpenVINO traced a module forgotten (about 0.1 GiB for SD 1.5's
    UNet): nothing here scripts or traces again but a later conversion, which registers its own. torch has no
    public call for it; these are the ones its own tests use between tests. What they held goes back to the
    kernel with the release of the parts the conversion read (``OpenVinoRuntime.prepare``; mapped weights)."""
    torch._C._jit_clear_class_registry()
    torch.jit._recursive.concrete_type_store = torch.jit._recursive.ConcreteTypeStore()
    torch.jit._state._clear_class_state()


def _unet_example(unet: torch.nn.Module, pipeline: StableDiffusionPipeline) -> tuple[torch.Tensor, ...]:
    # Odd, so the trace takes the UNet's branch that upsamples to the skip connections' sizes: latents of
    # aspects not divisible by its downsampling (Tall: 86 rows) then fit too. Shapes are set per call.
    size = 9
    context = pipeline.text_encoder.config.hidden_size
    length = pipeline.tokenizer.model_max_length
    return (torch.randn(2, unet.config.in_channels, size, size), torch.tensor(500.0),
            torch.randn(2, length, context))


def _decoder_example(vae: torch.nn.Module) -> tuple[torch.Tensor, ...]:
    return (torch.randn(1, vae.config.latent_channels, 8, 8),)


def _unet_forward(compiled: CompiledByShape, fallback: Callable[..., Any], dtype: torch.dtype) -> Callable[..., Any]:
    def forward(sample: torch.Tensor, timestep: Any, encoder_hidden_states: torch.Tensor, *, return_dict: bool = True,
                **extra: Any) -> Any:
        if any(value is not None for value in extra.values()):  # conditioning the converted graph has no input for
            return fallback(sample, timestep, encoder_hidden_states, return_dict=return_dict, **extra)
        timestep = torch.as_tensor(timestep, dtype=torch.float32).reshape(())
        out = compiled(sample, timestep, encoder_hidden_states).to(dtype)
        return UNet2DConditionOutput(sample=out) if return_dict else (out,)

    return forward


def _decoder_forward(compiled: CompiledByShape, fallback: Callable[..., Any]) -> Callable[..., Any]:
    def forward(sample: torch.Tensor, latent_embeds: torch.Tensor | None = None) -> torch.Tensor:
        if latent_embeds is not None:
            return fallback(sample, latent_embeds)
        return compiled(sample).to(sample.dtype)

    return forward
