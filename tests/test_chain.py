"""ChainReader and the derivation against a real EVM: py-evm through eth-tester."""

import os
import warnings

import pytest
from eth_abi import encode
from evm import SALT, deploy, mint, token_seed
from test_entropy import VECTORS
from web3 import EthereumTesterProvider, Web3
from web3.exceptions import ContractLogicError

from aleaart.chain import ChainReader, params_from_tuple, revert_reason, token_json
from aleaart.entropy import derive_params
from aleaart.errors import ChainError, ChainUnavailable, NotFound, TokenNotReady


@pytest.fixture(scope="module")
def w3():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Web3(EthereumTesterProvider())


@pytest.fixture
def contract(w3):
    return deploy(w3)


@pytest.fixture
def reader(w3, contract):
    return ChainReader(rpc_url="eth-tester", chain_id=w3.eth.chain_id, address=contract.address, web3=w3)


def test_solidity_derivation_equals_python(contract):
    for seed, expected in VECTORS.items():
        assert params_from_tuple(contract.functions.deriveParams(bytes.fromhex(seed[2:])).call()) == expected
    for _ in range(60):
        seed = os.urandom(32)
        assert params_from_tuple(contract.functions.deriveParams(seed).call()) == derive_params(seed)


def test_fulfilled_token_reads_and_matches_its_seed(w3, contract, reader):
    random_number = os.urandom(32)
    token_id = mint(contract, w3, random_number)
    info = reader.token(token_id)
    assert info.seed == token_seed(random_number, token_id, SALT)
    assert info.derived_match and info.params == derive_params(info.seed)
    shown = token_json(info)
    assert shown["tokenId"] == str(token_id) and shown["derivedMatch"] is True
    assert shown["seed"] == "0x" + info.seed.hex() and shown["parameters"] == info.params.to_json()


def test_latest_is_the_highest_token_with_its_seed(w3, contract, reader):
    first = mint(contract, w3, os.urandom(32))
    second = mint(contract, w3, os.urandom(32))
    mint(contract, w3)  # minted, randomness not yet arrived
    assert reader.latest().token_id == second > first


def test_not_minted_and_not_ready(w3, contract, reader):
    with pytest.raises(NotFound, match="no token has been minted yet"):
        reader.latest()
    pending = mint(contract, w3)
    with pytest.raises(TokenNotReady, match=f"token {pending} is not ready"):
        reader.token(pending)
    with pytest.raises(TokenNotReady, match="none of the last 1 tokens has its seed"):
        reader.latest()
    for missing in (0, pending + 1):
        with pytest.raises(NotFound, match=f"token {missing} is not minted"):
            reader.token(missing)


def test_a_tampered_token_is_reported_not_hidden(w3, contract, reader):
    token_id = mint(contract, w3, os.urandom(32))
    honest = contract.functions.viewRenderParams(token_id).call()
    forged = (honest[0], honest[1], honest[2], honest[3], honest[4], honest[5], (honest[6] + 1) % 2**32, honest[7])
    w3.eth.wait_for_transaction_receipt(contract.functions.tamper(token_id, forged).transact())
    info = reader.token(token_id)
    assert info.derived_match is False
    assert info.params.latent_seed == forged[6] and info.derived.latent_seed == honest[6]
    assert token_json(info)["derivedParameters"]["latentSeed"] == honest[6]


def test_finished_tokens_are_cached(w3, contract, reader):
    token_id = mint(contract, w3, os.urandom(32))
    first = reader.token(token_id)
    w3.eth.wait_for_transaction_receipt(contract.functions.tamper(token_id, (0, 0, 0, 0, 18, 70, 0, 0)).transact())
    assert reader.token(token_id) is first


def test_wrong_chain_id_names_the_url(w3, contract):
    reader = ChainReader(rpc_url="http://rpc.example", chain_id=421614, address=contract.address, web3=w3)
    with pytest.raises(ChainUnavailable, match="http://rpc.example serves chain id .*, not 421614"):
        reader.next_token_id()


def test_bad_address_and_unreachable_rpc():
    with pytest.raises(ChainUnavailable, match="not an address"):
        ChainReader(rpc_url="http://127.0.0.1:9", chain_id=1, address="0x123")
    reader = ChainReader(rpc_url="http://127.0.0.1:9", chain_id=1, timeout=2,
                         address="0x420D121aE08007Ef0A66E67D5D7BfFdC98AbECF0")
    with pytest.raises(ChainError, match="cannot read the chain at http://127.0.0.1:9"):
        reader.token(1)


def test_revert_reason_reads_error_string_data():
    data = "0x08c379a0" + encode(["string"], ["not ready"]).hex()
    assert revert_reason(ContractLogicError("execution reverted", data=data)) == "not ready"
    assert revert_reason(ContractLogicError("execution reverted: not ready", data="0x")) is None
    assert revert_reason(ContractLogicError("panic", data="0x4e487b71" + "00" * 32)) is None


def test_a_bug_is_not_reported_as_an_unreachable_chain(reader):
    with pytest.raises(ZeroDivisionError):
        reader._call(lambda: 1 / 0)


def test_a_token_is_read_again_once_forgotten_or_stale_and_kept_while_the_node_is_down(w3, contract, reader,
                                                                                        monkeypatch):
    token_id = mint(contract, w3, os.urandom(32))
    first = reader.token(token_id)
    assert reader.known(token_id) is first
    reader.forget(token_id)  # a reorganisation replaced its fulfilment
    assert reader.known(token_id) is None and reader.token(token_id) == first

    monkeypatch.setattr("aleaart.chain.TOKEN_FRESH_SECONDS", 0.0)  # every read is stale at once
    assert reader.known(token_id) is None

    def unreachable(_token_id):
        raise ChainError("cannot read the chain at eth-tester: refused")

    monkeypatch.setattr(reader, "_read_token", unreachable)
    assert reader.token(token_id) == first  # the node is down: what was read last

    def not_ready(_token_id):
        raise TokenNotReady(f"token {token_id} is not ready")

    monkeypatch.setattr(reader, "_read_token", not_ready)
    with pytest.raises(TokenNotReady):  # the chain says otherwise now: not hidden behind the old read
        reader.token(token_id)
