"""Hires upscale 2x, measured on full-size SD 1.5 (random weights): peak memory per aspect, and a plain
1024x1024 render for comparison (VAE tiling is what lets a 2048 result fit where a 1024 render does).

Each case runs in a process of its own, so each peak is its own. Peak memory is that of one denoising
step and the VAE passes, so the default runs img2img for one step (``--steps 3`` at strength 0.35);
pass ``--steps 20`` for the whole default schedule (7 steps) and its time.

    python bench/bench_upscale.py [--steps 3] [--aspects 0,1,2,3,4] [--threads 2] [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))


def one_case(case: str, aspect: int, steps: int, device: str) -> dict:
    import numpy as np
    import torch
    from bench_sd15_random import sd15_engine
    from PIL import Image

    from aleaart.jobs.upscale import DEFAULT_HIRES_STRENGTH
    from aleaart.params import ASPECTS, RenderParams, spec_from_params
    from aleaart.resample import lanczos

    engine = sd15_engine(device)
    spec = replace(spec_from_params(RenderParams(0, 0, 0, aspect, 18, 75, 12345, 0)), steps=steps)
    loaded_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    started = time.perf_counter()
    if case == "render-1024":
        engine.generate(replace(spec, width=1024, height=1024))
        size = (1024, 1024)
    else:
        noise = np.random.default_rng(0).integers(0, 256, (spec.height, spec.width, 3), dtype=np.uint8)
        source = lanczos(Image.fromarray(noise), 2)
        size = source.size
        engine.transform(replace(spec, width=size[0], height=size[1]), source, DEFAULT_HIRES_STRENGTH)
    result = {"case": case, "aspect": ASPECTS[aspect].name, "size": f"{size[0]}x{size[1]}",
              "tiled": max(size) > engine.tile_above, "seconds": round(time.perf_counter() - started, 1),
              "weights_rss_gib": round(loaded_rss, 2),
              "peak_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)}
    if device == "cuda":
        result["peak_cuda_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=3, help="the schedule img2img takes its last 35 %% of")
    parser.add_argument("--aspects", default="0,1,2,3,4")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default=None)
    parser.add_argument("--case", help=argparse.SUPPRESS)  # a child process: one case, printed as JSON
    parser.add_argument("--aspect", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    import torch

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    torch.set_num_threads(args.threads)
    if args.case:
        print(json.dumps(one_case(args.case, args.aspect, args.steps, device)))
        return
    cases = [("render-1024", 0)] + [("hires-2x", int(a)) for a in args.aspects.split(",")]
    print(f"SD 1.5 random weights on {device}, {args.threads} threads, img2img from a {args.steps}-step schedule")
    for case, aspect in cases:
        child = subprocess.run([sys.executable, __file__, "--case", case, "--aspect", str(aspect), "--steps",
                                str(args.steps), "--threads", str(args.threads), "--device", device],
                               capture_output=True, text=True, check=True)
        print(child.stdout.strip().splitlines()[-1], flush=True)


if __name__ == "__main__":
    main()
