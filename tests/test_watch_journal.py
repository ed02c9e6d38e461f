"""The watcher's journal in SQLite: the cursor and tokens move together, a rewind forgets what it replaced."""

import pytest

from aleaart.database import Database
from aleaart.watch.cursor import Fulfilment
from aleaart.watch.journal import FAILED_AFTER, KEPT_BLOCKS, WatchJournal

SEED_A, SEED_B = b"\xaa" * 32, b"\xbb" * 32


@pytest.fixture
def journal(tmp_path):
    db = Database(tmp_path / "index.db")
    yield WatchJournal(db, chain_id=31337, address="0xABC")
    db.close()


def test_a_range_and_its_tokens_are_written_together_and_survive_a_reopen(journal, tmp_path):
    journal.start_at(99)
    assert journal.cursor() == 99 and journal.kept_blocks() == []
    assert journal.advance(110, "h110", [Fulfilment(1, SEED_A, 105, "h105", 0)], now=1000.0) == 1
    assert journal.advance(120, "h120", [Fulfilment(1, SEED_A, 105, "h105", 0)]) == 0  # seen before: not new
    reopened = WatchJournal(Database(tmp_path / "index.db"), chain_id=31337, address="0xabc")  # address case
    assert reopened.cursor() == 120
    assert reopened.kept_blocks() == [(105, "h105"), (110, "h110"), (120, "h120")]
    assert [(t.token_id, t.seed) for t in reopened.due(10, now=1000.0)] == [(1, SEED_A)]
    reopened.db.close()
    other_contract = WatchJournal(journal.db, chain_id=31337, address="0xdef")
    assert other_contract.cursor() is None and not other_contract.started()


def test_a_rewind_forgets_tokens_above_the_ancestor_and_counts_the_reorg(journal):
    journal.start_at(0)
    journal.advance(10, "h10", [Fulfilment(1, SEED_A, 5, "h5", 0), Fulfilment(2, SEED_A, 9, "h9", 0)])
    assert journal.rewind(6) == [2]
    assert journal.cursor() == 6 and journal.kept_blocks() == [(5, "h5")]
    status = journal.status()
    assert status.reorgs == 1 and status.seen == 1


def test_a_new_seed_makes_a_rendered_token_pending_again(journal):
    journal.start_at(0)
    journal.advance(5, "h5", [Fulfilment(3, SEED_A, 5, "h5", 0)])
    due = journal.due(1)[0]
    assert journal.rendered(3, SEED_A, "key-a")
    assert journal.due(1) == []
    journal.advance(6, "h6", [Fulfilment(3, SEED_B, 6, "h6", 0)])
    assert not journal.rendered(3, SEED_A, "key-a")  # an image of the old seed is no longer the token's
    assert [t.seed for t in journal.due(1)] == [SEED_B] and due.seed == SEED_A
    assert journal.token(3)["state"] == "pending"


def test_failures_postpone_and_count_as_failed_after_a_few(journal):
    journal.start_at(0)
    journal.advance(5, "h5", [Fulfilment(4, SEED_A, 5, "h5", 0)])
    for attempt in range(FAILED_AFTER):
        journal.postpone(4, SEED_A, until=2e9, error=f"boom {attempt}", attempt=True)
    assert journal.due(5) == []  # not before its time
    assert journal.due(5, now=2e9)[0].attempts == FAILED_AFTER
    status = journal.status()
    assert (status.pending, status.failed, status.rendered) == (1, 1, 0)
    assert journal.token(4)["error"] == f"boom {FAILED_AFTER - 1}"


def test_only_the_newest_block_hashes_are_kept(journal):
    journal.start_at(0)
    for number in range(1, KEPT_BLOCKS + 11):
        journal.advance(number, f"h{number}", [])
    kept = journal.kept_blocks()
    assert len(kept) == KEPT_BLOCKS and kept[0][0] == 11


def test_the_status_says_behind_while_an_error_stands_or_the_head_was_not_reached(journal):
    journal.start_at(0)
    journal.advance(10, "h10", [])
    journal.note_head(12, synced=True)
    status = journal.status()
    shown = status.to_json(now=status.synced_at + 1, confirmations=2, behind_after=30)
    assert shown["status"] == "following" and shown["lagBlocks"] == 2 and shown["headBlock"] == 12
    assert status.to_json(now=status.synced_at + 31, confirmations=2, behind_after=30)["status"] == "behind"
    journal.note_error("cannot read the chain at http://x: refused")
    shown = journal.status().to_json(now=status.synced_at + 1, confirmations=2, behind_after=30)
    assert shown["status"] == "behind" and shown["lastError"].startswith("cannot read")
