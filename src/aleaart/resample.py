"""Pixel-only resizing for upscales (pure: Pillow and numpy, no torch)."""

from __future__ import annotations

import numpy as np
from PIL import Image


def scaled_size(width: int, height: int, scale: int) -> tuple[int, int]:
    return width * scale, height * scale


def lanczos(image: Image.Image, scale: int) -> Image.Image:
    """``image`` enlarged ``scale`` times with Lanczos resampling (the "fast" upscale, and hires' first step)."""
    return image.convert("RGB").resize(scaled_size(image.width, image.height, scale), Image.Resampling.LANCZOS)


def pad_to_multiple(image: Image.Image, multiple: int) -> Image.Image:
    """``image`` grown right and down to sizes that are multiples of ``multiple``, repeating its edge pixels
    (the VAE needs multiples of 8; cropping the result's top-left back gives the original size)."""
    pad_x, pad_y = -image.width % multiple, -image.height % multiple
    if not pad_x and not pad_y:
        return image
    array = np.asarray(image.convert("RGB"))
    return Image.fromarray(np.pad(array, ((0, pad_y), (0, pad_x), (0, 0)), mode="edge"))
