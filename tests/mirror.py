"""The README's "Adding a job kind" walk-through, for real: a kind that flips a stored image, declared once.

In ``src/aleaart/jobs/`` it would be decorated with ``@register``; here its test registers it for its own tests only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from PIL import Image

from aleaart.jobs.image_kind import FromStoredImage, ImageRoutes, SourceImage
from aleaart.jobs.kind import Artifact, CliForm, Offer, RunContext, option
from aleaart.jobs.render import Pixels
from aleaart.params import RenderSpec

FLIPS = {"horizontal": Image.Transpose.FLIP_LEFT_RIGHT, "vertical": Image.Transpose.FLIP_TOP_BOTTOM}


@dataclass(frozen=True)
class MirrorRequest(FromStoredImage):
    """The image flipped along ``axis``: horizontal (left to right) or vertical (top to bottom)."""

    source: SourceImage
    axis: str = option("horizontal", "horizontal: left to right; vertical: top to bottom", choices=tuple(FLIPS))

    kind: ClassVar[str] = "mirror"
    operation: ClassVar[str] = "mirror"  # what its stored file's record says it is
    action: ClassVar[str] = "c2pa.orientation"  # what its Content Credentials say was done
    routes: ClassVar[ImageRoutes] = ImageRoutes("mirror", "Mirror")  # POST /images/{key}/mirror, body MirrorBody
    cli: ClassVar[CliForm] = CliForm("mirror", "flip a PNG aleaart made")  # aleaart mirror IMAGE --axis vertical
    offer: ClassVar[Offer] = Offer("Mirror", "Mirrored", "The image flipped left to right.",  # a dashboard button
                                   {"axis": "horizontal"}, order=5)

    def settings(self) -> dict[str, Any]:
        return {"axis": self.axis}

    def result_spec(self) -> RenderSpec:
        return self.source.spec

    def total_steps(self) -> int:
        return 1

    def render(self, context: RunContext) -> Pixels:  # on the engine's thread: nothing to render
        return Pixels(self.source.pixels(context), 0.0, final=True)

    def encode(self, rendered: Pixels, context: RunContext) -> list[Artifact]:  # CPU only, on the encoder's thread
        return [self.artifact(rendered.image.transpose(FLIPS[self.axis]), rendered.seconds, context)]
