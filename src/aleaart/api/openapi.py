"""The OpenAPI document: every error answer is ErrorBody, with the statuses any route can give."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

ERROR_REF = {"$ref": "#/components/schemas/ErrorBody"}
# One Server-Sent Event of a job: its kind and the job's snapshot as JSON text.
SSE_EVENT = {
    "type": "object",
    "properties": {
        "event": {"type": "string", "enum": ["progress", "result", "failed", "cancelled", "shutting_down"]},
        "data": {"type": "string", "description": "the job as GET /jobs/{job_id} answers it, as JSON"},
    },
}
# What the edge (size limits), the service's state and a bug can answer on any route.
ANY_ROUTE = {"414": "the path and query are too long", "431": "the headers are too large",
             "500": "a bug (internal_error)", "503": "draining for a restart (shutting_down)"}
# What the key check (api/auth.py) can answer on any route that has a scope.
KEYED_ROUTE = {"400": "a key in the URL: keys go in headers only (bad_request)",
               "401": "no key where one is needed, or one not this service's (unauthorized)",
               "403": "the key lacks the route's scope (forbidden)",
               "429": "over the caller's limits (rate_limited, quota_exceeded)"}


def error_only_openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document with its default 422 (``{detail}``) replaced by ErrorBody, as the service answers."""
    if app.openapi_schema is None:
        schema = get_openapi(title=app.title, version=app.version, routes=app.routes)
        for path, operations in schema.get("paths", {}).items():
            for operation in operations.values():
                if "security" in operation:
                    keys_optional(operation)
                    for status, description in KEYED_ROUTE.items():
                        operation["responses"].setdefault(status, {"description": description})
                document_errors(operation["responses"])
                link_created_jobs(operation["responses"])
            if path.endswith("/events"):
                operations["get"]["responses"]["200"]["content"] = {"text/event-stream": {"schema": SSE_EVENT}}
        components = schema.get("components", {}).get("schemas", {})
        for unused in ("HTTPValidationError", "ValidationError"):
            components.pop(unused, None)
        json_schema_bounds(schema)
        app.openapi_schema = schema
    return app.openapi_schema


def keys_optional(operation: dict[str, Any]) -> None:
    """Reads and renders need no key where none is issued (or reads are public): OpenAPI's empty requirement says
    so. Uploads, admin and a key asking about itself (no scope) always need one."""
    scopes = {scope for requirement in operation["security"] for scopes in requirement.values() for scope in scopes}
    if scopes and scopes <= {"read", "generate"}:
        operation["security"].append({})


BOUNDS = {"ge": "minimum", "le": "maximum", "gt": "exclusiveMinimum", "lt": "exclusiveMaximum"}


def json_schema_bounds(node: Any) -> None:
    """Bounds as JSON Schema names them. Pydantic writes a nullable number's bounds under its own names (``ge``,
    ``le``) when the number type brings its own schema (JsonNumber, JsonInt): clients and fuzzers ignore those."""
    if isinstance(node, dict):
        if node.get("type") in ("number", "integer"):
            for ours, standard in BOUNDS.items():
                if ours in node:
                    node[standard] = node.pop(ours)
        for value in node.values():
            json_schema_bounds(value)
    elif isinstance(node, list):
        for value in node:
            json_schema_bounds(value)


def document_errors(responses: dict[str, Any]) -> None:
    for status, description in ANY_ROUTE.items():
        responses.setdefault(status, {"description": description})
    for status, answer in responses.items():
        if status.startswith(("4", "5")):
            answer["content"] = {"application/json": {"schema": ERROR_REF}}
            answer.setdefault("description", "error")


JOB_LINKS = {
    name: {"operationRef": f"#/paths/~1jobs~1{{job_id}}{suffix}/{method}",
           "parameters": {"job_id": "$response.body#/jobId"}}
    for name, suffix, method in [("GetJob", "", "get"), ("CancelJob", "", "delete"), ("JobEvents", "~1events", "get")]
}


def link_created_jobs(responses: dict[str, Any]) -> None:
    """An answer that creates a job links to where to follow and cancel it (OpenAPI links)."""
    if "202" in responses:
        responses["202"]["links"] = JOB_LINKS
