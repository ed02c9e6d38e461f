"""Load and soak against a real `aleaart serve` on 127.0.0.1 (tiny model unless ALEAART_MODEL says).

    python bench/load.py [--seconds 45] [--clients 32] [--max-queue 4]
    python bench/load.py --soak 20      # 20 rounds of kill -9 while jobs are written, then a consistency check

Load prints the answers by status, p50/p99 latency of store hits, and the server's RSS growth.
Traffic goes to 127.0.0.1 only, bounded in count and time.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
from PIL import Image

BODY = {"prompt": "load", "steps": 4, "width": 256, "height": 256}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Service:
    def __init__(self, workdir: Path, env: dict[str, str]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.workdir, self.env = workdir, env

    def __enter__(self) -> Service:
        log = open(self.workdir / "server.log", "ab")  # noqa: SIM115  (kept open for the process's life)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "aleaart.cli", "serve", "--host", "127.0.0.1", "--port", str(self.port)],
            env=self.env, cwd=self.workdir, stdout=log, stderr=log, start_new_session=True)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if not httpx.get(self.url + "/health", timeout=2).json()["model_loading"]:
                    return self
            except httpx.TransportError:
                time.sleep(0.2)
        raise TimeoutError("the service did not start")

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def kill(self) -> None:
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)

    def __exit__(self, *exc: object) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.kill()


def environment(workdir: Path, max_queue: int) -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("ALEAART_MODEL", "tiny")
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.update(ALEAART_IMAGES_DIR=str(workdir / "images"), ALEAART_MAX_QUEUE=str(max_queue),
               ALEAART_CACHE_DIR=env.get("ALEAART_CACHE_DIR", str(Path.home() / ".cache" / "aleaart")))
    return env


def load(seconds: float, clients: int, max_queue: int) -> None:
    with tempfile.TemporaryDirectory() as tmp, Service(Path(tmp), environment(Path(tmp), max_queue)) as service:
        stored = [{**BODY, "seed": s} for s in range(5)]
        for body in stored:
            httpx.post(service.url + "/generate-image", json=body, timeout=120).raise_for_status()
        rss_before = service.rss_mb()
        statuses: Counter[tuple[str, int]] = Counter()
        hit_ms: list[float] = []
        lock = threading.Lock()
        stop_at = time.monotonic() + seconds

        def client(index: int) -> None:
            rng = random.Random(index)
            with httpx.Client(base_url=service.url, timeout=120) as http:
                while time.monotonic() < stop_at:
                    kind = rng.choice(["new", "identical", "hit"])
                    if kind == "new":
                        body = {**BODY, "seed": rng.randrange(10**9)}
                    elif kind == "identical":  # everyone asks for the same few new images at once
                        body = {**BODY, "seed": 10_000 + int(time.monotonic() // 5)}
                    else:
                        body = rng.choice(stored)
                    started = time.perf_counter()
                    status = http.post("/generate-image", json=body).status_code
                    elapsed = (time.perf_counter() - started) * 1000
                    with lock:
                        statuses[kind, status] += 1
                        if kind == "hit" and status == 200:
                            hit_ms.append(elapsed)
                    if status == 429:
                        time.sleep(0.2)

        threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        rss_after = service.rss_mb()
    print(f"{clients} clients, {seconds:g} s, ALEAART_MAX_QUEUE={max_queue}")
    for (kind, status), count in sorted(statuses.items()):
        print(f"  {kind:>9} {status}: {count}")
    hit_ms.sort()
    if hit_ms:
        p99 = hit_ms[min(len(hit_ms) - 1, int(len(hit_ms) * 0.99))]
        print(f"  store hits: p50 {statistics.median(hit_ms):.1f} ms, p99 {p99:.1f} ms over {len(hit_ms)}")
    print(f"  RSS: {rss_before:.0f} MB before, {rss_after:.0f} MB after ({rss_after - rss_before:+.0f} MB)")


def soak(rounds: int) -> None:
    rng = random.Random(20261125)
    with tempfile.TemporaryDirectory() as tmp:
        env, accepted = environment(Path(tmp), 64), []
        for round_ in range(rounds):
            with Service(Path(tmp), env) as service:
                for i in range(3):
                    job = httpx.post(service.url + "/jobs", json={**BODY, "seed": 1000 * round_ + i}).json()
                    accepted.append(job["jobId"])
                time.sleep(rng.uniform(0.1, 2.0))
                service.kill()
        with Service(Path(tmp), env) as service:
            deadline = time.monotonic() + 600
            while time.monotonic() < deadline:
                states = Counter(httpx.get(f"{service.url}/jobs/{j}").json()["status"] for j in accepted)
                if states["succeeded"] == len(accepted):
                    break
                time.sleep(1)
            bad = check_store(service.url, Path(tmp) / "images")
    print(f"{rounds} kill -9 rounds, {len(accepted)} jobs accepted: {dict(states)}; problems: {bad or 'none'}")


def check_store(url: str, images: Path) -> list[str]:
    problems = []
    listed = httpx.get(url + "/images", params={"limit": 100}).json()["images"]
    for item in listed:
        path = images / item["imageUrl"].rsplit("/", 1)[1]
        data = path.read_bytes()
        try:
            Image.open(io.BytesIO(data)).load()
        except OSError as error:
            problems.append(f"{path.name}: {error}")
        if hashlib.sha256(data).hexdigest() != item["sha256"]:
            problems.append(f"{path.name}: sha256 differs from the index")
    problems += [f"temp file left: {p.name}" for p in images.glob(".tmp-*")]
    return problems


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=45)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--max-queue", type=int, default=4)
    parser.add_argument("--soak", type=int, default=0, help="kill -9 rounds instead of the load")
    args = parser.parse_args()
    soak(args.soak) if args.soak else load(args.seconds, args.clients, args.max_queue)


if __name__ == "__main__":
    main()
