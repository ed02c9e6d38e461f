"""The service's process: uvicorn, with a drain before it stops.

On SIGTERM (or the first Ctrl-C) the service drains first: /ready answers 503 at once, new work
gets 503 ``shutting_down``, the running job may finish within ALEAART_DRAIN_SECONDS (else it is
stopped and queued again), waiting clients and event streams get a final answer; then uvicorn
closes the connections and the process exits 0. A second signal stops at once.
"""

from __future__ import annotations

import contextlib
import http
import json
import logging
import threading
import time
from collections.abc import Generator
from types import FrameType

import uvicorn
from fastapi import FastAPI
from uvicorn.protocols.http.h11_impl import H11Protocol

from aleaart.api.errors import error_body
from aleaart.errors import AleaArtError, BadRequest, RequestTimeout

log = logging.getLogger(__name__)

ANSWER_GRACE_SECONDS = 1.0  # for waiting clients to be sent their final answer once the worker is idle


def raw_error(error: AleaArtError) -> bytes:
    """A whole HTTP/1.1 answer with the service's error body, for where no request was parsed to answer."""
    body = json.dumps(error_body(str(error), error.code)).encode()
    head = (f"HTTP/1.1 {error.status} {http.HTTPStatus(error.status).phrase}\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\n\r\n")
    return head.encode() + body


class EdgeProtocol(H11Protocol):
    """uvicorn's h11 protocol with the service's edges where no route can answer: a request head that does not
    parse gets the JSON error body (400 ``bad_request``) instead of plain text, and a head that has not arrived
    within ``header_timeout`` seconds (slowloris: a byte now and then) gets 408 ``request_timeout`` and the
    connection is closed. The body is the app's to time: an upload may be slow."""

    header_timeout = 20.0

    def connection_made(self, transport) -> None:  # type: ignore[no-untyped-def,override]
        self._head_timer = None
        super().connection_made(transport)
        self._arm_head_timer()

    def data_received(self, data: bytes) -> None:
        if self._head_timer is None and (self.cycle is None or self.cycle.response_complete):
            self._arm_head_timer()  # the first bytes of the next request on a kept-alive connection
        super().data_received(data)
        if self.cycle is not None and not self.cycle.response_complete:
            self._disarm_head_timer()  # its head has arrived

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_head_timer()
        super().connection_lost(exc)

    def send_400_response(self, msg: str) -> None:
        self._disarm_head_timer()
        self.transport.write(raw_error(BadRequest(f"the request could not be read as HTTP/1.1 ({msg.rstrip('.')})")))
        self.transport.close()

    def _arm_head_timer(self) -> None:
        self._head_timer = self.loop.call_later(self.header_timeout, self._head_too_slow)

    def _disarm_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_too_slow(self) -> None:
        self._head_timer = None
        if self.transport.is_closing() or (self.cycle is not None and not self.cycle.response_complete):
            return
        self.logger.warning("a request head took over %g s to arrive: closed", self.header_timeout)
        self.transport.write(raw_error(RequestTimeout(
            f"the request's head did not arrive within {self.header_timeout:g} s")))
        self.transport.close()


class DrainingServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, *, app: FastAPI, drain_seconds: float) -> None:
        super().__init__(config)
        self.app = app
        self.drain_seconds = drain_seconds
        self._drain_started = False

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self._drain_started:
            super().handle_exit(sig, frame)
            return
        self._drain_started = True
        threading.Thread(target=self._drain_then_exit, args=(sig, frame), name="aleaart-drain", daemon=True).start()

    def _drain_then_exit(self, sig: int, frame: FrameType | None) -> None:
        queue = getattr(self.app.state, "queue", None)
        if queue is not None:
            log.info("draining: no new work; the running job has %g s to finish", self.drain_seconds)
            queue.drain(self.drain_seconds)
            time.sleep(ANSWER_GRACE_SECONDS)
            log.info("drained; queued jobs run after the restart")
        super().handle_exit(sig, frame)

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        with super().capture_signals():
            yield
            # Drained and shut down on purpose: exit 0, instead of uvicorn raising the signal again.
            self._captured_signals.clear()


def serve(app: FastAPI, *, host: str, port: int, drain_seconds: float, header_timeout: float) -> None:
    protocol = type("EdgeProtocol", (EdgeProtocol,), {"header_timeout": header_timeout})
    config = uvicorn.Config(
        app, host=host, port=port, log_level="info", timeout_graceful_shutdown=5, http=protocol,
        log_config=None,  # uvicorn's loggers go through the service's handler (logs.py): one format
        # h11's own limit on a request head answers plain text; 1 MiB lets the app answer 414/431 as JSON.
        h11_max_incomplete_event_size=1024 * 1024,
    )
    DrainingServer(config, app=app, drain_seconds=drain_seconds).run()
