"""The colour grade that moves an image toward a palette (``palettes.py``).

Pure: numpy and scikit-image's colour science, no torch. The grade works in CIELAB:
- each pixel is softly assigned to the palette's colours, nearer ones (lightness counting most)
  weighing more
- its chroma and hue (a*, b*) are pulled toward that blend with ``strength``
- its lightness is kept exactly: the image's luminance structure does not change
- a pulled colour outside sRGB is pulled less, never clipped (clipping would bend its lightness)
"""

from __future__ import annotations

import warnings

import numpy as np
from PIL import Image, ImageDraw
from skimage.color import lab2rgb, lab2xyz, rgb2lab
from skimage.color.colorconv import rgb_from_xyz

from aleaart.palettes import DEFAULT_STRENGTH, PALETTES, Palette

SOFTNESS = 6.0  # CIELAB units: how sharply a pixel leans to its nearest palette colour
LIGHTNESS_WEIGHT = 2.0  # a pixel leans to the palette colours of its own lightness, so pulling only
                        # a* and b* brings it near one of them (measured: tests/test_palettes.py)
GAMUT_STEPS = 8  # bisection steps that keep a pulled colour inside sRGB

# Testing candidate colours outside sRGB is the point of the gamut check: scikit-image's note on each is noise.
warnings.filterwarnings("ignore", message="Conversion from CIE-LAB to XYZ color space resulted in",
                        category=UserWarning)


def grade(image: Image.Image, chosen: Palette, strength: float = DEFAULT_STRENGTH) -> Image.Image:
    """``image`` with its colours moved toward ``chosen`` (0 leaves it as it is); deterministic."""
    if strength <= 0:
        return image.convert("RGB")
    rgb = np.asarray(image.convert("RGB"), dtype=np.float64) / 255
    lab = rgb2lab(rgb)
    target = _soft_target(lab, rgb2lab(np.array(chosen.rgb())[None])[0])
    pulled = lab[..., 1:] + strength * (target[..., 1:] - lab[..., 1:])
    out = _inside_srgb(lab[..., 0], pulled)
    return Image.fromarray(np.round(np.clip(out, 0, 1) * 255).astype(np.uint8))


def _soft_target(lab: np.ndarray, colours: np.ndarray) -> np.ndarray:
    """Each pixel's blend of the palette colours, weighted by how near each is (a softmax of distance)."""
    weights = np.array([LIGHTNESS_WEIGHT, 1.0, 1.0])
    distance = ((lab[..., None, :] - colours) ** 2 * weights).sum(axis=-1)
    distance -= distance.min(axis=-1, keepdims=True)
    share = np.exp(-distance / (2 * SOFTNESS**2))
    share /= share.sum(axis=-1, keepdims=True)
    return (share[..., None] * colours).sum(axis=-2)  # not a matmul: BLAS could round differently per machine


def _inside_srgb(lightness: np.ndarray, ab: np.ndarray) -> np.ndarray:
    """sRGB of (lightness, ab), each out-of-gamut pixel's chroma scaled back (bisection) until it fits."""
    ab = ab.copy()
    outside = ~_in_gamut(lightness, ab)
    if outside.any():  # bisect only those pixels: most pulled colours fit as they are
        light, chroma = lightness[outside], ab[outside]
        low, high = np.zeros(light.shape), np.ones(light.shape)
        for _ in range(GAMUT_STEPS):
            middle = (low + high) / 2
            fits = _in_gamut(light, middle[..., None] * chroma)
            low, high = np.where(fits, middle, low), np.where(fits, high, middle)
        ab[outside] = low[..., None] * chroma
    return lab2rgb(_lab(lightness, ab))


def _in_gamut(lightness: np.ndarray, ab: np.ndarray) -> np.ndarray:
    """Whether each CIELAB colour is inside sRGB: its linear RGB (before companding and clipping) is in 0..1."""
    linear = (lab2xyz(_lab(lightness, ab))[..., None, :] * rgb_from_xyz).sum(axis=-1)
    return np.all((linear >= -1e-9) & (linear <= 1 + 1e-9), axis=-1)


def _lab(lightness: np.ndarray, ab: np.ndarray) -> np.ndarray:
    return np.concatenate([lightness[..., None], ab], axis=-1)


def swatches(size: int = 28) -> Image.Image:
    """All 24 palettes as one picture: a row each, its five colours then its name (for the README)."""
    label = 150
    sheet = Image.new("RGB", (5 * size + label, len(PALETTES) * size), "white")
    draw = ImageDraw.Draw(sheet)
    for row, chosen in enumerate(PALETTES):
        for column, colour in enumerate(chosen.colours):
            draw.rectangle([column * size, row * size, (column + 1) * size - 1, (row + 1) * size - 1], fill=colour)
        draw.text((5 * size + 8, row * size + size // 3), f"{chosen.id:2d} {chosen.name}", fill="black")
    return sheet
