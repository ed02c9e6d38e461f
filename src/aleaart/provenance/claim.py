"""What an image's Content Credentials say (pure): the C2PA manifest definition of a stored file, the IPTC marking
in XMP, the pixel hash that is an image's identity, and the recipe class within which re-renders are bit-exact.

Signing and reading them is ``credentials.py`` (the CAI's SDK); comparing a file with a re-render is ``verify.py``.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from typing import Any

from PIL import Image

DIGITAL_SOURCE_TYPE = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
LABEL = "art.alea.render"  # the aleaart assertion, under the project's reverse domain
ASSERTION_VERSION = 1

# The C2PA action each way of making a stored file is: an image rendered from its spec is created; the rest are
# made from another image (their parentOf ingredient), which the manifest says was opened first.
XMP = ('<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>'
       '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
       '<rdf:Description rdf:about="" xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/">'
       f'<Iptc4xmpExt:DigitalSourceType>{DIGITAL_SOURCE_TYPE}</Iptc4xmpExt:DigitalSourceType>'
       '</rdf:Description></rdf:RDF></x:xmpmeta><?xpacket end="r"?>')
"""IPTC's DigitalSourceType in XMP, for readers that know XMP but not C2PA."""


STRIP_ROWS = 256  # hashed a strip of rows at a time: no second copy of a whole frame's bytes


def pixel_hash(image: Image.Image) -> str:
    """sha256 of the decoded RGB bytes: the image's identity, whatever the file's chunks or signature."""
    rgb = image if image.mode == "RGB" else image.convert("RGB")
    digest = hashlib.sha256()
    for top in range(0, rgb.height, STRIP_ROWS):
        digest.update(rgb.crop((0, top, rgb.width, min(rgb.height, top + STRIP_ROWS))).tobytes())
    return digest.hexdigest()


def recipe_class(recipe: dict[str, str]) -> str:
    """The class within which the same spec gives the same pixels: the weights, where and how they run, and
    the versions that compute them (a re-render in another class is near, not equal)."""
    backend = recipe.get("backend", "torch")
    return "/".join([recipe.get("model", "?"), recipe.get("device", "?"), recipe.get("dtype", "?"), backend,
                     f"torch-{recipe.get('torch', '?')}", f"diffusers-{recipe.get('diffusers', '?')}"])


@dataclass(frozen=True)
class Parent:
    """The image a derived file was made from: its key, and its file's bytes where they are at hand (then its own
    Content Credentials travel inside this file's, and the chain of edits can be walked offline)."""

    key: str
    data: bytes | None = None
    mime: str = "image/png"


@dataclass(frozen=True)
class Claim:
    """What one stored file's manifest says."""

    title: str
    action: str  # the C2PA action its kind declares (JobRequest.action): c2pa.created, c2pa.edited, ...
    software_agent: str
    assertion: dict[str, Any]
    parent: Parent | None = None
    generator: dict[str, str] = field(default_factory=dict)

    def manifest(self) -> dict[str, Any]:
        """The manifest definition the SDK's Builder takes."""
        return {
            "claim_generator_info": [self.generator] if self.generator else [],
            "title": self.title,
            "assertions": [{"label": "c2pa.actions", "data": {"actions": self.actions()}},
                           {"label": LABEL, "data": self.assertion}],
        }

    def actions(self) -> list[dict[str, Any]]:
        made = {"action": self.action, "digitalSourceType": DIGITAL_SOURCE_TYPE,
                "softwareAgent": {"name": self.software_agent}}
        if self.parent is None:
            return [{**made, "action": "c2pa.created"}]
        opened = {"action": "c2pa.opened", "parameters": {"ingredientIds": [PARENT_LABEL]}}
        return [opened, made]

    def ingredient(self) -> dict[str, Any] | None:
        """The parentOf ingredient's definition (the SDK adds the parent's bytes and manifest where given)."""
        if self.parent is None:
            return None
        return {"title": f"{self.parent.key[:16]}.png", "relationship": "parentOf", "format": self.parent.mime,
                "instance_id": f"aleaart:key:{self.parent.key}", "label": PARENT_LABEL}


PARENT_LABEL = "parent"


def software_agent(version: str, recipe: dict[str, str], weights: str) -> str:
    """aleaart, its version and the model: its name and weights' sha256."""
    return f"aleaart {version} ({recipe.get('model', '?')}, weights sha256 {weights})"


def render_assertion(*, key: str, kind: str, spec: dict[str, Any], params: dict[str, int] | None,
                     token_id: str | None, chain: dict[str, Any] | None, recipe: dict[str, str],
                     details: dict[str, Any], pixels: str | None, size: tuple[int, int],
                     source: str | None = None, operation: dict[str, Any] | None = None) -> dict[str, Any]:
    """The aleaart assertion: everything a verifier needs to render the image again and say how close it is."""
    return {
        "version": ASSERTION_VERSION,
        "key": key,
        "kind": kind,
        "tokenId": token_id,
        "renderParams": params,
        "chain": chain if params is not None and token_id is not None else None,
        "spec": spec,
        "recipe": strict_json({**recipe, **details}),
        "recipeClass": recipe_class(recipe),
        "pixels": {"sha256": pixels, "width": size[0], "height": size[1]} if pixels is not None else None,
        "source": source,
        "operation": operation,
    }


def strict_json(value: Any) -> Any:
    """``value`` with its non-finite floats as strings ("-inf"): the C2PA SDK reads strict JSON, and a scheduler's
    config may hold them (DPMSolverMultistepScheduler's lambda_min_clipped is -inf)."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: strict_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [strict_json(v) for v in value]
    return value


def metadata_provenance(assertion: dict[str, Any] | None, pixel_sha256: str | None,
                        verify_url: str | None) -> dict[str, Any]:
    """What ERC-721 metadata and a collection's manifest say about how to verify the image (readers that do not
    know the key ignore it)."""
    return {
        "standard": "C2PA Content Credentials",
        "digitalSourceType": DIGITAL_SOURCE_TYPE,
        "pixelSha256": pixel_sha256,
        "recipeClass": (assertion or {}).get("recipeClass"),
        "verify": verify_url or "aleaart verify <file> --token <tokenId> --rerender",
    }
