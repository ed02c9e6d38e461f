"""What the loaded model costs in memory, measured once per model, runtime and versions (the recipe) and kept in the
cache folder: the resident set between jobs, and the peaks of one-step renders at 512x512 and the next size up (a
render's peak does not depend on its steps), with the largest aspect's estimated from them until its first render
measures it. A later start reads it instead of rendering."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from aleaart.engine.residency import PARTS
from aleaart.errors import AleaArtError
from aleaart.files import write_atomically
from aleaart.memory import GIB, MemoryProfile, Peak, RenderSize, reset_peak, status_bytes
from aleaart.params import ASPECTS, RenderParams, spec_from_params

if TYPE_CHECKING:
    from aleaart.engine.pipeline import Engine

log = logging.getLogger(__name__)

SQUARE = 0
MEASURED = 2  # how: a profile kept by an earlier way of measuring is measured again
LARGEST = max(range(len(ASPECTS)), key=lambda index: ASPECTS[index].width * ASPECTS[index].height)
# The next size up from Square, measured with it so the line through the two estimates the largest at start.
NEXT = min((index for index in range(len(ASPECTS)) if index not in (SQUARE, LARGEST)),
           key=lambda index: ASPECTS[index].width * ASPECTS[index].height)


def profile_path(engine: Engine, cache_dir: Path) -> Path:
    key = json.dumps({**engine.recipe, "measured": MEASURED}, sort_keys=True)
    return cache_dir / "memory" / f"{hashlib.sha256(key.encode()).hexdigest()[:16]}.json"


def memory_profile(engine: Engine, path: Path) -> MemoryProfile | None:
    """The engine's profile, read from ``path`` or measured now and kept there (None where this system has no
    /proc, or the renders failed)."""
    try:
        profile = MemoryProfile.from_record(json.loads(path.read_text()))
    except (OSError, ValueError, KeyError, TypeError):
        if (profile := measure(engine)) is None:
            return None
        keep(profile, path)
    small, largest = profile.small, profile.largest
    log.info("memory: %.2f GiB resident between jobs; a render peaks at %.2f GiB at %dx%d and %.2f GiB at %dx%d%s",
             profile.resident_gib, small.gib, small.width, small.height, largest.gib, largest.width, largest.height,
             " (estimated until one is rendered)" if profile.estimated else "")
    return profile


def measure(engine: Engine) -> MemoryProfile | None:
    """The peaks over one-step renders at the next size up from 512x512 and then at 512x512 (whose shapes, every
    token's default, stay compiled), each from a reset peak (or from the start, where the peak cannot be reset: an
    overestimate), and the resident set after them, as between jobs. The largest size is estimated from the two,
    not rendered: at a first start it would need its memory before anyone asked for it (on a machine too small
    for it, at every start); its first render measures it (``measuring_largest``)."""
    if status_bytes("VmRSS") is None:
        return None
    started = time.perf_counter()
    try:
        larger, small = (peak_of(engine, aspect) for aspect in (NEXT, SQUARE))
    except AleaArtError as error:  # out of device memory: serve what fits, unmeasured
        log.warning("could not measure the memory a render needs (%s); ALEAART_MAX_RSS_GB is not checked", error)
        return None
    engine.core.current.release(PARTS)  # as between jobs: nothing read for loading stays
    log.info("measured the memory a render needs in %.1f s (once: kept in the cache)", time.perf_counter() - started)
    resident = (status_bytes("VmRSS") or 0) / GIB
    aspect = ASPECTS[LARGEST]
    estimate = MemoryProfile(resident, small, larger).needs_gib(RenderSize(aspect.width, aspect.height))
    return MemoryProfile(resident, small, Peak(aspect.width, aspect.height, estimate), estimated=True)


@contextlib.contextmanager
def measuring_largest(engine: Engine, width: int, height: int) -> Iterator[None]:
    """The block's peak kept as the largest size's, where it renders that size and the profile only estimated it."""
    profile, path = engine.memory, engine.memory_path
    if (profile is None or path is None or not profile.estimated
            or (width, height) != (profile.largest.width, profile.largest.height) or not reset_peak()):
        yield
        return
    yield
    engine.memory = profile.measured((status_bytes("VmHWM") or 0) / GIB)
    keep(engine.memory, path)
    log.info("memory: measured a render at %dx%d: it peaks at %.2f GiB (estimated %.2f; kept)", width, height,
             engine.memory.largest.gib, profile.largest.gib)


def keep(profile: MemoryProfile, path: Path) -> None:
    """``profile`` in ``path``, whole (workers on one cache folder may keep theirs at once)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(path, json.dumps(profile.to_record()).encode())
    except OSError as error:
        log.warning("could not keep the memory profile in %s: %s", path, error)


def peak_of(engine: Engine, aspect: int) -> Peak:
    reset_peak()
    spec = replace(spec_from_params(RenderParams(0, 0, 0, aspect, 18, 75, 0, 0)), steps=1)
    engine.generate(spec)
    return Peak(spec.width, spec.height, (status_bytes("VmHWM") or 0) / GIB)
