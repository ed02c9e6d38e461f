"""The 24 palettes, their colour grade measured on a fixed image set, and how palette modes reach keys and prompts."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage import data
from skimage.color import deltaE_ciede2000, rgb2lab
from skimage.metrics import structural_similarity

from aleaart.grading import grade, swatches
from aleaart.metadata import render_key
from aleaart.palettes import PALETTES, palette
from aleaart.params import PaletteChoice, RenderParams, RenderSpec, build_prompt, spec_from_params

ROOT = Path(__file__).resolve().parents[1]
PARAMS = RenderParams(1, 8, 2, 0, 20, 75, 99, 23)


def test_twenty_four_named_palettes_of_five_srgb_colours():
    assert [p.id for p in PALETTES] == list(range(24))
    assert len({p.name for p in PALETTES}) == 24
    for chosen in PALETTES:
        assert len(chosen.colours) == 5 and all(re.fullmatch(r"#[0-9a-f]{6}", c) for c in chosen.colours)
        assert chosen.words
    assert palette(23).name == "Aurora"
    with pytest.raises(ValueError, match="0..23"):
        palette(24)


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


def test_grade_mode_keeps_the_seeds_prompt_and_changes_the_key():
    graded = spec_from_params(PARAMS)
    plain = spec_from_params(PARAMS, PaletteChoice("off"))
    assert graded.prompt == plain.prompt == build_prompt(PARAMS)  # byte-identical to the seed's
    assert graded.grade is not None and graded.grade.palette_id == 23 and plain.grade is None
    recipe = {"model": "m"}
    keys = {render_key(s, recipe, "7") for s in (graded, plain, spec_from_params(PARAMS, PaletteChoice("grade", 0.5)))}
    assert len(keys) == 3  # mode and strength are part of the key
    assert RenderSpec.from_canonical(graded.canonical()) == graded


def test_prompt_mode_adds_the_palettes_colour_words():
    spec = spec_from_params(PARAMS, PaletteChoice("prompt"))
    assert spec.grade is None and "polar night, teal and aurora green colour palette |" in spec.prompt


def test_specs_without_a_grade_keep_their_old_canonical_form():
    spec = spec_from_params(PARAMS, PaletteChoice("off"))
    assert "grade" not in spec.canonical()  # so images stored before grades existed keep their keys


def test_the_readme_swatches_are_the_palettes():
    sheet = Image.open(ROOT / "docs" / "palettes.png").convert("RGB")
    assert sheet.size == swatches().size
    size = 28
    for row, chosen in enumerate(PALETTES):
        for column, colour in enumerate(chosen.colours):
            centre = sheet.getpixel((column * size + size // 2, row * size + size // 2))
            assert "#" + bytes(centre).hex() == colour
