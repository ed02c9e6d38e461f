"""Full-size SD 1.5 speed and memory, with random weights (real weights can't be downloaded here).

Builds SD 1.5's exact architecture (UNet 860M, VAE, CLIP ViT-L/14 text encoder) from its configs
with random weights, wraps it in the same Engine the service uses, and renders one token.
Pixel values are noise; the time and memory per step are those of the real model.

    python bench/bench_sd15_random.py [--steps 20] [--aspect 0] [--threads 2] [--device cpu] [--backend torch]
"""

from __future__ import annotations

import argparse
import os
import resource
import time
from dataclasses import replace

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
from diffusers import AutoencoderKL, PNDMScheduler, StableDiffusionPipeline, UNet2DConditionModel  # noqa: E402
from runtimes import bench_runtime  # noqa: E402
from transformers import CLIPTextConfig, CLIPTextModel  # noqa: E402

from aleaart.engine.pipeline import Engine  # noqa: E402
from aleaart.engine.runtime import RUNTIMES  # noqa: E402
from aleaart.engine.tiny import SD15_SCHEDULER, build_tokenizer  # noqa: E402
from aleaart.params import RenderParams, spec_from_params  # noqa: E402


def sd15_random() -> StableDiffusionPipeline:
    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        sample_size=64, in_channels=4, out_channels=4, layers_per_block=2,
        block_out_channels=(320, 640, 1280, 1280),
        down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
        up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
        cross_attention_dim=768, attention_head_dim=8,
    )
    vae = AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(128, 256, 512, 512),
        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
        layers_per_block=2, sample_size=512, scaling_factor=0.18215,
    )
    text_encoder = CLIPTextModel(CLIPTextConfig(
        vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
        max_position_embeddings=77, hidden_act="quick_gelu", projection_dim=768,
        bos_token_id=49406, eos_token_id=49407, pad_token_id=49407,
    ))
    return StableDiffusionPipeline(
        vae=vae, text_encoder=text_encoder, tokenizer=build_tokenizer(), unet=unet,
        scheduler=PNDMScheduler(**SD15_SCHEDULER), safety_checker=None, feature_extractor=None,
        requires_safety_checker=False,
    )


def sd15_engine(device: str, backend: str = "torch") -> Engine:
    """The service's Engine around sd15_random() on ``device``, in float16 on CUDA as the service runs there."""
    pipeline = sd15_random().to(device)
    if device == "cuda":
        pipeline = pipeline.to(dtype=torch.float16)
    return Engine(pipeline, model_name="sd15-random", model_identity="sd15-random",
                  runtime=bench_runtime(backend, threads=torch.get_num_threads()))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--aspect", type=int, default=0, help="aspectIndex 0-4")
    parser.add_argument("--sampler", type=int, default=0, help="samplerIndex 0-5")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--backend", choices=list(RUNTIMES), default="torch")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    started = time.perf_counter()
    engine = sd15_engine(args.device, args.backend)
    print(f"built SD 1.5 (random weights) on {args.device} {engine.dtype} ({args.backend}): "
          f"{time.perf_counter() - started:.1f} s, torch threads {torch.get_num_threads()}")

    # Steps below 18 are outside RenderParams; build the spec and then set the steps asked for.
    spec = spec_from_params(RenderParams(0, 0, args.sampler, args.aspect, 18, 75, 12345, 0))
    spec = replace(spec, steps=args.steps)
    step_times: list[float] = []
    last = [time.perf_counter()]

    def on_step(done: int, total: int) -> None:
        now = time.perf_counter()
        step_times.append(now - last[0])
        last[0] = now

    rendered = engine.generate(spec, on_step=on_step)
    denoise = sum(step_times)
    print(f"{spec.sampler}, {spec.width}x{spec.height}, {args.steps} steps: {rendered.seconds:.1f} s in all")
    print(f"  first step (with prompt encoding) {step_times[0]:.2f} s; later steps median "
          f"{sorted(step_times[1:])[len(step_times[1:]) // 2] if len(step_times) > 1 else float('nan'):.2f} s")
    print(f"  after the last step (VAE decode, crop): {rendered.seconds - denoise:.1f} s")
    print(f"  peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB")
    if args.device == "cuda":
        print(f"  peak CUDA memory {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB")


if __name__ == "__main__":
    main()
