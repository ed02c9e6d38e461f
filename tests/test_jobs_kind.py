"""jobs/kind.py: what every kind has: declared options and their checks, the registry, identity, the record form,
and what the dashboard is told of it."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar

import pytest

from aleaart.errors import InvalidParams
from aleaart.jobs import KINDS, RenderRequest, identity, request_from_json
from aleaart.jobs.kind import JobRequest, Offer, Option, check_option, option, register
from aleaart.params import RenderSpec

SPEC = RenderSpec(prompt="p", sampler="Euler a", width=16, height=16, steps=10, guidance_scale=7.5, seed=1)


@dataclass(frozen=True)
class Tally(JobRequest):
    """A kind of the test's own, with one option of each sort."""

    needed: int = option(dataclasses.MISSING, "required", low=0, high=9)
    count: int = option(2, "how many", low=1, high=4)
    ratio: float | None = option(None, "how much", low=0, high=1, integer=False)
    mode: str = option("a", "which", choices=("a", "b"), name="tallyMode")

    kind: ClassVar[str] = "tally"


@pytest.mark.parametrize(("option_", "value", "message"), [
    (Option("n", "", low=1, high=4), 5, "n must be 1..4, got 5"),
    (Option("n", "", low=1, high=4), 2.0, "n must be an integer 1..4"),
    (Option("r", "", low=0, high=1, integer=False), 1.5, "r must be 0..1, got 1.5"),
    (Option("r", "", low=0, high=1, integer=False), True, "r must be 0..1, got True"),
    (Option("m", "", choices=("a", "b")), "c", "m must be one of a, b, got 'c'")])
def test_an_option_out_of_its_declaration_is_refused_naming_it(option_, value, message):
    with pytest.raises(InvalidParams, match=message):
        check_option(option_, value)


def test_a_kinds_options_come_from_its_fields_and_are_checked_when_it_is_made():
    assert [(field, opt.name) for field, opt in Tally.options()] == [
        ("needed", "needed"), ("count", "count"), ("ratio", "ratio"), ("mode", "tallyMode")]
    assert Tally.option_defaults()["needed"] is dataclasses.MISSING
    Tally(needed=3)  # a None default stays None unchecked
    with pytest.raises(InvalidParams, match="tallyMode must be one of a, b"):
        Tally(needed=3, mode="z")
    with pytest.raises(InvalidParams, match="needed must be 0..9, got 10"):
        Tally(needed=10)


def test_a_kind_registers_once_and_records_name_registered_kinds_only(monkeypatch):
    monkeypatch.setitem(KINDS, "render", KINDS["render"])
    with pytest.raises(RuntimeError, match="registered twice"):
        register(RenderRequest)
    with pytest.raises(InvalidParams, match="kind must be one of .*got 'tally'"):
        request_from_json("tally", {})


def test_identity_is_the_request_not_the_object():
    assert identity(RenderRequest(SPEC, "1")) == identity(RenderRequest(SPEC, "1"))
    assert identity(RenderRequest(SPEC, "1")) != identity(RenderRequest(SPEC, "2"))


def test_a_kinds_declared_defaults_for_what_it_does_not_say():
    assert (Tally.action, Tally.cli, Tally.offer, Tally.ended_event, Tally.coordinates) == \
        ("c2pa.edited", None, None, None, False)
    assert RenderRequest.action == "c2pa.created" and KINDS["upscale"].action == "c2pa.resized"
    offer = Offer("Go", "Went: {pick}", "note", {"a": 1}, pick="x", pick_table="styles", pick_label="X", order=2)
    assert offer.to_json() == {"label": "Go", "heading": "Went: {pick}", "note": "note", "body": {"a": 1}, "pick": "x",
                               "pickTable": "styles", "pickLabel": "X", "shows": "all", "order": 2}
