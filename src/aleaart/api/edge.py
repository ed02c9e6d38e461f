"""ASGI middleware at the edge: limits on the request's size, OPTIONS with its Allow list, CORS refusals as JSON.

Each answers with the same JSON error body as the routes, never Starlette's plain text.
"""

from __future__ import annotations

import asyncio
import contextlib
import re

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from aleaart.api.errors import count_error, response_for
from aleaart.errors import AleaArtError, BodyTooLarge, CorsRejected, HeadersTooLarge, NotFound, UriTooLong

MAX_URI_BYTES = 8 * 1024
MAX_HEADER_BYTES = 32 * 1024


async def refuse(error: AleaArtError, scope: Scope, receive: Receive, send: Send) -> None:
    count_error(scope["app"], error.code)
    await response_for(error)(scope, receive, send)


class RequestLimits:
    """414 for a path and query over 8 KiB, 431 for headers over 32 KiB, 413 for a body over ``max_body``.

    Bodies here are small JSON, so the whole body is read (up to the limit) before the app sees it; except on
    ``uploads`` (path → the largest file in MB, and what sets it), whose bodies stream through to the route,
    counted, and are cut off past that (plus room for the form around the file).
    """

    def __init__(self, app: ASGIApp, max_body: int, uploads: dict[str, tuple[int, str]] | None = None) -> None:
        self.app = app
        self.max_body = max_body
        self.uploads = uploads or {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        if len(scope.get("raw_path", b"")) + len(scope.get("query_string", b"")) > MAX_URI_BYTES:
            return await refuse(UriTooLong(f"the path and query are over {MAX_URI_BYTES} bytes"), scope, receive, send)
        if sum(len(k) + len(v) for k, v in scope.get("headers", [])) > MAX_HEADER_BYTES:
            return await refuse(HeadersTooLarge(f"the headers are over {MAX_HEADER_BYTES} bytes"), scope, receive,
                                send)
        if scope["method"] in ("GET", "HEAD", "OPTIONS", "DELETE"):
            return await self.app(scope, receive, send)
        if (upload := self.uploads.get(scope["path"])) is not None:
            return await self._stream_upload(scope, receive, send, *upload)
        await self._limit_body(scope, receive, send)

    async def _stream_upload(self, scope: Scope, receive: Receive, send: Send, megabytes: int, set_by: str) -> None:
        limit = (megabytes + 1) * 2**20
        too_large = BodyTooLarge(f"the upload is over the limit of {megabytes} MB ({set_by})")
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            return await refuse(too_large, scope, receive, send)
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > limit:  # raised into the route that reads the body: answered as a 413
                raise too_large
            return message

        await self.app(scope, counted, send)

    async def _limit_body(self, scope: Scope, receive: Receive, send: Send) -> None:
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body:
            return await self._too_large(scope, receive, send)
        body, more = b"", True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > self.max_body:
                return await self._too_large(scope, receive, send)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        await refuse(BodyTooLarge(f"request body is over the limit of {self.max_body} bytes"), scope, receive, send)


DRAIN_BYTES = 32 * 2**20
DRAIN_SECONDS = 10.0


class DrainUnreadBody:
    """A refusal that comes before the body is read (401, 403, 413) reaches a client that sends the whole body
    before reading the answer (Python's urllib and requests): the rest of the body is read and dropped before the
    answer ends, as nginx's lingering close does. Closing with the body unread resets the connection under such a
    client, which then sees a reset, not the JSON refusal. Bounded, so an unauthenticated client cannot make the
    service read gigabytes: DRAIN_BYTES within DRAIN_SECONDS, then it is cut off."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers", []))
        waits_to_send = headers.get(b"expect", b"").lower() == b"100-continue"  # curl: sends nothing unasked
        started = finished = False

        async def tracked() -> Message:
            nonlocal started, finished
            started = True
            message = await receive()
            if message["type"] == "http.disconnect" or not message.get("more_body", False):
                finished = True
            return message

        async def draining(message: Message) -> None:
            last = message["type"] == "http.response.body" and not message.get("more_body", False)
            if last and not finished and (started or not waits_to_send):
                await self._drain(receive)
            await send(message)

        await self.app(scope, tracked, draining)

    @staticmethod
    async def _drain(receive: Receive) -> None:
        loop = asyncio.get_running_loop()
        deadline, read = loop.time() + DRAIN_SECONDS, 0
        with contextlib.suppress(TimeoutError):
            while read <= DRAIN_BYTES:
                message = await asyncio.wait_for(receive(), timeout=max(0.01, deadline - loop.time()))
                if message["type"] == "http.disconnect" or not message.get("more_body", False):
                    return
                read += len(message.get("body", b""))


class HeadAsGet:
    """HEAD answered as the GET of the same path, without its body (RFC 9110): the same status and headers,
    Content-Length included, so a client can check a file's size and ETag without fetching it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            return await self.app(scope, receive, send)

        async def headers_only(message: Message) -> None:
            if message["type"] == "http.response.body":
                if not message.get("more_body", False):
                    await send({"type": "http.response.body", "body": b"", "more_body": False})
                return
            await send(message)

        await self.app({**scope, "method": "GET"}, receive, headers_only)


class AllowedMethods:
    """A plain OPTIONS (not a browser preflight) answers 204 with every method the path has.

    The routes' paths and methods come from the app's OpenAPI document, plus the dashboard's files.
    """

    def __init__(self, app: ASGIApp, static_prefixes: tuple[str, ...] = ("/web/",)) -> None:
        self.app = app
        self.static_prefixes = static_prefixes
        self._table: list[tuple[re.Pattern[str], set[str]]] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = dict(scope.get("headers", []))
        if scope["type"] != "http" or scope["method"] != "OPTIONS" or b"access-control-request-method" in headers:
            return await self.app(scope, receive, send)
        methods = self.allowed(scope["app"], scope["path"])
        if not methods:
            return await refuse(NotFound("no such path"), scope, receive, send)
        await Response(status_code=204, headers={"Allow": ", ".join(sorted(methods))})(scope, receive, send)

    def allowed(self, app: FastAPI, path: str) -> set[str]:
        if path.startswith(self.static_prefixes):
            return {"GET", "HEAD", "OPTIONS"}
        if self._table is None:
            self._table = [(path_pattern(template), {m.upper() for m in operations})
                           for template, operations in app.openapi()["paths"].items()]
        methods = {m for pattern, found in self._table if pattern.fullmatch(path) for m in found}
        if "GET" in methods:
            methods.add("HEAD")  # HeadAsGet
        return methods | {"OPTIONS"} if methods else methods


def path_pattern(template: str) -> re.Pattern[str]:
    """``/jobs/{job_id}`` → a pattern matching ``/jobs/<one segment>``."""
    return re.compile(re.sub(r"\\{[^}]+\\}", "[^/]+", re.escape(template)))


class JsonCORSMiddleware(CORSMiddleware):
    """Starlette's CORS, with a refused preflight answered as our JSON error instead of plain text."""

    def preflight_response(self, request_headers) -> Response:  # type: ignore[no-untyped-def]
        response = super().preflight_response(request_headers)
        if response.status_code != 400:
            return response
        refused = response_for(CorsRejected(f"{response.body.decode()}: check ALEAART_CORS_ORIGINS"))
        for name in ("vary",):
            if name in response.headers:
                refused.headers[name] = response.headers[name]
        return refused
