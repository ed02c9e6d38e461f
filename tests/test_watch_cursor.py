"""The watcher's pure logic: confirmations per chain, the reorganisation's common ancestor, the log range."""

import pytest

from aleaart.watch.cursor import (
    ChunkSize,
    Fulfilment,
    PushedBlocks,
    backoff_seconds,
    common_ancestor,
    default_confirmations,
    latest_per_token,
)


def test_confirmations_follow_the_chains_finality():
    assert default_confirmations(421614) == default_confirmations(42161) == 20  # Arbitrum: ~5 s
    assert default_confirmations(1) == 12 and default_confirmations(31337) == 0
    assert default_confirmations(999_999) == 12  # an unknown chain is treated as Ethereum


def test_the_ancestor_is_the_newest_kept_block_still_canonical():
    kept = [(10, "a10"), (11, "a11"), (12, "a12"), (13, "a13")]
    canonical = {10: "a10", 11: "a11", 12: "b12", 13: "b13"}
    asked = []

    def canonical_hash(number):
        asked.append(number)
        return canonical.get(number)

    assert common_ancestor(kept, canonical_hash) == 11
    assert asked == [13, 12, 11]  # newest first, stopping at the first match
    assert common_ancestor(kept, lambda n: None) is None  # deeper than kept (or the chain is shorter)
    assert common_ancestor([], canonical_hash) is None


def test_a_token_fulfilled_twice_in_a_range_keeps_its_later_seed():
    found = [Fulfilment(7, b"\x02" * 32, 5, "h5", 0), Fulfilment(8, b"\x03" * 32, 4, "h4", 1),
             Fulfilment(7, b"\x01" * 32, 4, "h4", 0)]
    assert [(f.token_id, f.seed[0]) for f in latest_per_token(found)] == [(8, 3), (7, 2)]


def test_a_refused_range_is_halved_down_to_one_block_and_grows_back_to_what_passed():
    chunk = ChunkSize(1000)
    assert chunk.refused(1000) and chunk.blocks == 500
    assert chunk.refused(500) and chunk.blocks == 250
    for _ in range(ChunkSize.GROW_AFTER):
        chunk.answered()
    assert chunk.blocks == 499  # twice as many, but under what was refused
    for _ in range(ChunkSize.LIFT_CEILING_AFTER):
        chunk.answered()
    assert chunk.blocks == 1000  # a long run of answers: the refused sizes are tried again
    small = ChunkSize(2)
    assert small.refused(2) and small.blocks == 1
    assert not small.refused(1)  # one block refused: nothing left to halve


def test_a_range_cut_short_at_the_head_is_halved_from_what_it_asked_for():
    chunk = ChunkSize(2000)
    assert chunk.refused(27) and chunk.blocks == 13  # not 1000: the range stopped at the head, 27 blocks on
    assert chunk.refused(13) and chunk.blocks == 6
    for _ in range(ChunkSize.GROW_AFTER):
        chunk.answered()
    assert chunk.blocks == 12  # under the 13 refused



def test_a_pushed_fulfilment_is_due_once_it_has_its_confirmations_not_on_every_head():
    pushed = PushedBlocks(confirmations=2)
    assert not pushed.new_head(10)  # heads alone: nothing to read
    assert not pushed.fulfilled_in(11)
    assert not pushed.new_head(12)
    assert pushed.new_head(13)  # 11 is 2 under the head
    assert not pushed.new_head(14)  # once
    assert pushed.fulfilled_in(12)  # already confirmed by a head seen before the log
    assert PushedBlocks(confirmations=0).fulfilled_in(5)


@pytest.mark.parametrize(("failures", "expected"), [(1, 2.0), (2, 4.0), (3, 8.0), (10, 60.0)])
def test_backoff_doubles_up_to_its_cap(failures, expected):
    assert backoff_seconds(failures, base=2.0, cap=60.0) == expected
