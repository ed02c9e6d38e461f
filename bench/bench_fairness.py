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
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from integration.cluster import RedisServer, Worker  # noqa: E402
from integration.server import Server, server_env  # noqa: E402

ADMIN = {"X-API-Key": "bench-admin"}


def base_env(threads: int) -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("ALEAART_MODEL", "tiny")
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("ALEAART_DEVICE", "cpu")
    env["ALEAART_THREADS"] = str(threads)
    return env


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
        with Server(server_env(base_env(cores), work / "inproc", **extra), work / "inproc") as api:
            rows.append(("in-process", 1, measure(api.url, args.renders, args.weight, body, 0)))
        redis_server = RedisServer(work / "redis").start()
        env = server_env(base_env(max(1, cores // args.workers)), work / "api", broker_url=redis_server.url, **extra)
        workers = [Worker(env, work / f"w{i}", f"bench{i}") for i in range(args.workers)]
        api = Server(env, work / "api")
        try:
            api.start()
            for worker in workers:
                worker.start(api.url)
            rows.append(("celery", args.workers, measure(api.url, args.renders, args.weight, body, 100_000)))
        finally:
            for worker in workers:
                worker.stop()
            api.stop()
            redis_server.stop()

    print(f"{'backend':<11} {'engines':>7} {'FIFO wait':>10} {'fair wait':>10} {'seconds':>8}   (renders waited for)")
    for name, engines, row in rows:
        print(f"{name:<11} {engines:>7} {row['fifo']:>10} {row['waited']:>10} {row['seconds']:>8.2f}")


if __name__ == "__main__":
    main()
