"""The palette grade, measured: per palette, how much nearer the palette the colours get (mean CIEDE2000 to
the nearest palette colour, before → after) and the lowest lightness SSIM, on the test suite's image set
(12 tiny-model renders and four scikit-image photographs); and the grade's time per image size.

    python bench/bench_palettes.py [--strength 0.85]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402
from skimage import data  # noqa: E402
from skimage.color import rgb2lab  # noqa: E402
from skimage.metrics import structural_similarity  # noqa: E402
from test_palettes import lightness, nearest_palette_distance  # noqa: E402

from aleaart.config import Settings  # noqa: E402
from aleaart.engine.pipeline import Engine  # noqa: E402
from aleaart.grading import grade  # noqa: E402
from aleaart.palettes import PALETTES  # noqa: E402
from aleaart.params import RenderSpec  # noqa: E402


def image_set() -> list[Image.Image]:
    engine = Engine.load(Settings(model="tiny", device="cpu", threads=1))
    renders = [engine.generate(RenderSpec(prompt=f"palette test {i}", sampler="Euler a", width=64, height=64,
                                          steps=4, guidance_scale=7.5, seed=1000 + i)).image for i in range(12)]
    photos = [Image.fromarray(getattr(data, name)()).resize((128, 96), Image.LANCZOS)
              for name in ("astronaut", "coffee", "chelsea", "rocket")]
    return renders + photos


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--strength", type=float, default=0.85)
    args = parser.parse_args()
    images = image_set()
    print(f"{'palette':<16} {'ΔE00 before':>11} {'after':>7} {'drop':>6} {'min L-SSIM':>10}")
    drops, ssims = [], []
    for chosen in PALETTES:
        colours = rgb2lab(np.array(chosen.rgb())[None])[0]
        graded = [grade(image, chosen, args.strength) for image in images]
        before = sum(nearest_palette_distance(i, colours) for i in images) / len(images)
        after = sum(nearest_palette_distance(g, colours) for g in graded) / len(images)
        ssim = min(structural_similarity(lightness(i), lightness(g), data_range=100)
                   for i, g in zip(images, graded, strict=True))
        drops.append(1 - after / before)
        ssims.append(ssim)
        print(f"{chosen.id:2d} {chosen.name:<13} {before:11.1f} {after:7.1f} {1 - after / before:6.0%} {ssim:10.3f}")
    print(f"worst drop {min(drops):.0%}, lowest lightness SSIM {min(ssims):.3f}")
    photo = Image.fromarray(data.astronaut())
    for size in ((512, 512), (768, 512), (1024, 576)):
        started = time.perf_counter()
        grade(photo.resize(size), PALETTES[4], args.strength)
        print(f"grade of a {size[0]}x{size[1]} image: {time.perf_counter() - started:.2f} s")


if __name__ == "__main__":
    main()
