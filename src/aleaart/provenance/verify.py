"""Verify a file against its Content Credentials and against a re-render: what anyone can check about an image.

1. Two questions kept apart. Are the file's credentials intact (the SDK alone: valid, untrusted, invalid,
   unsigned; every failing check with where it failed, the active manifest or an ingredient)? And is it an
   aleaart image: does it carry the aleaart assertion, and are its bytes (C2PA's hard binding) and its pixels
   (the assertion's pixel hash over the decoded pixels) the ones signed? A valid file another tool made is
   intact and not an aleaart image, never "invalid".
2. For a token: whether the recorded RenderParams equal the chain's.
3. A re-render compared with the file's pixels: ``exact`` (the same pixel hash), ``perceptual`` (pHash Hamming
   distance at most PERCEPTUAL_THRESHOLD) or ``mismatch``, naming every recipe field that differs between the
   file's recipe and the re-render's (bit-exact equality holds only within one recipe class).
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import imagehash
from PIL import Image

from aleaart.errors import ImageTooLarge, InvalidFile
from aleaart.jobs.upscale import MAX_LANCZOS_SIDE
from aleaart.provenance.claim import pixel_hash
from aleaart.provenance.credentials import Read, read_credentials

# The largest image this service makes (a 4x Lanczos upscale) bounds what verify decodes: pixels, not bytes, since
# a few hundred bytes of PNG can declare gigapixels.
MAX_SIDE = MAX_LANCZOS_SIDE
MAX_PIXELS = MAX_LANCZOS_SIDE * MAX_LANCZOS_SIDE

# pHash (64 bits) Hamming distance at or below which a re-render in another recipe class is the same picture.
# Measured by bench/bench_verify.py (the README's "Content Credentials"): the same spec across PyTorch f32,
# OpenVINO f32 and OpenVINO bf16 stays at or below 2, on the tiny model and on full-size SD 1.5; another seed of
# the same parameters is 20 or more (20-36 tiny, 22-26 SD 1.5). 10 keeps a margin of 8 and of 10.
PERCEPTUAL_THRESHOLD = 10

# The recipe fields that shape pixels, compared between a file and its re-render.
RECIPE_FIELDS = ("model", "weightsSha256", "device", "dtype", "precision", "backend", "torch", "diffusers",
                 "scheduler", "threads", "aleaart")

Rerender = Callable[[dict[str, Any]], tuple[Image.Image, dict[str, Any]]]
"""(the spec to render, canonical) → (its pixels, the recipe that rendered them)."""


@dataclass(frozen=True)
class Inspection:
    """A file, its credentials, and its pixels measured against the pixel hash they record."""

    credentials: Read
    pixel_sha256: str | None  # None for a file that is not an image (an MP4)
    image: Image.Image | None

    @property
    def assertion(self) -> dict[str, Any] | None:
        return self.credentials.assertion

    @property
    def recorded_pixels(self) -> str | None:
        return ((self.assertion or {}).get("pixels") or {}).get("sha256")

    @property
    def aleaart(self) -> bool:
        return self.assertion is not None

    @property
    def bytes_changed(self) -> bool | None:
        """True if C2PA's hard binding failed (the file's bytes are not the ones signed: a changed pixel, chunk or
        trailing byte alike); None for a file without readable credentials."""
        if self.credentials.state in ("unsigned", "unreadable"):
            return None
        return self.credentials.binding_broken

    @property
    def pixels_changed(self) -> bool | None:
        """True if the decoded pixels are not those the aleaart assertion records; None where nothing records them."""
        recorded = self.recorded_pixels
        if recorded is None or self.pixel_sha256 is None:
            return None
        return recorded != self.pixel_sha256

    @property
    def verdict(self) -> str:
        """Whether the credentials are intact, from the SDK alone (credentials.Read.verdict)."""
        return self.credentials.verdict

    @property
    def intact_aleaart(self) -> bool:
        """Intact credentials with the aleaart assertion, over the pixels it records."""
        return self.verdict in ("valid", "untrusted") and self.aleaart and self.pixels_changed is not True

    def to_json(self) -> dict[str, Any]:
        return {**self.credentials.to_json(), "aleaart": self.aleaart, "hasAleaartAssertion": self.aleaart,
                "bytesChanged": self.bytes_changed, "pixelsChanged": self.pixels_changed,
                "pixelSha256": self.pixel_sha256, "recordedPixelSha256": self.recorded_pixels}


def inspect_file(data: bytes, mime: str | None = None, *, trust_anchors: bytes | None = None) -> Inspection:
    """The file's credentials, and its pixels decoded within MAX_SIDE (InvalidFile or ImageTooLarge otherwise)."""
    read = read_credentials(data, mime, trust_anchors=trust_anchors)
    image = decoded(data)
    return Inspection(read, pixel_hash(image) if image is not None else None, image)


def decoded(data: bytes) -> Image.Image | None:
    """The image's RGB pixels; None for a file that is not an image (a video). Its size is checked before a pixel
    is decoded, and a text chunk that would inflate past Pillow's limit is refused, not read."""
    try:
        with warnings.catch_warnings():  # its size is checked here, against a tighter bound than Pillow's warning
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            opened = Image.open(io.BytesIO(data))  # reads the header (and text chunks) only
        width, height = opened.size
        if width > MAX_SIDE or height > MAX_SIDE or width * height > MAX_PIXELS:
            raise ImageTooLarge(f"the image declares {width}x{height} pixels; verify decodes at most "
                                f"{MAX_SIDE} on a side, the largest image this service makes")
        opened.load()
        return opened if opened.mode == "RGB" else opened.convert("RGB")  # one frame kept, not a copy of it
    except Image.DecompressionBombError as error:
        raise ImageTooLarge(f"the image is a decompression bomb ({error}); verify decodes at most {MAX_SIDE} on a "
                            "side, the largest image this service makes") from None
    except ValueError as error:  # Pillow's limit on what a text chunk inflates to, among others
        raise InvalidFile(f"the image cannot be read safely: {error}") from None
    except (OSError, SyntaxError):  # a video, or not an image at all
        return None



@dataclass(frozen=True)
class Match:
    verdict: str  # exact, perceptual or mismatch
    distance: int  # pHash Hamming distance, of 64 bits
    differences: tuple[dict[str, Any], ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"verdict": self.verdict, "phashDistance": self.distance, "threshold": PERCEPTUAL_THRESHOLD,
                "recipeDifferences": list(self.differences)}


def phash_distance(a: Image.Image, b: Image.Image) -> int:
    return int(imagehash.phash(a) - imagehash.phash(b))


def compare(file_image: Image.Image, rendered: Image.Image, *, recorded: dict[str, Any],
            here: dict[str, Any]) -> Match:
    """The file's pixels against a re-render's; ``recorded`` and ``here`` are the two recipes."""
    differences = recipe_differences(recorded, here)
    if file_image.size == rendered.size and pixel_hash(file_image) == pixel_hash(rendered):
        return Match("exact", 0, differences)
    distance = phash_distance(file_image, rendered)
    return Match("perceptual" if distance <= PERCEPTUAL_THRESHOLD else "mismatch", distance, differences)


def recipe_differences(recorded: dict[str, Any], here: dict[str, Any]) -> tuple[dict[str, Any], ...]:
    """Each pixel-shaping field whose value differs (e.g. backend openvino-…-bf16 in the file, torch here)."""
    flat_recorded, flat_here = _flat(recorded), _flat(here)
    return tuple({"field": name, "file": flat_recorded.get(name), "here": flat_here.get(name)}
                 for name in RECIPE_FIELDS if flat_recorded.get(name) != flat_here.get(name))


def _flat(recipe: dict[str, Any]) -> dict[str, Any]:
    flat = {**recipe}
    flat.setdefault("backend", "torch")  # absent from PyTorch eager's recipe, by design
    return flat


@dataclass
class Verification:
    """The whole answer for one file: its credentials, the token's parameters, the re-render."""

    file: str
    inspection: Inspection
    token: dict[str, Any] | None = None  # {"tokenId", "recorded", "chain", "match"}
    rerender: Match | None = None
    rerender_url: str | None = None  # where the re-render can be seen (the service's stored image)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """An intact aleaart image (the signer's trust alone does not count: a local signer is untrusted by design),
        whose token parameters and re-render, where checked, agree."""
        return (self.inspection.intact_aleaart
                and (self.token is None or self.token["match"])
                and (self.rerender is None or self.rerender.verdict != "mismatch"))

    def to_json(self) -> dict[str, Any]:
        return {"file": self.file, "ok": self.ok, "credentials": self.inspection.to_json(), "token": self.token,
                "rerender": {**self.rerender.to_json(), "imageUrl": self.rerender_url} if self.rerender else None,
                "recipeClass": (self.inspection.assertion or {}).get("recipeClass"), "notes": self.notes}


def verify(name: str, data: bytes, *, mime: str | None = None, chain_params: dict[str, int] | None = None,
           token_id: str | None = None, token_spec: dict[str, Any] | None = None, rerender: Rerender | None = None,
           trust_anchors: bytes | None = None) -> Verification:
    """Verify ``data``; with ``chain_params`` (a token's, read from the chain) check the recorded ones, and with
    ``rerender`` render ``token_spec`` (the token's, from the chain) or else the recorded spec, and compare."""
    inspection = inspect_file(data, mime, trust_anchors=trust_anchors)
    result = Verification(name, inspection)
    assertion = inspection.assertion or {}
    if chain_params is not None:
        recorded = assertion.get("renderParams")
        result.token = {"tokenId": token_id, "recorded": recorded, "chain": chain_params,
                        "match": recorded == chain_params}
    if rerender is not None and inspection.image is not None:
        spec = token_spec or assertion.get("spec")
        if spec is None:
            result.notes.append("no recorded spec and no token: nothing to render again")
        else:
            rendered, here = rerender(spec)
            result.rerender = compare(inspection.image, rendered, recorded=assertion.get("recipe", {}), here=here)
    return result


CREDENTIALS_IN_WORDS = {
    "valid": "intact, signed by a signer a trust anchor here knows",
    "untrusted": "intact, signed by a signer no trust anchor here knows (set ALEAART_C2PA_TRUST_ANCHORS to trust one)",
    "invalid": "a check failed: the file, or a file it was made from, changed after it was signed",
    "unsigned": "the file has no Content Credentials",
    "unreadable": "the file's Content Credentials cannot be read",
}


def table(verification: Verification) -> str:
    """The answer as a readable table for the terminal."""
    data = verification.to_json()
    credentials = data["credentials"]
    rows = [("file", data["file"]),
            ("credentials", f"{credentials['verdict']}: {CREDENTIALS_IN_WORDS[credentials['verdict']]}"),
            ("signer", credentials["signer"] or "-"),
            ("failing checks", "; ".join(f"{c['code']} ({c['where']})" for c in credentials["failingChecks"])
             or "none"),
            ("aleaart image", aleaart_in_words(credentials, data["recipeClass"])),
            ("bytes changed", _yes_no(credentials["bytesChanged"])),
            ("pixels changed", _yes_no(credentials["pixelsChanged"]))]
    if (token := data["token"]) is not None:
        rows.append((f"token {token['tokenId']}", "parameters equal the chain's" if token["match"]
                     else f"recorded {token['recorded']} but the chain has {token['chain']}"))
    if (rerender := data["rerender"]) is not None:
        rows.append(("re-render", f"{rerender['verdict']} (pHash distance {rerender['phashDistance']}, "
                                  f"threshold {rerender['threshold']})"))
        rows += [(f"  {d['field']}", f"file {d['file']}, here {d['here']}") for d in rerender["recipeDifferences"]]
    rows += [("note", note) for note in data["notes"]]
    rows.append(("verdict", "OK: an intact aleaart image" if data["ok"] else "FAILED: not an intact aleaart image"
                 + ("" if credentials["aleaart"] or credentials["verdict"] not in ("valid", "untrusted")
                    else " (its credentials are intact: another tool made them)")))
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)


def aleaart_in_words(credentials: dict[str, Any], recipe_class: str | None) -> str:
    if credentials["aleaart"]:
        return f"yes, recipe class {recipe_class or '-'}"
    if credentials["generator"]:
        return f"no: {credentials['generator']} made these credentials, not aleaart"
    return "no"


def _yes_no(value: bool | None) -> str:
    return "unknown" if value is None else ("yes" if value else "no")
