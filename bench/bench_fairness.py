"""Fair shares, measured: one key submits 200 renders, then another key submits one; how many renders the second
key's waits for (its wait in renders), against the first-come-first-served wait it would have had, on the
in-process service and on GPU workers through Celery (real processes: `aleaart serve`, redis-server, `aleaart
worker`s, tiny model, 127.0.0.1 only).

    python bench/bench_fairness.py [--renders 200] [--weight 1] [--workers 2] [--steps 4] [--size 256]

A render "waited for" is one of the first key's that ended after the second key's was submitted and before it
ended (the one running at that moment included). With W engines the bound is about one render per engine waiting
at the broker plus those running; FIFO would wait for every render of the first key not yet done. ``--weight``
gives the first key that weight (its renders for one of the second key's).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import httpx
from local_cluster import cluster, in_process

ADMIN = {"X-API-Key": "bench-admin"}


def new_key(url: str, name: str, weight: int) -> dict[str, str]:
    made = httpx.post(url + "/keys", json={"name": name, "scopes": ["read", "generate"], "weight": weight},
                      headers=ADMIN, timeout=30)
    made.raise_for_status()
    return {"X-API-Key": made.json()["secret"]}


def submit(url: str, key: dict[str, str], body: dict) -> str:
    answer = httpx.post(url + "/jobs", json=body, headers=key, timeout=60)
    answer.raise_for_status()
    return answer.json()["jobId"]


def job(url: str, key: dict[str, str], job_id: str) -> dict:
    return httpx.get(f"{url}/jobs/{job_id}", headers=key, timeout=30).json()


def ended_at(status: dict) -> float | None:
    return status["result"]["createdAt"] if status["status"] == "succeeded" else None


def measure(url: str, renders: int, weight: int, body: dict, seed: int) -> dict[str, float]:
    heavy, single = new_key(url, f"heavy{seed}", weight), new_key(url, f"single{seed}", 1)
    theirs = [submit(url, heavy, {**body, "seed": seed + i}) for i in range(renders)]
    submitted = time.time()
    mine = submit(url, single, {**body, "seed": seed + renders})
    while (status := job(url, single, mine))["status"] not in ("succeeded", "failed", "cancelled"):
        time.sleep(0.05)
    waited_seconds = time.time() - submitted
    done = ended_at(status)
    if done is None:
        raise RuntimeError(f"the single render did not succeed: {status}")
    ends = [ended_at(job(url, heavy, j)) for j in theirs]
    not_done = sum(1 for end in ends if end is None or end >= submitted)
    waited = sum(1 for end in ends if end is not None and submitted <= end < done)
    for job_id, end in zip(theirs, ends, strict=True):
        if end is None:
            httpx.delete(f"{url}/jobs/{job_id}", headers=heavy, timeout=30)
    return {"fifo": not_done, "waited": waited, "seconds": waited_seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--renders", type=int, default=200)
    parser.add_argument("--weight", type=int, default=1)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--size", type=int, default=256)
    args = parser.parse_args()
    body = {"prompt": "bench fairness", "steps": args.steps, "width": args.size, "height": args.size}
    cores = os.cpu_count() or 1
    extra = {"admin_key": "bench-admin", "max_queue": str(args.renders + 50)}
    print(f"tiny model, {args.renders} renders of one key (weight {args.weight}) then 1 of another; "
          f"{args.steps} steps at {args.size}², {cores} cores")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        with in_process(work / "inproc", cores, **extra) as url:
            rows.append(("in-process", 1, measure(url, args.renders, args.weight, body, 0)))
        with cluster(work / "cluster", args.workers, max(1, cores // args.workers), **extra) as url:
            rows.append(("celery", args.workers, measure(url, args.renders, args.weight, body, 100_000)))

    print(f"{'backend':<11} {'engines':>7} {'FIFO wait':>10} {'fair wait':>10} {'seconds':>8}   (renders waited for)")
    for name, engines, row in rows:
        print(f"{name:<11} {engines:>7} {row['fifo']:>10} {row['waited']:>10} {row['seconds']:>8.2f}")


if __name__ == "__main__":
    main()
