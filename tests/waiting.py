"""Waiting on a condition another thread or process makes true, instead of sleeping and then asserting.

Every wait of the suite goes through here: a condition polled until it holds or a deadline passes (30 s by
default: they return as soon as the condition holds, and a loaded 2-core CI machine is slow). A probe that raises
(a process that died, say) ends the wait with its error at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def eventually(condition: Callable[[], object], timeout: float = 30, *, every: float = 0.05) -> bool:
    """True once ``condition()`` is true (polled every ``every`` seconds), False if ``timeout`` seconds pass first."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(every)
    return True


def waited(probe: Callable[[], T], until: Callable[[T], object] = bool, *, timeout: float = 30, every: float = 0.05,
           what: str = "the condition") -> T:
    """``probe()``'s first value that ``until`` accepts; TimeoutError naming ``what`` and the last value if
    ``timeout`` seconds pass first."""
    deadline = time.monotonic() + timeout
    while not until(value := probe()):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} did not happen in {timeout:g} s; last: {value!r}"[:3000])
        time.sleep(every)
    return value
