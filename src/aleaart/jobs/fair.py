"""Fair shares: the order waiting jobs run in. The more urgent priority first; within one, the owners (keys) take
turns, each owner's jobs first come, first served, and an owner of weight w takes w in a row in each turn. So one
key's 200 waiting renders delay another key's single render by at most one render per engine (w with weight w).
Pure: no threads, no clock."""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass
class Turn(Generic[T]):
    """One owner's place in a priority's round: its items in arrival order, and how many it took this turn."""

    items: deque[T] = field(default_factory=deque)
    weight: int = 1
    taken: int = 0


class FairQueue(Generic[T]):
    def __init__(self) -> None:
        # priority → owner → its turn; an owner's place in the dict is its place in the round
        self._levels: dict[int, OrderedDict[str, Turn[T]]] = {}

    def __len__(self) -> int:
        return sum(len(turn.items) for level in self._levels.values() for turn in level.values())

    def push(self, item: T, *, priority: int, owner: str, weight: int = 1) -> None:
        """Wait behind ``owner``'s earlier items; a new owner takes its turn after every owner waiting now.
        ``weight`` (at least 1) is how many of its items the owner takes in a row each turn, from now on."""
        turn = self._levels.setdefault(priority, OrderedDict()).setdefault(owner, Turn())
        turn.items.append(item)
        turn.weight = max(1, weight)

    def push_back_first(self, item: T, *, priority: int, owner: str) -> None:
        """Return an item just popped (it could not be handed on): it is the next to pop again."""
        level = self._levels.setdefault(priority, OrderedDict())
        turn = level.setdefault(owner, Turn())
        turn.items.appendleft(item)
        turn.taken = max(0, turn.taken - 1)
        level.move_to_end(owner, last=False)

    def pop(self) -> T | None:
        """The next item: the most urgent priority's owner whose turn it is, its oldest; after ``weight`` items
        (or its last) the owner goes to the end of the round."""
        if not self._levels:
            return None
        priority = min(self._levels)
        level = self._levels[priority]
        owner, turn = next(iter(level.items()))
        item = turn.items.popleft()
        turn.taken += 1
        if not turn.items:
            del level[owner]
        elif turn.taken >= turn.weight:
            turn.taken = 0
            level.move_to_end(owner)
        if not level:
            del self._levels[priority]
        return item
