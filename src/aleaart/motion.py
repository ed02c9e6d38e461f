"""How an animation moves (pure): each frame's place on a closed loop, through neighbour seeds' starting
noise or between two prompts, so frame 0 is the still image and the last frame leads back into it."""

from __future__ import annotations

import math
from dataclasses import dataclass

FRAMES = (8, 120)
FPS = (6, 30)
NEIGHBOURS = (1, 8)
DEFAULT_FRAMES = 48
DEFAULT_FPS = 12
DEFAULT_NEIGHBOURS = 3


@dataclass(frozen=True)
class Frame:
    """Where one frame starts: its noise is the spherical blend ``t`` of the noise of ``start_seed`` (0) and
    ``end_seed`` (1), and its prompt embedding the straight blend ``mix`` of the spec's (0) and a morph
    target's (1)."""

    start_seed: int
    end_seed: int
    t: float = 0.0
    mix: float = 0.0


def loop_seeds(seed: int, neighbours: int) -> list[int]:
    """The stops of a noise walk: the seed itself, then seed + 1 … seed + neighbours (uint32, wrapping)."""
    return [(seed + i) % 2**32 for i in range(neighbours + 1)]


def noise_walk(seed: int, frames: int, neighbours: int) -> list[Frame]:
    """``frames`` evenly spaced points on the loop seed → seed + 1 → … → seed + neighbours → seed."""
    stops = loop_seeds(seed, neighbours)
    legs = len(stops)
    walk = []
    for index in range(frames):
        leg, remainder = divmod(index * legs, frames)  # exact: the same frames on every machine
        walk.append(Frame(stops[leg], stops[(leg + 1) % legs], t=remainder / frames))
    return walk


def style_morph(seed: int, frames: int) -> list[Frame]:
    """The seed's own noise throughout, its prompt eased to the morph target by the middle frame and back."""
    return [Frame(seed, seed, mix=(1 - math.cos(2 * math.pi * index / frames)) / 2) for index in range(frames)]
