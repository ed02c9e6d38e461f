"""A webhook receiver on a real port: it verifies every delivery with the `standardwebhooks` library (as a user's
receiver would), records it, and answers what the test says: a status, after a gate opens."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks.webhooks import Webhook

from integration.server import free_port

SECRET = "whsec_" + "YWxlYWFydC10ZXN0LXNlY3JldC0zMi1ieXRlcy1sb25n"  # base64 of a test key


@dataclass
class Received:
    id: str
    event: str  # the aleaart-event header: start, output, logs, completed (a job's); token.rendered…
    body: dict[str, Any]
    headers: dict[str, str]
    verified: bool


@dataclass
class Receiver:
    secret: str | None = SECRET
    status: int = 200  # what the next deliveries are answered
    gate: threading.Event = field(default_factory=threading.Event)  # deliveries wait here until it is set
    received: list[Received] = field(default_factory=list)  # every attempt, answered or not
    waiting: int = 0

    def __post_init__(self) -> None:
        self.gate.set()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                data = self.rfile.read(int(self.headers["Content-Length"]))
                headers = {k.lower(): v for k, v in self.headers.items()}
                receiver.record(data, headers)
                with receiver._lock:
                    receiver.waiting += 1
                receiver.gate.wait(60)
                with receiver._lock:
                    receiver.waiting -= 1
                self.send_response(receiver.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def record(self, data: bytes, headers: dict[str, str]) -> None:
        verified = False
        if self.secret is not None:
            Webhook(self.secret).verify(data, headers)  # raises on a bad signature: the test sees no record
            verified = True
        body = json.loads(data)
        with self._lock:
            self.received.append(Received(headers["webhook-id"], headers["aleaart-event"], body, headers, verified))

    def stop(self) -> None:
        self.gate.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def delivered(self, job_id: str) -> list[Received]:
        """The deliveries of one job, each once (a retried one counts once: its id is the same)."""
        seen: dict[str, Received] = {}
        for r in list(self.received):
            if r.body.get("jobId") == job_id:
                seen.setdefault(r.id, r)
        return list(seen.values())
