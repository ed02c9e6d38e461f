"""`aleaart serve` with the fake engine, slowed down: a real server process for timing-shaped tests.

    python -m integration.fake_service PORT STEP_SECONDS    (settings from ALEAART_* as usual)

With FAKE_RENDER_LOG set, each finished render appends its spec's seed to that file (a line each), so a test can
count renders across restarts.
"""

from __future__ import annotations

import os
import sys

from fakes import FakeEngine

from aleaart.api import create_app
from aleaart.config import Settings
from aleaart.server import serve


class LoggedFakeEngine(FakeEngine):
    def __init__(self, log_path: str, **kwargs) -> None:
        super().__init__(**kwargs)
        self.log_path = log_path

    def generate(self, spec, **kwargs):
        rendered = super().generate(spec, **kwargs)
        with open(self.log_path, "a") as log:
            log.write(f"{spec.seed}\n")
        return rendered


def main() -> None:
    port, step_seconds = int(sys.argv[1]), float(sys.argv[2])
    settings = Settings()
    log_path = os.environ.get("FAKE_RENDER_LOG")
    app = create_app(settings, loader=lambda: LoggedFakeEngine(log_path, step_seconds=step_seconds) if log_path
                     else FakeEngine(step_seconds=step_seconds))
    serve(app, host="127.0.0.1", port=port, drain_seconds=settings.drain_seconds,
          header_timeout=settings.header_timeout_seconds)


if __name__ == "__main__":
    main()
