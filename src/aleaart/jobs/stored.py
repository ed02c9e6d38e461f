"""What the store already holds for a request: its result under any recipe results can have now (the loaded
model's, or each GPU worker's), or the same picture asked for through another body."""

from __future__ import annotations

from collections.abc import Callable

from aleaart.jobs.kind import JobRequest, Recipe
from aleaart.store import FindImage, ImageStore, StoredImage


class StoredResults:
    def __init__(self, store: ImageStore, recipes: Callable[[], list[Recipe]]) -> None:
        self.store = store
        self.recipes = recipes

    def lookup(self, request: JobRequest) -> tuple[StoredImage, ...] | None:
        """The stored result, if there is one (under its own key, or the same picture through another body)."""
        return self._find(request, self.store.get, same_picture=True)

    def remembered(self, request: JobRequest) -> tuple[StoredImage, ...] | None:
        """``lookup`` from memory only, for results looked up before (safe on the event loop); None otherwise."""
        return self._find(request, self.store.known)

    def _find(self, request: JobRequest, find: FindImage, *, same_picture: bool = False
              ) -> tuple[StoredImage, ...] | None:
        for recipe in self.recipes():
            if (stored := request.stored(request.key(recipe), find)) is not None:
                return stored
            if same_picture and (same := request.same_picture(recipe, self.store)) is not None:
                return (same,)
        return None
