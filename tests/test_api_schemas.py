"""api/schemas.py: the request bodies, the seed's and the flat one told apart, and a kind's options as fields."""

from __future__ import annotations

import pytest
from pydantic import TypeAdapter, ValidationError

from aleaart.api.schemas import FlatRequest, GenerateBody, SeedRequest, image_kind_body
from aleaart.errors import InvalidParams
from aleaart.jobs import KINDS
from aleaart.params import DEFAULT_PALETTE, PaletteChoice
from aleaart.uploads import ModelRegistry

PARAMS = {"promptIndex": 1, "styleIndex": 2, "samplerIndex": 0, "aspectIndex": 0, "steps": 20, "cfg": 75,
          "latentSeed": 9, "paletteId": 3}
BODY = TypeAdapter(GenerateBody)


def test_a_body_with_parameters_is_the_seeds_and_any_other_the_flat_one():
    seed = BODY.validate_python({"parameters": PARAMS, "tokenId": 7})
    flat = BODY.validate_python({"prompt": "a lighthouse", "seed": 5, "width": 512, "height": 512})
    assert isinstance(seed, SeedRequest) and seed.tokenId == "7"
    assert isinstance(flat, FlatRequest) and flat.to_request(DEFAULT_PALETTE).spec.seed == 5
    assert seed.to_request(PaletteChoice("off", 0.5)).spec.grade is None  # the service's palette mode applies


@pytest.mark.parametrize("body", [
    {"parameters": {**PARAMS, "steps": 70}}, {"parameters": PARAMS, "tokenId": -1}, {"prompt": ""},
    {"prompt": "p", "width": 100}, {"prompt": "p", "steps": "many"}])
def test_bad_bodies_are_refused_by_the_edge(body):
    with pytest.raises(ValidationError):
        BODY.validate_python(body)


def test_a_flat_body_without_a_seed_draws_one_once():
    drawn = BODY.validate_python({"prompt": "p"})
    assert 0 <= drawn.seed < 2**32 and drawn.to_request(DEFAULT_PALETTE).spec.seed == drawn.seed


def test_naming_weights_that_were_never_uploaded_is_invalid_params(tmp_path):
    from aleaart.database import Database

    registry = ModelRegistry(tmp_path / "models", Database(tmp_path / "journal.db"))
    body = BODY.validate_python({"prompt": "p", "seed": 1, "model": "0" * 16})
    with pytest.raises(InvalidParams, match="0000000000000000"):
        body.chosen(body.to_request(DEFAULT_PALETTE), registry)


def test_a_stored_image_kinds_body_is_its_options_with_their_ranges():
    restyle = image_kind_body(KINDS["restyle"])
    assert restyle.__name__ == "RestyleBody"
    assert restyle.model_validate({"styleIndex": 3}).strength == 0.5
    with pytest.raises(ValidationError):
        restyle.model_validate({"styleIndex": 10})
    with pytest.raises(ValidationError):
        restyle.model_validate({})  # styleIndex has no default: required
    with pytest.raises(ValidationError):
        restyle.model_validate({"styleIndex": 3, "colour": "red"})  # only its options
