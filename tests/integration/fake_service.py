"""`aleaart serve` with the fake engine, slowed down: a real server process for timing-shaped tests.

    python -m integration.fake_service PORT STEP_SECONDS    (settings from ALEAART_* as usual)
"""

from __future__ import annotations

import sys

import uvicorn
from fakes import FakeEngine

from aleaart.api import create_app
from aleaart.config import Settings


def main() -> None:
    port, step_seconds = int(sys.argv[1]), float(sys.argv[2])
    app = create_app(Settings(), loader=lambda: FakeEngine(step_seconds=step_seconds))
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


if __name__ == "__main__":
    main()
