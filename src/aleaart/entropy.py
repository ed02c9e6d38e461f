"""EntropyArtParamsV2's seed → RenderParams derivation, off-chain (pure: keccak and arithmetic).

With ``seed`` a token's bytes32, ``s0 = uint256(seed)`` and
``sK = uint256(keccak256(abi.encodePacked(seed, uint256(K))))`` for K = 1, 2, 3.
"""

from __future__ import annotations

from eth_abi.packed import encode_packed
from eth_hash.auto import keccak

from aleaart.errors import InvalidParams
from aleaart.params import RenderParams

SEED_BYTES = 32


def parse_seed(seed: bytes | str) -> bytes:
    """A bytes32 seed from bytes or a 0x-prefixed hex string."""
    if isinstance(seed, str):
        text = seed.removeprefix("0x")
        try:
            seed = bytes.fromhex(text)
        except ValueError:
            raise InvalidParams(f"seed must be 32 bytes of hex, got {seed!r}") from None
    if len(seed) != SEED_BYTES:
        raise InvalidParams(f"seed must be {SEED_BYTES} bytes, got {len(seed)}")
    return seed


def sub_seed(seed: bytes, k: int) -> int:
    """uint256(keccak256(abi.encodePacked(seed, uint256(k)))): 64 bytes hashed, big-endian."""
    return int.from_bytes(keccak(encode_packed(["bytes32", "uint256"], [seed, k])), "big")


def derive_params(seed: bytes | str) -> RenderParams:
    seed = parse_seed(seed)
    s0 = int.from_bytes(seed, "big")
    s1, s2, s3 = (sub_seed(seed, k) for k in (1, 2, 3))
    return RenderParams(
        prompt_index=s0 % 12,
        style_index=(s0 >> 40) % 10,
        sampler_index=(s1 >> 96) % 6,
        aspect_index=(s1 >> 160) % 5,
        steps=18 + s2 % 47,
        cfg=70 + s3 % 111,
        latent_seed=s3 % 2**32,
        palette_id=(s2 >> 200) % 24,
    )
