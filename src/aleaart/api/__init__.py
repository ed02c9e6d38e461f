"""The HTTP service: one router per concern, assembled by ``create_app``.

    errors.py     the JSON error body, exception handlers, the body-size limit
    deps.py       Annotated dependencies (queue, store, chain, settings, API key, token id)
    schemas.py    request bodies (pydantic)
    responses.py  what routes answer: image results, job snapshots, SSE
    service.py    /, /params, /health, /ready
    generate.py   /generate-image and /jobs
    images.py     /images and /generated_images
    tokens.py     /tokens/...
    derived.py    images made from others: /variations, /tokens/{id}/variations
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from aleaart import __version__
from aleaart.api import collections, derived, generate, images, models, service, tokens
from aleaart.api.edge import AllowedMethods, JsonCORSMiddleware, RequestLimits
from aleaart.api.errors import install_error_handlers
from aleaart.api.openapi import error_only_openapi
from aleaart.chain import ChainReader
from aleaart.config import Settings
from aleaart.custom_models import ModelRegistry
from aleaart.database import Database
from aleaart.integrations.publisher import Publisher
from aleaart.jobs import BaseQueue, EngineLike, JobBook, JobQueue, ModelHolder
from aleaart.metrics import Metrics
from aleaart.store import ImageStore


def default_loader(settings: Settings) -> Callable[[], EngineLike]:
    def load() -> EngineLike:
        from aleaart.engine.pipeline import Engine  # torch is imported here, off the request path

        return Engine.load(settings)

    return load


def probe_cuda() -> bool:
    from aleaart.engine.pipeline import cuda_available

    return cuda_available()


def create_app(
    settings: Settings,
    *,
    loader: Callable[[], EngineLike] | None = None,
    chain: ChainReader | None = None,
) -> FastAPI:
    """The service; ``loader`` and ``chain`` replace the real engine and chain reader (seams for tests).
    With ALEAART_BROKER_URL set, no engine is loaded here: `aleaart worker` processes render."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        db = Database(settings.db_path)
        store = ImageStore(settings.images_dir, db, min_free_mb=settings.min_free_mb,
                           cache_mb=settings.serve_cache_mb)
        app.state.chain = chain or ChainReader.from_settings(settings)
        queue: BaseQueue
        if settings.broker_url:  # many GPUs: the workers load the model, this process hands them jobs
            from aleaart.cluster.dispatch import CeleryQueue

            model = None
            queue = CeleryQueue(store=store, book=JobBook(db, store), settings=settings, metrics=metrics,
                                chain=app.state.chain)
        else:
            probe = probe_cuda if loader is None else (lambda: False)  # a test's fake engine has no CUDA
            model = ModelHolder(loader or default_loader(settings), probe_cuda=probe)
            queue = JobQueue(model=model, store=store, book=JobBook(db, store), settings=settings,
                             metrics=metrics, chain=app.state.chain)
            metrics.model_load_seconds.set_function(lambda: model.load_seconds or 0.0)
            model.start()
        metrics.watch_queue(lambda: queue.depth)
        app.state.store, app.state.model, app.state.queue = store, model, queue
        app.state.registry = ModelRegistry(settings.models_path, db)
        app.state.publisher = publisher = Publisher.from_settings(settings, store, db)
        queue.start()
        publisher.start()
        yield
        queue.stop()
        publisher.stop()
        db.close()

    app = FastAPI(title="AleaArt backend", version=__version__, lifespan=lifespan)
    app.openapi = lambda: error_only_openapi(app)  # type: ignore[method-assign]
    app.state.settings = settings
    app.state.metrics = metrics = Metrics()
    install_error_handlers(app)
    # The last added runs first: limits, then CORS (preflights), then plain OPTIONS, then the routes.
    app.add_middleware(AllowedMethods)
    app.add_middleware(JsonCORSMiddleware, allow_origins=settings.cors_origins, allow_methods=["*"],
                       allow_headers=["*"], expose_headers=["Retry-After"])
    app.add_middleware(RequestLimits, max_body=settings.max_body_bytes, uploads={"/models": settings.max_upload_mb})
    for module in (service, generate, images, tokens, collections, derived, models):
        app.include_router(module.router)
    app.mount("/web", StaticFiles(directory=service.WEB_DIR), name="web")
    return app
