"""Seconds per image as the service renders it: one case in this process, the model loaded as Engine.load does
(full-size SD 1.5 with random weights, saved once by bench_memory), one warm-up render, then ``--repeats`` timed
renders of a 512x512 token. Run it on two checkouts in turn (``PYTHONPATH=<other>/src``) with the same
``--cache`` to compare versions on the same model and converted IR:

    python bench/bench_render_time.py [--case openvino-bf16] [--steps 20] [--repeats 2] [--cache DIR]

Prints one JSON object: {"code", "case", "steps", "seconds": [...]}.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402
from bench_memory import CASES, saved_model  # noqa: E402

import aleaart  # noqa: E402
from aleaart.config import Settings  # noqa: E402
from aleaart.engine.pipeline import Engine  # noqa: E402
from aleaart.params import RenderParams, spec_from_params  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--case", default="openvino-bf16", choices=sorted(CASES))
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--cache", type=Path, default=None, help="a cache folder (default: a new one)")
    args = parser.parse_args()
    torch.set_num_threads(2)
    with contextlib.ExitStack() as stack:  # a cache of its own (the IR is gigabytes) goes when it ends
        cache = args.cache or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="aleaart-bench-time-")))
        seconds = timed_renders(args.case, args.steps, args.repeats, cache)
    print(json.dumps({"code": aleaart.__file__, "case": args.case, "steps": args.steps, "seconds": seconds}))


def timed_renders(case: str, steps: int, repeats: int, cache: Path) -> list[float]:
    engine = Engine.load(Settings(model=str(saved_model()), cache_dir=cache, threads=2, preview_every=0,
                                  **CASES[case]))
    spec = replace(spec_from_params(RenderParams(0, 0, 0, 0, 18, 75, 12345, 0)), steps=steps)
    engine.generate(replace(spec, steps=1))  # compiled and warm
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        engine.generate(spec)
        seconds.append(round(time.perf_counter() - started, 1))
    return seconds


if __name__ == "__main__":
    main()
