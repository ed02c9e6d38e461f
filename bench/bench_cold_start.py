"""Cold start: seconds from starting a fresh process to the first denoising step of its first image (full-size SD 1.5,
random weights, 512x512, 2 threads), with what a restart finds on disk already there (the OpenVINO IR, the weights'
digest and the memory profile: a first run, not counted, leaves them) and the model's files in the page cache, as
after a restart on the same machine.

    python bench/bench_cold_start.py [--cases openvino-bf16,openvino-f32,torch] [--repeat 3] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_memory import CASES, saved_model  # noqa: E402

CACHE = Path(os.environ.get("ALEAART_BENCH_CACHE", Path.home() / ".cache" / "aleaart-bench"))


class FirstStep(Exception):
    pass


def first_step(case: str, launched: float) -> dict:
    """In the fresh process: load as the service does, and stop the first image at its first step."""
    import torch

    from aleaart.config import Settings
    from aleaart.engine.openvino import has_native_bf16
    from aleaart.engine.pipeline import Engine
    from aleaart.params import RenderParams, spec_from_params

    if case == "openvino-bf16" and not has_native_bf16():
        return {"case": case, "skipped": "this CPU has no native bf16 (AVX512_BF16 or AMX)"}
    imported = time.time() - launched
    torch.set_num_threads(2)
    settings = Settings(model=str(saved_model()), cache_dir=CACHE / f"cold-{case}", threads=2, preview_every=0,
                        **CASES[case])
    engine = Engine.load(settings)
    loaded = time.time() - launched

    def stop(done: int, total: int) -> None:
        raise FirstStep

    try:
        engine.generate(spec_from_params(RenderParams(0, 0, 0, 0, 20, 75, 12345, 0)), on_step=stop)
    except FirstStep:
        pass
    return {"case": case, "secondsToFirstStep": round(time.time() - launched, 1),
            "importSeconds": round(imported, 1), "loadSeconds": round(loaded - imported, 1)}


def in_fresh_process(case: str) -> dict:
    launched = time.time()
    done = subprocess.run([sys.executable, __file__, "--one", case, "--launched", repr(launched)],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        return {"case": case, "skipped": f"failed (exit {done.returncode}): {done.stderr.strip()[-400:]}"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--launched", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(first_step(args.one, args.launched)), flush=True)
        return
    saved_model()
    for case in args.cases.split(","):
        if "skipped" in (warm := in_fresh_process(case)):  # leaves the IR, digest and profile on disk
            print(json.dumps(warm) if args.json else f"{case}: skipped: {warm['skipped']}", flush=True)
            continue
        runs = [in_fresh_process(case) for _ in range(args.repeat)]
        seconds = [run["secondsToFirstStep"] for run in runs]
        row = {"case": case, "secondsToFirstStep": round(statistics.median(seconds), 1), "runs": seconds,
               "importSeconds": runs[0]["importSeconds"], "loadSeconds": runs[0]["loadSeconds"]}
        print(json.dumps(row) if args.json else
              f"{case}: {row['secondsToFirstStep']} s to the first step (runs {seconds}; imports "
              f"{row['importSeconds']} s, Engine.load {row['loadSeconds']} s)", flush=True)


if __name__ == "__main__":
    main()
