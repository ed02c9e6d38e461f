"""Pixel-only resizing: Lanczos upscales and the edge padding img2img needs."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from aleaart.resample import lanczos, pad_to_multiple


def gradient(width: int, height: int) -> Image.Image:
    x, y = np.meshgrid(np.arange(width), np.arange(height))
    return Image.fromarray(np.stack([x * 255 // width, y * 255 // height, (x + y) % 256], -1).astype(np.uint8))


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_lanczos_scales_both_sides_and_keeps_the_picture(scale):
    image = gradient(50, 30)
    big = lanczos(image, scale)
    assert big.size == (50 * scale, 30 * scale)
    back = np.asarray(big.resize(image.size, Image.Resampling.BOX), dtype=float)
    assert np.abs(back - np.asarray(image, dtype=float)).mean() < 3


def test_padding_repeats_the_edges_and_crops_back_to_the_original():
    image = gradient(21, 13)
    padded = pad_to_multiple(image, 8)
    assert padded.size == (24, 16)
    assert padded.crop((0, 0, 21, 13)).tobytes() == image.tobytes()
    array = np.asarray(padded)
    assert (array[:, 21:] == array[:, 20:21]).all() and (array[13:] == array[12:13]).all()
    aligned = gradient(16, 8)
    assert pad_to_multiple(aligned, 8) is aligned
