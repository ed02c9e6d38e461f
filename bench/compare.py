"""Side by side, in one process and one run, on full-size SD 1.5 (random weights, the real FLOPs):

    (a) the seed backend's way: attention slicing on, a scheduler built per request, fp32
    (b) the service's engine on PyTorch (aleaart's Engine: SDPA, prompt-embedding cache), and with its weights
        held once as Engine.load has them (mapped from the saved model's files, each part released after use)
    (c) candidates: the engine with channels_last UNet and VAE; with torch.compile on the UNet and VAE decoder;
        with its UNet and VAE decoder on OpenVINO at f32 (ALEAART_BACKEND=openvino, the CPU default), and at bf16
        (ALEAART_OPENVINO_PRECISION=bf16, on CPUs with native bf16; its image's PSNR against f32's is printed)

and the machine's own fp32 GEMM peak, measured in the same run, as the floor: each part's FLOPs
(counted by torch's FlopCounterMode) over that peak. Per path it prints the UNet step with guidance,
the VAE decode, the text encoding, a whole N-step 512x512 image, and the ratios to (a) and to the
floor. Peak RSS is the process's: the paths share PyTorch's weights, OpenVINO keeps its own copy.

    python bench/compare.py [--steps 20] [--threads 2] [--repeats 3]
                            [--candidates held-once,channels_last,compile,openvino,openvino-bf16]
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from bench_memory import saved_model  # noqa: E402
from bench_sd15_random import sd15_random  # noqa: E402
from diffusers import StableDiffusionPipeline  # noqa: E402
from runtimes import bench_runtime  # noqa: E402
from skimage.metrics import peak_signal_noise_ratio  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from aleaart.engine.openvino import has_native_bf16  # noqa: E402
from aleaart.engine.pipeline import Engine  # noqa: E402
from aleaart.engine.residency import map_weights  # noqa: E402
from aleaart.engine.samplers import make_scheduler  # noqa: E402
from aleaart.params import RenderParams, spec_from_params  # noqa: E402

SPEC = spec_from_params(RenderParams(0, 0, 0, 0, 20, 75, 12345, 0))  # 512x512, DPM++ 2M Karras


@dataclass
class Figures:
    unet_step: float
    vae_decode: float
    text: float
    image: float


def gemm_peak_flops(size: int = 2048, seconds: float = 3.0) -> float:
    """The best fp32 matrix-multiply rate this machine sustains (FLOP/s), from a few seconds of 2048² GEMMs."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    torch.mm(a, b)
    best, deadline = 0.0, time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        started = time.perf_counter()
        for _ in range(4):
            torch.mm(a, b)
        best = max(best, 4 * 2 * size**3 / (time.perf_counter() - started))
    return best


def best_of(repeats: int, run: Callable[[], object]) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return min(times)


def parts(pipeline: StableDiffusionPipeline) -> dict[str, Callable[[], object]]:
    """One UNet step with guidance (batch 2), one VAE decode and one text encoding, as the pipeline runs them."""
    latents = torch.randn(2, 4, 64, 64)
    text = torch.randn(2, 77, 768)
    timestep = torch.tensor(500)
    decode_input = torch.randn(1, 4, 64, 64).to(memory_format=_format(pipeline.unet))
    tokens = pipeline.tokenizer([SPEC.prompt], padding="max_length", max_length=77, return_tensors="pt").input_ids
    return {
        "unet_step": lambda: pipeline.unet(latents.to(memory_format=_format(pipeline.unet)), timestep,
                                           encoder_hidden_states=text).sample,
        "vae_decode": lambda: pipeline.vae.decode(decode_input / pipeline.vae.config.scaling_factor).sample,
        "text": lambda: pipeline.text_encoder(tokens)[0],
    }


def _format(module: torch.nn.Module) -> torch.memory_format:
    weight = next(p for p in module.parameters() if p.dim() == 4)
    return torch.channels_last if weight.is_contiguous(memory_format=torch.channels_last) \
        and not weight.is_contiguous() else torch.contiguous_format


def flops_of(run: Callable[[], object]) -> float:
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        run()
    return counter.get_total_flops()


def measure(name: str, pipeline: StableDiffusionPipeline, image: Callable[[], object], repeats: int) -> Figures:
    with torch.no_grad():
        timed = {part: best_of(repeats, run) for part, run in parts(pipeline).items()}
        started = time.perf_counter()
        image()
        whole = time.perf_counter() - started
    figures = Figures(unet_step=timed["unet_step"], vae_decode=timed["vae_decode"], text=timed["text"], image=whole)
    print(f"  measured {name}: {figures}", flush=True)
    return figures


def seed_way(pipeline: StableDiffusionPipeline, steps: int) -> Callable[[], object]:
    def run() -> object:
        pipeline.enable_attention_slicing()
        pipeline.scheduler = make_scheduler(SPEC.sampler, dict(pipeline.scheduler.config), seed=SPEC.seed)
        return pipeline(prompt=SPEC.prompt, width=512, height=512, num_inference_steps=steps,
                        guidance_scale=SPEC.guidance_scale, generator=torch.Generator().manual_seed(SPEC.seed))

    return run


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--candidates", default="held-once,channels_last,compile,openvino,openvino-bf16")
    args = parser.parse_args()
    candidates = set(args.candidates.split(","))
    torch.set_num_threads(args.threads)
    pipeline = sd15_random()
    pipeline.set_progress_bar_config(disable=True)
    peak = gemm_peak_flops()
    print(f"SD 1.5 random weights, CPU fp32, {args.threads} threads; GEMM peak {peak / 1e9:.0f} GFLOP/s", flush=True)
    floor_parts = {part: flops_of(run) / peak for part, run in parts(pipeline).items()}
    floor = Figures(unet_step=floor_parts["unet_step"], vae_decode=floor_parts["vae_decode"],
                    text=floor_parts["text"], image=floor_parts["text"] + args.steps * floor_parts["unet_step"]
                    + floor_parts["vae_decode"])
    spec = replace(SPEC, steps=args.steps)
    results: dict[str, Figures] = {}

    seed_pipeline = StableDiffusionPipeline(**pipeline.components)
    seed_pipeline.set_progress_bar_config(disable=True)
    seed_pipeline.enable_attention_slicing()
    results["(a) seed way"] = measure("(a)", seed_pipeline, seed_way(seed_pipeline, args.steps), args.repeats)
    seed_pipeline.disable_attention_slicing()

    engine = Engine(pipeline, model_name="sd15-random", model_identity="sd15-random")
    results["(b) engine"] = measure("(b)", pipeline, lambda: engine.generate(spec), args.repeats)

    if "held-once" in candidates:  # as Engine.load has it: the parts mapped from files, released after use
        with tempfile.TemporaryDirectory() as copies:
            engine.core.current.weights = map_weights(pipeline, saved_model(), Path(copies))
            results["(b) engine, weights held once"] = measure("(b)", pipeline, lambda: engine.generate(spec),
                                                               args.repeats)
            engine.core.current.weights = None

    if "channels_last" in candidates:
        pipeline.unet.to(memory_format=torch.channels_last)
        pipeline.vae.to(memory_format=torch.channels_last)
        results["(c) channels_last"] = measure("(c)", pipeline, lambda: engine.generate(spec), args.repeats)
        pipeline.unet.to(memory_format=torch.contiguous_format)
        pipeline.vae.to(memory_format=torch.contiguous_format)

    if "compile" in candidates:  # inductor's C++ kernels, compiled on the first call of each shape
        compiled = (pipeline.unet, pipeline.vae.decoder)
        for module in compiled:
            module.compile()
        started = time.perf_counter()
        engine.generate(spec)
        print(f"  torch.compile and first image {time.perf_counter() - started:.1f} s", flush=True)
        results["(c) torch.compile"] = measure("(c)", pipeline, lambda: engine.generate(spec), args.repeats)
        for module in compiled:
            module._compiled_call_impl = None  # eager again for the next path

    images = {}
    for precision in ("f32", "bf16"):  # last: they swap the UNet's and decoder's forwards for good
        if ("openvino" if precision == "f32" else "openvino-bf16") not in candidates:
            continue
        if precision == "bf16" and not has_native_bf16():
            print("  OpenVINO bf16: skipped, this CPU has no native bf16", flush=True)
            continue
        started = time.perf_counter()
        openvino = Engine(pipeline, model_name="sd15-random", model_identity="sd15-random",
                          runtime=bench_runtime("openvino", threads=args.threads, openvino_precision=precision))
        images[precision] = openvino.generate(spec).image  # compiles a 512² image's shapes, as a first render does
        print(f"  OpenVINO {precision}: conversion and first image {time.perf_counter() - started:.1f} s, peak RSS "
              f"now {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB", flush=True)
        results[f"(c) openvino {precision}"] = measure("(c)", pipeline, partial(openvino.generate, spec),
                                                       args.repeats)
    if len(images) == 2:
        same = peak_signal_noise_ratio(np.asarray(images["f32"]), np.asarray(images["bf16"]), data_range=255)
        print(f"  OpenVINO bf16's image against f32's: PSNR {same:.1f} dB", flush=True)

    results["floor (FLOPs / GEMM peak)"] = floor
    seed = results["(a) seed way"]
    print(f"\n{'path':28}{'UNet step':>11}{'VAE dec':>9}{'text':>8}{f'{args.steps}-step img':>13}"
          f"{'vs (a)':>8}{'vs floor':>9}")
    for name, f in results.items():
        print(f"{name:28}{f.unet_step:>10.2f}s{f.vae_decode:>8.2f}s{f.text:>7.3f}s{f.image:>12.1f}s"
              f"{seed.image / f.image:>7.2f}x{f.image / floor.image:>8.2f}x")
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(f"peak RSS {rss:.2f} GiB (the process's: PyTorch's weights, and OpenVINO's copy when it ran)")


if __name__ == "__main__":
    main()
