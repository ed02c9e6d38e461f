"""The watcher's pure logic: how deep a block must be, where a reorganisation forked, how many blocks one
``eth_getLogs`` may ask for, when a pushed fulfilment is confirmed. No web3, no database."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

# Blocks a fulfilment must be under before its token is rendered. Ethereum: 12 blocks (~2.4 min), the
# long-standing convention for "will not reorg in practice" (finality proper is 2 epochs, ~13 min).
# Arbitrum: the sequencer orders transactions at once and reorders only if it misbehaves, so its soft finality
# is nearly immediate; 20 blocks is ~5 s at 250 ms a block, enough to ride out the sequencer feed's rare
# rollbacks without delaying the image. OP-stack chains (2 s blocks): 10 blocks, 20 s. Local nodes: 0.
CONFIRMATIONS_BY_CHAIN = {
    1: 12, 11155111: 12, 17000: 12,  # Ethereum mainnet, Sepolia, Holesky
    42161: 20, 42170: 20, 421614: 20,  # Arbitrum One, Nova, Sepolia
    10: 10, 8453: 10, 11155420: 10, 84532: 10,  # OP mainnet, Base, and their Sepolias
    31337: 0, 1337: 0,  # anvil, hardhat, ganache
}
UNKNOWN_CHAIN_CONFIRMATIONS = 12


def default_confirmations(chain_id: int) -> int:
    return CONFIRMATIONS_BY_CHAIN.get(chain_id, UNKNOWN_CHAIN_CONFIRMATIONS)


@dataclass(frozen=True)
class Fulfilment:
    """One EntropyFulfilled event: the token's seed arrived in this block."""

    token_id: int
    seed: bytes
    block_number: int
    block_hash: str
    log_index: int


def latest_per_token(fulfilments: Iterable[Fulfilment]) -> list[Fulfilment]:
    """One fulfilment per token, the last in chain order (a token fulfilled twice keeps the later seed)."""
    last: dict[int, Fulfilment] = {}
    for f in sorted(fulfilments, key=lambda f: (f.block_number, f.log_index)):
        last[f.token_id] = f
    return sorted(last.values(), key=lambda f: (f.block_number, f.log_index))


def common_ancestor(kept: Iterable[tuple[int, str]], canonical_hash: Callable[[int], str | None]) -> int | None:
    """The newest kept block (number, hash) that is still on the canonical chain, asking newest first; None
    when none of them is (the reorganisation is deeper than what was kept). Blocks chain by hash, so below
    the first one that matches, every block matches."""
    for number, block_hash in sorted(kept, reverse=True):
        if canonical_hash(number) == block_hash:
            return number
    return None


class ChunkSize:
    """How many blocks the next ``eth_getLogs`` asks for. A refused range (too many blocks, or too many results)
    halves it, and what was refused becomes a ceiling it grows back to only after a long run of answered ranges
    (a provider's block limit stays put; a dense stretch of logs passes). It doubles after a few answered ranges,
    never above ``maximum``."""

    GROW_AFTER = 4  # answered ranges in a row before asking for twice as many
    LIFT_CEILING_AFTER = 64  # answered ranges in a row before trying sizes that were refused

    def __init__(self, maximum: int) -> None:
        self.maximum = maximum
        self.blocks = maximum
        self.ceiling = maximum
        self._answered = 0

    def refused(self, asked: int) -> bool:
        """A range of ``asked`` blocks was refused: ask for half of it (not of ``blocks``: a range cut short at
        the head asks for fewer). False when a single block was refused (nothing to halve)."""
        self._answered = 0
        if asked <= 1:
            return False
        self.ceiling = min(self.ceiling, asked - 1)
        self.blocks = max(1, min(self.blocks, asked) // 2)
        return True

    def answered(self) -> None:
        self._answered += 1
        if self._answered % self.LIFT_CEILING_AFTER == 0:
            self.ceiling = self.maximum
        if self._answered % self.GROW_AFTER == 0:
            self.blocks = min(self.ceiling, self.blocks * 2)


class PushedBlocks:
    """What a websocket subscription told of: the blocks holding fulfilments and the newest head. A pass is
    due when one of those blocks is ``confirmations`` under the head, not on every new head (on Arbitrum that
    is four a second), so the subscription adds a read only where there is a token to render."""

    def __init__(self, confirmations: int) -> None:
        self.confirmations = confirmations
        self.head: int | None = None
        self._awaited: set[int] = set()

    def fulfilled_in(self, block: int) -> bool:
        """A fulfilment log arrived (its block is at most the head); True when a pass is due."""
        self._awaited.add(block)
        return self.new_head(block)

    def new_head(self, number: int) -> bool:
        self.head = number if self.head is None else max(self.head, number)
        confirmed = {block for block in self._awaited if block + self.confirmations <= self.head}
        self._awaited -= confirmed
        return bool(confirmed)


def backoff_seconds(failures: int, *, base: float, cap: float) -> float:
    """Exponential backoff: base, 2·base, 4·base … up to cap (failures counts from 1)."""
    return min(cap, base * 2 ** max(0, failures - 1))
