"""Prints how long the engine takes per sampler and aspect (tiny model unless ALEAART_MODEL is set).

    python bench/bench_engine.py [--steps 20] [--threads 2]
"""

from __future__ import annotations

import argparse
import os
import resource
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from aleaart.config import Settings  # noqa: E402
from aleaart.engine.pipeline import Engine  # noqa: E402
from aleaart.params import ASPECTS, SAMPLERS, RenderParams, spec_from_params  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    settings = Settings(model=os.environ.get("ALEAART_MODEL", "tiny"), threads=args.threads)

    started = time.perf_counter()
    engine = Engine.load(settings)
    print(f"model {engine.model_name} on {engine.device} ({engine.dtype}): load {time.perf_counter() - started:.2f} s")
    print(f"{'sampler':<18}{'aspect':<22}{'seconds':>8}{'s/step':>8}")
    for aspect_index, aspect in enumerate(ASPECTS):
        for sampler_index, sampler in enumerate(SAMPLERS):
            spec = spec_from_params(RenderParams(0, 0, sampler_index, aspect_index, args.steps, 75, 1, 0))
            seconds = engine.generate(spec).seconds
            print(f"{sampler:<18}{aspect.label:<22}{seconds:8.2f}{seconds / args.steps:8.3f}")
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS {peak_mib:.0f} MiB")


if __name__ == "__main__":
    main()
