"""Memory the process holds but no longer uses, given back: pages of files it maps read-only, and freed heap.

OpenVINO maps a model's IR weights and copies each into its compiled layout; the compiled model keeps the mapping,
and with it every page the compiler read (as much again as the weights). ``madvise(MADV_DONTNEED)`` on a read-only
file mapping only drops pages from this process: the file is unchanged, and a page touched again is read in again.
Mappings that could be written are never touched (dropping a written private page would lose the write). glibc
keeps freed heap for the process's next allocations: ``trim_heap`` returns it.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
import logging
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger(__name__)

MADV_DONTNEED = 4
SHED_EVERY_SECONDS = 0.2


def read_only_ranges(path: Path) -> list[tuple[int, int]]:
    """The (start, end) addresses of this process's read-only mappings of ``path``."""
    maps = Path("/proc/self/maps")
    if not maps.exists():
        return []
    target = str(path.resolve())
    ranges = []
    for line in maps.read_text().splitlines():
        fields = line.split(maxsplit=5)
        if len(fields) == 6 and fields[5] == target and "w" not in fields[1]:
            start, end = (int(address, 16) for address in fields[0].split("-"))
            ranges.append((start, end))
    return ranges


def drop_pages(path: Path) -> None:
    """This process's resident pages of its read-only mappings of ``path`` dropped (read again if touched)."""
    ranges = read_only_ranges(path)
    if not ranges or not sys.platform.startswith("linux"):
        return
    madvise = _libc().madvise
    for start, end in ranges:
        if madvise(ctypes.c_void_p(start), ctypes.c_size_t(end - start), MADV_DONTNEED) != 0:
            log.debug("madvise on %s failed: errno %d", path, ctypes.get_errno())


@contextlib.contextmanager
def shedding_pages(path: Path, every: float = SHED_EVERY_SECONDS) -> Iterator[None]:
    """``path``'s pages dropped every ``every`` seconds while the block reads it once through (a compiler copying
    weights: what it has copied it will not read again, and what it reads again is read in again), and at its
    end, so the block holds a few hundred MB of it at a time, not all of it."""
    done = threading.Event()

    def shed() -> None:
        while not done.wait(every):
            drop_pages(path)

    shedder = threading.Thread(target=shed, name="aleaart-shed-pages", daemon=True)
    shedder.start()
    try:
        yield
    finally:
        done.set()
        shedder.join()
        drop_pages(path)


def trim_heap() -> None:
    """Freed heap memory returned to the kernel (glibc's ``malloc_trim``). glibc keeps what a process frees for
    its next allocations, and a compiled OpenVINO model's weights are thousands of blocks below its mmap threshold:
    dropped, they would stay in this process's resident set under the next compilation's."""
    if sys.platform.startswith("linux") and hasattr(_libc(), "malloc_trim"):
        _libc().malloc_trim(0)


@functools.cache
def _libc() -> ctypes.CDLL:
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    libc.madvise.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
    return libc
