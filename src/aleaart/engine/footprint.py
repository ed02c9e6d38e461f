"""What the loaded model costs in memory, measured once per model, runtime and versions (the recipe) and kept in the
cache folder: the resident set between jobs, and the peaks of one-step renders at 512x512 and at the largest aspect
(a render's peak does not depend on its steps). A later start reads it instead of rendering."""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from aleaart.engine.residency import PARTS
from aleaart.errors import AleaArtError
from aleaart.memory import GIB, MemoryProfile, Peak, reset_peak, status_bytes
from aleaart.params import ASPECTS, RenderParams, spec_from_params

if TYPE_CHECKING:
    from aleaart.engine.pipeline import Engine

log = logging.getLogger(__name__)

SQUARE = 0
LARGEST = max(range(len(ASPECTS)), key=lambda index: ASPECTS[index].width * ASPECTS[index].height)


def memory_profile(engine: Engine, cache_dir: Path) -> MemoryProfile | None:
    """The engine's profile, read from the cache or measured now (None where this system has no /proc)."""
    key = json.dumps(engine.recipe, sort_keys=True)
    path = cache_dir / "memory" / f"{hashlib.sha256(key.encode()).hexdigest()[:16]}.json"
    try:
        profile = MemoryProfile.from_record(json.loads(path.read_text()))
    except (OSError, ValueError, KeyError, TypeError):
        if (profile := measure(engine)) is None:
            return None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(profile.to_record()))
        except OSError as error:
            log.warning("could not keep the memory profile in %s: %s", path, error)
    small, largest = profile.small, profile.largest
    log.info("memory: %.2f GiB resident between jobs; a render peaks at %.2f GiB at %dx%d and %.2f GiB at %dx%d",
             profile.resident_gib, small.gib, small.width, small.height, largest.gib, largest.width, largest.height)
    return profile


def measure(engine: Engine) -> MemoryProfile | None:
    """Resident set now (the model prepared, nothing running) and the peaks over one-step renders at 512x512 and at
    the largest aspect, each from a reset peak (or from the start, where the peak cannot be reset: an overestimate)."""
    engine.core.current.release(PARTS)  # as between jobs: nothing read for loading stays
    resident = status_bytes("VmRSS")
    if resident is None:
        return None
    started = time.perf_counter()
    try:
        small, largest = (peak_of(engine, aspect) for aspect in (SQUARE, LARGEST))
    except AleaArtError as error:  # out of device memory at Portrait: serve what fits, unmeasured
        log.warning("could not measure the memory a render needs (%s); ALEAART_MAX_RSS_GB is not checked", error)
        return None
    log.info("measured the memory a render needs in %.1f s (once: kept in the cache)", time.perf_counter() - started)
    return MemoryProfile(resident / GIB, small, largest)


def peak_of(engine: Engine, aspect: int) -> Peak:
    reset_peak()
    spec = replace(spec_from_params(RenderParams(0, 0, 0, aspect, 18, 75, 0, 0)), steps=1)
    engine.generate(spec)
    return Peak(spec.width, spec.height, (status_bytes("VmHWM") or 0) / GIB)
