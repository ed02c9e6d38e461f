"""A token as the routes read it: from the chain reader's cache, else the chain (on a thread), the render request
its image is, and whether a request asks for nothing but a token's image (ALEAART_PUBLIC_TOKENS)."""

from __future__ import annotations

import asyncio
from dataclasses import replace

from aleaart.chain import ChainReader, TokenInfo
from aleaart.config import Settings
from aleaart.errors import Unauthorized
from aleaart.jobs import RenderRequest
from aleaart.params import RenderSpec

CHAIN_ERRORS = (404, 409, 422, 502, 503)


async def read_token(chain: ChainReader, token_id: int) -> TokenInfo:
    # web3 blocks: a thread keeps the event loop free, and the generation worker never waits on the chain.
    return chain.known(token_id) or await asyncio.to_thread(chain.token, token_id)


def token_request(info: TokenInfo, settings: Settings) -> RenderRequest:
    """The token's image as this service renders it (ALEAART_PALETTE_MODE and _STRENGTH)."""
    return RenderRequest.of_params(info.params, str(info.token_id), settings.palette_choice)


async def require_token_image(request: RenderRequest, chain: ChainReader, settings: Settings) -> None:
    """Let a caller without a key (ALEAART_PUBLIC_TOKENS) have ``request`` only if it is a minted token's image: the
    seed's body with the chain's parameters, or a flat body of exactly the token's prompt, sampler, size, steps,
    guidance and seed. Each is one picture a token, so anonymous use costs at most a render or two per token."""
    token = request.token
    if token is not None and token.isdigit() and not request.spec.model and not request.spec.loras:
        wanted = token_request(await read_token(chain, int(token)), settings)
        if request == wanted or (request.spec.params is None and without_grade(request.spec) == without_grade(
                wanted.spec)):
            return
    raise Unauthorized("without a key, only a minted token's own image can be asked for here (its tokenId and the "
                       "chain's parameters, or /tokens/{id}/generate-image); anything else needs a key")


def without_grade(spec: RenderSpec) -> RenderSpec:
    return replace(spec, params=None, grade=None)
