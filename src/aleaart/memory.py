"""What a render needs in memory: the process's resident set as the kernel counts it, the profile measured once per
model and runtime (what stays resident, and the peak of a render at the largest size), and from it what a render of
another size will need, so a request that would pass ALEAART_MAX_RSS_GB is refused instead of the process being
killed by the OOM killer."""

from __future__ import annotations

import contextlib
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from aleaart.errors import InsufficientMemory

GIB = 2**30
STATUS = Path("/proc/self/status")


def status_bytes(field: str) -> int | None:
    """A size from /proc/self/status (VmRSS, VmHWM, RssAnon, RssFile), or None where there is none."""
    with contextlib.suppress(OSError):
        for line in STATUS.read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    return None


def reset_peak() -> bool:
    """The kernel's peak resident set (VmHWM) back to the current one; False where it cannot be."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


@dataclass(frozen=True)
class RenderSize:
    """The largest render a job asks of the engine: ``images`` of ``width`` x ``height`` in one batch."""

    width: int
    height: int
    images: int = 1

    def __str__(self) -> str:
        return (f"{self.images} images of " if self.images > 1 else "") + f"{self.width}x{self.height}"


@dataclass(frozen=True)
class Peak:
    """The peak resident set over a render of ``width`` x ``height``."""

    width: int
    height: int
    gib: float

    @property
    def pixels(self) -> int:
        return self.width * self.height


@dataclass(frozen=True)
class MemoryProfile:
    """Measured once: the resident set with the model loaded and prepared, between jobs (``resident_gib``), and
    the peaks of renders at a small size and at the largest (``small``, ``largest``). Until a render of the largest
    size is measured (``estimated``), its peak is the line through two smaller sizes' measured peaks."""

    resident_gib: float
    small: Peak
    largest: Peak
    estimated: bool = False

    def measured(self, largest_gib: float) -> MemoryProfile:
        """This profile with the largest size's peak as measured."""
        return replace(self, largest=replace(self.largest, gib=largest_gib), estimated=False)

    def needs_gib(self, size: RenderSize) -> float:
        """The peak a render of ``size`` will need: the two measured peaks, joined by a line in pixels
        (activations grow with them; the weights a render reads in do not), never falling with more pixels (two
        peaks close in size can measure so, by the allocator's noise) nor below what stays resident."""
        slope = max(0.0, self.largest.gib - self.small.gib) / max(1, self.largest.pixels - self.small.pixels)
        needs = self.small.gib + slope * (size.width * size.height * size.images - self.small.pixels)
        return max(self.resident_gib, needs)

    def require(self, limit_gib: float | None, size: RenderSize) -> None:
        """Refuse ``size`` if it would need more than ``limit_gib``."""
        if limit_gib is None:
            return
        if (needs := self.needs_gib(size)) > limit_gib:
            raise InsufficientMemory(
                f"a render of {size} needs about {needs:.1f} GiB here, more than ALEAART_MAX_RSS_GB={limit_gib:g}: "
                "ask for a smaller size, or send it to a service with more memory")

    def to_json(self, limit_gib: float | None) -> dict[str, Any]:
        """For /health: the profile, and the limit renders are checked against (None: none)."""
        return {"residentGiB": round(self.resident_gib, 2),
                "peakGiB": {f"{peak.width}x{peak.height}": round(peak.gib, 2) for peak in (self.small, self.largest)},
                "largestEstimated": self.estimated, "maxRssGB": limit_gib}

    def to_record(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_record(cls, data: dict[str, Any]) -> MemoryProfile:
        return cls(float(data["resident_gib"]), Peak(**data["small"]), Peak(**data["largest"]),
                   bool(data.get("estimated", False)))
