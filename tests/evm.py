"""Deploying the committed test contract (chain/build) to a web3 connection."""

from __future__ import annotations

import json
from pathlib import Path

from eth_abi.packed import encode_packed
from eth_hash.auto import keccak
from web3 import Web3

from aleaart.entropy import parse_seed

BUILD = Path(__file__).resolve().parents[1] / "chain" / "build"
SALT = bytes.fromhex("a1ea" * 16)
MINT_BATCH = 250  # tokens minted and fulfilled per transaction, well inside a block's gas


def artifact(name: str = "EntropyArtParamsV2Test") -> dict:
    return json.loads((BUILD / f"{name}.json").read_text())


def deploy(w3: Web3, salt: bytes = SALT):
    """Deploy EntropyArtParamsV2Test from the node's first account; return the contract."""
    built = artifact()
    w3.eth.default_account = w3.eth.accounts[0]
    factory = w3.eth.contract(abi=built["abi"], bytecode=built["bytecode"])
    receipt = w3.eth.wait_for_transaction_receipt(factory.constructor(salt).transact())
    return w3.eth.contract(address=receipt.contractAddress, abi=built["abi"])


def cheap_random_number(token_id: int) -> bytes:
    """A random number whose token renders fast on the tiny model (square, few steps, one-step sampler)."""
    import os

    from aleaart.entropy import derive_params

    while True:
        candidate = os.urandom(32)
        p = derive_params(token_seed(candidate, token_id, SALT))
        if p.aspect_index == 0 and p.steps <= 24 and p.sampler_index not in (1, 4):
            return candidate


def mint_cheap(contract, w3: Web3) -> int:
    """Mint and fulfil a token that is quick to render."""
    return mint(contract, w3, cheap_random_number(contract.functions.nextTokenId().call()))


def mint(contract, w3: Web3, random_number: bytes | None = None) -> int:
    """Mint the next token and, given a random number, fulfil it; return its id."""
    token_id = contract.functions.nextTokenId().call()
    w3.eth.wait_for_transaction_receipt(contract.functions.requestArt().transact())
    if random_number is not None:
        w3.eth.wait_for_transaction_receipt(contract.functions.fulfill(token_id, random_number).transact())
    return token_id


def mint_many(contract, w3: Web3, count: int, random_base: bytes | None = b"\x01" * 32) -> range:
    """Mint ``count`` tokens (fulfilled from ``random_base`` unless it is None) in a few transactions."""
    first = contract.functions.nextTokenId().call()
    base = random_base or b"\0" * 32
    for start in range(0, count, MINT_BATCH):
        tx = contract.functions.mintBatch(min(MINT_BATCH, count - start), base).transact({"gas": 29_000_000})
        w3.eth.wait_for_transaction_receipt(tx)
    return range(first, first + count)


def install_multicall3(w3: Web3) -> None:
    """Put Multicall3's aggregate3 at its canonical address, as on Arbitrum Sepolia (anvil only)."""
    from aleaart.chain import MULTICALL3

    w3.provider.make_request("anvil_setCode", [MULTICALL3, artifact("Multicall3Test")["deployedBytecode"]])


def token_seed(random_number: bytes, token_id: int, collection_salt: bytes) -> bytes:
    """keccak256(abi.encodePacked(randomNumber, uint256(tokenId), collectionSalt)): the contract's token seed."""
    packed = encode_packed(["bytes32", "uint256", "bytes32"],
                           [parse_seed(random_number), token_id, parse_seed(collection_salt)])
    return keccak(packed)
