"""The colour grade, measured on a fixed image set: it moves colours toward the palette and keeps lightness."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage import data
from skimage.color import deltaE_ciede2000, rgb2lab
from skimage.metrics import structural_similarity

from aleaart.grading import grade, swatches
from aleaart.palettes import PALETTES, palette
from aleaart.params import RenderSpec

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def test_images(tiny_engine) -> list[Image.Image]:
    """12 tiny-model renders and four of scikit-image's photographs, downscaled: the fixed set the grade
    is measured on."""
    renders = []
    for i in range(12):
        spec = RenderSpec(prompt=f"palette test {i}", sampler="Euler a", width=64, height=64, steps=4,
                          guidance_scale=7.5, seed=1000 + i)
        renders.append(tiny_engine.generate(spec).image)
    photos = [Image.fromarray(getattr(data, name)()).resize((128, 96), Image.LANCZOS)
              for name in ("astronaut", "coffee", "chelsea", "rocket")]
    return renders + photos


def nearest_palette_distance(image: Image.Image, colours: np.ndarray) -> float:
    """Mean CIEDE2000 distance from each pixel to its nearest palette colour."""
    lab = rgb2lab(np.asarray(image, dtype=np.float64) / 255)
    return float(np.stack([deltaE_ciede2000(lab, np.broadcast_to(c, lab.shape)) for c in colours]).min(0).mean())


def lightness(image: Image.Image) -> np.ndarray:
    return rgb2lab(np.asarray(image, dtype=np.float64) / 255)[..., 0]


@pytest.mark.slow
@pytest.mark.parametrize("chosen", PALETTES, ids=lambda p: p.name)
def test_the_grade_moves_colours_toward_the_palette_and_keeps_the_lightness_structure(chosen, test_images):
    colours = rgb2lab(np.array(chosen.rgb())[None])[0]
    before = after = 0.0
    for image in test_images:
        graded = grade(image, chosen)
        before += nearest_palette_distance(image, colours)
        after += nearest_palette_distance(graded, colours)
        ssim = structural_similarity(lightness(image), lightness(graded), data_range=100)
        assert ssim >= 0.90, f"lightness SSIM {ssim:.3f}"
    assert after <= 0.70 * before, f"ΔE00 to the palette only {1 - after / before:.0%} lower"


def test_the_grade_is_deterministic_and_zero_strength_changes_nothing():
    photo = Image.fromarray(data.coffee()).resize((90, 60))
    once, again = grade(photo, palette(4)), grade(photo, palette(4))
    assert once.tobytes() == again.tobytes() and once.size == photo.size and once.mode == "RGB"
    assert grade(photo, palette(4), 0).tobytes() == photo.tobytes()
    assert once.tobytes() != photo.tobytes()


def test_the_readme_swatches_are_the_palettes():
    sheet = Image.open(ROOT / "docs" / "palettes.png").convert("RGB")
    assert sheet.size == swatches().size
    size = 28
    for row, chosen in enumerate(PALETTES):
        for column, colour in enumerate(chosen.colours):
            centre = sheet.getpixel((column * size + size // 2, row * size + size // 2))
            assert "#" + bytes(centre).hex() == colour
