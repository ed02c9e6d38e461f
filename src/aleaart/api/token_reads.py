"""A token as the routes read it: from the chain reader's cache, else the chain (on a thread), and the render
request its image is."""

from __future__ import annotations

import asyncio

from aleaart.chain import ChainReader, TokenInfo
from aleaart.config import Settings
from aleaart.jobs import RenderRequest

CHAIN_ERRORS = (404, 409, 422, 502, 503)


async def read_token(chain: ChainReader, token_id: int) -> TokenInfo:
    # web3 blocks: a thread keeps the event loop free, and the generation worker never waits on the chain.
    return chain.known(token_id) or await asyncio.to_thread(chain.token, token_id)


def token_request(info: TokenInfo, settings: Settings) -> RenderRequest:
    """The token's image as this service renders it (ALEAART_PALETTE_MODE and _STRENGTH)."""
    return RenderRequest.of_params(info.params, str(info.token_id), settings.palette_choice)
