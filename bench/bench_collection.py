"""A whole collection through the service on the fake engine (everything but the GPU's time).

    python bench/bench_collection.py [--tokens 10000]

Mints the tokens on anvil, then runs POST /collections in-process: chain reads in batches, one
render job per token through the queue, the store, metadata, and the CAR written streaming.
Prints the seconds it took and the process's RSS at the start, its peak and the end.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from evm import deploy, mint_many  # noqa: E402
from fakes import FakeEngine  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402
from integration.anvil import Anvil  # noqa: E402

from aleaart.api import create_app  # noqa: E402
from aleaart.chain import ChainReader  # noqa: E402
from aleaart.config import Settings  # noqa: E402


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tokens", type=int, default=10_000)
    args = parser.parse_args()
    node = Anvil().start()
    try:
        w3 = node.web3()
        contract = deploy(w3)
        minted = mint_many(contract, w3, args.tokens)
        with tempfile.TemporaryDirectory() as tmp:
            reader = ChainReader(rpc_url=node.url, chain_id=31337, address=contract.address, timeout=60)
            settings = Settings(images_dir=Path(tmp) / "images", collections_dir=Path(tmp) / "collections",
                                max_queue=32)
            with TestClient(create_app(settings, loader=FakeEngine, chain=reader)) as client:
                client.app.state.model.wait(30)
                start_rss, peak = rss_mb(), [0.0]
                done = threading.Event()

                def sample() -> None:
                    while not done.wait(0.5):
                        peak[0] = max(peak[0], rss_mb())

                threading.Thread(target=sample, daemon=True).start()
                started = time.perf_counter()
                job = client.post("/collections", json={"from": minted.start, "to": minted.stop - 1}).json()
                finished = client.app.state.queue.get(job["jobId"])
                finished.wait_done(3600)
                seconds = time.perf_counter() - started
                done.set()
                summary = finished.status.summary or {}
                car = Path(summary.get("car", "")) if summary else None
                print(f"{args.tokens} tokens: {finished.state.value} in {seconds:.1f} s "
                      f"({args.tokens / seconds * 60:.0f} tokens/min), rendered {summary.get('rendered')}, "
                      f"failed {len(summary.get('failed', {}))}")
                if car and car.exists():
                    print(f"  collection.car {car.stat().st_size / 2**20:.0f} MiB, root {summary['rootCid']}")
                print(f"  RSS {start_rss:.0f} MB at the start, {peak[0]:.0f} MB at the peak, "
                      f"{rss_mb():.0f} MB at the end")
    finally:
        node.stop()


if __name__ == "__main__":
    main()
