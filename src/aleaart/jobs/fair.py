"""Fair shares: the order waiting jobs run in. The more urgent priority first; within one, the owners (keys) take
turns, each owner's jobs first come, first served. So one key's 200 waiting renders delay another key's single
render by at most one render per engine (pure: no threads, no clock)."""

from __future__ import annotations

from collections import OrderedDict, deque
from typing import Generic, TypeVar

T = TypeVar("T")


class FairQueue(Generic[T]):
    def __init__(self) -> None:
        # priority → owner → that owner's items in arrival order; an owner's place in the dict is its turn
        self._levels: dict[int, OrderedDict[str, deque[T]]] = {}

    def __len__(self) -> int:
        return sum(len(items) for level in self._levels.values() for items in level.values())

    def push(self, item: T, *, priority: int, owner: str) -> None:
        """Wait behind ``owner``'s earlier items; a new owner takes its turn after every owner waiting now."""
        self._levels.setdefault(priority, OrderedDict()).setdefault(owner, deque()).append(item)

    def pop(self) -> T | None:
        """The next item: the most urgent priority's next owner's oldest; that owner goes to the end of the turn."""
        if not self._levels:
            return None
        priority = min(self._levels)
        level = self._levels[priority]
        owner, items = next(iter(level.items()))
        item = items.popleft()
        del level[owner]
        if items:
            level[owner] = items  # back of the turn
        if not level:
            del self._levels[priority]
        return item
