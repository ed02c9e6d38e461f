"""Render on fulfilment, measured on anvil with the fake engine (everything but the GPU's time).

    python bench/bench_watch.py [--burst 1000] [--backfill 10000] [--palette off|grade] [--render-seconds 60]
                                [--poll 2] [--ws]

burst: the service follows the chain (ALEAART_WATCH=1, confirmations 0, polling every --poll seconds, with --ws
also subscribed over anvil's websocket) while 1,000 tokens
are minted and fulfilled in 4 transactions; prints the lag from each fulfilment's block to its image being stored
(metadata ready), and the watcher thread's own CPU time per token (RPC, journal, queue hand-off).
backfill: 10,000 tokens fulfilled before the watcher starts with no cursor; prints how long reading them from the
contract's deployment block took (deployment found by bisection), then the rate tokens are rendered at.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from evm import MINT_BATCH, deploy  # noqa: E402
from fakes import FakeEngine  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402
from integration.anvil import Anvil  # noqa: E402

from aleaart.api import create_app  # noqa: E402
from aleaart.config import Settings  # noqa: E402

RANDOM_BASE = bytes(range(32))


def mint_timed(contract, w3, count: int) -> dict[int, float]:
    """Mint and fulfil ``count`` tokens, MINT_BATCH a transaction; each token's time is its block's mining."""
    mined: dict[int, float] = {}
    for start in range(0, count, MINT_BATCH):
        first = contract.functions.nextTokenId().call()
        size = min(MINT_BATCH, count - start)
        tx = contract.functions.mintBatch(size, RANDOM_BASE).transact({"gas": 29_000_000})
        w3.eth.wait_for_transaction_receipt(tx, poll_latency=0.01)
        now = time.time()
        mined.update({token_id: now for token_id in range(first, first + size)})
    return mined


def service(tmp: str, node: Anvil, address: str, palette: str, poll: float, **extra) -> TestClient:
    settings = Settings(images_dir=Path(tmp) / "images", rpc_url=node.url, chain_id=31337, params_contract=address,
                        watch=True, watch_poll_seconds=poll, palette_mode=palette, chain_timeout=30, **extra)
    return TestClient(create_app(settings, loader=FakeEngine))


def journal_rows(client) -> list:
    return client.app.state.journal_db.query("SELECT token_id, state, seen_at, rendered_at FROM watch_tokens")


def wait_for(client, condition, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = client.app.state.watch_status()
        if status and condition(status):
            return True
        time.sleep(0.1)
    return False


def thread_cpu(name: str) -> float:
    import threading

    for thread in threading.enumerate():
        if thread.name == name and thread.ident is not None:
            return time.clock_gettime(time.pthread_getcpuclockid(thread.ident))
    return float("nan")


def burst(node: Anvil, count: int, palette: str, poll: float, ws: bool) -> None:
    w3 = node.web3()
    contract = deploy(w3)
    subscribed = {"watch_ws_url": f"ws://127.0.0.1:{node.port}"} if ws else {}
    with tempfile.TemporaryDirectory() as tmp, service(tmp, node, contract.address, palette, poll,
                                                       watch_from_block=w3.eth.block_number, **subscribed) as client:
        client.app.state.model.wait(30)
        if ws:
            assert wait_for(client, lambda s: s["subscription"] == "live", 60), client.app.state.watch_status()
        cpu_before = thread_cpu("chain-watcher")
        started = time.time()
        mined = mint_timed(contract, w3, count)
        assert wait_for(client, lambda s: s["tokens"]["rendered"] >= count, 3600), client.app.state.watch_status()
        seconds = time.time() - started
        cpu = thread_cpu("chain-watcher") - cpu_before
        rows = journal_rows(client)
        lags = sorted(r["rendered_at"] - mined[int(r["token_id"])] for r in rows)
        found = sorted(r["seen_at"] - mined[int(r["token_id"])] for r in rows)
        q = statistics.quantiles(lags, n=100)
        how = f"polling every {poll:g} s" + (", subscribed" if ws else "")
        print(f"burst of {count} fulfilments ({-(-count // MINT_BATCH)} blocks), palette {palette}, {how}: all "
              f"metadata ready {seconds:.1f} s after the first mint ({count / seconds:.1f} tokens/s)")
        print(f"  fulfilment → found by the watcher: median {statistics.median(found):.2f} s, max {max(found):.2f} s")
        print(f"  fulfilment → image stored (metadata ready): p50 {q[49]:.1f} s, p95 {q[94]:.1f} s, "
              f"max {lags[-1]:.1f} s; first {lags[0]:.2f} s")
        print(f"  watcher thread CPU: {cpu * 1000 / count:.2f} ms per token ({cpu:.2f} s in all)")


def backfill(node: Anvil, count: int, palette: str, render_seconds: float, poll: float) -> None:
    w3 = node.web3()
    contract = deploy(w3)
    mint_timed(contract, w3, count)
    for _ in range(100):
        w3.provider.make_request("evm_mine", [])  # empty blocks after the mints, as a live chain has
    with tempfile.TemporaryDirectory() as tmp, service(tmp, node, contract.address, palette, poll) as client:
        started = time.time()
        assert wait_for(client, lambda s: s["tokens"]["seen"] >= count, 3600), client.app.state.watch_status()
        scanned = time.time() - started
        head = client.app.state.watch_status()["cursorBlock"]
        print(f"backfill of {count} fulfilled tokens ({head} blocks from genesis; deployment found by bisection): "
              f"all read in {scanned:.1f} s ({count / scanned:.0f} tokens/s)")
        time.sleep(render_seconds)
        rendered = client.app.state.watch_status()["tokens"]["rendered"]
        elapsed = time.time() - started
        print(f"  rendered {rendered} in the first {elapsed:.0f} s ({rendered / elapsed * 60:.0f} tokens/min; "
              f"the queue's pace on the fake engine, {count / (rendered / elapsed) / 60:.0f} min for all)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--burst", type=int, default=1000)
    parser.add_argument("--backfill", type=int, default=10_000)
    parser.add_argument("--palette", choices=["off", "grade", "prompt"], default="off")
    parser.add_argument("--render-seconds", type=float, default=60)
    parser.add_argument("--poll", type=float, default=2.0, help="ALEAART_WATCH_POLL_SECONDS (the service's default)")
    parser.add_argument("--ws", action="store_true", help="also subscribe over anvil's websocket")
    args = parser.parse_args()
    node = Anvil().start()
    try:
        if args.burst:
            burst(node, args.burst, args.palette, args.poll, args.ws)
        if args.backfill:
            backfill(node, args.backfill, args.palette, args.render_seconds, args.poll)
    finally:
        node.stop()


if __name__ == "__main__":
    main()
