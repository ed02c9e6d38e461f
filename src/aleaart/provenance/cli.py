"""`aleaart verify`: a file, a token's stored image, or a whole collection export, checked against their Content
Credentials and, with --rerender, against a render made here. Exits 1 when anything fails."""

from __future__ import annotations

import argparse
import io
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aleaart.config import Settings
from aleaart.errors import InvalidParams, NotFound
from aleaart.token_ids import parse_token_id

if TYPE_CHECKING:  # the SDK and the engine load only when a verify runs
    from PIL import Image

    from aleaart.provenance.verify import Rerender, Verification


def add_parser(commands: Any) -> None:
    parser = commands.add_parser("verify", help="check an image's Content Credentials, and how a re-render compares")
    parser.add_argument("path", nargs="?", help="a PNG, MP4 or WebP; or a collection export folder "
                        "(default with --token: the token's stored image)")
    parser.add_argument("--token", type=parse_token_id, help="check the file against this token's on-chain parameters")
    parser.add_argument("--rerender", action="store_true", help="render it again here and compare (slow)")
    parser.add_argument("--json", action="store_true", help="JSON instead of a table")
    parser.add_argument("--trust-anchors", type=Path, metavar="FILE", help="a PEM bundle of trust anchors: a "
                        "signer chaining to one is trusted (default: ALEAART_C2PA_TRUST_ANCHORS)")
    parser.set_defaults(run=cmd_verify)


def cmd_verify(args: argparse.Namespace, settings: Settings) -> None:
    from aleaart.provenance.verify import table

    if args.trust_anchors is not None:
        settings = settings.model_copy(update={"c2pa_trust_anchors": args.trust_anchors})
    path = Path(args.path) if args.path else None
    if path is not None and path.is_dir():
        ok = verify_export(path, settings, rerender=args.rerender, as_json=args.json)
    else:
        result = verify_one(path, args.token, settings, rerender=args.rerender)
        print(json.dumps(result.to_json(), indent=1) if args.json else table(result))
        ok = result.ok
    if not ok:
        raise SystemExit(1)


def verify_one(path: Path | None, token: int | None, settings: Settings, *, rerender: bool) -> Verification:
    from aleaart.provenance.verify import verify

    chain_params = token_spec = None
    if token is not None:
        from aleaart.chain import ChainReader
        from aleaart.jobs import RenderRequest

        info = ChainReader.from_settings(settings).token(token)
        chain_params = info.params.to_json()
        token_spec = RenderRequest.of_params(info.params, str(token), settings.palette_choice).spec.canonical()
        path = path or stored_image_of(token, settings)
    if path is None:
        raise InvalidParams("aleaart verify needs a file, a collection export folder, or --token N")
    return verify(str(path), read(path), chain_params=chain_params, token_id=str(token) if token is not None else None,
                  token_spec=token_spec, rerender=engine_rerender(settings) if rerender else None,
                  trust_anchors=trust_anchors(settings))


def verify_export(out: Path, settings: Settings, *, rerender: bool, as_json: bool) -> bool:
    """Every image of an export: its credentials (and re-render), its sha256 and CID against manifest.json, and
    the CAR against the folder."""
    from tqdm import tqdm

    from aleaart.export import check_export
    from aleaart.provenance.verify import verify

    if not (out / "manifest.json").is_file():
        raise InvalidParams(f"{out} is a folder without manifest.json: not a collection export")
    checked = check_export(out)
    render = engine_rerender(settings) if rerender else None
    results = []
    for token in tqdm(checked["tokens"], desc="verifying", unit="image", file=sys.stderr):
        path = Path(token["file"])
        result = verify(str(path), read(path), rerender=render, trust_anchors=trust_anchors(settings))
        results.append((token, result))
    files_ok = all(t["present"] and t["sha256Matches"] and t["cidMatches"] for t in checked["tokens"])
    ok = files_ok and checked["rootCidMatches"] and checked["carMatches"] and all(r.ok for _, r in results)
    if as_json:
        print(json.dumps({"ok": ok, **checked, "images": [r.to_json() for _, r in results]}, indent=1))
    else:
        for token, result in results:
            marks = "sha256 ok" if token["sha256Matches"] else "sha256 DIFFERS"
            marks += ", CID ok" if token["cidMatches"] else ", CID DIFFERS"
            print(f"{token['tokenId']:>8}  {result.inspection.verdict:<10} {marks}"
                  + (f", re-render {result.rerender.verdict}" if result.rerender else ""))
        print(f"root CID {checked['rootCid']}: {'matches' if checked['rootCidMatches'] else 'DIFFERS from'} the "
              f"manifest; CAR {'matches the folder' if checked['carMatches'] else 'DIFFERS from the folder'}")
        print("verdict  " + ("OK" if ok else "FAILED"))
    return ok


def engine_rerender(settings: Settings) -> Rerender:
    """Renders a spec with the engine the settings load (once, on first use), as the service would."""
    runner: Any = None

    def rerender(spec_json: dict[str, Any]) -> tuple[Image.Image, dict[str, Any]]:
        nonlocal runner
        from PIL import Image

        from aleaart.jobs import RenderRequest
        from aleaart.params import RenderSpec
        from aleaart.services import open_runner

        runner = runner or open_runner(settings)
        spec = RenderSpec.from_canonical(spec_json)
        [artifact] = runner.run(RenderRequest(spec))
        engine = runner.engine
        with Image.open(io.BytesIO(artifact.data)) as image:
            return image.convert("RGB"), {**engine.recipe, **engine.recipe_details(spec)}

    return rerender


def stored_image_of(token: int, settings: Settings) -> Path:
    """The newest image this service stored for the token."""
    from aleaart.store import ImageStore

    store = ImageStore.open(settings.images_dir, settings.db_path)
    try:
        images, _ = store.list(token_id=str(token), kind="render", limit=1)
    finally:
        store.close()
    if not images:
        raise NotFound(f"no stored image of token {token} in {settings.images_dir}; give the file to verify")
    return settings.images_dir / images[0].file


def trust_anchors(settings: Settings) -> bytes | None:
    """The PEM bundle of trust anchors: --trust-anchors, else ALEAART_C2PA_TRUST_ANCHORS."""
    return read(Path(settings.c2pa_trust_anchors)) if settings.c2pa_trust_anchors else None


def read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as error:
        raise InvalidParams(f"cannot read {path}: {error.strerror or error}") from None
