"""A collection exported for IPFS: the folder (images, ERC-721 metadata, manifest) and its CAR, whose CIDs the
manifest and the metadata agree on (test_car.py checks the CAR against js-ipfs and ipfs-car)."""

from __future__ import annotations

import hashlib
import json

from ipfs_doubles import js_cid
from PIL import Image

from aleaart.chain import TokenInfo
from aleaart.database import Database
from aleaart.export import ExportedToken, check_export, export_collection
from aleaart.jobs.render import image_artifact
from aleaart.params import RenderParams, spec_from_params
from aleaart.provenance.claim import pixel_hash
from aleaart.store import ImageStore


def exported_tokens(store: ImageStore) -> list[ExportedToken]:
    tokens = []
    for token_id in (3, 11):
        params = RenderParams(token_id % 12, 1, 0, 0, 20, 75, 1000 + token_id, 5)
        spec = spec_from_params(params)
        artifact = image_artifact(Image.new("RGB", (64, 64), (token_id * 20, 40, 90)), spec, token_id=str(token_id),
                                  key=hashlib.sha256(f"k{token_id}".encode()).hexdigest(), model="fake",
                                  recipe={"model": "fake"}, seconds=0.1)
        image = store.put(artifact.record, artifact.data)
        tokens.append(ExportedToken(TokenInfo(token_id, params, bytes(32), params), image))
    return tokens


def test_the_folder_manifest_metadata_and_car_agree(tmp_path):
    db = Database(tmp_path / "index.db")
    try:
        store = ImageStore(tmp_path / "images", db)
        tokens = exported_tokens(store)
        export = export_collection(tmp_path / "out", tokens, store)
    finally:
        db.close()
    out = tmp_path / "out"
    assert sorted(p.name for p in (out / "images").iterdir()) == ["11.png", "3.png"]
    assert export.car == out / "collection.car" and export.car.stat().st_size > 0
    assert not list(out.glob("*.partial"))  # written aside, then moved in whole
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["rootCid"] == export.root_cid and manifest["imagesCid"] == export.images_cid
    for entry in manifest["tokens"]:
        png = (out / "images" / f"{entry['tokenId']}.png").read_bytes()
        assert entry["sha256"] == hashlib.sha256(png).hexdigest() and entry["cid"] == js_cid(png)
        assert entry["derivedMatch"] is True and entry["seed"] == "0x" + "00" * 32
        metadata = json.loads((out / "metadata" / entry["tokenId"]).read_text())
        assert metadata["image"] == f"ipfs://{export.images_cid}/{entry['tokenId']}.png"
        with Image.open(out / "images" / f"{entry['tokenId']}.png") as image:  # unsigned here: hashed from pixels
            assert entry["provenance"]["pixelSha256"] == pixel_hash(image) == metadata["provenance"]["pixelSha256"]
    assert check_export(out) == {"tokens": [
        {"tokenId": t["tokenId"], "file": str(out / "images" / f"{t['tokenId']}.png"), "present": True,
         "sha256Matches": True, "cidMatches": True} for t in manifest["tokens"]],
        "rootCid": export.root_cid, "rootCidMatches": True, "carMatches": True}
    (out / "images" / "3.png").write_bytes(b"another picture")
    checked = check_export(out)
    assert not checked["tokens"][0]["cidMatches"] and not checked["carMatches"]
