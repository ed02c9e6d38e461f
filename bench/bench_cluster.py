"""Many GPUs, measured: images/min of the in-process service vs 1 and 2 `aleaart worker`s, and the broker's
per-job overhead, on the tiny model (real processes: redis-server, the API, Celery workers; 127.0.0.1 only).

    python bench/bench_cluster.py [--jobs 24] [--steps 20] [--size 256] [--overhead 30]

Throughput: --jobs distinct renders sent at once; images/min from the first send to the last answer.
Overhead: --overhead renders sent one at a time to an idle service; per job, the client's latency minus
the render seconds the engine reported, so what is left is queueing, Redis, Celery and storing.
On a machine with fewer cores than workers the workers share them: read the 2-worker figure as the
broker's cost and scaling shape, not as what two GPUs give.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from local_cluster import cluster, in_process


def throughput(url: str, jobs: int, body: dict, first_seed: int) -> float:
    bodies = [{**body, "seed": first_seed + i} for i in range(jobs)]
    started = time.perf_counter()
    with ThreadPoolExecutor(jobs) as pool:
        answers = list(pool.map(lambda b: httpx.post(url + "/generate-image", json=b, timeout=3600), bodies))
    seconds = time.perf_counter() - started
    bad = [a.status_code for a in answers if a.status_code != 200]
    if bad:
        raise RuntimeError(f"failed answers: {bad}")
    return jobs / seconds * 60


def overhead_ms(url: str, count: int, body: dict, first_seed: int) -> list[float]:
    extra = []
    for i in range(count):
        started = time.perf_counter()
        answer = httpx.post(url + "/generate-image", json={**body, "seed": first_seed + i}, timeout=600)
        latency = time.perf_counter() - started
        answer.raise_for_status()
        extra.append((latency - answer.json()["seconds"]) * 1000)
    return extra


def percentiles(values: list[float]) -> str:
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return f"p50 {statistics.median(ordered):7.1f} ms  p99 {p99:7.1f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=24)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--overhead", type=int, default=30)
    args = parser.parse_args()
    body = {"prompt": "bench cluster", "steps": args.steps, "width": args.size, "height": args.size}
    cores = os.cpu_count() or 1
    print(f"tiny model, {args.jobs} jobs of {args.steps} steps at {args.size}², {cores} cores")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        backends = [("in-process", in_process(work / "inproc", cores))]
        backends += [(f"{n} worker{'s' * (n > 1)}", cluster(work / f"cluster{n}", n, max(1, cores // n)))
                     for n in (1, 2)]
        for name, started in backends:  # one at a time: each starts when entered
            with started as url:
                rows.append((name, throughput(url, args.jobs, body, 0), overhead_ms(url, args.overhead, body, 10_000)))

    print(f"{'backend':<12} {'images/min':>10}   per-job overhead (latency - render seconds)")
    for name, per_minute, extra in rows:
        print(f"{name:<12} {per_minute:10.1f}   {percentiles(extra)}")


if __name__ == "__main__":
    main()
