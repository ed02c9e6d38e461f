"""The ``aleaart`` command: generate | token | render-token | serve | worker | collection | watch | make-tiny-model |
verify | keys, and a command for each job kind that declares one (variations, upscale, restyle, animation, ...)."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from aleaart.cli_jobs import add_kind_commands, cmd_generate, cmd_render_token
from aleaart.config import Settings
from aleaart.errors import AleaArtError, InvalidParams
from aleaart.provenance.cli import add_parser as add_verify_parser
from aleaart.token_ids import parse_token_id

EXIT_BAD_INPUT = 2
EXIT_FAILED = 1


def cmd_token(args: argparse.Namespace, settings: Settings) -> dict[str, Any]:
    from aleaart.chain import ChainReader, token_json

    reader = ChainReader.from_settings(settings)
    return token_json(reader.latest() if args.id == "latest" else reader.token(parse_token_id(args.id)))


def cmd_collection_render(args: argparse.Namespace, settings: Settings) -> dict[str, Any]:
    """Render tokens first..last through an in-process queue and export them; progress on stderr."""
    from aleaart.errors import error_for
    from aleaart.jobs import CollectionRequest, JobState
    from aleaart.services import Services

    last = args.to
    out = Path(args.out or f"collection-{args.first}-{last if last is not None else 'latest'}").resolve()
    services = Services.open(settings.model_copy(update={"broker_url": None}))  # this process renders
    services.start(resume=False, publish=False)  # the service's own queued jobs and pins are the service's
    try:
        job = services.queue.submit(CollectionRequest(out=str(out), first=args.first, last=last,
                                                      palette=settings.palette_choice))
        follow_collection(job)
    finally:
        services.close()
    status = job.status
    if status.state is not JobState.SUCCEEDED:
        raise error_for(status.code, status.error or f"the collection {status.state.value}")
    return {"jobId": job.id, **(status.summary or {})}


def follow_collection(job: Any) -> None:
    """A progress bar of tokens done/total, images a minute, ETA and failures, until the job ends."""
    from tqdm import tqdm

    with tqdm(desc="tokens", unit="token", file=sys.stderr) as bar:
        started = time.monotonic()
        while not job.wait_done(0.5):
            status = job.status
            bar.total = status.total_steps or None
            bar.n = status.step
            minutes = (time.monotonic() - started) / 60
            failed = len((status.summary or {}).get("failed", {}))
            bar.set_postfix(images_per_min=f"{status.step / minutes:.1f}" if minutes else "-", failed=failed)
        bar.n = job.status.step
        bar.refresh()


def cmd_watch(args: argparse.Namespace, settings: Settings) -> None:
    from aleaart.logs import configure_logging

    configure_logging(settings.log_format)
    watch(settings.model_copy(update={"watch": True}), progress=not args.no_progress)


def watch(settings: Settings, *, loader: Any = None, progress: bool = True) -> None:
    """Follow the contract until SIGTERM or Ctrl-C: render in this process, or only enqueue for GPU workers
    with ALEAART_BROKER_URL. ``loader`` replaces the engine (a test's)."""
    import signal

    from aleaart.services import Services

    services = Services.open(settings, loader=loader)
    # Pins and records that failed, and the service's own queued jobs, are the API's to retry: a second process
    # doing it too would race it. This one pins what it renders, once.
    services.start(resume=False, publish=False, start_watcher=False)
    watcher = services.watcher
    assert watcher is not None
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: watcher.stop(timeout=0))
    try:
        with reading_bar(watcher, enabled=progress):
            watcher.run()
    finally:
        services.close()


@contextlib.contextmanager
def reading_bar(watcher: Any, *, enabled: bool) -> Iterator[None]:
    """A progress bar of blocks read while the watcher backfills, with tokens found and rendered."""
    from tqdm import tqdm

    with tqdm(desc="blocks", unit="block", file=sys.stderr, disable=not enabled) as bar:
        def show(progress: Any) -> None:
            bar.total = progress.target - progress.first + 1
            bar.n = progress.cursor - progress.first + 1
            status = watcher.journal.status()
            bar.set_postfix(tokens=status.seen, rendered=status.rendered, pending=status.pending, refresh=False)
            bar.refresh()

        watcher.on_progress = show
        yield


def cmd_make_tiny_model(args: argparse.Namespace, settings: Settings) -> dict[str, Any]:
    from aleaart.engine.tiny import make_tiny_model

    folder = make_tiny_model(Path(args.dir))
    result: dict[str, Any] = {"folder": str(folder)}
    if args.single_file:
        from diffusers import StableDiffusionPipeline

        from aleaart.engine.checkpoint import export_single_file

        pipeline = StableDiffusionPipeline.from_pretrained(folder, local_files_only=True, safety_checker=None)
        result["singleFile"] = str(export_single_file(pipeline, Path(args.single_file)))
    if args.lora:
        from aleaart.engine.tiny import build_tiny_pipeline, write_tiny_lora

        result["lora"] = str(write_tiny_lora(build_tiny_pipeline(), Path(args.lora), seed=args.lora_seed))
    return result


def cmd_serve(args: argparse.Namespace, settings: Settings) -> None:
    from aleaart.api import create_app
    from aleaart.database import Database
    from aleaart.logs import configure_logging
    from aleaart.server import serve

    configure_logging(settings.log_format)
    for path in (settings.db_path, settings.journal_path):  # a disk too full to open them is said here, in a line
        Database(path).close()
    serve(create_app(settings), host=args.host or settings.host, port=args.port or settings.port,
          drain_seconds=settings.drain_seconds,
          header_timeout=settings.header_timeout_seconds)


def cmd_worker(args: argparse.Namespace, settings: Settings) -> None:
    from aleaart.cluster.worker import serve_worker
    from aleaart.services import open_runner

    if not settings.broker_url:
        raise InvalidParams("aleaart worker needs ALEAART_BROKER_URL (e.g. redis://127.0.0.1:6379/0), "
                            "the same as the API's")
    if args.device:
        settings = settings.model_copy(update={"device": args.device})
    if code := serve_worker(settings, lambda: open_runner(settings), name=args.name):
        raise SystemExit(code)


def cmd_keys(args: argparse.Namespace, settings: Settings) -> dict[str, Any]:
    """The API keys in the service's journal: create (the secret is printed this once), list, revoke, rotate."""
    from aleaart.database import Database
    from aleaart.keys import KeyRing, parse_scopes
    from aleaart.limits import Limits, Rate

    db = Database(settings.journal_path)
    try:
        ring = KeyRing(db, api_key=settings.api_key, admin_key=settings.admin_key)
        if args.keys_command == "create":
            limits = Limits(Rate.parse(args.rate) if args.rate else None, args.max_queued, args.renders_per_day)
            key, secret = ring.create(args.name, parse_scopes(args.scopes), limits, weight=args.weight)
            return {**key.to_json(), "secret": secret}
        if args.keys_command == "rotate":
            key, secret = ring.rotate(args.name, grace_hours=args.grace_hours)
            return {**key.to_json(), "secret": secret}
        if args.keys_command == "revoke":
            return ring.revoke(args.name).to_json()
        return {"keys": [key.to_json() for key in ring.list()]}
    finally:
        db.close()


def add_keys_parser(commands: Any) -> None:
    from aleaart.keys import DEFAULT_GRACE_HOURS, SCOPES

    keys = commands.add_parser("keys", help="API keys: each client its own, scoped, revocable")
    keys_commands = keys.add_subparsers(dest="keys_command", required=True)
    create = keys_commands.add_parser("create", help="a new key; its secret is printed this once")
    create.add_argument("--name", required=True, help="what it is for (frontend, team-b, ...)")
    create.add_argument("--scopes", required=True, help=f"comma-separated, of {', '.join(SCOPES)}")
    create.add_argument("--rate", help="requests it may make: 120/min, 2/s, 1000/hour (default: no limit)")
    create.add_argument("--max-queued", type=int, help="its renders waiting at once (default: no limit)")
    create.add_argument("--renders-per-day", type=int, help="its renders a day, UTC (default: no limit)")
    create.add_argument("--weight", type=int, default=1,
                        help="its share of the queue: its renders for one of a key of weight 1 (default 1)")
    keys_commands.add_parser("list", help="every key (never a secret)")
    revoke = keys_commands.add_parser("revoke", help="stop a key at once")
    revoke.add_argument("name")
    rotate = keys_commands.add_parser("rotate", help="a new secret; the old one works for the grace period")
    rotate.add_argument("name")
    rotate.add_argument("--grace-hours", type=float, default=DEFAULT_GRACE_HOURS,
                        help=f"how long the old secret keeps working (default {DEFAULT_GRACE_HOURS:g})")
    keys.set_defaults(run=cmd_keys)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="aleaart", description="AleaArt: on-chain art parameters to images.")
    commands = parser.add_subparsers(dest="command", required=True)

    generate = commands.add_parser("generate", help="render one image from RenderParams JSON")
    generate.add_argument("--params", required=True, help="RenderParams JSON, or @file.json")
    generate.add_argument("--token-id", help="the token id to record in the image and file name")
    generate.add_argument("--out", help="PNG path (default: art_token_<id>_<key>.png here)")
    generate.set_defaults(run=cmd_generate)

    token = commands.add_parser("token", help="a token's on-chain parameters, names and derivedMatch")
    token.add_argument("id", help="a token id, or 'latest'")
    token.set_defaults(run=cmd_token)

    render_token = commands.add_parser("render-token", help="render a token's image from its on-chain parameters")
    render_token.add_argument("id", help="a token id")
    render_token.add_argument("--out", help="PNG path (default: art_token_<id>_<key>.png here)")
    render_token.set_defaults(run=cmd_render_token)

    serve = commands.add_parser("serve", help="run the HTTP service (ALEAART_HOST/ALEAART_PORT)")
    serve.add_argument("--host", help="default: ALEAART_HOST or 0.0.0.0")
    serve.add_argument("--port", type=int, help="default: ALEAART_PORT or 8000")
    serve.set_defaults(run=cmd_serve)

    worker = commands.add_parser("worker", help="a GPU worker: loads the model once, runs jobs from "
                                 "ALEAART_BROKER_URL one at a time")
    worker.add_argument("--device", help="cuda, cuda:1, cpu … (default: ALEAART_DEVICE, else the best available)")
    worker.add_argument("--name", help="its name in /health and Flower (default: ALEAART_WORKER_NAME, else host-pid)")
    worker.set_defaults(run=cmd_worker)

    collection = commands.add_parser("collection", help="whole collections: render and export for IPFS")
    collection_commands = collection.add_subparsers(dest="collection_command", required=True)
    render = collection_commands.add_parser("render", help="render every ready token and export folder + CAR")
    render.add_argument("--from", dest="first", type=parse_token_id, default=1, help="first token id (default 1)")
    render.add_argument("--to", type=parse_token_id, help="last token id (default: the newest minted)")
    render.add_argument("--out", help="export folder (default: collection-<from>-<to> here)")
    render.set_defaults(run=cmd_collection_render)

    add_kind_commands(commands)
    add_verify_parser(commands)
    add_keys_parser(commands)

    watch_command = commands.add_parser("watch", help="follow the contract's EntropyFulfilled events and render "
                                        "each fulfilled token's image (backfilling from the deployment block)")
    watch_command.add_argument("--no-progress", action="store_true", help="no progress bar while backfilling")
    watch_command.set_defaults(run=cmd_watch)

    tiny = commands.add_parser("make-tiny-model", help="build the offline random-weight SD 1.x model")
    tiny.add_argument("dir", help="folder to write the diffusers pipeline to")
    tiny.add_argument("--single-file", help="also write it as one original-layout .safetensors file")
    tiny.add_argument("--lora", help="also write a random LoRA for it (a .safetensors to try uploads with)")
    tiny.add_argument("--lora-seed", type=int, default=0, help="the LoRA's random weights' seed (default 0)")
    tiny.set_defaults(run=cmd_make_tiny_model)
    return parser


def env_name(loc: tuple[Any, ...]) -> str:
    """The environment variable a Settings error location stands for."""
    name = "_".join(map(str, loc)).upper()
    return name if name.startswith("ALEAART_") else f"ALEAART_{name}"


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = Settings()  # read once, here, and passed down
    except ValidationError as error:
        problems = "; ".join(f"{env_name(e['loc'])}: {e['msg']}" for e in error.errors())
        print(f"aleaart: error: bad configuration: {problems}", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        result = args.run(args, settings)
    except InvalidParams as error:
        print(f"aleaart: error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except AleaArtError as error:
        print(f"aleaart: error: {error}", file=sys.stderr)
        return EXIT_FAILED
    if result is not None:
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
