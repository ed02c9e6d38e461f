"""The base of job kinds made from an image's spec (variations, animations): one declaration per kind.

A kind subclasses ``SpecRequest`` as a frozen dataclass, declares its options with ``kind.option(...)`` and its HTTP
paths with ``SpecRoutes``, and says how it renders. Everything else follows from that declaration: its JSON form
and identity, its key (derived from the image's key), its stored files, and at the HTTP edge (``api/kinds.py``)
its request bodies in the seed's and the flat shape, its token route and their OpenAPI.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, ClassVar, Self

from aleaart.jobs.kind import JobRequest, Recipe
from aleaart.memory import RenderSize
from aleaart.metadata import derived_key, render_key
from aleaart.params import RenderSpec
from aleaart.store import FindImage, StoredImage
from aleaart.token_ids import check_token_id


@dataclass(frozen=True)
class SpecRoutes:
    """Where a kind is asked for over HTTP: ``path`` takes a seed or flat body with the options; ``token_path``
    (under /tokens/{token_id}/) takes the options for a token's image, its parameters read from the chain."""

    path: str
    token_path: str
    title: str  # names its bodies in OpenAPI: Seed<title>, Flat<title>, Token<title>


@dataclass(frozen=True)
class SpecRequest(JobRequest):
    """A job on the image ``spec`` and ``token`` name: its key derives from that image's key, and it stores
    one file per ``file_names`` entry."""

    spec: RenderSpec
    token: str | None
    routes: ClassVar[SpecRoutes]
    operation: ClassVar[str]  # what its stored files' records say they are

    @classmethod
    def of(cls, image: Any, **options: Any) -> Self:
        """This kind on the image ``image`` (a RenderRequest) asks for, with options by field name."""
        return cls(image.spec, image.token, **options)  # type: ignore[call-arg]

    def render_size(self) -> RenderSize | None:
        return RenderSize(self.spec.width, self.spec.height)

    @property
    def token_id(self) -> str | None:
        return self.token

    def option_values(self) -> dict[str, Any]:
        """The options by JSON name."""
        return {opt.name: getattr(self, field) for field, opt in self.options()}

    def settings(self) -> dict[str, Any]:
        """The options that shape the result: in the key and the stored files' records."""
        return self.option_values()

    def to_json(self) -> dict[str, Any]:
        return {"spec": self.spec.canonical(), "tokenId": self.token, **self.option_values()}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Self:
        options = {field: data[opt.name] for field, opt in cls.options() if opt.name in data}
        return cls(RenderSpec.from_canonical(data["spec"]), check_token_id(data.get("tokenId")),  # type: ignore[call-arg]
                   **options)

    def source_key(self, recipe: Recipe) -> str:
        """The key of the image this job starts from."""
        return render_key(self.spec, recipe, self.token)

    def key(self, recipe: Recipe) -> str:
        return derived_key(self.source_key(recipe), self.operation, self.settings(), recipe)

    def file_names(self) -> list[str]:
        """What tells the job's stored files apart (an index, a format), in the order its result lists them."""
        raise NotImplementedError

    def file_key(self, job_key: str, name: str) -> str:
        """The key of the job's file ``name``: derived from the job's key."""
        return hashlib.sha256(f"{job_key}:{name}".encode()).hexdigest()

    def stored(self, key: str, find: FindImage) -> tuple[StoredImage, ...] | None:
        files = [find(self.file_key(key, name)) for name in self.file_names()]
        return tuple(files) if all(f is not None for f in files) else None  # type: ignore[arg-type]
