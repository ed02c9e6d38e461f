"""Peak memory of a CPU render of full-size SD 1.5 (random weights), each case in a fresh process.

A case loads the model as the service does (``Engine.load`` from a diffusers folder on disk, with an empty
cache folder, so the first image includes OpenVINO's conversion), renders a 512x512 token twice (the first
image, then the steady state), then the largest size (Portrait 768x1024) and a hires 2x of the 512x512 image
(img2img at 1024x1024). Each figure is the kernel's peak resident set (VmHWM) over that render, reset before
it (``/proc/self/clear_refs``), so it includes whatever the render needed beyond what stayed loaded.

    python bench/bench_memory.py [--steps N] [--cases openvino-f32,openvino-bf16,torch] [--json]
                                 [--sizes 512x512,768x1024,hires]

``--json`` prints one object per line: {"case", "size", "firstImageRssGiB", "steadyRssGiB"}, or
{"case", "skipped"} where this CPU cannot run the case (bf16 without native bf16).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from aleaart.memory import GIB, reset_peak, status_bytes  # noqa: E402 (pure: no torch)

CASES = {  # name: the service's settings for it
    "openvino-f32": {"backend": "openvino", "openvino_precision": "f32"},
    "openvino-bf16": {"backend": "openvino", "openvino_precision": "bf16"},
    "torch": {"backend": "torch"},
}
SIZES = ("512x512", "768x1024", "hires")
MODEL = Path(os.environ.get("ALEAART_BENCH_CACHE", Path.home() / ".cache" / "aleaart-bench")) / "sd15-random"


def peak_of(render, *, reset: bool = True) -> tuple[float, float]:

    """The peak RSS over ``render()`` (and over what came before it since the last reset, if not ``reset``), and
    its seconds."""
    if reset:
        reset_peak()
    started = time.perf_counter()
    render()
    return status_bytes("VmHWM") / GIB, time.perf_counter() - started


def saved_model() -> Path:
    """SD 1.5's architecture with random weights, saved once as a diffusers folder (safetensors)."""
    if not (MODEL / "model_index.json").is_file():
        from bench_sd15_random import sd15_random

        MODEL.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix="sd15-", dir=MODEL.parent))
        sd15_random().save_pretrained(staging)
        staging.rename(MODEL)
    return MODEL


def run_case(case: str, steps: int, sizes: list[str]) -> Iterator[dict]:
    """In this process: the figures of one case, a size at a time."""
    import torch

    from aleaart.config import Settings
    from aleaart.engine.openvino import has_native_bf16
    from aleaart.engine.pipeline import Engine
    from aleaart.params import RenderParams, spec_from_params
    from aleaart.resample import lanczos

    if case == "openvino-bf16" and not has_native_bf16():
        yield {"case": case, "skipped": "this CPU has no native bf16 (AVX512_BF16 or AMX)"}
        return
    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory(prefix="aleaart-bench-memory-") as cache:
        settings = Settings(model=str(saved_model()), cache_dir=Path(cache), threads=2, preview_every=0,
                            **CASES[case])
        reset_peak()
        started = time.perf_counter()
        engine = Engine.load(settings)
        loaded_gib = status_bytes("VmRSS") / GIB
        load_seconds = time.perf_counter() - started

        def spec_of(aspect: int):
            return replace(spec_from_params(RenderParams(0, 0, 0, aspect, 18, 75, 12345, 0)), steps=steps)

        square = spec_of(0)
        first, first_s = peak_of(lambda: engine.generate(square), reset=False)  # loading and converting too
        image = [None]
        steady, steady_s = peak_of(lambda: image.__setitem__(0, engine.generate(square).image))
        yield {"case": case, "size": "512x512", "firstImageRssGiB": round(first, 2),
               "steadyRssGiB": round(steady, 2), "loadedRssGiB": round(loaded_gib, 2),
               "loadSeconds": round(load_seconds, 1), "firstSeconds": round(first_s, 1),
               "steadySeconds": round(steady_s, 1), "rssAnonGiB": round(status_bytes("RssAnon") / GIB, 2),
               "rssFileGiB": round(status_bytes("RssFile") / GIB, 2)}
        if "768x1024" in sizes:
            portrait = spec_of(2)
            first, _ = peak_of(lambda: engine.generate(portrait))
            steady, seconds = peak_of(lambda: engine.generate(portrait))
            yield {"case": case, "size": "768x1024", "firstImageRssGiB": round(first, 2),
                   "steadyRssGiB": round(steady, 2), "steadySeconds": round(seconds, 1)}
        if "hires" in sizes:
            hires = replace(square, width=1024, height=1024)
            source = lanczos(image[0], 2)
            first, _ = peak_of(lambda: engine.transform(hires, source, 0.5))
            steady, seconds = peak_of(lambda: engine.transform(hires, source, 0.5))
            yield {"case": case, "size": "hires 1024x1024", "firstImageRssGiB": round(first, 2),
                   "steadyRssGiB": round(steady, 2), "steadySeconds": round(seconds, 1)}


def in_fresh_process(case: str, steps: int, sizes: list[str]) -> list[dict]:
    command = [sys.executable, __file__, "--one", case, "--steps", str(steps), "--sizes", ",".join(sizes)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        return [{"case": case, "skipped": f"failed (exit {done.returncode}): {done.stderr.strip()[-400:]}"}]
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument("--sizes", default=",".join(SIZES))
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # the child process: one case, JSON out
    args = parser.parse_args()
    sizes = args.sizes.split(",")
    if args.one:
        for row in run_case(args.one, args.steps, sizes):
            print(json.dumps(row), flush=True)
        return
    saved_model()  # built once, outside any case's figures
    if not args.json:
        print(f"full-size SD 1.5, random weights, {args.steps} steps, 2 threads, a fresh process per case")
        print("| case | size | first image | steady | |\n|---|---|---|---|---|")
    for case in args.cases.split(","):
        for row in in_fresh_process(case, args.steps, sizes):
            if args.json:
                print(json.dumps(row), flush=True)
            elif "skipped" in row:
                print(f"| {case} | | skipped: {row['skipped']} | | |", flush=True)
            else:
                extra = {k: v for k, v in row.items() if k not in ("case", "size", "firstImageRssGiB", "steadyRssGiB")}
                print(f"| {case} | {row['size']} | {row['firstImageRssGiB']:.2f} GiB | {row['steadyRssGiB']:.2f} GiB "
                      f"| {extra} |", flush=True)


if __name__ == "__main__":
    main()
