"""The service's own routes: the index (or the dashboard), parameter tables, health and readiness."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST

from aleaart import __version__
from aleaart.api.deps import QueueDep, SettingsDep
from aleaart.api.errors import error_responses
from aleaart.database import Database
from aleaart.errors import ShuttingDown
from aleaart.jobs import KINDS
from aleaart.jobs.image_kind import FromStoredImage
from aleaart.jobs.spec_kind import SpecRequest
from aleaart.params import tables_json

WEB_DIR = Path(__file__).resolve().parent.parent / "web"  # the dashboard: static HTML, CSS and JS modules

router = APIRouter(tags=["service"])

ENDPOINTS = {
    "POST /generate-image": "generate (or fetch the stored) image; waits for it",
    "POST /jobs": "queue a job; answers 202 with the job's URLs",
    "GET /jobs/{id}": "a job's kind, state, progress and result",
    "GET /jobs/{id}/events": "the job's progress as Server-Sent Events",
    "DELETE /jobs/{id}": "withdraw your interest in a job: it stops once none of its owners wants it",
    "POST /variations": "count images near the body's: its starting noise blended with seed + i (a job)",
    "POST /tokens/{id}/variations": "the same for a token's image",
    "GET /images": "stored images, newest first (?tokenId=&source=&limit=&offset=)",
    "GET /tokens/latest": "the newest token whose randomness has arrived, with its parameters",
    "GET /tokens/{id}": "a token's parameters, seed and whether they follow from the seed",
    "POST /tokens/{id}/generate-image": "generate a token's image from its on-chain parameters",
    "POST /tokens/{id}/jobs": "the same, as a job",
    "GET /tokens/{id}/metadata.json": "ERC-721 metadata for the token",
    "GET /tokens/{id}/image.png": "the token's image (generated on first request)",
    "GET /tokens/{id}/verify": "the token's stored image checked: its Content Credentials and the chain's parameters",
    "POST /verify": "a file's Content Credentials checked, and a re-render compared (exact, perceptual, mismatch)",
    "POST /collections": "render every token of a range and export it for IPFS (a collection job)",
    "GET /collections/{id}/tokens": "a page of the collection's tokens with their images",
    "GET /collections/{id}/collection.car": "the exported collection as one CAR file",
    "GET /generated_images/{file}": "a stored PNG",
    "GET /me": "the key you send: its name, scopes, limits and what is left of them",
    "GET /keys": "every API key, never a secret (admin scope; POST /keys makes one, DELETE /keys/{name} revokes)",
    "GET /health": "service and model status",
    "GET /ready": "200 once the model is loaded, else 503",
    "GET /metrics": "Prometheus metrics",
    "GET /params": "the mapping tables and parameter ranges",
    "GET /docs": "OpenAPI documentation",
}


def wants_html(request: Request) -> bool:
    """A browser asking for a page (Accept: text/html first); API clients keep the JSON index."""
    accept = request.headers.get("accept", "")
    if "text/html" not in accept:
        return False
    return "application/json" not in accept or accept.index("text/html") < accept.index("application/json")


@router.get("/", response_model=None)
def index(request: Request) -> dict[str, Any] | HTMLResponse:
    if wants_html(request):
        return HTMLResponse((WEB_DIR / "index.html").read_text(encoding="utf-8"))
    return {
        "message": "AleaArt Python backend: on-chain art parameters to Stable Diffusion images",
        "version": __version__,
        "endpoints": ENDPOINTS,
    }


@router.get("/params")
def parameter_tables() -> dict[str, Any]:
    # The mapping tables and ranges, and the kinds the dashboard offers under an image (``kinds``).
    return {**tables_json(), "kinds": offered_kinds()}


def offered_kinds() -> list[dict[str, Any]]:
    """Each kind that declares an ``Offer``, with where it is asked for: ``from`` params (a token's or the manual
    parameters: ``path``, ``tokenPath``) or from the image shown (``/images/{key}/<path>``)."""
    offered = []
    for cls in KINDS.values():
        if cls.offer is None:
            continue
        if issubclass(cls, SpecRequest):
            where = {"from": "params", "path": cls.routes.path, "tokenPath": cls.routes.token_path}
        elif issubclass(cls, FromStoredImage):
            where = {"from": "image", "path": cls.routes.path}
        else:
            continue
        offered.append({"kind": cls.kind, **where, **cls.offer.to_json()})
    return sorted(offered, key=lambda offer: offer["order"])


@router.get("/health")
def health(request: Request, queue: QueueDep, settings: SettingsDep) -> dict[str, Any]:
    return {
        "status": "draining" if queue.draining else "healthy",
        "model": settings.model,
        **queue.health(),
        "queue_depth": queue.depth,
        "max_queue": queue.max_queue,
        "generations": queue.generations,
        "api_key_required": request.app.state.keys.required(),
        "keys": request.app.state.keys.counts(),
        "content_credentials": request.app.state.credentials.describe(),
        "quarantined_rows": request.app.state.store.db.quarantined() + request.app.state.journal_db.quarantined(),
        **journal_lost(request.app.state.journal_db, request.app.state.lost_jobs),
        **({"chain_watcher": watcher} if (watcher := request.app.state.watch_status()) is not None else {}),
        "version": __version__,
    }


def journal_lost(journal: Database, lost_jobs: list[str] | None) -> dict[str, Any]:
    """What /health says when the journal could not be read at the start: what was accepted before is lost, and
    which unfinished jobs, where what is left of the file says (``lostJobs`` null: unknown)."""
    if journal.moved_aside is None:
        return {}
    return {"journal_lost": {"movedAside": str(journal.moved_aside), "lostJobs": lost_jobs,
                             "message": "the job journal could not be read at the start: jobs, records and webhooks "
                             "accepted before it are lost; the damaged file was kept for inspection"}}


@router.get("/metrics", response_class=Response, responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}})
def metrics(request: Request) -> Response:
    """Prometheus metrics: queue depth, jobs by kind and state, job and step seconds, cache hits, errors by code,
    and the chain watcher's head, cursor, lag and tokens."""
    return Response(request.app.state.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)


@router.get("/ready", responses=error_responses(503))
def ready(queue: QueueDep) -> dict[str, Any]:
    if queue.draining:
        raise ShuttingDown("draining for a restart: send new work elsewhere")
    queue.require_ready()
    return {"ready": True}
