"""What a live preview costs, on full-size SD 1.5 with random weights (bench_sd15_random.py's model), 512²: the
time a preview adds to the step it follows (decoding the step's x0 and encoding the WebP), for the linear factors
and for a full-size TAESD (diffusers' AutoencoderTiny, random weights: the same work as the real one), as a share
of a step, and the bytes of each preview event.

    python bench/bench_preview.py [--steps 4] [--repeat 20] [--threads 2]

A step's time is the median of a render's later steps with previews off; a preview's cost is the median of
--repeat decodes and encodes of that render's last x0 (so the figure is not lost in the steps' own noise).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from dataclasses import replace

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
from bench_sd15_random import sd15_engine  # noqa: E402
from diffusers import AutoencoderTiny  # noqa: E402

from aleaart.engine.preview import LinearDecoder, Previews, TaesdDecoder  # noqa: E402
from aleaart.params import RenderParams, spec_from_params  # noqa: E402
from aleaart.previews import Preview, encode, strip  # noqa: E402


def median_ms(work, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    engine = sd15_engine("cpu")
    spec = replace(spec_from_params(RenderParams(0, 0, 2, 0, 18, 75, 12345, 0)), steps=args.steps)  # Euler a, 512²

    steps: list[float] = []
    last = [time.perf_counter()]
    latest: list[torch.Tensor] = []

    def on_step(done: int, total: int) -> None:
        now = time.perf_counter()
        steps.append(now - last[0])
        last[0] = now

    engine.core.previews = Previews(1, LinearDecoder())
    with engine.previews.watching(lambda step, total, images: None):
        # keep the x0 the preview machinery reads, without decoding it in the timed steps
        original = engine.core.previews.after_step
        engine.core.previews.after_step = lambda step, total: latest.append(engine.core.previews._local.x0)
        engine.generate(spec, on_step=on_step)
        engine.core.previews.after_step = original
    step_ms = statistics.median(steps[1:]) * 1000
    x0 = latest[-1]
    torch.manual_seed(0)
    decoders = [LinearDecoder(), taesd(torch.device("cpu"))]
    print(f"SD 1.5 (random weights), 512², Euler a, {torch.get_num_threads()} threads: a step takes "
          f"{step_ms:.0f} ms (median of {len(steps) - 1})")
    for decoder in decoders:
        def preview(decoder=decoder) -> bytes:
            return encode(strip(decoder.decode(x0)))

        cost = median_ms(preview, args.repeat)
        data = preview()
        size = decoder.decode(x0)[0].size
        event = f"event: preview\ndata: {json.dumps(Preview(1, spec.steps, data).to_event())}\n\n"
        print(json.dumps({"decoder": decoder.name, "size": f"{size[0]}x{size[1]}", "previewMs": round(cost, 2),
                          "shareOfStep": f"{100 * cost / step_ms:.2f} %", "webpBytes": len(data),
                          "eventBytes": len(event.encode())}))


def taesd(device: torch.device) -> TaesdDecoder:
    """A full-size TAESD (AutoencoderTiny's default layout) with random weights, loaded as the service loads one."""
    import tempfile

    folder = tempfile.mkdtemp(prefix="taesd-")
    AutoencoderTiny().save_pretrained(folder)
    return TaesdDecoder(folder, device)


if __name__ == "__main__":
    main()
