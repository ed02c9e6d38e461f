"""A JSON-RPC proxy in front of anvil, on a real port: it can be taken down (connections refused) and can refuse
``eth_getLogs`` over more than ``max_range`` blocks the way hosted RPCs do (a JSON-RPC error, -32005)."""

from __future__ import annotations

import json
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from integration.server import free_port

RANGE_ERROR = {"code": -32005, "message": "query exceeds max block range"}


class RpcProxy:
    def __init__(self, upstream: str, *, max_range: int | None = None) -> None:
        self.upstream = upstream
        self.max_range = max_range
        self.refused_ranges = 0
        self.log_ranges: list[tuple[int, int]] = []  # every eth_getLogs range asked for
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> RpcProxy:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                answer = [proxy.answer(b) for b in body] if isinstance(body, list) else proxy.answer(body)
                data = json.dumps(answer).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def answer(self, request: dict[str, Any]) -> dict[str, Any]:
        if request.get("method") == "eth_getLogs":
            query = request["params"][0]
            first, last = int(query["fromBlock"], 16), int(query["toBlock"], 16)
            self.log_ranges.append((first, last))
            if self.max_range is not None and last - first + 1 > self.max_range:
                self.refused_ranges += 1
                return {"jsonrpc": "2.0", "id": request.get("id"), "error": RANGE_ERROR}
        forwarded = urllib.request.Request(self.upstream, data=json.dumps(request).encode(),
                                           headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(forwarded, timeout=10) as response:
            return json.loads(response.read())

    def down(self) -> None:
        """Stop answering: the port is closed, as a node that is down."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def up(self) -> None:
        if self._server is None:
            self.start()

    def stop(self) -> None:
        self.down()
