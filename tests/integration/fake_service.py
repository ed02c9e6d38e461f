"""`aleaart serve` with the fake engine, slowed down: a real server process for timing-shaped tests.

    python -m integration.fake_service PORT STEP_SECONDS    (settings from ALEAART_* as usual)
"""

from __future__ import annotations

import sys

from fakes import FakeEngine

from aleaart.api import create_app
from aleaart.config import Settings
from aleaart.server import serve


def main() -> None:
    port, step_seconds = int(sys.argv[1]), float(sys.argv[2])
    settings = Settings()
    app = create_app(settings, loader=lambda: FakeEngine(step_seconds=step_seconds))
    serve(app, host="127.0.0.1", port=port, drain_seconds=settings.drain_seconds)


if __name__ == "__main__":
    main()
