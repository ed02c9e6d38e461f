"""The HTTP service: one router per concern, assembled by ``create_app``.

    errors.py     the JSON error body, exception handlers, the body-size limit
    deps.py       Annotated dependencies (queue, store, chain, settings, API key, token id)
    schemas.py    request bodies (pydantic)
    responses.py  what routes answer: image results, job snapshots, SSE
    service.py    /, /params, /health, /ready
    submit.py     the one way a route submits a job (webhook checked, kept answers, 202 or the image)
    token_reads.py  a token read for a route, and the render request its image is
    generate.py   /generate-image and /jobs
    images.py     /images and /generated_images
    tokens.py     /tokens/...
    kinds.py      every job kind's routes, from its declaration (variations, animations, upscale, restyle, ...)
    uploads.py    /models: the service's model, uploaded checkpoints and LoRAs
    keys.py       /keys: the API keys (admin scope)
    auth.py       who is asking and whether they may: each route's scope
    verify.py     /verify and /tokens/{id}/verify: Content Credentials and re-renders compared
"""

from __future__ import annotations

import ipaddress
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from aleaart import __version__
from aleaart.api import collections, generate, images, keys, kinds, service, tokens, uploads, verify
from aleaart.api.answers import StoredAnswers
from aleaart.api.edge import AllowedMethods, DrainUnreadBody, HeadAsGet, JsonCORSMiddleware, RequestLimits
from aleaart.api.errors import install_error_handlers
from aleaart.api.openapi import error_only_openapi
from aleaart.api.responses import job_snapshot
from aleaart.api.submit import Submitter
from aleaart.chain import ChainReader
from aleaart.config import Settings
from aleaart.logs import quiet_libraries
from aleaart.metrics import Metrics
from aleaart.services import Loader, Services


def create_app(
    settings: Settings,
    *,
    loader: Loader | None = None,
    chain: ChainReader | None = None,
) -> FastAPI:
    """The service; ``loader`` and ``chain`` replace the real engine and chain reader (seams for tests).
    With ALEAART_BROKER_URL set, no engine is loaded here: `aleaart worker` processes render."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        services = Services.open(settings, loader=loader, chain=chain, metrics=metrics)
        app.state.chain, app.state.store, app.state.model = services.chain, services.store, services.model
        app.state.queue, app.state.registry, app.state.publisher = services.queue, services.registry, \
            services.publisher
        app.state.credentials = services.credentials
        app.state.watch_status = services.watch_status
        app.state.webhooks = services.webhooks
        app.state.journal_db = services.journal_db
        app.state.keys, app.state.limiter = services.keys, services.limiter
        app.state.lost_jobs = services.lost_jobs
        queue = services.queue
        # A webhook's body is the job as GET /jobs/{id} shows it, less its place in the queue and ETA: stale by
        # the time a delivery (perhaps a retry) arrives.
        services.webhooks.snapshot = lambda job, status: job_snapshot(queue, job, status, placed=False)
        app.state.answers = answers = StoredAnswers(max_bytes=settings.serve_cache_mb * 2**20,
                                                    keep_seconds=settings.keep_jobs_hours * 3600 / 2)
        app.state.submitter = Submitter(queue=queue, hub=services.webhooks, answers=answers,
                                        publisher=services.publisher, settings=settings)
        services.start()
        yield
        services.close()

    quiet_libraries()
    app = FastAPI(title="AleaArt backend", version=__version__, lifespan=lifespan)
    app.openapi = lambda: error_only_openapi(app)  # type: ignore[method-assign]
    app.state.settings = settings
    app.state.trusted_proxies = [ipaddress.ip_network(n, strict=False) for n in settings.trusted_proxies]
    app.state.verify_slots = threading.BoundedSemaphore(settings.verify_concurrency)
    app.state.metrics = metrics = Metrics()
    install_error_handlers(app)
    # The last added runs first: draining unread bodies, limits, CORS (preflights), plain OPTIONS, HEAD as GET,
    # then the routes.
    app.add_middleware(HeadAsGet)
    app.add_middleware(AllowedMethods)
    app.add_middleware(JsonCORSMiddleware, allow_origins=settings.cors_origins, allow_methods=["*"],
                       allow_headers=["*"], expose_headers=["Retry-After"])
    app.add_middleware(RequestLimits, max_body=settings.max_body_bytes,
                       uploads={"/models": (settings.max_upload_mb, "ALEAART_MAX_UPLOAD_MB"),
                                "/verify": (verify.MAX_VERIFY_MB, "verify's fixed limit")})
    app.add_middleware(DrainUnreadBody)  # outermost: it sees the body as it arrives
    for module in (service, generate, images, tokens, collections):
        app.include_router(module.router)
    app.include_router(kinds.kinds_router())
    for module in (uploads, verify, keys):
        app.include_router(module.router)
    app.include_router(keys.admin)
    app.mount("/web", StaticFiles(directory=service.WEB_DIR), name="web")
    return app
