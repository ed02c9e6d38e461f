"""Repeat requests for a stored image, measured with wrk (apt-get install wrk) against a real `aleaart serve`.

Starts anvil with the test contract and one minted token, and the service on the tiny model reading that
chain; stores one 512x512 image and the token's image, then runs wrk for each path with 1 and 32
connections and prints requests/s, latency p50/p99 and each path's requests/s as a share of the file's
(GET /generated_images/<file>) in the same run. The client shares the machine's cores with the
service, as the issue's figures did. Uses the test suite's anvil and contract helpers (chain/node_modules
must be installed: ./run_tests.sh does it).

    python bench/bench_serving.py [--seconds 10] [--threads 2] [--keys]

With ``--keys``, the same paths run a second time in the same run against the service with keys issued (the key
check, the scope, the request rate of a key with a limit too high to reach), each request sending its key: the
cost of keys on the stored-image path, beside the keyless figures.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from evm import deploy, mint_cheap  # noqa: E402
from integration.anvil import Anvil  # noqa: E402

BODY = {"prompt": "serving benchmark", "width": 512, "height": 512, "steps": 4, "seed": 7}
POST_SCRIPT = """wrk.method = "POST"
wrk.body = '{body}'
wrk.headers["Content-Type"] = "application/json"
"""
ADMIN_KEY = "bench-admin-key"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_service(workdir: Path, threads: int, rpc_url: str, contract: str,
                  **extra: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {**os.environ, "ALEAART_MODEL": "tiny", "ALEAART_THREADS": str(threads), "HF_HUB_OFFLINE": "1",
           "ALEAART_IMAGES_DIR": str(workdir / "images"), "ALEAART_RPC_URL": rpc_url,
           "ALEAART_PARAMS_CONTRACT": contract, "ALEAART_CHAIN_ID": "31337", "ALEAART_LOG_FORMAT": "json", **extra}
    process = subprocess.Popen([sys.executable, "-m", "aleaart.cli", "serve", "--host", "127.0.0.1", "--port",
                                str(port)], env=env, cwd=workdir, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/ready", timeout=2).status_code == 200:
                return process, url
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    os.killpg(process.pid, signal.SIGKILL)
    raise RuntimeError("the service did not become ready")


def wrk(url: str, connections: int, seconds: int, script: Path | None, key: str | None = None) -> dict[str, float]:
    command = ["wrk", "-t", str(min(connections, 2)), "-c", str(connections), "-d", f"{seconds}s", "--latency", url]
    if key is not None:
        command[1:1] = ["-H", f"X-API-Key: {key}"]
    if script is not None:
        command[1:1] = ["-s", str(script)]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1])
    return {"rps": rate, "p50_ms": latency(out, "50%"), "p99_ms": latency(out, "99%"),
            "errors": "Non-2xx" in out or "Socket errors" in out}


def latency(out: str, percentile: str) -> float:
    value, unit = re.search(rf"{percentile}\s+([\d.]+)(us|ms|s)", out).groups()
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2, help="the service's torch threads")
    parser.add_argument("--keys", action="store_true", help="also run every path with keys issued and sent")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install wrk")
    node = Anvil().start()
    try:
        with tempfile.TemporaryDirectory() as folder:
            measure(node, Path(folder), args.seconds, args.threads, keys=args.keys)
    finally:
        node.stop()


def measure(node: Anvil, workdir: Path, seconds: int, threads: int, *, keys: bool) -> None:
    w3 = node.web3()
    contract = deploy(w3)
    token_id = mint_cheap(contract, w3)
    extra = {"ALEAART_ADMIN_KEY": ADMIN_KEY} if keys else {}
    process, url = start_service(workdir, threads, node.url, contract.address, **extra)
    try:
        key = None
        if keys:  # a key of the bench's own, as a client would have, with a rate it never reaches
            made_key = httpx.post(url + "/keys", json={"name": "bench", "scopes": ["read", "generate"],
                                                       "rate": "10000000/min"}, headers={"X-API-Key": ADMIN_KEY})
            key = made_key.json()["secret"]
        headers = {"X-API-Key": key} if key else {}
        made = httpx.post(url + "/generate-image", json=BODY, headers=headers, timeout=300).json()
        png = httpx.get(url + made["imageUrl"]).content
        print(f"one stored image: {made['imageUrl']} ({len(png) / 1024:.0f} KiB)")
        token_png = httpx.get(f"{url}/tokens/{token_id}/image.png", headers=headers, timeout=600)
        if token_png.status_code != 200:
            raise RuntimeError(f"the token's image: {token_png.status_code} {token_png.text}")
        print(f"token {token_id}'s image: {len(token_png.content) / 1024:.0f} KiB")
        script = workdir / "post.lua"
        script.write_text(POST_SCRIPT.format(body=json.dumps(BODY)))
        cases = [("GET /generated_images/<file>", url + made["imageUrl"], None),
                 ("GET /tokens/<id>/image.png", f"{url}/tokens/{token_id}/image.png", None),
                 ("POST /generate-image (stored, imageBase64)", url + "/generate-image", script),
                 ("POST /jobs (stored, no base64)", url + "/jobs", script)]
        print(f"{'path' + (' (a key sent)' if key else ''):45} {'clients':>7} {'req/s':>8} {'p50 ms':>8} "
              f"{'p99 ms':>8} {'vs file':>8}")
        file_rps: dict[int, float] = {}
        for name, target, body in cases:
            for connections in (1, 32):
                figures = wrk(target, connections, seconds, body, key)
                file_rps.setdefault(connections, figures["rps"])  # the first case is the file itself
                print(f"{name:45} {connections:>7} {figures['rps']:>8.0f} {figures['p50_ms']:>8.1f} "
                      f"{figures['p99_ms']:>8.1f} {figures['rps'] / file_rps[connections]:>7.2f}x"
                      f"{'  (errors!)' if figures['errors'] else ''}", flush=True)
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(30)
    if keys:
        print()
        (workdir / "keyless").mkdir()
        measure(node, workdir / "keyless", seconds, threads, keys=False)

if __name__ == "__main__":
    main()
