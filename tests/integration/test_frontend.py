"""The AleaArt frontend's calls, as it makes them: Node's fetch against a real server process."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from integration.server import Server, server_env

NODE_TOOLS = Path(__file__).resolve().parents[1] / "node"
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "frontend_bodies.json"


def node_fetch(url: str, body: dict, timeout_ms: int) -> dict:
    done = subprocess.run(["node", str(NODE_TOOLS / "fetch-json.mjs"), url, json.dumps(body), str(timeout_ms)],
                          capture_output=True, text=True, timeout=120, check=True)
    return json.loads(done.stdout)


@pytest.mark.parametrize("keepalive", ["2", "0"])
def test_a_render_longer_than_nodes_timeouts_arrives_only_when_kept_alive(tiny_env, tmp_path, keepalive):
    """Node's fetch gives up when no header (then no byte) comes within its timeouts: 5 s here, 300 s
    in a Next.js route by default. An 18 s render (18 steps of 1 s) must still arrive, and does only
    with the keep-alive."""
    body = {**json.loads(FIXTURES.read_text())[0], "steps": 15}
    env = server_env(tiny_env, tmp_path, keepalive_seconds=keepalive)
    with Server(env, tmp_path, fake_step_seconds=1.0) as server:
        answer = node_fetch(server.url + "/generate-image", body, timeout_ms=5000)
    if keepalive == "0":
        assert answer == {"ok": False, "error": "TypeError", "cause": "UND_ERR_HEADERS_TIMEOUT"}
    else:
        assert answer["ok"] is True and answer["result"]["success"] is True
        assert answer["result"]["imageBase64"].startswith("data:image/png;base64,")
        assert answer["result"]["parameters"]["steps"] == 15
