"""Reads tokens from the EntropyArtParamsV2 contract and checks them against their seed."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import requests
from eth_abi import decode
from eth_abi.exceptions import DecodingError
from web3 import Web3
from web3.exceptions import ContractLogicError, ProviderConnectionError, TimeExhausted, Web3RPCError

from aleaart.config import Settings
from aleaart.derive import derive_params
from aleaart.errors import ChainError, ChainUnavailable, NotFound, TokenNotReady
from aleaart.params import FIELDS, RenderParams, describe

T = TypeVar("T")
ZERO_SEED = b"\0" * 32
ERROR_SELECTOR = bytes.fromhex("08c379a0")  # Error(string), what `require(cond, "reason")` reverts with
NOT_READY = "not ready"  # the test contract's and EntropyArtParamsV2's revert reason before the seed
# What a failed read looks like when the node is down, slow or answers with an error. Anything
# else (a bug in this code, a broken ABI) propagates as itself.
TRANSPORT_ERRORS = (requests.RequestException, ProviderConnectionError, TimeExhausted, Web3RPCError, OSError)
LATEST_LOOKBACK = 256  # how far below nextTokenId "latest" looks for a token with its seed

_PARAMS_TUPLE = [
    {"name": f.key, "type": t}
    for f, t in zip(FIELDS, ["uint8", "uint8", "uint8", "uint8", "uint16", "uint16", "uint32", "uint16"], strict=True)
]
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


def params_from_tuple(values: Any) -> RenderParams:
    return RenderParams(*(int(v) for v in values))


class ChainReader:
    """Contract reads with a timeout; finished tokens are cached (their parameters never change)."""

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
        self._chain_checked = False
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> ChainReader:
        return cls(rpc_url=settings.rpc_url, chain_id=settings.chain_id, address=settings.params_contract,
                   timeout=settings.chain_timeout)

    def token(self, token_id: int) -> TokenInfo:
        """The token's parameters and seed; NotFound if not minted, TokenNotReady before its seed."""
        if (cached := self._cache.get(token_id)) is not None:
            return cached
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
        with self._lock:
            self._cache[token_id] = info
        return info

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
        self._check_chain()
        try:
            return read()
        except ContractLogicError as error:
            reason = revert_reason(error)
            if reason == NOT_READY:
                raise TokenNotReady("the token is not ready: its randomness has not arrived yet") from None
            raise ChainError(f"the contract at {self.address} reverted: {reason or error}") from None
        except TRANSPORT_ERRORS as error:
            raise self._unreachable(error) from None

    def _check_chain(self) -> None:
        if self._chain_checked:
            return
        try:
            actual = self.w3.eth.chain_id
        except TRANSPORT_ERRORS as error:
            raise self._unreachable(error) from None
        if actual != self.chain_id:
            raise ChainUnavailable(
                f"the RPC at {self.rpc_url} serves chain id {actual}, not {self.chain_id}: "
                "check ALEAART_RPC_URL and ALEAART_CHAIN_ID"
            )
        self._chain_checked = True

    def _unreachable(self, error: Exception) -> ChainError:
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
