"""/keys: the API keys, for a key with the admin scope (the CLI's ``aleaart keys`` does the same on the host)."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from aleaart.api.auth import ADMIN, ANY_KEY, Caller, CallerDep
from aleaart.api.errors import error_responses
from aleaart.keys import DEFAULT_GRACE_HOURS, MAX_WEIGHT, NAME, SCOPES, KeyRing, Scope
from aleaart.limits import Limiter, Limits, Rate

router = APIRouter(tags=["keys"])
admin = APIRouter(tags=["keys"], dependencies=ADMIN)
KEY_ERRORS = error_responses(400, 401, 403, 404, 422)
KeyName = Annotated[str, Path(pattern=f"^{NAME.pattern}$", description="the key's name")]


class NewKey(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=f"^{NAME.pattern}$", description="what the key is for (frontend, team-b, ...)")
    scopes: list[Scope] = Field(min_length=1, max_length=len(SCOPES),
                                description="read, generate, upload, admin: what the key may do")
    rate: str | None = Field(None, max_length=40, description="requests it may make: 120/min, 2/s, 1000/hour")
    maxQueued: int | None = Field(None, ge=1, le=10**6, description="its renders waiting at once")  # noqa: N815
    rendersPerDay: int | None = Field(None, ge=1, le=10**9, description="its renders a day (UTC)")  # noqa: N815
    weight: int = Field(1, ge=1, le=MAX_WEIGHT,
                        description="its share of the queue: its renders for one of a key of weight 1")

    def limits(self) -> Limits:
        return Limits(Rate.parse(self.rate) if self.rate else None, self.maxQueued, self.rendersPerDay)


class Rotation(BaseModel):
    model_config = ConfigDict(extra="forbid")

    graceHours: float = Field(DEFAULT_GRACE_HOURS, ge=0, le=24 * 90,  # noqa: N815
                              description="how long the old secret keeps working (default 24)")


@router.get("/me", dependencies=ANY_KEY, responses=error_responses(400, 401, 429))
def my_key(request: Request, caller: CallerDep) -> dict[str, Any]:
    """The key sent: its name, scopes and limits, and what is left of them now (the dashboard shows it)."""
    key = caller.key
    assert key is not None  # ANY_KEY let it in
    limiter: Limiter = request.app.state.limiter
    limits = key.limits
    renders = limiter.renders_today(key.name) if limits.renders_per_day is not None else None
    return {**key.to_json(), "left": {
        "requests": limiter.requests_left(key.name, limits.rate),
        "queued": limits.max_queued - limiter.waiting(key.name) if limits.max_queued is not None else None,
        "rendersToday": limits.renders_per_day - renders if renders is not None else None}}


async def get_keys(request: Request) -> KeyRing:
    return request.app.state.keys


KeysDep = Annotated[KeyRing, Depends(get_keys)]


@admin.get("/keys", responses=KEY_ERRORS)
def list_keys(keys: KeysDep) -> dict[str, Any]:
    """Every key: the environment's (env, env-admin) and those issued, revoked ones marked; never a secret."""
    return {"keys": [key.to_json() for key in keys.list()]}


@admin.post("/keys", status_code=201, responses=KEY_ERRORS)
async def create_key(body: NewKey, keys: KeysDep, caller: Annotated[Caller, ADMIN[0]]) -> JSONResponse:
    """A new key; its ``secret`` is in this answer only (keep it: only its hash is stored)."""
    key, secret = await asyncio.to_thread(keys.create, body.name, frozenset(body.scopes), body.limits(),
                                         weight=body.weight)
    return JSONResponse({**key.to_json(), "secret": secret, "createdBy": caller.name}, status_code=201,
                        headers={"Location": f"/keys/{key.name}"})


@admin.post("/keys/{name}/rotate", responses=KEY_ERRORS)
async def rotate_key(name: KeyName, keys: KeysDep, body: Rotation | None = None) -> dict[str, Any]:
    """A new secret for the key (in this answer only); the old one works for ``graceHours`` more."""
    grace = body.graceHours if body is not None else DEFAULT_GRACE_HOURS
    key, secret = await asyncio.to_thread(keys.rotate, name, grace_hours=grace)
    return {**key.to_json(), "secret": secret}


@admin.delete("/keys/{name}", responses=KEY_ERRORS)
def revoke_key(name: KeyName, keys: KeysDep) -> dict[str, Any]:
    """Revoke the key at once (its old secret too); its name stays taken."""
    return keys.revoke(name).to_json()
