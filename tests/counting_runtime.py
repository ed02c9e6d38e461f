"""A runtime of the tests' own, to show that adding one is a module with ``open_runtime`` and a registry line: it
runs the pipeline as PyTorch eager does, and counts what the engine asks of it."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from aleaart.engine.runtime import RuntimeSetup

CALLS: list[tuple[str, object]] = []


class CountingRuntime:
    key = "counting-1"

    def done_with(self, loaded, part: str) -> None:
        CALLS.append(("done_with", part))

    def make_room(self, loaded) -> None:
        CALLS.append(("make_room", None))

    def __init__(self, setup: RuntimeSetup) -> None:
        self.threads = setup.threads

    def prepare(self, loaded, identity: str) -> None:
        if loaded.runtime is None:
            loaded.runtime = self
            CALLS.append(("prepare", identity))

    @contextlib.contextmanager
    def job(self, loaded, *, adapted: bool) -> Iterator[None]:
        CALLS.append(("job", adapted))
        yield


def open_runtime(setup: RuntimeSetup) -> CountingRuntime:
    return CountingRuntime(setup)
