"""Reading a whole collection from the chain: 10,000 minted tokens on anvil, read in batches.

    python bench/bench_chain.py [--tokens 10000]

Prints the seconds to mint (test setup) and to read every token with JSON-RPC batches and with
Multicall3's aggregate3, against one request per call. Uses the test suite's anvil and contract
helpers (chain/node_modules must be installed: ./run_tests.sh does it).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from evm import deploy, install_multicall3, mint_many  # noqa: E402
from integration.anvil import Anvil  # noqa: E402

from aleaart.chain import ChainReader  # noqa: E402


def timed(label: str, read) -> None:
    started = time.perf_counter()
    batch = read()
    seconds = time.perf_counter() - started
    print(f"  {label:<28} {seconds:7.2f} s  ({len(batch.ready)} ready, {len(batch.pending)} pending)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tokens", type=int, default=10_000)
    parser.add_argument("--one-by-one", type=int, default=200, help="tokens to read one request at a time")
    args = parser.parse_args()
    node = Anvil().start()
    try:
        w3 = node.web3()
        contract = deploy(w3)
        started = time.perf_counter()
        minted = mint_many(contract, w3, args.tokens)
        print(f"minted {args.tokens} tokens in {time.perf_counter() - started:.1f} s (setup)")

        def reader() -> ChainReader:
            return ChainReader(rpc_url=node.url, chain_id=31337, address=contract.address, timeout=60)

        timed("JSON-RPC batches", lambda: reader().tokens(minted.start, minted.stop - 1))
        install_multicall3(w3)
        timed("Multicall3 aggregate3", lambda: reader().tokens(minted.start, minted.stop - 1))
        one = reader()
        started = time.perf_counter()
        for token_id in list(minted)[: args.one_by_one]:
            one.token(token_id)
        per_token = (time.perf_counter() - started) / args.one_by_one
        print(f"  {'one request per call':<28} {per_token * args.tokens:7.2f} s  "
              f"(extrapolated from {args.one_by_one} tokens)")
    finally:
        node.stop()


if __name__ == "__main__":
    main()
