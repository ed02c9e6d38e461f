"""Verify a file against its Content Credentials and against a re-render: what anyone can check about an image.

1. The credentials: the SDK's validation state and failing checks (the signer's trust among them), and whether
   the pixels changed since signing: C2PA's hard binding over the file, and the pixel hash in the aleaart
   assertion over the decoded pixels.
2. For a token: whether the recorded RenderParams equal the chain's.
3. A re-render compared with the file's pixels: ``exact`` (the same pixel hash), ``perceptual`` (pHash Hamming
   distance at most PERCEPTUAL_THRESHOLD) or ``mismatch``, naming every recipe field that differs between the
   file's recipe and the re-render's (bit-exact equality holds only within one recipe class).
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import imagehash
from PIL import Image

from aleaart.provenance.claim import pixel_hash
from aleaart.provenance.credentials import Read, read_credentials

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
    def pixels_changed(self) -> bool | None:
        """True if the hard binding failed or the pixels are not the recorded ones; None if nothing says."""
        if self.credentials.state in ("unsigned", "unreadable"):
            return None
        binding = any(code.startswith("assertion.dataHash") or code.startswith("assertion.bmffHash")
                      for code in self.credentials.failures)
        recorded = self.recorded_pixels
        return binding or (recorded is not None and self.pixel_sha256 is not None and recorded != self.pixel_sha256)

    @property
    def verdict(self) -> str:
        """unsigned, invalid (a check failed: tampered), untrusted (valid, by a signer no trust list knows),
        or valid."""
        read = self.credentials
        if read.state in ("unsigned", "unreadable"):
            return read.state
        if read.tampered or self.pixels_changed or self.assertion is None:
            return "invalid"
        return "untrusted" if read.untrusted else "valid"

    def to_json(self) -> dict[str, Any]:
        return {"verdict": self.verdict, **self.credentials.to_json(), "pixelsChanged": self.pixels_changed,
                "pixelSha256": self.pixel_sha256, "recordedPixelSha256": self.recorded_pixels,
                "hasAleaartAssertion": self.assertion is not None}


def inspect_file(data: bytes, mime: str | None = None, *, trust_anchors: bytes | None = None) -> Inspection:
    read = read_credentials(data, mime, trust_anchors=trust_anchors)
    try:
        with Image.open(io.BytesIO(data)) as opened:
            image = opened.convert("RGB")
    except OSError:  # a video, or not an image at all
        return Inspection(read, None, None)
    return Inspection(read, pixel_hash(image), image)


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
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Nothing failed: the signer's trust alone does not count (a local signer is untrusted by design)."""
        return (self.inspection.verdict in ("valid", "untrusted")
                and (self.token is None or self.token["match"])
                and (self.rerender is None or self.rerender.verdict != "mismatch"))

    def to_json(self) -> dict[str, Any]:
        return {"file": self.file, "ok": self.ok, "credentials": self.inspection.to_json(), "token": self.token,
                "rerender": self.rerender.to_json() if self.rerender else None,
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


def table(verification: Verification) -> str:
    """The answer as a readable table for the terminal."""
    data = verification.to_json()
    credentials = data["credentials"]
    rows = [("file", data["file"]),
            ("credentials", f"{credentials['verdict']} (C2PA {credentials['state']})"),
            ("failing checks", ", ".join(credentials["failures"]) or "none"),
            ("pixels changed", _yes_no(credentials["pixelsChanged"])),
            ("recipe class", data["recipeClass"] or "-")]
    if (token := data["token"]) is not None:
        rows.append((f"token {token['tokenId']}", "parameters equal the chain's" if token["match"]
                     else f"recorded {token['recorded']} but the chain has {token['chain']}"))
    if (rerender := data["rerender"]) is not None:
        rows.append(("re-render", f"{rerender['verdict']} (pHash distance {rerender['phashDistance']}, "
                                  f"threshold {rerender['threshold']})"))
        rows += [(f"  {d['field']}", f"file {d['file']}, here {d['here']}") for d in rerender["recipeDifferences"]]
    rows += [("note", note) for note in data["notes"]]
    rows.append(("verdict", "OK" if data["ok"] else "FAILED"))
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)


def _yes_no(value: bool | None) -> str:
    return "unknown" if value is None else ("yes" if value else "no")
