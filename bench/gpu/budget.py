"""Time budgets for the GPU check: the whole check has one, each part its own within it, and a part asks before
each step whether the step's estimate still fits. A part that cannot start, or a step that does not fit, is
skipped and says so; nothing is cut off midway (a CUDA call cannot be)."""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

MIN_PART_SECONDS = 5.0  # a part given less than this is skipped rather than started


@dataclass
class PartBudget:
    name: str
    deadline: float
    clock: Callable[[], float]
    skipped: list[str] = field(default_factory=list)

    def left(self) -> float:
        return max(0.0, self.deadline - self.clock())

    def allows(self, step: str, estimate: float) -> bool:
        """Whether ``step`` (about ``estimate`` seconds) fits what is left; if not, it is noted as skipped."""
        if self.left() >= estimate:
            return True
        self.skipped.append(f"{step}: needs about {estimate:.0f} s, {self.left():.0f} s left")
        return False


@dataclass
class PartResult:
    name: str
    status: str  # ok, failed or skipped
    seconds: float
    rows: list[dict[str, Any]]
    note: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"part": self.name, "status": self.status, "seconds": round(self.seconds, 1), "rows": self.rows,
                "note": self.note}


class Budget:
    def __init__(self, total_seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.deadline = clock() + total_seconds

    def remaining(self) -> float:
        return max(0.0, self.deadline - self.clock())

    def run(self, name: str, seconds: float, part: Callable[[PartBudget], list[dict[str, Any]]]) -> PartResult:
        """Run ``part`` within ``seconds`` (or what is left of the whole, if less); a failure is its result."""
        started = self.clock()
        if self.remaining() < MIN_PART_SECONDS:
            return PartResult(name, "skipped", 0.0, [], f"the check's budget is spent ({self.remaining():.0f} s left)")
        budget = PartBudget(name, started + min(seconds, self.remaining()), self.clock)
        try:
            rows = part(budget)
        except Exception as error:  # one part's failure is reported with the others' figures
            traceback.print_exc()
            return PartResult(name, "failed", self.clock() - started, [], f"{type(error).__name__}: {error}"[:500])
        note = "; ".join(budget.skipped) or None
        return PartResult(name, "ok", self.clock() - started, rows, f"skipped {note}" if note else None)
