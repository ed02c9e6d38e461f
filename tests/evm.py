"""Deploying the committed test contract (chain/build) to a web3 connection."""

from __future__ import annotations

import json
from pathlib import Path

from web3 import Web3

ARTIFACT = Path(__file__).resolve().parents[1] / "chain" / "build" / "EntropyArtParamsV2Test.json"
SALT = bytes.fromhex("a1ea" * 16)


def artifact() -> dict:
    return json.loads(ARTIFACT.read_text())


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

    from aleaart.derive import derive_params, token_seed

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
