"""What routes depend on, as ``Annotated`` aliases: the queue, the store, the chain, uploads (who may: auth.py).

All are ``async def``: none blocks, and FastAPI would run a plain ``def`` on its thread pool, a thread hop per
dependency per request.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path, Request
from pydantic import WithJsonSchema

from aleaart.chain import ChainReader
from aleaart.config import Settings
from aleaart.integrations.publisher import Publisher
from aleaart.jobs import Queue
from aleaart.store import ImageStore
from aleaart.token_ids import TOKEN_ID, parse_token_id
from aleaart.uploads import ModelRegistry
from aleaart.webhooks.hub import Webhooks


async def get_settings(request: Request) -> Settings:
    return request.app.state.settings


async def get_queue(request: Request) -> Queue:
    return request.app.state.queue


async def get_store(request: Request) -> ImageStore:
    return request.app.state.store


async def get_chain(request: Request) -> ChainReader:
    return request.app.state.chain


async def get_publisher(request: Request) -> Publisher:
    return request.app.state.publisher


async def get_webhooks(request: Request) -> Webhooks:
    return request.app.state.webhooks


async def get_registry(request: Request) -> ModelRegistry:
    return request.app.state.registry


SettingsDep = Annotated[Settings, Depends(get_settings)]
WebhooksDep = Annotated[Webhooks, Depends(get_webhooks)]
QueueDep = Annotated[Queue, Depends(get_queue)]
StoreDep = Annotated[ImageStore, Depends(get_store)]
ChainDep = Annotated[ChainReader, Depends(get_chain)]
PublisherDep = Annotated[Publisher, Depends(get_publisher)]
RegistryDep = Annotated[ModelRegistry, Depends(get_registry)]


TOKEN_PATH_SCHEMA = {"type": "string", "pattern": f"^{TOKEN_ID.pattern}$"}


async def token_id_path(
    token_id: Annotated[str, WithJsonSchema(TOKEN_PATH_SCHEMA), Path(description="the token id (uint256, decimal)")],
) -> int:
    return parse_token_id(token_id)


TokenIdPath = Annotated[int, Depends(token_id_path)]

ImageKeyPath = Annotated[str, Path(pattern="^[0-9a-f]{64}$", description="a stored image's key (64 hex digits)")]
