"""How an animation moves (pure): the noise walk and the style morph."""

from __future__ import annotations

import pytest

from aleaart.motion import Frame, loop_seeds, noise_walk, style_morph


def test_the_noise_walk_starts_at_the_seed_visits_each_neighbour_and_closes_the_loop():
    walk = noise_walk(4294967295, 12, 2)
    assert loop_seeds(4294967295, 2) == [4294967295, 0, 1]  # uint32 wraps
    assert walk[0] == Frame(4294967295, 0, 0.0)
    assert [(f.start_seed, f.end_seed) for f in walk] == [(4294967295, 0)] * 4 + [(0, 1)] * 4 + [(1, 4294967295)] * 4
    assert [f.t for f in walk[:4]] == [0.0, 0.25, 0.5, 0.75]  # evenly spaced; the last leg leads back to frame 0
    assert all(f.mix == 0 for f in walk)
    assert noise_walk(7, 10, 3) == noise_walk(7, 10, 3)


def test_the_style_morph_keeps_the_noise_and_eases_to_the_style_and_back():
    morph = style_morph(5, 8)
    assert {(f.start_seed, f.end_seed, f.t) for f in morph} == {(5, 5, 0.0)}
    mixes = [f.mix for f in morph]
    assert mixes[0] == 0 and mixes[4] == pytest.approx(1) and mixes[1] == pytest.approx(mixes[7])
    assert mixes[:5] == sorted(mixes[:5])
