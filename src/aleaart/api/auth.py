"""Who is asking, and whether they may: each route declares its scope once, ``dependencies=[needs("generate")]``.

A key comes in a header only: ``Authorization: Bearer <key>``, ``X-API-Key`` or (as uploads always took it)
``X-Admin-Key``; one in the query string is refused, since URLs end up in logs. A missing or unknown key is 401
with ``WWW-Authenticate``, and a revoked key gets the same answer as one never issued; a key without the scope is
403 naming it.

    read      stored images, tokens, metadata, the gallery: open while ALEAART_PUBLIC_READS=1 (the default); a
              job's status and events (``public=False``): a key with read, once keys are required
    generate  every kind of render job, collections, cancelling: a key with it once any key was issued or
              ALEAART_API_KEY is set; with none, the service is open, as the embedded default always was. With
              ALEAART_PUBLIC_TOKENS=1, a minted token's own image needs no key (GENERATE_TOKENS routes)
    upload    uploaded checkpoints and LoRAs: off until some key may upload
    admin     keys, deleting models: always a key with it
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader, HTTPBearer

from aleaart.errors import BadRequest, Forbidden, Limited, Unauthorized, UploadsDisabled
from aleaart.keys import PREFIX, ApiKey, KeyRing, Scope
from aleaart.limits import Limiter
from aleaart.metrics import Metrics

BEARER = HTTPBearer(auto_error=False, description="Authorization: Bearer aa_… (aleaart keys create)")
API_KEY_HEADER = APIKeyHeader(name="X-API-Key", auto_error=False, description="the same key, in X-API-Key")
QUERY_KEYS = frozenset({"api_key", "apikey", "api-key", "apiKey", "access_token", "key"})
SECRET = re.compile(PREFIX + r"[A-Za-z0-9_-]{43}")  # a key as keys.new_secret makes them, under any name


@dataclass(frozen=True)
class Caller:
    key: ApiKey | None  # None: no key was sent, where none is needed
    tokens_only: bool = False  # no key, let in by ALEAART_PUBLIC_TOKENS: a minted token's own image only

    @property
    def name(self) -> str | None:
        return self.key.name if self.key is not None else None

    @property
    def owner(self) -> str:
        """What the jobs it asks for are recorded as (its key's name; "" without one)."""
        return self.key.name if self.key is not None else ""

    @property
    def sees_every_job(self) -> bool:
        """No key (where none is needed: every job is the open service's), or one with the admin scope."""
        return self.key is None or self.key.allows("admin")


def caller_of(request: Request) -> Caller:
    """The caller the route's scope dependency found (a route without one: nobody in particular)."""
    return getattr(request.state, "caller", Caller(None))


async def get_caller(request: Request) -> Caller:
    return caller_of(request)


CallerDep = Annotated[Caller, Depends(get_caller)]


def given_key(request: Request) -> str | None:
    """The key the request sends, if any: a bare Authorization value (a proxy's Basic credentials) is not one."""
    if any(name in QUERY_KEYS or SECRET.fullmatch(value) for name, value in request.query_params.multi_items()):
        raise BadRequest("keys go in a header only (Authorization: Bearer <key>, or X-API-Key): a key in the URL "
                         "ends up in logs and histories; revoke it if it was a real one")
    for header in ("x-api-key", "x-admin-key"):
        if key := request.headers.get(header, "").strip():
            return key
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    return credentials.strip() or None if scheme.lower() == "bearer" else None


async def identified(ring: KeyRing, secret: str) -> ApiKey:
    known, key = ring.remembered(secret)
    if not known:
        key = await asyncio.to_thread(ring.identify, secret)
    if key is None:
        raise Unauthorized("this key is not one of this service's (or it was revoked): send a valid key in "
                           "Authorization: Bearer or X-API-Key")
    return key


async def keys_required(ring: KeyRing) -> bool:
    required = ring.remembered_required()
    return required if required is not None else await asyncio.to_thread(ring.required)


def client_address(request: Request) -> str:
    """The client's address: the peer's, or, when the peer is a trusted proxy, the nearest untrusted address its
    X-Forwarded-For names (a client cannot forge its way past the proxies it came through)."""
    peer = request.client.host if request.client is not None else ""
    trusted = request.app.state.trusted_proxies
    if not trusted or not is_trusted(peer, trusted):
        return peer
    hops = [hop.strip() for hop in request.headers.get("x-forwarded-for", "").split(",") if hop.strip()]
    for hop in reversed(hops):
        if not is_trusted(hop, trusted):
            return hop
    return hops[0] if hops else peer


def is_trusted(address: str, trusted: list[ipaddress.IPv4Network | ipaddress.IPv6Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in trusted)


async def counted(request: Request, key: ApiKey | None) -> None:
    """``count_request``, on a thread where the counts are elsewhere (Redis): never blocking the event loop."""
    if request.app.state.limiter.tally.blocking:
        await asyncio.to_thread(count_request, request, key)
    else:
        count_request(request, key)


def count_request(request: Request, key: ApiKey | None) -> None:
    """One request against the caller's rate: its key's, or its address's (ALEAART_KEYLESS_RATE)."""
    limiter: Limiter = request.app.state.limiter
    metrics: Metrics = request.app.state.metrics
    name = key.name if key is not None else "-"
    try:
        if key is not None:
            limiter.request(key.name, key.limits.rate)
        elif limiter.keyless_rate is not None:
            limiter.request("@" + client_address(request), limiter.keyless_rate)
    except Limited as over:
        metrics.key_limited.labels(name, over.policy).inc()
        raise
    metrics.key_requests.labels(name).inc()


async def authorize(request: Request, scope: Scope, *, public: bool, tokens: bool = False) -> Caller:
    caller = await authorized(request, scope, public=public, tokens=tokens)
    await counted(request, caller.key)
    return caller


async def authorized(request: Request, scope: Scope, *, public: bool, tokens: bool = False) -> Caller:
    ring: KeyRing = request.app.state.keys
    secret = given_key(request)
    if scope == "upload" and not await asyncio.to_thread(ring.can_upload):
        raise UploadsDisabled("model uploads are off: set ALEAART_ADMIN_KEY, or create a key with the upload scope "
                              "(aleaart keys create --name NAME --scopes upload)")
    key = await identified(ring, secret) if secret is not None else None
    if key is not None and (key.allows(scope) or (scope == "read" and public)):
        return Caller(key)
    if key is not None:
        held = ", ".join(sorted(key.scopes))
        raise Forbidden(f"this needs a key with the {scope} scope; key {key.name!r} has {held}")
    if scope == "read" and public and request.app.state.settings.public_reads:
        return Caller(None)
    if scope in ("read", "generate") and not await keys_required(ring):
        return Caller(None)  # no key was ever issued: open, as the embedded default is
    if scope == "generate" and tokens and request.app.state.settings.public_tokens:
        return Caller(None, tokens_only=True)  # the route renders only what a minted token is
    raise Unauthorized(f"this needs a key with the {scope} scope: send it in Authorization: Bearer or X-API-Key")


def needs(scope: Scope, *, public: bool = True, tokens: bool = False) -> Any:
    """The dependency of a route that needs ``scope`` (``public``: a read ALEAART_PUBLIC_READS opens; ``tokens``: a
    render of a minted token's own image, which ALEAART_PUBLIC_TOKENS opens)."""

    # Defaults, not Annotated: the scope is this call's, and the module's annotations are strings.
    async def caller(request: Request, _bearer: Any = Security(BEARER, scopes=[scope]),  # noqa: B008
                     _header: Any = Security(API_KEY_HEADER, scopes=[scope])) -> Caller:  # noqa: B008
        request.state.caller = found = await authorize(request, scope, public=public, tokens=tokens)
        return found

    return Depends(caller)


def needs_a_key() -> Any:
    """The dependency of a route for any valid key, whatever its scopes (a key asking about itself)."""

    async def caller(request: Request, _bearer: Any = Security(BEARER),  # noqa: B008
                     _header: Any = Security(API_KEY_HEADER)) -> Caller:  # noqa: B008
        secret = given_key(request)
        if secret is None:
            raise Unauthorized("send your key in Authorization: Bearer or X-API-Key")
        key = await identified(request.app.state.keys, secret)
        await counted(request, key)
        request.state.caller = found = Caller(key)
        return found

    return Depends(caller)


async def may(request: Request, scope: Scope, *, tokens: bool = False) -> bool:
    """Whether the request may do what ``scope`` allows (a route that serves openly but renders only for some)."""
    try:
        await authorized(request, scope, public=False, tokens=tokens)
    except (Unauthorized, Forbidden):
        return False
    return True


READ = [needs("read")]  # open while ALEAART_PUBLIC_READS=1
READ_JOBS = [needs("read", public=False)]
GENERATE = [needs("generate")]
GENERATE_TOKENS = [needs("generate", tokens=True)]  # open to anyone with ALEAART_PUBLIC_TOKENS, for tokens' images
UPLOAD = [needs("upload")]
ADMIN = [needs("admin")]
ANY_KEY = [needs_a_key()]
