"""The service's process: uvicorn, with a drain before it stops.

On SIGTERM (or the first Ctrl-C) the service drains first: /ready answers 503 at once, new work
gets 503 ``shutting_down``, the running job may finish within ALEAART_DRAIN_SECONDS (else it is
stopped and queued again), waiting clients and event streams get a final answer; then uvicorn
closes the connections and the process exits 0. A second signal stops at once.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Generator
from types import FrameType

import uvicorn
from fastapi import FastAPI

log = logging.getLogger(__name__)

ANSWER_GRACE_SECONDS = 1.0  # for waiting clients to be sent their final answer once the worker is idle


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


def serve(app: FastAPI, *, host: str, port: int, drain_seconds: float) -> None:
    config = uvicorn.Config(
        app, host=host, port=port, log_level="info", timeout_graceful_shutdown=5,
        log_config=None,  # uvicorn's loggers go through the service's handler (logs.py): one format
        # h11's own limit on a request head answers plain text; 1 MiB lets the app answer 414/431 as JSON.
        h11_max_incomplete_event_size=1024 * 1024,
    )
    DrainingServer(config, app=app, drain_seconds=drain_seconds).run()
