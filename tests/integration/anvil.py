"""Start anvil (from chain/node_modules) on a free 127.0.0.1 port, bounded in time."""

from __future__ import annotations

import subprocess
from pathlib import Path

from waiting import eventually
from web3 import Web3

from integration.server import free_port, stop_group, wait_port_closed

ANVIL = Path(__file__).resolve().parents[2] / "chain" / "node_modules" / ".bin" / "anvil"


class Anvil:
    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 30) -> Anvil:
        if not ANVIL.exists():
            raise RuntimeError(f"{ANVIL} is missing: run `npm ci --prefix chain` (./run_tests.sh does)")
        # Its own process group: .bin/anvil is a Node wrapper around the real node, and stopping
        # only the wrapper can leave the node answering on the port.
        self.process = subprocess.Popen(
            [str(ANVIL), "--host", "127.0.0.1", "--port", str(self.port), "--silent"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )
        w3 = Web3(Web3.HTTPProvider(self.url, request_kwargs={"timeout": 2}))
        def answers() -> bool:
            try:
                return bool(w3.eth.chain_id)
            except Exception:
                return False

        if eventually(answers, timeout=timeout, every=0.1):
            return self
        self.stop()
        raise TimeoutError(f"anvil did not answer on {self.url} within {timeout} s")

    def web3(self) -> Web3:
        return Web3(Web3.HTTPProvider(self.url, request_kwargs={"timeout": 10}))

    def stop(self, timeout: float = 15) -> None:
        """Stop the whole process group and wait until nothing listens on the port any more."""
        if self.process is None:
            return
        stop_group(self.process, timeout)
        wait_port_closed(self.port, timeout)
