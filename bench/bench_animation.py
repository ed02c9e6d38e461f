"""Animation frames on full-size SD 1.5 (random weights): seconds and peak memory per frame when frames go
through the UNet one at a time and in the batches the engine picks (``frames_per_batch``), and the time to
encode the MP4 and WebP.

Each case runs in a process of its own, so each peak is its own. Per-frame cost is per step, so the default
runs 2 steps a frame; ``--steps 20`` gives whole frames.

    python bench/bench_animation.py [--frames 4] [--steps 2] [--threads 2] [--device cpu]
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


def one_case(batched: bool, frames: int, steps: int, device: str) -> dict:
    import torch
    from bench_sd15_random import sd15_engine

    from aleaart.engine import pipeline as engine_module
    from aleaart.engine.pipeline import frames_per_batch
    from aleaart.motion import noise_walk
    from aleaart.params import RenderParams, spec_from_params
    from aleaart.video import encode_mp4, encode_webp

    engine = sd15_engine(device)
    spec = replace(spec_from_params(RenderParams(0, 0, 0, 0, 18, 75, 12345, 0)), steps=steps)
    batch = frames_per_batch(engine.device, engine.dtype, spec.width, spec.height) if batched else 1
    if not batched:
        engine_module.frames_per_batch = lambda *args: 1
    loaded_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    started = time.perf_counter()
    rendered = engine.animate(spec, noise_walk(spec.seed, frames, 1))
    seconds = time.perf_counter() - started
    images = [r.image for r in rendered]
    started = time.perf_counter()
    mp4, webp = encode_mp4(images, 12), encode_webp(images, 12)
    encoding = time.perf_counter() - started
    result = {"case": f"batch {batch}", "frames": frames, "steps": steps,
              "seconds_per_frame": round(seconds / frames, 2), "encode_seconds": round(encoding, 2),
              "mp4_kb": len(mp4) // 1024, "webp_kb": len(webp) // 1024, "weights_rss_gib": round(loaded_rss, 2),
              "peak_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)}
    if device == "cuda":
        result["peak_cuda_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--frames", type=int, default=4)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default=None)
    parser.add_argument("--case", choices=["single", "batched"], help=argparse.SUPPRESS)  # a child: one case
    args = parser.parse_args()
    import torch

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    torch.set_num_threads(args.threads)
    if args.case:
        print(json.dumps(one_case(args.case == "batched", args.frames, args.steps, device)))
        return
    print(f"SD 1.5 random weights on {device}, {args.threads} threads, {args.frames} frames of 512x512, "
          f"{args.steps} steps each")
    for case in ("single", "batched"):
        child = subprocess.run([sys.executable, __file__, "--case", case, "--frames", str(args.frames), "--steps",
                                str(args.steps), "--threads", str(args.threads), "--device", device],
                               capture_output=True, text=True, check=True)
        print(child.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    main()
