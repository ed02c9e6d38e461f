"""Comparing rendered images (and an animation's frames) in tests."""

from __future__ import annotations

import io

import av
import numpy as np
from PIL import Image
from skimage.metrics import peak_signal_noise_ratio


def psnr(a: Image.Image, b: Image.Image) -> float:
    """Peak signal-to-noise ratio in dB of two 8-bit images of one size; infinite when they are identical."""
    with np.errstate(divide="ignore"):  # identical images: no error, infinite PSNR
        return float(peak_signal_noise_ratio(np.asarray(a), np.asarray(b), data_range=255))


def decode_mp4(data: bytes) -> tuple[list[Image.Image], float, dict[str, str]]:
    """The frames of an MP4, its frame rate and its container tags."""
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.video[0]
        frames = [frame.to_image() for frame in container.decode(stream)]
        return frames, float(stream.average_rate), dict(container.metadata)
