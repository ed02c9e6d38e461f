"""ALEAART_BACKEND=torch: PyTorch eager runs the loaded pipeline as diffusers built it (SDPA attention)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from aleaart.engine.runtime import RuntimeSetup
from aleaart.engine.shelf import Loaded


class EagerRuntime:
    key = None  # absent from the recipe, so keys from before runtimes were a choice still hold

    def done_with(self, loaded: Loaded, part: str) -> None:
        loaded.release([part])  # read in again from the page cache by the next call

    def make_room(self, loaded: Loaded) -> None:
        pass  # the UNet's pages went with done_with; nothing else is held

    def prepare(self, loaded: Loaded, identity: str) -> None:
        pass

    @contextlib.contextmanager
    def job(self, loaded: Loaded, *, adapted: bool) -> Iterator[None]:
        yield


def open_runtime(setup: RuntimeSetup) -> EagerRuntime:
    return EagerRuntime()
