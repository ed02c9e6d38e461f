"""The commands that run a job, as the service runs it (one ``Runner``, the same outcomes): ``generate``,
``render-token``, and a command for each job kind that declares a ``CliForm`` (variations, upscale, restyle,
animation, ...), its flags made from the kind's options."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from aleaart.config import Settings
from aleaart.errors import InvalidParams
from aleaart.params import RenderParams, RenderSpec, spec_from_params
from aleaart.token_ids import check_token_id, parse_token_id


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
