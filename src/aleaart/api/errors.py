"""Errors at the HTTP edge: every one becomes ``{"success": false, "error": ..., "code": ...}``."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException

from aleaart.errors import AleaArtError, Limited, RangeNotSatisfiable, Unauthorized, error_codes

log = logging.getLogger(__name__)

BODY_KINDS = ("seed", "flat")  # the tags of GenerateBody's union, which pydantic puts in error locations
HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 401: "unauthorized", 413: "body_too_large"}


class ErrorBody(BaseModel):
    """Every error answer; clients branch on ``code``, people read ``error``."""

    success: bool = Field(False, description="always false")
    error: str = Field(description="what went wrong and what to do about it")
    code: str = Field(description="stable machine-readable code: "
                      + ", ".join(sorted({*error_codes(), *HTTP_CODES.values(), "http_error"})))


def error_body(message: str, code: str) -> dict[str, Any]:
    return {"success": False, "error": message, "code": code}


def error_response(status: int, message: str, code: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(error_body(message, code), status_code=status, headers=headers)


def response_for(error: AleaArtError) -> JSONResponse:
    headers = {"Retry-After": str(error.retry_after)} if error.retry_after else {}
    if isinstance(error, Unauthorized):
        headers["WWW-Authenticate"] = 'Bearer realm="aleaart"'
    if isinstance(error, Limited):
        headers.update(error.headers())
    if isinstance(error, RangeNotSatisfiable):
        headers["Content-Range"] = f"bytes */{error.size}"
    return JSONResponse({**error_body(str(error), error.code), **(error.extra or {})}, status_code=error.status,
                        headers=headers or None)


def validation_message(error: RequestValidationError) -> str:
    parts = []
    for item in error.errors():
        if item.get("type") == "json_invalid":
            return "request body is not valid JSON"
        loc = [str(p) for p in item.get("loc", ())][1:]  # drop "body" / "query" / "path"
        if loc and loc[0] in BODY_KINDS:
            loc = loc[1:]
        if not loc and item.get("type") in ("model_attributes_type", "dict_type", "model_type"):
            return "request body must be a JSON object: the seed's {parameters, tokenId} or the flat form (see /docs)"
        message = str(item.get("msg", "invalid")).removeprefix("Value error, ")
        parts.append(f"{'.'.join(loc)}: {message}" if loc else message)
    return "; ".join(parts) or "invalid request"


def count_error(app: Any, code: str) -> None:
    if (metrics := getattr(app.state, "metrics", None)) is not None:
        metrics.errors.labels(code).inc()


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(AleaArtError)
    async def _known(request: Request, error: AleaArtError) -> JSONResponse:
        count_error(request.app, error.code)
        return response_for(error)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, error: RequestValidationError) -> JSONResponse:
        count_error(request.app, "invalid_params")
        return error_response(422, validation_message(error), "invalid_params")

    @app.exception_handler(HTTPException)
    async def _http(request: Request, error: HTTPException) -> JSONResponse:
        if error.status_code == 400:  # FastAPI's "error parsing the body": bad input, as malformed JSON is
            count_error(request.app, "invalid_params")
            return error_response(422, f"request body could not be read: {error.detail}", "invalid_params")
        code = HTTP_CODES.get(error.status_code, "http_error")
        count_error(request.app, code)
        return error_response(error.status_code, str(error.detail), code, getattr(error, "headers", None))

    @app.exception_handler(Exception)
    async def _bug(request: Request, error: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        count_error(request.app, "internal_error")
        return error_response(500, "internal error; the server log has the details", "internal_error")


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries: these statuses answer with ErrorBody."""
    return {status: {"model": ErrorBody, "description": "error"} for status in statuses}
