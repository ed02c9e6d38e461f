"""The submit layer: every route that makes a job goes through ``Submitter``, and routers import it (and the
modules below them), never each other."""

from __future__ import annotations

import ast
from pathlib import Path

import aleaart.api

API = Path(aleaart.api.__file__).parent


def router_modules() -> set[str]:
    return {path.stem for path in API.glob("*.py") if "router = APIRouter(" in path.read_text()}


def imported_api_modules(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("aleaart.api."):
            found.add(node.module.removeprefix("aleaart.api."))
        elif isinstance(node, ast.ImportFrom) and node.module == "aleaart.api":
            found.update(alias.name for alias in node.names)
    return found


def test_routers_never_import_each_other():
    routers = router_modules()
    assert {"generate", "tokens", "kinds", "collections", "verify", "uploads", "keys"} <= routers
    crossing = {name: imported_api_modules(API / f"{name}.py") & routers for name in routers}
    assert {name: found for name, found in crossing.items() if found} == {}


def test_only_the_submit_layer_submits_to_the_queue():
    submitting = {path.stem for path in API.glob("*.py") if ".submit, " in path.read_text() or
                  "queue.submit(" in path.read_text()}
    assert submitting == {"submit"}
