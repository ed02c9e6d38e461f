"""Comparing rendered images in tests."""

from __future__ import annotations

import numpy as np
from PIL import Image


def psnr(a: Image.Image, b: Image.Image) -> float:
    """Peak signal-to-noise ratio in dB of two 8-bit images of one size; infinite when they are identical."""
    error = np.mean((np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)) ** 2)
    return float("inf") if error == 0 else 10 * np.log10(255**2 / error)
