"""What the benches build engines with: a runtime around a pipeline in hand, converting nothing to disk."""

from __future__ import annotations

from aleaart.config import Settings
from aleaart.engine.runtime import Runtime, RuntimeSetup, open_runtime


def bench_runtime(name: str, *, threads: int, **settings: object) -> Runtime:
    return open_runtime(name, RuntimeSetup(threads=threads, folder=None, settings=Settings(**settings)))
