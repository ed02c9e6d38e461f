"""The 24 palettes, and how palette modes reach keys and prompts (the colour grade is test_grading.py)."""

from __future__ import annotations

import re

import pytest

from aleaart.metadata import render_key
from aleaart.palettes import PALETTES, palette
from aleaart.params import PaletteChoice, RenderParams, RenderSpec, build_prompt, spec_from_params

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


