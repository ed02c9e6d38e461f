"""Files no one here made, built with the C2PA SDK to have the properties of the public conformance files: a valid
manifest from another claim generator (no aleaart assertion), a file whose ingredient's manifest was changed
(its own manifest intact), and signers chaining to a root of the test's own, so trust anchors can be tried."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path

import c2pa
from PIL import Image
from tamper import CREDENTIALS_CHUNK, chunk, chunks

from aleaart.provenance.credentials import CHAIN_FILE, KEY_FILE, ROOT_FILE, _write_identity

OTHER_TOOL = {"name": "Other Camera App", "version": "5.1"}
CAPTURE = "http://cv.iptc.org/newscodes/digitalsourcetype/digitalCapture"


@dataclass(frozen=True)
class OtherSigner:
    """A signing chain under a root of its own (not the service's)."""

    chain: bytes
    key: bytes
    root: bytes

    @classmethod
    def make(cls, folder: Path) -> OtherSigner:
        folder.mkdir(parents=True, exist_ok=True)
        _write_identity(folder)
        return cls(*((folder / name).read_bytes() for name in (CHAIN_FILE, KEY_FILE, ROOT_FILE)))

    def sign(self, data: bytes, manifest: dict, parent: bytes | None = None) -> bytes:
        signer = c2pa.Signer.from_info(c2pa.C2paSignerInfo(c2pa.C2paSigningAlg.ES256, self.chain, self.key, None))
        with c2pa.Builder.from_json(json.dumps(manifest)) as builder, signer:
            if parent is not None:
                builder.add_ingredient(json.dumps({"title": "parent.png", "relationship": "parentOf",
                                                   "label": "parent"}), "image/png", io.BytesIO(parent))
            out = io.BytesIO()
            builder.sign(signer, "image/png", io.BytesIO(data), out)
            return out.getvalue()


def plain_png(colour: tuple[int, int, int] = (40, 90, 160), size: int = 48) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (size, size), colour).save(buffer, format="PNG")
    return buffer.getvalue()


def captured(title: str) -> dict:
    return {"claim_generator_info": [OTHER_TOOL], "title": title, "assertions": [
        {"label": "c2pa.actions", "data": {"actions": [{"action": "c2pa.created", "digitalSourceType": CAPTURE}]}}]}


def foreign_file(signer: OtherSigner) -> bytes:
    """Genuine, intact credentials from another tool: no aleaart assertion."""
    return signer.sign(plain_png(), captured("photo.png"))


def broken_ingredient_file(signer: OtherSigner) -> bytes:
    """A file whose own manifest is intact, made from a parent whose manifest (inside this file) was changed."""
    parent = signer.sign(plain_png((200, 30, 30)), captured("original.png"))
    opened = {"claim_generator_info": [OTHER_TOOL], "title": "edit.png", "assertions": [
        {"label": "c2pa.actions", "data": {"actions": [
            {"action": "c2pa.opened", "parameters": {"ingredientIds": ["parent"]}}]}}]}
    child = signer.sign(plain_png((30, 30, 200)), opened, parent=parent)
    out = [child[:8]]
    for kind, whole in chunks(child):
        if kind == CREDENTIALS_CHUNK:  # the parent's title is in its own claim only: change it there
            body = whole[8:-4]
            assert body.count(b"original.png") == 1
            whole = chunk(kind, body.replace(b"original.png", b"0riginal.png"))
        out.append(whole)
    return b"".join(out)
