"""Comparing rendered images in tests."""

from __future__ import annotations

import numpy as np
from PIL import Image
from skimage.metrics import peak_signal_noise_ratio


def psnr(a: Image.Image, b: Image.Image) -> float:
    """Peak signal-to-noise ratio in dB of two 8-bit images of one size; infinite when they are identical."""
    with np.errstate(divide="ignore"):  # identical images: no error, infinite PSNR
        return float(peak_signal_noise_ratio(np.asarray(a), np.asarray(b), data_range=255))
