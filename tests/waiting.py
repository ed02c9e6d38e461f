"""Waiting on a condition another thread or process makes true, instead of sleeping and then asserting."""

from __future__ import annotations

import time
from collections.abc import Callable


def eventually(condition: Callable[[], object], timeout: float = 30) -> bool:
    """True once ``condition()`` is true (polled every 50 ms), False if ``timeout`` seconds pass first."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True
