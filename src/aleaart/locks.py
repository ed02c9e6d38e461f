"""The service's one lock rule, kept by the code: a state lock guards memory only, and no I/O runs under it.

A ``StateLock`` (the queue's, the webhook hub's) is a plain lock that knows which of them this thread holds;
the database refuses every statement made while one is held (``refuse_io``), so a change that writes a record
under the queue's lock fails in every test that reaches it, instead of stalling every request behind a slow
disk. Code that must change state and write it records what to write under the lock and writes it after.
Nothing is taken in an order that matters: under a state lock no other lock is waited on but Python's own.
"""

from __future__ import annotations

import threading
from types import TracebackType

_held = threading.local()


class StateLock:
    """A ``threading.Lock`` for in-memory state, named in the error a write under it gets."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._lock = threading.Lock()

    def __enter__(self) -> StateLock:
        self._lock.acquire()
        _held.names = (*held(), self.name)
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        names = held()
        _held.names = names[:-1] if names and names[-1] == self.name else tuple(n for n in names if n != self.name)
        self._lock.release()


def held() -> tuple[str, ...]:
    """The state locks this thread holds, innermost last."""
    return getattr(_held, "names", ())


def refuse_io(what: str) -> None:
    """Raise if this thread holds a state lock: ``what`` (a database statement, a file) must run after it."""
    if names := held():
        raise RuntimeError(f"{what} while holding {names[-1]}: state locks guard memory only; record what to "
                           "write under the lock and write it after releasing it")
