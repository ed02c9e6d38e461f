"""Fair shares: the order waiting jobs run in. The more urgent priority first; within one, the owners (keys) share
the engine by start-time fair queueing: each job gets a start tag, the later of "now" (the tag of the job that
started last) and when its owner's previous job's share ends, a share being 1/weight; the smallest tag goes first,
ties to the older job. So a key with 200 waiting renders delays another key's single render by at most one render
per engine, a key of weight w gets w renders for another's one, and a key that was idle gets no credit for it
(the share of a job that has just started counts: it is the owner's until the next turn).
Pure: no threads, no clock."""

from __future__ import annotations

import heapq
import itertools
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(order=True)
class Entry(Generic[T]):
    start: Fraction
    seq: int
    item: T = field(compare=False)


@dataclass
class Level(Generic[T]):
    """One priority's waiting items, and its virtual time."""

    heap: list[Entry[T]] = field(default_factory=list)
    now: Fraction = Fraction(0)  # the start tag of the item popped last
    finish: dict[str, Fraction] = field(default_factory=dict)  # owner → when its latest share ends


class FairQueue(Generic[T]):
    def __init__(self) -> None:
        self._levels: dict[int, Level[T]] = {}
        self._seq = itertools.count()
        self._last: tuple[int, Entry[T], Fraction] | None = None  # what unpop() puts back

    def __len__(self) -> int:
        return sum(len(level.heap) for level in self._levels.values())

    def push(self, item: T, *, priority: int, owner: str, weight: int = 1) -> None:
        """Wait for ``owner``'s next share; ``weight`` (at least 1) is how many of its items go for one of an
        owner of weight 1."""
        level = self._levels.setdefault(priority, Level())
        start = max(level.now, level.finish.get(owner, Fraction(0)))
        level.finish[owner] = start + Fraction(1, max(1, weight))
        heapq.heappush(level.heap, Entry(start, next(self._seq), item))
        self._last = None

    def pop(self) -> T | None:
        """The next item: the most urgent priority's smallest start tag (the older on a tie)."""
        waiting = [priority for priority, level in self._levels.items() if level.heap]
        if not waiting:
            self._last = None
            return None
        priority = min(waiting)
        level = self._levels[priority]
        entry = heapq.heappop(level.heap)
        self._last = (priority, entry, level.now)
        level.now = entry.start
        # an owner whose shares end by now owes nothing: forgetting it keeps this as small as those waiting
        level.finish = {owner: end for owner, end in level.finish.items() if end > level.now}
        return entry.item

    def unpop(self) -> None:
        """Put back the item just popped (it could not be handed on): it is the next to pop again."""
        if self._last is None:
            raise RuntimeError("unpop() follows a pop()")
        priority, entry, before = self._last
        level = self._levels[priority]
        level.now = before
        heapq.heappush(level.heap, entry)
        self._last = None
