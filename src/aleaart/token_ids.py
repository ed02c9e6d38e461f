"""Token ids (pure): the one parser of the uint256 ids the contract uses, and the optional id or label a request
names its image's file with."""

from __future__ import annotations

import contextlib
import re
from typing import Any

from aleaart.errors import InvalidParams

# Token ids are uint256 on chain; the service takes those below 10^77 (77 decimal digits, which a
# JSON Schema pattern states exactly; 2^256 - 1 has 78). As JSON numbers, up to 2^53 - 1: above
# that a JavaScript client cannot send an exact number anyway, and sends a string.
TOKEN_ID = re.compile(r"[0-9]{1,77}")
MAX_TOKEN_ID = 10**77 - 1
MAX_JSON_TOKEN_ID = 2**53 - 1


def parse_token_id(value: Any) -> int:
    """A token id (uint256) from an integer or a string of ASCII decimal digits; anything else is refused.

    The one parser of token ids: the HTTP bodies, paths and queries and the CLI all call it.
    """
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_TOKEN_ID:
        return value
    if isinstance(value, str) and TOKEN_ID.fullmatch(value) and int(value) <= MAX_TOKEN_ID:
        return int(value)
    raise InvalidParams(f"tokenId must be a non-negative integer of up to 77 decimal digits, got {value!r}")


# What the deployed clients send besides numbers ("test").
TOKEN_LABEL_LENGTH = 64
TOKEN_LABEL = re.compile(rf"[A-Za-z0-9_-]{{1,{TOKEN_LABEL_LENGTH}}}")
LABEL_NOT_NUMBER = r"[A-Za-z0-9_-]*[A-Za-z_-][A-Za-z0-9_-]*"  # a label is not all digits (that is a token id)


def check_token_id(value: Any) -> str | None:
    """A request's optional token id: a number up to 2^53 - 1 or a string of up to 77 digits, made
    canonical ("007" → "7"), or a label of letters, digits, ``_`` and ``-`` (up to 64) kept as it
    is; it names the image's file."""
    if value is None:
        return None
    if isinstance(value, str) and TOKEN_LABEL.fullmatch(value) and not TOKEN_ID.fullmatch(value):
        return value
    if isinstance(value, str) or (isinstance(value, int) and value <= MAX_JSON_TOKEN_ID):
        with contextlib.suppress(InvalidParams):
            return str(parse_token_id(value))
    raise InvalidParams(
        f"tokenId must be a non-negative integer (as a JSON number up to {MAX_JSON_TOKEN_ID}, as a string up to "
        f"77 digits) or a label of letters, digits, _ and - (up to 64 characters), got {value!r}"
    )
