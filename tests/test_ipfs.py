"""The pinners against test doubles of Pinata and an IPFS node's RPC on 127.0.0.1, speaking their documented
contracts: what each sends, the CID it returns, and each failure named with its service."""

from __future__ import annotations

import pytest
from integration.server import free_port
from ipfs_doubles import Doubles, DoublesServer, js_cid

from aleaart.config import Settings
from aleaart.errors import PinningFailed
from aleaart.integrations.ipfs import KuboPinner, PinataPinner, gateway_url, pinner_from_settings

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(64))


@pytest.fixture
def doubles():
    doubles = Doubles()
    with DoublesServer(doubles) as server:
        yield doubles, server.url


def test_pinata_gets_the_jwt_cid_version_1_and_the_file_name(doubles):
    double, url = doubles
    cid = PinataPinner(jwt=double.jwt, api=url).pin(PNG, "art_token_1_ab.png")
    assert cid == js_cid(PNG)
    [upload] = double.uploads
    assert upload.headers["authorization"] == f"Bearer {double.jwt}" and upload.filename == "art_token_1_ab.png"
    assert '"cidVersion": 1' in upload.form["pinataOptions"] and upload.data == PNG


def test_an_ipfs_node_adds_with_cid_version_1_raw_leaves_and_a_pin(doubles):
    double, url = doubles
    assert KuboPinner(api=url).pin(PNG, "a.png") == js_cid(PNG)
    assert double.uploads[0].query == {"cid-version": "1", "raw-leaves": "true", "pin": "true"}


def test_failures_name_the_service_and_what_it_said(doubles):
    double, url = doubles
    double.fail_with = 401
    with pytest.raises(PinningFailed, match="Pinata answered 401"):
        PinataPinner(jwt="wrong", api=url).pin(PNG, "a.png")
    with pytest.raises(PinningFailed, match="the IPFS node could not be reached at http://127.0.0.1:"):
        KuboPinner(api=f"http://127.0.0.1:{free_port()}", timeout=5).pin(PNG, "a.png")


def test_the_node_wins_over_pinata_and_neither_means_no_pinning():
    assert isinstance(pinner_from_settings(Settings(ipfs_api="http://127.0.0.1:5001", pinata_jwt="j")), KuboPinner)
    assert isinstance(pinner_from_settings(Settings(pinata_jwt="j")), PinataPinner)
    assert pinner_from_settings(Settings()) is None
    assert gateway_url("https://gw.example/", "bafy") == "https://gw.example/ipfs/bafy"
