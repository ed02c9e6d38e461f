"""The chain as the watcher reads it over JSON-RPC: the head, a block's hash, and EntropyFulfilled logs."""

from __future__ import annotations

from dataclasses import dataclass

from web3 import Web3
from web3.exceptions import BlockNotFound, Web3RPCError

from aleaart.chain import TRANSPORT_ERRORS, ChainReader
from aleaart.errors import ChainError
from aleaart.watch.cursor import Fulfilment

FULFILLED_TOPIC = "0x" + Web3.keccak(text="EntropyFulfilled(uint256,bytes32)").hex().removeprefix("0x")


class RangeRefused(ChainError):
    """The RPC answered ``eth_getLogs`` with an error (too many blocks, too many results) rather than failing
    to answer: a smaller range may pass."""


@dataclass(frozen=True)
class Block:
    number: int
    hash: str
    timestamp: int


class ChainLog:
    """Blocks and the contract's fulfilment logs, on the chain reader's connection (the same RPC and chain
    check); every failure to reach the node is a ChainError."""

    def __init__(self, reader: ChainReader) -> None:
        self.reader = reader
        self.w3 = reader.w3
        self.address = Web3.to_checksum_address(reader.address)

    def head(self) -> int:
        return self._call(lambda: int(self.w3.eth.block_number))

    def block(self, number: int) -> Block | None:
        """The canonical block at ``number``; None above the head."""
        def read() -> Block | None:
            try:
                found = self.w3.eth.get_block(number)
            except BlockNotFound:
                return None
            return Block(number, "0x" + bytes(found["hash"]).hex(), int(found["timestamp"]))

        return self._call(read)

    def block_hash(self, number: int) -> str | None:
        found = self.block(number)
        return found.hash if found else None

    def fulfilments(self, first: int, last: int) -> list[Fulfilment]:
        """EntropyFulfilled logs of blocks first..last; RangeRefused when the RPC refuses the range."""
        query = {"address": self.address, "fromBlock": first, "toBlock": last, "topics": [FULFILLED_TOPIC]}
        self.reader.check_chain()
        try:
            logs = self.w3.eth.get_logs(query)  # type: ignore[arg-type]
        except Web3RPCError as error:
            raise RangeRefused(f"eth_getLogs {first}..{last} refused: {str(error)[:200]}") from None
        except TRANSPORT_ERRORS as error:
            raise self.reader.unreachable(error) from None
        return [fulfilment_of(entry) for entry in logs if not entry.get("removed")]

    def deployment_block(self) -> int:
        """The first block where the contract has code, by bisection over eth_getCode (needs a node that keeps
        old state; ALEAART_WATCH_FROM_BLOCK avoids it)."""
        def has_code(number: int) -> bool:
            return bool(self._call(lambda: self.w3.eth.get_code(self.address, block_identifier=number)))

        low, high = 0, self.head()
        if not has_code(high):
            raise ChainError(f"no contract at {self.address} on this chain: check ALEAART_PARAMS_CONTRACT")
        while low < high:
            middle = (low + high) // 2
            if has_code(middle):
                high = middle
            else:
                low = middle + 1
        return low

    def _call(self, read):  # type: ignore[no-untyped-def]
        self.reader.check_chain()
        try:
            return read()
        except Web3RPCError as error:
            raise ChainError(f"the RPC at {self.reader.rpc_url} answered an error: {str(error)[:200]}") from None
        except TRANSPORT_ERRORS as error:
            raise self.reader.unreachable(error) from None


def fulfilment_of(entry: dict) -> Fulfilment:
    """An EntropyFulfilled log: tokenId is its second topic, the seed its data."""
    data = bytes(entry["data"])
    return Fulfilment(
        token_id=int.from_bytes(bytes(entry["topics"][1]), "big"),
        seed=data[:32],
        block_number=int(entry["blockNumber"]),
        block_hash="0x" + bytes(entry["blockHash"]).hex(),
        log_index=int(entry["logIndex"]),
    )
