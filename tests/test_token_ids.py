"""Token ids (pure): the uint256 ids of the chain, and the optional id or label of a request."""

import pytest

from aleaart.errors import InvalidParams
from aleaart.token_ids import check_token_id, parse_token_id


def test_chain_token_ids_are_uint256_in_ascii_decimal():
    assert parse_token_id(7) == 7 and parse_token_id("007") == 7 and parse_token_id("9" * 77) == 10**77 - 1
    for bad in ("-1", "1.5", "abc", "", "²", "١", "１", "1\n", " 1", -1, True, 1.0, None, 10**77, "9" * 78):
        with pytest.raises(InvalidParams, match="tokenId must be"):
            parse_token_id(bad)


def test_request_token_ids_are_numbers_or_labels():
    assert check_token_id(None) is None
    assert check_token_id(7) == "7" and check_token_id("007") == "7"
    assert check_token_id(2**53 - 1) == str(2**53 - 1) and check_token_id("9" * 77) == "9" * 77
    assert check_token_id("test") == "test" and check_token_id("test_async-2") == "test_async-2"
    for bad in ("1.5", "../x", "a b", "", "x" * 65, "tést", "1\n", -1, True, False, 0.0, 2**53, "9" * 78, [1]):
        with pytest.raises(InvalidParams, match="tokenId must be"):
            check_token_id(bad)
