"""The GPU check: the figures the README's GPU table needs, in one command on a bare GPU machine.

    bash bench/gpu/check.sh                            # there: installs the carried wheels, runs this into $OUT
    python bench/gpu/check.py --dry-run --out DIR      # on a CPU: the tiny model at tiny sizes (the suite runs it)

Parts, each with its own time budget inside the whole one (8 minutes); a part or a step that no longer fits is
skipped and says so:
1. cuda_tests: tests/test_pipeline.py's CUDA cases (pass/fail).
2. sd15: full-size SD 1.5 architecture with random weights (bench/bench_sd15_random.py), float16, 512²: UNet it/s
   with guidance (batch 2), VAE decode, a 20-step image and peak VRAM, for eager (SDPA), channels_last,
   torch.compile (its default mode; compile time apart) and torch.compile with CUDA graphs (reduce-overhead).
3. aspects: UNet it/s and peak VRAM at the seed's five sizes, on the fastest path that needs no compiling.
4. batches: images/s for 8 variations in one batch, and frames/s for an animation.
5. service_path: one token through the service's own queue (render, PNG, Content Credentials, store), and the
   time spent outside the engine.
Writes gpu_check.json and gpu_check.md (the table, also printed) under --out (default $OUT).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
for path in (ROOT / "src", ROOT / "bench", ROOT / "bench" / "gpu"):
    sys.path.insert(0, str(path))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from budget import Budget, PartBudget, PartResult  # noqa: E402

TOTAL_SECONDS = 470.0  # under 8 minutes with the wheels' install and Python's start
PART_SECONDS = {"cuda_tests": 60.0, "sd15": 250.0, "aspects": 50.0, "batches": 50.0, "service_path": 40.0}


@dataclass(frozen=True)
class Plan:
    """What a run measures on: the GPU's (full size) or a dry run's (tiny model, tiny sizes, on the CPU)."""

    device: str
    dry: bool
    steps: int
    unet_calls: int  # timed UNet calls per figure
    frames: int
    scale: int  # sizes are divided by this
    compile_backend: str
    estimates: dict[str, float]  # seconds a step is expected to take, to know whether it fits

    @classmethod
    def gpu(cls) -> Plan:
        return cls(device="cuda", dry=False, steps=20, unet_calls=30, frames=16, scale=1, compile_backend="inductor",
                   estimates={"build": 40, "eager": 15, "channels_last": 15, "compile": 120,
                              "compile_cudagraphs": 90, "aspect": 6, "variations": 10, "animation": 20,
                              "service": 15, "tests": 30})

    @classmethod
    def dry_run(cls) -> Plan:
        return cls(device="cpu", dry=True, steps=2, unet_calls=2, frames=2, scale=8, compile_backend="eager",
                   estimates={"build": 5, "eager": 3, "channels_last": 3, "compile": 5, "compile_cudagraphs": 5,
                              "aspect": 1, "variations": 2, "animation": 2, "service": 5, "tests": 20})


class Run:
    """The state parts share: the pipeline, built once, and what the sd15 part found fastest."""

    def __init__(self, plan: Plan, workdir: Path) -> None:
        self.plan = plan
        self.workdir = workdir
        # The tiny model and the local signing key: where ALEAART_CACHE_DIR says (the suite's), else the run's own.
        self.cache = Path(os.environ.get("ALEAART_CACHE_DIR") or workdir / "cache")
        self.pipeline: Any = None
        self.base_unet: Any = None
        self.fastest_eager = "eager"

    # Building

    def build(self) -> None:
        import torch

        if self.pipeline is not None:
            return
        if self.plan.dry:
            from diffusers import StableDiffusionPipeline

            from aleaart.engine.tiny import cached_tiny_model

            folder = cached_tiny_model(self.cache)
            self.pipeline = StableDiffusionPipeline.from_pretrained(folder, local_files_only=True, safety_checker=None)
        else:
            from bench_sd15_random import sd15_random

            with torch.device(self.plan.device):  # random weights made on the GPU: seconds, not a minute
                self.pipeline = sd15_random()
            self.pipeline = self.pipeline.to(self.plan.device, dtype=torch.float16)
        self.base_unet = self.pipeline.unet

    def engine(self) -> Any:
        import torch
        from runtimes import bench_runtime

        from aleaart.engine.pipeline import Engine

        return Engine(self.pipeline, model_name="sd15-random", model_identity="sd15-random",
                      runtime=bench_runtime("torch", threads=torch.get_num_threads()))

    def spec(self, aspect: int = 0, steps: int | None = None) -> Any:
        from aleaart.params import RenderParams, spec_from_params

        spec = spec_from_params(RenderParams(0, 0, 0, aspect, 18, 75, 12345, 0))
        return replace(spec, steps=steps or self.plan.steps, width=self.side(spec.width),
                       height=self.side(spec.height))

    def side(self, pixels: int) -> int:
        return max(64, pixels // self.plan.scale // 8 * 8)

    def use(self, variant: str) -> float | None:
        """Put the UNet of ``variant`` in the pipeline; returns the seconds compiling took (its first call)."""
        import torch

        if variant == "eager":
            self.pipeline.unet = self.base_unet.to(memory_format=torch.contiguous_format)
            return None
        self.base_unet.to(memory_format=torch.channels_last)
        if variant == "channels_last":
            self.pipeline.unet = self.base_unet
            return None
        # The default mode compiles in about a minute; max-autotune's GEMM search could take the whole budget.
        mode = "reduce-overhead" if variant == "compile_cudagraphs" else None
        if self.plan.dry:
            mode = None  # the eager backend takes no mode
        torch._dynamo.reset()
        self.pipeline.unet = torch.compile(self.base_unet, backend=self.plan.compile_backend, mode=mode)
        started = time.perf_counter()
        self.unet_speed(self.spec(), calls=1)
        return time.perf_counter() - started

    # Measuring

    def sync(self) -> None:
        import torch

        if self.plan.device == "cuda":
            torch.cuda.synchronize()

    def reset_peak(self) -> None:
        import torch

        if self.plan.device == "cuda":
            torch.cuda.reset_peak_memory_stats()

    def peak_gib(self) -> float | None:
        import torch

        return round(torch.cuda.max_memory_allocated() / 2**30, 2) if self.plan.device == "cuda" else None

    def unet_speed(self, spec: Any, calls: int | None = None) -> float:
        """UNet iterations a second with guidance (a batch of 2: the prompt and the empty prompt)."""
        import torch

        unet = self.pipeline.unet
        config = self.base_unet.config
        dtype = self.base_unet.dtype
        latents = torch.randn(2, config.in_channels, spec.height // 8, spec.width // 8, device=self.plan.device,
                              dtype=dtype)
        context = torch.randn(2, 77, config.cross_attention_dim, device=self.plan.device, dtype=dtype)
        timestep = torch.tensor(500, device=self.plan.device)
        calls = calls or self.plan.unet_calls
        with torch.inference_mode():
            unet(latents, timestep, encoder_hidden_states=context)  # warm-up
            self.sync()
            started = time.perf_counter()
            for _ in range(calls):
                unet(latents, timestep, encoder_hidden_states=context)
            self.sync()
        return calls / (time.perf_counter() - started)

    def vae_decode_seconds(self, spec: Any) -> float:
        import torch

        vae = self.pipeline.vae
        latents = torch.randn(1, vae.config.latent_channels, spec.height // 8, spec.width // 8,
                              device=self.plan.device, dtype=vae.dtype)
        with torch.inference_mode():
            vae.decode(latents).sample  # noqa: B018 (warm-up)
            self.sync()
            started = time.perf_counter()
            for _ in range(3):
                vae.decode(latents).sample  # noqa: B018
            self.sync()
        return (time.perf_counter() - started) / 3

    def image_seconds(self, spec: Any) -> float:
        engine = self.engine()
        started = time.perf_counter()
        engine.generate(spec)
        self.sync()
        return time.perf_counter() - started


# The parts

def cuda_tests(run: Run, budget: PartBudget) -> list[dict[str, Any]]:
    if not budget.allows("tests/test_pipeline.py -k cuda", run.plan.estimates["tests"]):
        return []
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-k", "cuda", "tests/test_pipeline.py"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    try:
        done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=budget.left())
    except subprocess.TimeoutExpired:
        return [{"what": "tests/test_pipeline.py -k cuda", "result": f"timed out after {budget.left():.0f} s"}]
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    if done.returncode not in (0, 5):
        print(done.stdout[-4000:], done.stderr[-2000:], file=sys.stderr)
    return [{"what": "tests/test_pipeline.py -k cuda", "result": lines[-1] if lines else done.stderr[-300:],
             "passed": done.returncode == 0}]


def sd15(run: Run, budget: PartBudget) -> list[dict[str, Any]]:
    if not budget.allows("building the model", run.plan.estimates["build"]):
        return []
    started = time.perf_counter()
    run.build()
    built = round(time.perf_counter() - started, 1)
    rows: list[dict[str, Any]] = [{"what": "build (random weights)", "seconds": built}]
    spec = run.spec()
    speeds: dict[str, float] = {}
    for variant in ("eager", "channels_last", "compile", "compile_cudagraphs"):
        if variant == "compile_cudagraphs" and run.plan.device != "cuda":
            rows.append({"what": variant, "skipped": "CUDA graphs need CUDA"})
            continue
        if not budget.allows(variant, run.plan.estimates[variant]):
            rows.append({"what": variant, "skipped": "over budget"})
            continue
        compile_seconds = run.use(variant)
        speeds[variant] = run.unet_speed(spec)
        run.reset_peak()
        image = run.image_seconds(spec)
        rows.append({"what": variant, "size": f"{spec.width}x{spec.height}", "unet_it_s": round(speeds[variant], 2),
                     "vae_decode_s": round(run.vae_decode_seconds(spec), 3),
                     f"image_{spec.steps}_steps_s": round(image, 2), "peak_vram_gib": run.peak_gib(),
                     "compile_s": None if compile_seconds is None else round(compile_seconds, 1)})
    eager_paths = {v: s for v, s in speeds.items() if v in ("eager", "channels_last")}
    run.fastest_eager = max(eager_paths, key=eager_paths.__getitem__) if eager_paths else "eager"
    run.use(run.fastest_eager)
    return rows


def aspects(run: Run, budget: PartBudget) -> list[dict[str, Any]]:
    from aleaart.params import ASPECTS

    run.build()
    run.use(run.fastest_eager)
    rows = []
    for index, aspect in enumerate(ASPECTS):
        if not budget.allows(f"aspect {aspect.name}", run.plan.estimates["aspect"]):
            continue
        spec = run.spec(aspect=index)
        run.reset_peak()
        speed = run.unet_speed(spec, calls=max(2, run.plan.unet_calls // 3))
        rows.append({"what": f"{aspect.name} ({run.fastest_eager})", "size": f"{spec.width}x{spec.height}",
                     "unet_it_s": round(speed, 2), "peak_vram_gib": run.peak_gib()})
    return rows


def batches(run: Run, budget: PartBudget) -> list[dict[str, Any]]:
    from aleaart.motion import noise_walk

    run.build()
    run.use(run.fastest_eager)
    engine, spec, rows = run.engine(), run.spec(), []
    if budget.allows("8 variations", run.plan.estimates["variations"]):
        started = time.perf_counter()
        engine.generate_variations(spec, list(range(1, 9)), 0.3)
        seconds = time.perf_counter() - started
        rows.append({"what": "variations of 8 (one batch)", "size": f"{spec.width}x{spec.height}",
                     "seconds": round(seconds, 2), "images_s": round(8 / seconds, 2)})
    if budget.allows(f"animation of {run.plan.frames} frames", run.plan.estimates["animation"]):
        started = time.perf_counter()
        engine.animate(spec, noise_walk(spec.seed, run.plan.frames, 2))
        seconds = time.perf_counter() - started
        rows.append({"what": f"animation, {run.plan.frames} frames", "size": f"{spec.width}x{spec.height}",
                     "seconds": round(seconds, 2), "frames_s": round(run.plan.frames / seconds, 2)})
    return rows


def service_path(run: Run, budget: PartBudget) -> list[dict[str, Any]]:
    """One token through JobQueue as the service runs it: the engine, then PNG, Content Credentials, store."""
    from aleaart.config import Settings
    from aleaart.database import Database
    from aleaart.jobs import JobBook, JobQueue, ModelHolder, RenderRequest
    from aleaart.metrics import Metrics
    from aleaart.params import RenderParams
    from aleaart.provenance.credentials import Credentials
    from aleaart.store import ImageStore

    if not budget.allows("one token through the queue", run.plan.estimates["service"]):
        return []
    run.build()
    run.use(run.fastest_eager)
    engine = run.engine()
    folder = Path(tempfile.mkdtemp(dir=run.workdir))
    settings = Settings(images_dir=folder / "images", cache_dir=run.cache)
    db = Database(settings.db_path)
    store = ImageStore(settings.images_dir, db)
    model = ModelHolder(lambda: engine, probe_cuda=lambda: run.plan.device == "cuda")
    queue = JobQueue(model=model, store=store, book=JobBook(db, store), settings=settings, metrics=Metrics(),
                     chain=None, credentials=Credentials.from_settings(settings))
    model.start()
    queue.start(resume=False)
    try:
        params = RenderParams(3, 2, 0, 0, run.plan.steps if not run.plan.dry else 18, 75, 777, 5)
        request = RenderRequest.of_params(params, "1")
        request = replace(request, spec=replace(request.spec, steps=run.plan.steps, width=run.side(512),
                                                height=run.side(512)))
        started = time.perf_counter()
        job = queue.submit(request)
        if not job.wait_done(budget.left()):
            return [{"what": "one token, queue to stored file", "skipped": "did not finish in its budget"}]
        total = time.perf_counter() - started
        status = job.status
        if status.image is None:
            return [{"what": "one token, queue to stored file", "error": status.error}]
        return [{"what": "one token, queue to stored file", "size": f"{request.spec.width}x{request.spec.height}",
                 "seconds": round(total, 2), "engine_s": round(status.image.seconds, 2),
                 "outside_engine_s": round(total - status.image.seconds, 3),
                 "file_kib": round(store.path_of(status.image.file).stat().st_size / 1024, 1)}]
    finally:
        queue.stop()
        db.close()


PARTS = {"cuda_tests": cuda_tests, "sd15": sd15, "aspects": aspects, "batches": batches,
         "service_path": service_path}


def environment(plan: Plan) -> dict[str, Any]:
    import torch

    found: dict[str, Any] = {"python": sys.version.split()[0], "torch": torch.__version__, "device": plan.device,
                             "dry_run": plan.dry}
    with contextlib.suppress(Exception):
        import diffusers
        import transformers

        found |= {"diffusers": diffusers.__version__, "transformers": transformers.__version__}
    if plan.device == "cuda":
        found["gpu"] = torch.cuda.get_device_name(0)
    return found


def table(results: list[PartResult]) -> str:
    """The results as one Markdown table: part, what, figures (or why it was skipped)."""
    lines = ["| part | what | figures |", "|---|---|---|"]
    for result in results:
        if not result.rows:
            lines.append(f"| {result.name} | {result.status} | {result.note or ''} |")
        for row in result.rows:
            figures = ", ".join(f"{k} {v}" for k, v in row.items() if k != "what" and v is not None)
            lines.append(f"| {result.name} | {row.get('what', '')} | {figures} |")
        if result.rows and result.note:
            lines.append(f"| {result.name} | | {result.note} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dry-run", action="store_true", help="the tiny model at tiny sizes on the CPU")
    parser.add_argument("--out", default=os.environ.get("OUT"), help="where the JSON and table go (default $OUT)")
    parser.add_argument("--total-seconds", type=float, default=TOTAL_SECONDS)
    parser.add_argument("--parts", default=",".join(PARTS), help="comma-separated parts to run")
    args = parser.parse_args(argv)
    if not args.out:
        parser.error("--out (or $OUT) is needed")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    plan = Plan.dry_run() if args.dry_run else Plan.gpu()
    import torch

    if plan.device == "cuda" and not torch.cuda.is_available():
        parser.error("no CUDA device here: use --dry-run on a CPU")
    torch.manual_seed(0)
    budget = Budget(args.total_seconds)
    results = []
    with tempfile.TemporaryDirectory(prefix="aleaart-gpu-check-") as scratch:  # its images and cache, not kept
        run = Run(plan, Path(scratch))
        for name in args.parts.split(","):
            result = budget.run(name, PART_SECONDS[name], lambda b, part=PARTS[name]: part(run, b))
            print(f"{name}: {result.status} in {result.seconds:.1f} s{f' ({result.note})' if result.note else ''}",
                  flush=True)
            results.append(result)
    report = {"environment": environment(plan), "total_seconds": round(args.total_seconds - budget.remaining(), 1),
              "parts": [r.to_json() for r in results]}
    (out / "gpu_check.json").write_text(json.dumps(report, indent=2))
    rendered = table(results)
    (out / "gpu_check.md").write_text(rendered + "\n")
    print(rendered)
    return 0 if all(r.status != "failed" for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
