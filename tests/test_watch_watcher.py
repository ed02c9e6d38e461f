"""watch/watcher.py without a node: a chain of the test's own (head, block hashes, fulfilments, tokens), the real
journal and the in-process queue on the fake engine. The anvil tests (integration/test_watch.py) do it for real."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from fakes import FakeEngine
from waiting import eventually

from aleaart.chain import TokenBatch, TokenInfo
from aleaart.config import Settings
from aleaart.database import Database
from aleaart.entropy import derive_params
from aleaart.jobs import JobBook, JobQueue, ModelHolder
from aleaart.params import DEFAULT_PALETTE
from aleaart.store import ImageStore
from aleaart.watch.cursor import Fulfilment
from aleaart.watch.journal import WatchJournal
from aleaart.watch.watcher import WatchConfig, Watcher


@dataclass
class Chain:
    """Blocks 1..head, each hash named by its branch; fulfilments by block; tokens by id."""

    top: int = 10  # the head block
    branch: str = "a"
    fulfilled: dict[int, list[tuple[int, bytes]]] = field(default_factory=dict)  # block → [(token, seed)]
    forgotten: list[int] = field(default_factory=list)

    def head(self) -> int:
        return self.top

    def block_hash(self, number: int) -> str | None:
        return f"0x{self.branch}{number}" if number <= self.top else None

    def fulfilments(self, first: int, last: int) -> list[Fulfilment]:
        return [Fulfilment(token, seed, block, self.block_hash(block), i)
                for block in range(first, last + 1) for i, (token, seed) in enumerate(self.fulfilled.get(block, []))]

    def deployment_block(self) -> int:
        return 1

    def info(self, token_id: int) -> TokenInfo:
        seed = next(s for tokens in self.fulfilled.values() for t, s in tokens if t == token_id)
        return TokenInfo(token_id, derive_params(seed), seed, derive_params(seed))

    # ChainReader's part

    def tokens(self, first: int, last: int) -> TokenBatch:
        minted = {t for tokens in self.fulfilled.values() for t, _ in tokens}
        return TokenBatch([self.info(t) for t in range(first, last + 1) if t in minted], [], 0)

    def token(self, token_id: int) -> TokenInfo:
        return self.info(token_id)

    def forget(self, token_id: int) -> None:
        self.forgotten.append(token_id)


@pytest.fixture
def watching(tmp_path):
    db = Database(tmp_path / "journal.db")
    store = ImageStore(tmp_path / "images", db)
    engine = FakeEngine()
    holder = ModelHolder(lambda: engine)
    holder.start()
    queue = JobQueue(model=holder, store=store, book=JobBook(db, store), settings=Settings(images_dir=tmp_path))
    queue.start()
    chain = Chain()
    journal = WatchJournal(db, chain_id=31337, address="0x" + "ab" * 20)
    config = WatchConfig(confirmations=2, from_block=None, poll_seconds=0.05, max_blocks=4, palette=DEFAULT_PALETTE)
    watcher = Watcher(chain=chain, queue=queue, journal=journal, config=config, chain_log=chain)  # type: ignore[arg-type]
    yield watcher, chain, journal, engine
    watcher.stop()
    queue.stop()
    db.close()


def seed(n: int) -> bytes:
    return n.to_bytes(32, "big")


def settled(watcher: Watcher, journal: WatchJournal, rendered: int) -> bool:
    watcher.collect()
    watcher.dispatch()
    return journal.status().rendered == rendered


def test_a_pass_reads_up_to_the_confirmed_head_and_renders_each_fulfilled_token_once(watching):
    watcher, chain, journal, engine = watching
    chain.fulfilled = {3: [(1, seed(11)), (2, seed(12))], 7: [(3, seed(13))], 9: [(4, seed(14))]}
    watcher.step()
    assert journal.cursor() == 8  # head 10, 2 confirmations: block 9's token is not read yet
    assert eventually(lambda: settled(watcher, journal, 3))
    watcher.step()  # nothing new: nothing rendered again
    assert len(engine.calls) == 3
    chain.top = 11
    watcher.step()
    assert eventually(lambda: settled(watcher, journal, 4)) and len(engine.calls) == 4


def test_a_reorganisation_reads_the_replaced_blocks_again_and_forgets_their_tokens(watching):
    watcher, chain, journal, engine = watching
    chain.fulfilled = {6: [(1, seed(21))]}
    watcher.step()
    assert eventually(lambda: settled(watcher, journal, 1))
    chain.branch, chain.fulfilled = "b", {6: [(1, seed(22))]}  # the same token, fulfilled again with another seed
    chain.top = 11
    watcher.step()
    assert chain.forgotten == [1] and journal.status().reorgs == 1
    assert eventually(lambda: settled(watcher, journal, 1) and len(engine.calls) == 2)
    assert engine.calls[-1].seed == derive_params(seed(22)).latent_seed
