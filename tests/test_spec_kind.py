"""A kind made from an image's spec is one declaration: its JSON form, ranges, key, stored files and HTTP bodies
(seed, flat and token shapes, with their OpenAPI) all follow from it. Shown on a kind of the test's own."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import ClassVar

import pytest
from pydantic import TypeAdapter, ValidationError

from aleaart.api.schemas import kind_bodies
from aleaart.errors import InvalidParams
from aleaart.jobs import RenderRequest
from aleaart.jobs.kind import option
from aleaart.jobs.spec_kind import SpecRequest, SpecRoutes
from aleaart.params import DEFAULT_PALETTE, RenderParams

PARAMS = {"promptIndex": 1, "styleIndex": 2, "samplerIndex": 0, "aspectIndex": 0, "steps": 20, "cfg": 75,
          "latentSeed": 9, "paletteId": 3}


@dataclass(frozen=True)
class Echoes(SpecRequest):
    """``copies`` echoes of the image, each ``fade`` fainter."""

    copies: int = option(3, "how many echoes", low=1, high=5)
    fade: float = option(0.5, "how much fainter each is", low=0, high=1, integer=False)
    tint: int | None = option(None, "a style index to tint toward", low=0, high=9, name="tintStyle")

    kind: ClassVar[str] = "echoes"
    operation: ClassVar[str] = "echo"
    routes: ClassVar[SpecRoutes] = SpecRoutes("/echoes", "echoes", "Echoes")

    def file_names(self) -> list[str]:
        return [str(i) for i in range(self.copies)]

    def total_steps(self) -> int:
        return self.spec.steps


IMAGE = RenderRequest.of_params(RenderParams.from_json(PARAMS), "7")


def test_the_json_form_and_the_options_follow_from_the_fields():
    echoes = Echoes.of(IMAGE, copies=2, tint=4)
    assert echoes.to_json() == {"spec": IMAGE.spec.canonical(), "tokenId": "7", "copies": 2, "fade": 0.5,
                                "tintStyle": 4}
    assert Echoes.from_json(json.loads(json.dumps(echoes.to_json()))) == echoes
    assert Echoes.from_json({"spec": IMAGE.spec.canonical(), "tokenId": "7"}) == Echoes.of(IMAGE)  # defaults
    assert [name for name, _ in Echoes.options()] == ["copies", "fade", "tint"]


@pytest.mark.parametrize(("options", "message"), [
    ({"copies": 0}, "copies must be 1..5, got 0"), ({"copies": 2.0}, "copies must be an integer 1..5"),
    ({"fade": 1.5}, "fade must be 0..1, got 1.5"), ({"fade": True}, "fade must be 0..1, got True"),
    ({"tint": 10}, "tintStyle must be 0..9, got 10")])
def test_each_option_is_held_to_its_declared_range(options, message):
    with pytest.raises(InvalidParams, match=message):
        Echoes.of(IMAGE, **options)


def test_the_key_derives_from_the_images_key_and_the_options_and_each_file_from_the_key():
    recipe = {"model": "m"}
    keys = {Echoes.of(IMAGE).key(recipe), Echoes.of(IMAGE, copies=4).key(recipe),
            Echoes.of(IMAGE, fade=0.25).key(recipe), Echoes.of(IMAGE).key({"model": "other"})}
    assert len(keys) == 4
    echoes = Echoes.of(IMAGE, copies=2)
    key = echoes.key(recipe)
    files = {echoes.file_key(key, name) for name in echoes.file_names()}
    assert len(files) == 2 and key not in files
    assert echoes.stored(key, lambda k: None) is None


def test_the_http_bodies_are_derived_seed_flat_and_token():
    bodies = kind_bodies(Echoes)
    body = TypeAdapter(bodies.body)
    seed = body.validate_python({"parameters": PARAMS, "tokenId": 7, "copies": 2})
    assert type(seed).__name__ == "SeedEchoes"
    assert seed.to_job(DEFAULT_PALETTE) == Echoes.of(IMAGE, copies=2)
    flat = body.validate_python({"prompt": "a flat body", "seed": 5, "fade": 0.25})
    assert type(flat).__name__ == "FlatEchoes" and flat.to_job(DEFAULT_PALETTE).fade == 0.25
    with pytest.raises(ValidationError, match="copies"):
        body.validate_python({"parameters": PARAMS, "copies": 6})
    token = bodies.token.model_validate({"tintStyle": 2})
    assert (token.copies, token.fade, token.tintStyle) == (3, 0.5, 2)
    with pytest.raises(ValidationError):
        bodies.token.model_validate({"copies": 2, "parameters": PARAMS})  # a token's parameters come from the chain
    schema = bodies.token.model_json_schema()["properties"]
    assert schema["copies"] == {"default": 3, "description": "how many echoes", "maximum": 5, "minimum": 1,
                                "title": "Copies", "type": "integer"}
