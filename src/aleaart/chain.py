"""Reads tokens from the EntropyArtParamsV2 contract and checks them against their seed."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import requests
from eth_abi import decode
from eth_abi.exceptions import DecodingError
from web3 import Web3
from web3.exceptions import ContractLogicError, ProviderConnectionError, TimeExhausted, Web3RPCError

from aleaart.config import Settings
from aleaart.entropy import derive_params
from aleaart.errors import ChainError, ChainUnavailable, NotFound, TokenNotReady
from aleaart.params import FIELDS, RenderParams, describe

T = TypeVar("T")
ZERO_SEED = b"\0" * 32
ERROR_SELECTOR = bytes.fromhex("08c379a0")  # Error(string), what `require(cond, "reason")` reverts with
NOT_READY = "not ready"  # the test contract's and EntropyArtParamsV2's revert reason before the seed
# What a failed read looks like when the node is down, slow or answers with an error. Anything
# else (a bug in this code, a broken ABI) propagates as itself.
TRANSPORT_ERRORS = (requests.RequestException, ProviderConnectionError, TimeExhausted, Web3RPCError, OSError)
# How long a token read is trusted before it is read again: a reorganisation can replace a token's seed, and a
# watcher in another process cannot tell this one. A read that fails keeps the token known.
TOKEN_FRESH_SECONDS = 300.0
LATEST_LOOKBACK = 256  # how far below nextTokenId "latest" looks for a token with its seed
MULTICALL3 = "0xcA11bde05977b3631167028862bE2a173976CA11"  # the same address on most chains
MULTICALL_TOKENS = 400  # tokens (two calls each) per aggregate3 eth_call
BATCH_REQUESTS = 500  # JSON-RPC requests per batch where there is no Multicall3

_PARAMS_TUPLE = [
    {"name": f.key, "type": t}
    for f, t in zip(FIELDS, ["uint8", "uint8", "uint8", "uint8", "uint16", "uint16", "uint32", "uint16"], strict=True)
]
MULTICALL3_ABI: list[dict[str, Any]] = [
    {"type": "function", "name": "aggregate3", "stateMutability": "payable",
     "inputs": [{"name": "calls", "type": "tuple[]", "components": [
         {"name": "target", "type": "address"}, {"name": "allowFailure", "type": "bool"},
         {"name": "callData", "type": "bytes"}]}],
     "outputs": [{"name": "returnData", "type": "tuple[]", "components": [
         {"name": "success", "type": "bool"}, {"name": "returnData", "type": "bytes"}]}]},
]
PARAMS_TYPE = "(" + ",".join(p["type"] for p in _PARAMS_TUPLE) + ")"
CONTRACT_ABI: list[dict[str, Any]] = [
    {"type": "function", "name": "viewRenderParams", "stateMutability": "view",
     "inputs": [{"name": "tokenId", "type": "uint256"}],
     "outputs": [{"name": "", "type": "tuple", "components": _PARAMS_TUPLE}]},
    {"type": "function", "name": "tokenSeed", "stateMutability": "view",
     "inputs": [{"name": "", "type": "uint256"}], "outputs": [{"name": "", "type": "bytes32"}]},
    {"type": "function", "name": "nextTokenId", "stateMutability": "view",
     "inputs": [], "outputs": [{"name": "", "type": "uint256"}]},
    {"type": "event", "name": "EntropyRequested", "anonymous": False, "inputs": [
        {"name": "tokenId", "type": "uint256", "indexed": True},
        {"name": "requestId", "type": "uint64", "indexed": True},
        {"name": "feePaid", "type": "uint256", "indexed": False}]},
    {"type": "event", "name": "EntropyFulfilled", "anonymous": False, "inputs": [
        {"name": "tokenId", "type": "uint256", "indexed": True},
        {"name": "seed", "type": "bytes32", "indexed": False}]},
]


@dataclass(frozen=True)
class TokenInfo:
    """A token as the chain has it, with the parameters its seed derives to."""

    token_id: int
    params: RenderParams
    seed: bytes
    derived: RenderParams

    @property
    def derived_match(self) -> bool:
        return self.params == self.derived


@dataclass(frozen=True)
class TokenBatch:
    """A range of tokens as the chain has them: ready ones, those waiting for randomness, and how many
    of the range are not minted."""

    ready: list[TokenInfo]
    pending: list[int]
    not_minted: int


def params_from_tuple(values: Any) -> RenderParams:
    return RenderParams(*(int(v) for v in values))


class ChainReader:
    """Contract reads with a timeout; finished tokens are cached for TOKEN_FRESH_SECONDS (their parameters
    change only if a reorganisation replaces their seed; ``forget`` drops one at once)."""

    def __init__(self, *, rpc_url: str, chain_id: int, address: str, timeout: float = 5.0,
                 web3: Web3 | None = None) -> None:
        self.rpc_url = rpc_url
        self.chain_id = chain_id
        self.address = address
        self.w3 = web3 or Web3(Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": timeout}))
        try:
            checksum = Web3.to_checksum_address(address)
        except ValueError:
            raise ChainUnavailable(f"ALEAART_PARAMS_CONTRACT is not an address: {address!r}") from None
        self.contract = self.w3.eth.contract(address=checksum, abi=CONTRACT_ABI)
        self._cache: dict[int, TokenInfo] = {}
        self._read_at: dict[int, float] = {}
        self._chain_checked = False
        self._multicall: bool | None = None
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> ChainReader:
        return cls(rpc_url=settings.rpc_url, chain_id=settings.chain_id, address=settings.params_contract,
                   timeout=settings.chain_timeout)

    def known(self, token_id: int) -> TokenInfo | None:
        """The token if it was read recently (memory only: safe on the event loop)."""
        if time.monotonic() - self._read_at.get(token_id, -TOKEN_FRESH_SECONDS) >= TOKEN_FRESH_SECONDS:
            return None
        return self._cache.get(token_id)

    def forget(self, token_id: int) -> None:
        """Read the token from the chain next time (its fulfilment was reorganised away)."""
        with self._lock:
            self._cache.pop(token_id, None)
            self._read_at.pop(token_id, None)

    def token(self, token_id: int) -> TokenInfo:
        """The token's parameters and seed; NotFound if not minted, TokenNotReady before its seed."""
        if (cached := self.known(token_id)) is not None:
            return cached
        try:
            return self._read_token(token_id)
        except ChainError as error:
            if type(error) is ChainError and (stale := self._cache.get(token_id)) is not None:
                return stale  # the node is unreachable: what was read last is better than an error
            raise

    def _read_token(self, token_id: int) -> TokenInfo:
        next_id = self.next_token_id()
        if not 1 <= token_id < next_id:
            raise NotFound(f"token {token_id} is not minted (token ids run from 1 to {next_id - 1})")
        seed = self._call(self.contract.functions.tokenSeed(token_id).call)
        if seed == ZERO_SEED:
            raise TokenNotReady(
                f"token {token_id} is not ready: its Pyth Entropy randomness has not arrived yet; try again shortly"
            )
        values = self._call(self.contract.functions.viewRenderParams(token_id).call)
        info = TokenInfo(token_id=token_id, params=params_from_tuple(values), seed=seed, derived=derive_params(seed))
        self._remember(info)
        return info

    def _remember(self, info: TokenInfo) -> None:
        with self._lock:
            self._cache[info.token_id] = info
            self._read_at[info.token_id] = time.monotonic()

    def tokens(self, first: int, last: int) -> TokenBatch:
        """Tokens ``first``..``last`` in a few requests: Multicall3's aggregate3 where the chain has it,
        else JSON-RPC batches. Finished tokens come from the cache."""
        next_id = self.next_token_id()
        minted = range(max(1, first), min(last, next_id - 1) + 1)
        unread = [i for i in minted if self.known(i) is None]
        read = self._read_multicall(unread) if self._has_multicall() else self._read_batched(unread)
        pending = []
        for token_id, (seed, values) in read.items():
            if seed == ZERO_SEED:
                pending.append(token_id)
                continue
            self._remember(TokenInfo(token_id=token_id, params=params_from_tuple(values), seed=seed,
                                     derived=derive_params(seed)))
        ready = [self._cache[i] for i in minted if i in self._cache]
        return TokenBatch(ready=ready, pending=sorted(pending), not_minted=max(0, last - first + 1) - len(minted))

    def _has_multicall(self) -> bool:
        if self._multicall is None:
            self._multicall = bool(self._call(lambda: self.w3.eth.get_code(Web3.to_checksum_address(MULTICALL3))))
        return self._multicall

    def _read_multicall(self, ids: list[int]) -> dict[int, tuple[bytes, Any]]:
        """(seed, params tuple or None) per token, two calls a token in each aggregate3."""
        multicall = self.w3.eth.contract(address=Web3.to_checksum_address(MULTICALL3), abi=MULTICALL3_ABI)
        found: dict[int, tuple[bytes, Any]] = {}
        for start in range(0, len(ids), MULTICALL_TOKENS):
            chunk = ids[start:start + MULTICALL_TOKENS]
            calls = [(self.contract.address, True, self.contract.encode_abi(name, args=[i]))
                     for i in chunk for name in ("tokenSeed", "viewRenderParams")]
            results = self._call(multicall.functions.aggregate3(calls).call)
            for index, token_id in enumerate(chunk):
                (seed_ok, seed_data), (params_ok, params_data) = results[2 * index], results[2 * index + 1]
                seed = decode(["bytes32"], seed_data)[0] if seed_ok else ZERO_SEED
                found[token_id] = (seed, decode([PARAMS_TYPE], params_data)[0] if params_ok else None)
        return found

    def _read_batched(self, ids: list[int]) -> dict[int, tuple[bytes, Any]]:
        """The same in JSON-RPC batches: every seed first, then the parameters of the tokens that have one."""
        seeds: dict[int, bytes] = {}
        for start in range(0, len(ids), BATCH_REQUESTS):
            chunk = ids[start:start + BATCH_REQUESTS]
            seeds.update(zip(chunk, self._batch([self.contract.functions.tokenSeed(i) for i in chunk]), strict=True))
        ready = [i for i in ids if seeds[i] != ZERO_SEED]
        found: dict[int, tuple[bytes, Any]] = {i: (seeds[i], None) for i in ids}
        for start in range(0, len(ready), BATCH_REQUESTS):
            chunk = ready[start:start + BATCH_REQUESTS]
            values = self._batch([self.contract.functions.viewRenderParams(i) for i in chunk])
            found.update({i: (seeds[i], v) for i, v in zip(chunk, values, strict=True)})
        return found

    def _batch(self, calls: list[Any]) -> list[Any]:
        def execute() -> list[Any]:
            with self.w3.batch_requests() as batch:
                for call in calls:
                    batch.add(call)
                return batch.execute()

        return self._call(execute)

    def latest(self) -> TokenInfo:
        """The highest minted token whose seed has arrived."""
        next_id = self.next_token_id()
        if next_id <= 1:
            raise NotFound("no token has been minted yet")
        for token_id in range(next_id - 1, max(0, next_id - 1 - LATEST_LOOKBACK), -1):
            if token_id in self._cache or self._call(self.contract.functions.tokenSeed(token_id).call) != ZERO_SEED:
                return self.token(token_id)
        raise TokenNotReady(f"none of the last {min(LATEST_LOOKBACK, next_id - 1)} tokens has its seed yet")

    def next_token_id(self) -> int:
        return int(self._call(self.contract.functions.nextTokenId().call))

    def _call(self, read: Callable[[], T]) -> T:
        self.check_chain()
        try:
            return read()
        except ContractLogicError as error:
            reason = revert_reason(error)
            if reason == NOT_READY:
                raise TokenNotReady("the token is not ready: its randomness has not arrived yet") from None
            raise ChainError(f"the contract at {self.address} reverted: {reason or error}") from None
        except TRANSPORT_ERRORS as error:
            raise self.unreachable(error) from None

    def check_chain(self) -> None:
        if self._chain_checked:
            return
        try:
            actual = self.w3.eth.chain_id
        except TRANSPORT_ERRORS as error:
            raise self.unreachable(error) from None
        if actual != self.chain_id:
            raise ChainUnavailable(
                f"the RPC at {self.rpc_url} serves chain id {actual}, not {self.chain_id}: "
                "check ALEAART_RPC_URL and ALEAART_CHAIN_ID"
            )
        self._chain_checked = True

    def unreachable(self, error: Exception) -> ChainError:
        reason = str(error).splitlines()[0][:200] if str(error) else type(error).__name__
        return ChainError(f"cannot read the chain at {self.rpc_url}: {reason}")


def revert_reason(error: ContractLogicError) -> str | None:
    """The string of a ``require``/``revert("...")``, decoded from the revert data; None for other reverts."""
    data = error.data
    if isinstance(data, dict):
        data = data.get("data")
    if not isinstance(data, str) or not data.startswith("0x"):
        return None
    try:
        raw = bytes.fromhex(data[2:])
    except ValueError:
        return None
    if not raw.startswith(ERROR_SELECTOR):
        return None
    try:
        return decode(["string"], raw[len(ERROR_SELECTOR):])[0]
    except DecodingError:
        return None


def token_json(info: TokenInfo) -> dict[str, Any]:
    """A token as the API and the CLI show it."""
    return {
        "tokenId": str(info.token_id),
        "parameters": info.params.to_json(),
        "seed": "0x" + info.seed.hex(),
        "derivedMatch": info.derived_match,
        "derivedParameters": info.derived.to_json(),
        "named": {**describe(info.params), "cfg": f"{info.params.guidance_scale:g}"},
    }
