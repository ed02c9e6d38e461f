"""The ``aleaart`` command: generate | token | render-token | serve | worker | collection | watch | make-tiny-model |
verify, and a command for each job kind that declares one (variations, upscale, restyle, animation, ...)."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from aleaart.config import Settings
from aleaart.errors import AleaArtError, InvalidParams
from aleaart.params import RenderParams, RenderSpec, spec_from_params
from aleaart.provenance.cli import add_parser as add_verify_parser
from aleaart.token_ids import check_token_id, parse_token_id

EXIT_BAD_INPUT = 2
EXIT_FAILED = 1


def parse_params_argument(text: str) -> RenderParams:
    """``--params`` takes RenderParams JSON, or ``@file.json``."""
    if text.startswith("@"):
        try:
            text = Path(text[1:]).read_text(encoding="utf-8")
        except OSError as error:
            raise InvalidParams(f"cannot read --params file {text[1:]!r}: {error.strerror}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise InvalidParams(f"--params is not valid JSON: {error.msg} at character {error.pos}") from None
    return RenderParams.from_json(data)


def cmd_generate(args: argparse.Namespace, settings: Settings) -> dict[str, Any]:
    params = parse_params_argument(args.params)
    return render_to_file(spec_from_params(params, settings.palette_choice), check_token_id(args.token_id), args.out,
                          settings)


def cmd_token(args: argparse.Namespace, settings: Settings) -> dict[str, Any]:
    from aleaart.chain import ChainReader, token_json

    reader = ChainReader.from_settings(settings)
    return token_json(reader.latest() if args.id == "latest" else reader.token(parse_token_id(args.id)))


def cmd_render_token(args: argparse.Namespace, settings: Settings) -> dict[str, Any]:
    from aleaart.chain import ChainReader

    token_id = parse_token_id(args.id)
    info = ChainReader.from_settings(settings).token(token_id)
    result = render_to_file(spec_from_params(info.params, settings.palette_choice), str(token_id), args.out,
                            settings)
    return {**result, "derivedMatch": info.derived_match}


@contextlib.contextmanager
def step_bar(steps: int) -> Iterator[Callable[[int, int], None]]:
    """A progress bar of denoising steps on stderr, and the on_step callback that moves it."""
    from tqdm import tqdm  # imported here so bad input is answered before the heavy imports

    with tqdm(total=steps, desc="denoising", unit="step", file=sys.stderr) as bar:

        def on_step(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        yield on_step


def run_job(request: Any, settings: Settings, *, steps: int, source: bytes | None = None) -> tuple[Any, list[Any]]:
    """Run ``request`` as the service does (one Runner, the same outcomes), with a progress bar of ``steps`` on
    stderr; the runner and the job's artifacts, or its error. ``source``: the PNG a job starts from."""
    from aleaart.errors import error_for
    from aleaart.jobs import JobState
    from aleaart.jobs.runner import outcome_of
    from aleaart.services import open_runner

    runner = open_runner(settings)
    if source is not None:
        runner = dataclasses.replace(runner, read_png=lambda _key, _sha256: source)
    with step_bar(steps) as on_step:
        outcome = outcome_of(lambda: runner.run(request, on_step=on_step))
    if outcome.state is not JobState.SUCCEEDED:
        raise error_for(outcome.code, outcome.error or f"the job {outcome.state.value}")
    return runner, outcome.result


def render_to_file(spec: RenderSpec, token_id: str | None, out_path: str | None, settings: Settings) -> dict[str, Any]:
    """Render ``spec`` with a progress bar on stderr, write the PNG."""
    from aleaart.jobs import RenderRequest

    request = RenderRequest(spec, token_id)
    runner, [artifact] = run_job(request, settings, steps=spec.steps)
    out = write_file(artifact, out_path)
    return {
        "prompt": spec.prompt,
        "parameters": spec.summary(),
        "tokenId": token_id,
        "file": str(out),
        "key": runner.key(request),
        "model": runner.engine.model_name,
        "seconds": artifact.record.seconds,
    }


def write_file(artifact: Any, out_path: str | None) -> Path:
    """Write an artifact to ``out_path`` (default: its own file name, here)."""
    out = Path(out_path) if out_path else Path(artifact.record.file)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(artifact.data)
    return out


def run_kind(cls: Any, args: argparse.Namespace, settings: Settings) -> dict[str, Any]:
    """A job of a kind that declares a ``CliForm``, from its flags; its files written to --out."""
    from aleaart.jobs.spec_kind import SpecRequest

    options = {field: getattr(args, field) for field, _ in cls.options()}
    if issubclass(cls, SpecRequest):
        return run_spec_kind(cls, args, settings, options)
    return run_image_kind(cls, args, settings, options)


def run_spec_kind(cls: Any, args: argparse.Namespace, settings: Settings, options: dict[str, Any]) -> dict[str, Any]:
    """A kind made from an image's parameters: its files into the folder --out."""
    from aleaart.jobs import RenderRequest

    image = RenderRequest.of_params(parse_params_argument(args.params), check_token_id(args.token_id),
                                    settings.palette_choice)
    request = cls.of(image, **options)  # bad input is answered before torch loads
    runner, artifacts = run_job(request, settings, steps=request.total_steps())
    files = [write_file(artifact, str(Path(args.out) / artifact.record.file)) for artifact in artifacts]
    return {"source": request.source_key(runner.engine.recipe), **request.option_values(),
            "files": [str(f) for f in files], "model": runner.engine.model_name}


def run_image_kind(cls: Any, args: argparse.Namespace, settings: Settings, options: dict[str, Any]) -> dict[str, Any]:
    """A kind that starts from a PNG this service (or the CLI) wrote; the result is written to --out."""
    from aleaart.jobs import SourceImage

    data = read_input_png(args.image)
    request = cls(SourceImage.from_png(data), **options)  # bad input is answered before torch loads
    runner, [artifact] = run_job(request, settings, steps=request.total_steps(), source=data)
    out = write_file(artifact, args.out)
    return {"source": request.source.key, "operation": request.operation, "settings": request.settings(),
            "file": str(out), "key": runner.key(request), "width": artifact.record.width,
            "height": artifact.record.height, "model": runner.engine.model_name, "seconds": artifact.record.seconds}


def add_kind_commands(commands: Any) -> None:
    """A command for each kind that declares a ``CliForm``: a flag per option, from its declaration."""
    import dataclasses

    from aleaart.jobs import KINDS
    from aleaart.jobs.spec_kind import SpecRequest

    for cls in KINDS.values():
        if (form := cls.cli) is None:
            continue
        command = commands.add_parser(form.command, help=form.help)
        if issubclass(cls, SpecRequest):
            command.add_argument("--params", required=True, help="RenderParams JSON, or @file.json")
            command.add_argument("--token-id", help="the token id to record in the files and their names")
            command.add_argument("--out", default=form.command,
                                 help=f"folder for its files (default: ./{form.command})")
        else:
            command.add_argument("image", help="a PNG written by aleaart (it carries its parameters)")
            command.add_argument("--out", help="PNG path (default: art_token_<id>_<key>.png here)")
        defaults = cls.option_defaults()
        for field, opt in cls.options():
            flag = form.flags.get(opt.name) or "--" + "".join(f"-{c.lower()}" if c.isupper() else c for c in opt.name)
            required = defaults[field] is dataclasses.MISSING
            kind = str if opt.choices is not None else int if opt.integer else float
            default = None if required else defaults[field]
            shown = f" (default {default})" if default is not None else ""
            command.add_argument(flag, dest=field, type=kind, required=required, default=default,
                                 help=opt.description + shown)
        command.set_defaults(run=lambda args, settings, cls=cls: run_kind(cls, args, settings))


def read_input_png(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as error:
        raise InvalidParams(f"cannot read {path}: {error.strerror or error}") from None


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

    watch_command = commands.add_parser("watch", help="follow the contract's EntropyFulfilled events and render "
                                        "each fulfilled token's image (backfilling from the deployment block)")
    watch_command.add_argument("--no-progress", action="store_true", help="no progress bar while backfilling")
    watch_command.set_defaults(run=cmd_watch)

    tiny = commands.add_parser("make-tiny-model", help="build the offline random-weight SD 1.x model")
    tiny.add_argument("dir", help="folder to write the diffusers pipeline to")
    tiny.add_argument("--single-file", help="also write it as one original-layout .safetensors file")
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
