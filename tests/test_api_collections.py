"""The /collections body: the same token range the CLI takes (from 0), checked before any chain read."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from aleaart.api.collections import CollectionBody


def test_a_collection_may_start_at_token_zero_as_the_cli_does():
    body = CollectionBody.model_validate({"from": 0, "to": 0})
    assert (body.first, body.last) == (0, 0)
    assert CollectionBody.model_validate({}).first == 1  # the default stays the first minted id


@pytest.mark.parametrize("bad", [{"from": -1}, {"to": -1}, {"from": "1"}, {"from": 1.0}, {"first": 2, "extra": 1}])
def test_a_bad_range_is_refused(bad):
    with pytest.raises(ValidationError):
        CollectionBody.model_validate(bad)


def test_to_below_from_is_a_422_naming_both(fake_client):
    answer = fake_client.post("/collections", json={"from": 5, "to": 3})
    assert answer.status_code == 422
    assert answer.json()["code"] == "invalid_params" and "to must be at least from (5), got 3" in answer.json()["error"]
