"""Where verify's perceptual threshold comes from, and what signing costs.

Renders the same specs under each recipe class this CPU has (PyTorch f32, OpenVINO f32, OpenVINO bf16 where the
CPU computes bf16) and prints the pHash Hamming distances (of 64 bits) between:
  - the same spec, same recipe, rendered twice (expect 0: bit-exact within a class);
  - the same spec across recipe classes (what `perceptual` must accept);
  - the same parameters with another latentSeed (what `mismatch` must catch).
Then the time and bytes of signing a stored PNG and an animation's MP4 with the local signing key.

    python bench/bench_verify.py [--specs 12] [--size 128] [--steps 8]     # the tiny model
    python bench/bench_verify.py --sd15 [--specs 3] [--size 512] [--steps 10]   # full-size SD 1.5, random weights
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
from PIL import Image  # noqa: E402
from runtimes import bench_runtime  # noqa: E402

from aleaart.config import Settings  # noqa: E402
from aleaart.engine.openvino import has_native_bf16  # noqa: E402
from aleaart.engine.pipeline import Engine  # noqa: E402
from aleaart.jobs import RenderRequest  # noqa: E402
from aleaart.jobs.runner import Runner  # noqa: E402
from aleaart.params import RenderParams, RenderSpec, spec_from_params  # noqa: E402
from aleaart.provenance.claim import Claim  # noqa: E402
from aleaart.provenance.credentials import Credentials  # noqa: E402
from aleaart.provenance.verify import PERCEPTUAL_THRESHOLD, phash_distance  # noqa: E402


def specs(count: int, size: int, steps: int) -> list[RenderSpec]:
    """Tokens of varied parameters (prompt, style, sampler), at one size so every class compiles once."""
    chosen = []
    for i in range(count):
        params = RenderParams(i % 12, (i * 7) % 10, i % 6, 0, 18, 70 + 10 * (i % 8), 1000 + 97 * i, i % 24)
        chosen.append(replace(spec_from_params(params), width=size, height=size, steps=steps))
    return chosen


def recipes(sd15: bool, threads: int) -> dict[str, Engine]:
    """One engine per recipe class this CPU has."""
    names = ["torch f32", "openvino f32"] + (["openvino bf16"] if has_native_bf16() else [])
    if sd15:
        from bench_sd15_random import sd15_random

        pipeline = sd15_random()
        runtimes = {"torch f32": bench_runtime("torch", threads=threads),
                    "openvino f32": bench_runtime("openvino", threads=threads, openvino_precision="f32"),
                    "openvino bf16": bench_runtime("openvino", threads=threads, openvino_precision="bf16")}
        # One pipeline, one engine at a time: OpenVINO swaps the modules' forwards for good, so it goes last.
        return {name: (lambda name=name: Engine(pipeline, model_name="sd15-random", model_identity="sd15-random",
                                                runtime=runtimes[name])) for name in names}  # type: ignore[misc]
    base = Settings(model="tiny", threads=threads, device="cpu")
    settings = {"torch f32": base.model_copy(update={"backend": "torch"}),
                "openvino f32": base.model_copy(update={"backend": "openvino", "openvino_precision": "f32"}),
                "openvino bf16": base.model_copy(update={"backend": "openvino", "openvino_precision": "bf16"})}
    return {name: (lambda name=name: Engine.load(settings[name])) for name in names}  # type: ignore[misc]


def render(engine: Engine, spec: RenderSpec) -> Image.Image:
    [artifact] = Runner(engine).run(RenderRequest(spec))
    with Image.open(io.BytesIO(artifact.data)) as image:
        return image.convert("RGB")


def summary(name: str, values: list[int]) -> str:
    if not values:
        return f"{name:44} (none)"
    return (f"{name:44} n={len(values):3}  min {min(values):2}  median {statistics.median(values):4.1f}  "
            f"max {max(values):2}")


def distances(args: argparse.Namespace) -> None:
    chosen = specs(args.specs, args.size, args.steps)
    makers = recipes(args.sd15, args.threads)
    images: dict[str, list[Image.Image]] = {}
    same, other_seed = [], []
    for name, make in makers.items():
        started = time.perf_counter()
        engine = make()
        images[name] = [render(engine, spec) for spec in chosen]
        if name == next(iter(makers)):  # within one class: twice, and another seed of each spec
            same = [phash_distance(a, render(engine, spec)) for a, spec in zip(images[name], chosen, strict=True)]
            other_seed = [phash_distance(a, render(engine, replace(spec, seed=spec.seed + 1)))
                          for a, spec in zip(images[name], chosen, strict=True)]
        print(f"  {name}: {len(chosen)} images in {time.perf_counter() - started:.1f} s", flush=True)
        del engine
    names = list(images)
    print(f"\npHash Hamming distance (of 64 bits), {len(chosen)} specs at {args.size}², {args.steps} steps, "
          f"{'full-size SD 1.5, random weights' if args.sd15 else 'the tiny model'}:")
    print(summary(f"same spec, same recipe ({names[0]}), twice", same))
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            across = [phash_distance(x, y) for x, y in zip(images[a], images[b], strict=True)]
            print(summary(f"same spec, {a} vs {b}", across))
    print(summary(f"latentSeed + 1, same recipe ({names[0]})", other_seed))
    print(f"threshold in verify.py: {PERCEPTUAL_THRESHOLD}")


def signing(args: argparse.Namespace) -> None:
    from aleaart.video import encode_mp4

    credentials = Credentials.from_settings(Settings(cache_dir=Path(tempfile.mkdtemp(prefix="aleaart-bench-"))))
    claim = Claim(title="bench", action="c2pa.created", software_agent="aleaart bench", assertion={"bench": True})
    frames = [Image.effect_noise((512, 512), 40 + i).convert("RGB") for i in range(48)]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="PNG")
    files = {"PNG 512²": (buffer.getvalue(), "image/png"), "MP4 48 frames 512²": (encode_mp4(frames, 12), "video/mp4")}
    print("\nsigning with the local key (ES256):")
    for name, (data, mime) in files.items():
        times = []
        for _ in range(args.repeats):
            started = time.perf_counter()
            signed = credentials.sign(data, mime, claim)
            times.append(time.perf_counter() - started)
        print(f"  {name:20} {len(data) / 1024:8.0f} KiB → +{(len(signed) - len(data)) / 1024:.1f} KiB, "
              f"median {statistics.median(times) * 1000:.1f} ms, max {max(times) * 1000:.1f} ms "
              f"({args.repeats} signings)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sd15", action="store_true", help="full-size SD 1.5 with random weights (slow)")
    parser.add_argument("--specs", type=int, default=12)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--signing-only", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if not args.signing_only:
        distances(args)
    signing(args)


if __name__ == "__main__":
    main()
