"""Pinning a PNG to IPFS: Pinata's pinFileToIPFS, or a self-hosted node's RPC (kubo ``/api/v0/add``)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Protocol

import httpx

from aleaart.config import Settings
from aleaart.errors import PinningFailed


class Pinner(Protocol):
    name: str

    def pin(self, data: bytes, filename: str) -> str:
        """Upload ``data``; returns the CID the service answered."""
        ...


def _post(client: httpx.Client, url: str, service: str, **kwargs: object) -> httpx.Response:
    try:
        response = client.post(url, **kwargs)  # type: ignore[arg-type]
    except httpx.HTTPError as error:
        raise PinningFailed(f"{service} could not be reached at {url}: {error}") from None
    if response.status_code != 200:
        raise PinningFailed(f"{service} answered {response.status_code}: {response.text[:300]}")
    return response


@dataclass
class PinataPinner:
    """https://docs.pinata.cloud/api-reference/endpoint/pin-file-to-ipfs, as the original backend called it."""

    jwt: str
    api: str = "https://api.pinata.cloud"
    timeout: float = 60.0
    name: str = "Pinata"

    def pin(self, data: bytes, filename: str) -> str:
        form = {"pinataOptions": json.dumps({"cidVersion": 1}), "pinataMetadata": json.dumps({"name": filename})}
        with httpx.Client(timeout=self.timeout) as client:
            response = _post(client, f"{self.api.rstrip('/')}/pinning/pinFileToIPFS", self.name,
                             headers={"Authorization": f"Bearer {self.jwt}"}, data=form,
                             files={"file": (filename, data, "image/png")})
        try:
            return str(response.json()["IpfsHash"])
        except (ValueError, KeyError, TypeError):
            raise PinningFailed(f"{self.name} answered without an IpfsHash: {response.text[:300]}") from None


@dataclass
class KuboPinner:
    """An IPFS node's RPC: https://docs.ipfs.tech/reference/kubo/rpc/#api-v0-add (CIDv1, raw leaves, pinned)."""

    api: str
    timeout: float = 60.0
    name: str = "the IPFS node"

    def pin(self, data: bytes, filename: str) -> str:
        params = {"cid-version": "1", "raw-leaves": "true", "pin": "true"}
        with httpx.Client(timeout=self.timeout) as client:
            response = _post(client, f"{self.api.rstrip('/')}/api/v0/add", self.name, params=params,
                             files={"file": (filename, data, "image/png")})
        try:  # one JSON object per line; the last names the file
            return str(json.loads(response.text.strip().splitlines()[-1])["Hash"])
        except (ValueError, KeyError, IndexError, TypeError):
            raise PinningFailed(f"{self.name} answered without a Hash: {response.text[:300]}") from None


def pinner_from_settings(settings: Settings) -> Pinner | None:
    if settings.ipfs_api:
        return KuboPinner(api=settings.ipfs_api, timeout=settings.pin_timeout)
    if settings.pinata_jwt:
        return PinataPinner(jwt=settings.pinata_jwt, api=settings.pinata_api, timeout=settings.pin_timeout)
    return None


def gateway_url(gateway: str, cid: str) -> str:
    return f"{gateway.rstrip('/')}/ipfs/{cid}"
