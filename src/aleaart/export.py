"""A collection made ready for IPFS: a folder and one CAR file holding it.

    <out>/images/<id>.png     the stored PNGs
    <out>/metadata/<id>       ERC-721 JSON whose image is ipfs://<images folder CID>/<id>.png
    <out>/manifest.json       per token: parameters, seed, derivedMatch, sha256, CID; and the CIDs
    <out>/collection.car      images/ and metadata/ as UnixFS; pin this one file to publish them
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aleaart.car import CarWriter, car_header
from aleaart.metadata import FileIds, token_metadata
from aleaart.params import RenderSpec
from aleaart.provenance.credentials import file_provenance
from aleaart.store import ImageStore, StoredImage

if TYPE_CHECKING:  # web3 loads with the chain reader: importing the job kinds should not pull it in
    from aleaart.chain import TokenInfo


@dataclass(frozen=True)
class ExportedToken:
    info: TokenInfo
    image: StoredImage


@dataclass(frozen=True)
class Export:
    root_cid: str
    images_cid: str
    metadata_cid: str
    car: Path

    def to_json(self) -> dict[str, str]:
        return {"rootCid": self.root_cid, "imagesCid": self.images_cid, "metadataCid": self.metadata_cid,
                "car": str(self.car)}


def export_collection(out: Path, tokens: list[ExportedToken], store: ImageStore) -> Export:
    """Write the folder and its CAR (streaming: one image in memory at a time); returns the CIDs."""
    images, metadata = out / "images", out / "metadata"
    images.mkdir(parents=True, exist_ok=True)
    metadata.mkdir(parents=True, exist_ok=True)
    ids: dict[int, FileIds] = {}
    provenance: dict[int, dict[str, Any]] = {}
    for token in tokens:
        png = store.path_of(token.image.file).read_bytes()
        (images / f"{token.info.token_id}.png").write_bytes(png)
        ids[token.info.token_id] = FileIds.of(png)  # hashed once, for the manifest and the metadata
        provenance[token.info.token_id] = file_provenance(png)
    car = out / "collection.car"
    partial = car.with_name(car.name + ".partial")
    with open(partial, "wb") as handle:
        writer = CarWriter(handle)
        images_node = writer.add_folder(images)
        for token in tokens:
            write_metadata(metadata, token, images_cid=str(images_node.cid), ids=ids[token.info.token_id],
                           provenance=provenance[token.info.token_id])
        metadata_node = writer.add_folder(metadata)
        root = writer.add_directory({"images": images_node, "metadata": metadata_node})
        writer.finish(root.cid)
    os.replace(partial, car)
    export = Export(root_cid=str(root.cid), images_cid=str(images_node.cid), metadata_cid=str(metadata_node.cid),
                    car=car)
    manifest = [{**manifest_entry(token, ids[token.info.token_id]), "provenance": provenance[token.info.token_id]}
                for token in tokens]
    (out / "manifest.json").write_text(json.dumps({**export.to_json(), "tokens": manifest}, indent=1) + "\n")
    return export


def manifest_entry(token: ExportedToken, ids: FileIds) -> dict[str, Any]:
    info = token.info
    return {
        "tokenId": str(info.token_id),
        "parameters": info.params.to_json(),
        "seed": "0x" + info.seed.hex(),
        "derivedMatch": info.derived_match,
        "sha256": ids.sha256,
        "cid": ids.cid,
    }


def write_metadata(folder: Path, token: ExportedToken, *, images_cid: str, ids: FileIds,
                   provenance: dict[str, Any]) -> None:
    token_id = str(token.info.token_id)
    data = token_metadata(token_id=token_id, params=token.info.params, spec=RenderSpec.from_canonical(token.image.spec),
                          image_url=f"ipfs://{images_cid}/{token_id}.png", model=token.image.model, stored=ids,
                          provenance=provenance)
    (folder / token_id).write_text(json.dumps(data, indent=1) + "\n")


class _BodyDigest:
    """A write-only stream that hashes what CarWriter writes after its header (the header, written first and
    again once the root is known, is compared on its own)."""

    def __init__(self) -> None:
        self.sha256 = hashlib.sha256()
        self._header_next = True

    def write(self, data: bytes) -> int:
        if self._header_next:
            self._header_next = False
        else:
            self.sha256.update(data)
        return len(data)

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        self._header_next = whence == os.SEEK_SET and offset == 0
        return offset


def check_export(out: Path) -> dict[str, Any]:
    """An export folder against its own manifest: each image's sha256 and CID, and the CAR, written again from the
    folder (it is deterministic), against the one there and its root CID."""
    manifest = json.loads((out / "manifest.json").read_text())
    tokens = []
    for entry in manifest["tokens"]:
        path = out / "images" / f"{entry['tokenId']}.png"
        data = path.read_bytes() if path.is_file() else b""
        ids = FileIds.of(data)
        tokens.append({"tokenId": entry["tokenId"], "file": str(path), "present": path.is_file(),
                       "sha256Matches": ids.sha256 == entry["sha256"], "cidMatches": ids.cid == entry["cid"]})
    sink = _BodyDigest()
    writer = CarWriter(sink)  # type: ignore[arg-type]
    root = writer.add_directory({"images": writer.add_folder(out / "images"),
                                 "metadata": writer.add_folder(out / "metadata")})
    writer.finish(root.cid)
    header = car_header(root.cid)
    car = (out / "collection.car").read_bytes() if (out / "collection.car").is_file() else b""
    car_matches = car[:len(header)] == header and hashlib.sha256(car[len(header):]).digest() == sink.sha256.digest()
    return {"tokens": tokens, "rootCid": str(root.cid), "rootCidMatches": str(root.cid) == manifest["rootCid"],
            "carMatches": car_matches}
