"""HTTP routes: translate requests into jobs and stored images, and errors into JSON."""

from __future__ import annotations

import logging
import secrets
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from aleaart import __version__
from aleaart.api_tokens import token_routes
from aleaart.chain import ChainReader
from aleaart.config import Settings
from aleaart.errors import AleaArtError, BodyTooLarge, QueueFull, Unauthorized
from aleaart.jobs import EngineLike, JobQueue, ModelHolder
from aleaart.params import tables_json
from aleaart.responses import IMMUTABLE, error_response, generate_and_wait, image_result, job_events, job_snapshot
from aleaart.schemas import GenerateBody
from aleaart.store import ImageStore

log = logging.getLogger(__name__)

WEB_DIR = Path(__file__).parent / "web"  # the dashboard: static HTML, CSS and JS modules
BODY_KINDS = ("seed", "flat")  # the tags of GenerateBody's union, which pydantic puts in error locations


# Errors → {"success": false, "error": ...}

def _validation_message(error: RequestValidationError) -> str:
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


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(AleaArtError)
    async def _known(request: Request, error: AleaArtError) -> JSONResponse:
        headers = {"Retry-After": str(error.retry_after)} if isinstance(error, QueueFull) else None
        return error_response(error.status, str(error), headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, error: RequestValidationError) -> JSONResponse:
        return error_response(422, _validation_message(error))

    @app.exception_handler(HTTPException)
    async def _http(request: Request, error: HTTPException) -> JSONResponse:
        return error_response(error.status_code, str(error.detail), getattr(error, "headers", None))

    @app.exception_handler(Exception)
    async def _bug(request: Request, error: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return error_response(500, "internal error; the server log has the details")


class BodyLimit:
    """Answers 413 for bodies over ``max_bytes``, by Content-Length or by counting what arrives.

    Bodies here are small JSON, so the whole body is read (up to the limit) before the app sees it.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            return await self._reject(scope, receive, send)
        body, more = b"", True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > self.max_bytes:
                return await self._reject(scope, receive, send)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    async def _reject(self, scope: Scope, receive: Receive, send: Send) -> None:
        error = BodyTooLarge(f"request body is over the limit of {self.max_bytes} bytes")
        await error_response(error.status, str(error))(scope, receive, send)


# The app

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
    """The service; ``loader`` and ``chain`` replace the real engine and chain reader (seams for tests)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        store = ImageStore(settings.images_dir, settings.db_path)
        probe = probe_cuda if loader is None else (lambda: False)
        model = ModelHolder(loader or default_loader(settings), probe_cuda=probe)
        queue = JobQueue(model=model, store=store, settings=settings)
        app.state.store, app.state.model, app.state.queue = store, model, queue
        app.state.chain = chain or ChainReader.from_settings(settings)
        model.start()
        queue.start()
        yield
        queue.stop()
        store.close()

    app = FastAPI(title="AleaArt backend", version=__version__, lifespan=lifespan)
    install_error_handlers(app)
    app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins, allow_methods=["*"],
                       allow_headers=["*"], expose_headers=["Retry-After"])
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    add_routes(app, settings)
    app.include_router(token_routes(settings, api_key_checker(settings)))
    app.mount("/web", StaticFiles(directory=WEB_DIR), name="web")
    return app


def api_key_checker(settings: Settings) -> Callable[[Request], None]:
    def check(request: Request) -> None:
        if not settings.api_key:
            return
        given = request.headers.get("x-api-key") or request.headers.get("authorization", "").removeprefix("Bearer ")
        if not secrets.compare_digest(given.encode(), settings.api_key.encode()):
            raise Unauthorized("this endpoint needs the API key: send it in the X-API-Key header")

    return check


def wants_html(request: Request) -> bool:
    """A browser asking for a page (Accept: text/html first); API clients keep the JSON index."""
    accept = request.headers.get("accept", "")
    if "text/html" not in accept:
        return False
    return "application/json" not in accept or accept.index("text/html") < accept.index("application/json")


def queue_of(request: Request) -> JobQueue:
    return request.app.state.queue


Queue = Annotated[JobQueue, Depends(queue_of)]


def add_routes(app: FastAPI, settings: Settings) -> None:
    keyed = [Depends(api_key_checker(settings))]

    @app.get("/", response_model=None)
    async def index(request: Request) -> dict[str, Any] | HTMLResponse:
        if wants_html(request):
            return HTMLResponse((WEB_DIR / "index.html").read_text(encoding="utf-8"))
        return {
            "message": "AleaArt Python backend: on-chain art parameters to Stable Diffusion images",
            "version": __version__,
            "endpoints": {
                "POST /generate-image": "generate (or fetch the stored) image; waits for it",
                "POST /jobs": "queue a generation; answers 202 with the job's URLs",
                "GET /jobs/{id}": "a job's state, progress and result",
                "GET /jobs/{id}/events": "the job's progress as Server-Sent Events",
                "DELETE /jobs/{id}": "cancel a job",
                "GET /images": "stored generations, newest first (?tokenId=&limit=&offset=)",
                "GET /tokens/latest": "the newest token whose randomness has arrived, with its parameters",
                "GET /tokens/{id}": "a token's parameters, seed and whether they follow from the seed",
                "POST /tokens/{id}/generate-image": "generate a token's image from its on-chain parameters",
                "POST /tokens/{id}/jobs": "the same, as a job",
                "GET /tokens/{id}/metadata.json": "ERC-721 metadata for the token",
                "GET /tokens/{id}/image.png": "the token's image (generated on first request)",
                "GET /generated_images/{file}": "a stored PNG",
                "GET /health": "service and model status",
                "GET /ready": "200 once the model is loaded, else 503",
                "GET /params": "the mapping tables and parameter ranges",
                "GET /docs": "OpenAPI documentation",
            },
        }

    @app.get("/params")
    async def parameter_tables() -> dict[str, Any]:
        return tables_json()

    @app.get("/health")
    async def health(queue: Queue) -> dict[str, Any]:
        model = queue.model
        engine = model.engine
        return {
            "status": "healthy",
            "model_loaded": engine is not None,
            "model_loading": model.loading,
            "model": settings.model,
            "model_error": model.error,
            "device": str(getattr(engine, "device", "")) or None,
            "cuda_available": model.cuda_available,
            "queue_depth": queue.depth,
            "max_queue": queue.max_queue,
            "generations": queue.generations,
            "api_key_required": bool(settings.api_key),
            "version": __version__,
        }

    @app.get("/ready")
    async def ready(queue: Queue) -> dict[str, Any]:
        queue.model.require()
        return {"ready": True}

    @app.post("/generate-image", dependencies=keyed)
    async def generate_image(body: GenerateBody, queue: Queue) -> dict[str, Any]:
        return await generate_and_wait(queue, body.to_spec(), body.tokenId)

    @app.post("/jobs", status_code=202, dependencies=keyed)
    async def create_job(body: GenerateBody, queue: Queue) -> JSONResponse:
        job = queue.submit(body.to_spec(), body.tokenId)
        return JSONResponse(job_snapshot(queue, job), status_code=202, headers={"Location": f"/jobs/{job.id}"})

    @app.get("/jobs/{job_id}", dependencies=keyed)
    async def get_job(job_id: str, queue: Queue) -> dict[str, Any]:
        return job_snapshot(queue, queue.get(job_id))

    @app.get("/jobs/{job_id}/events", dependencies=keyed)
    async def job_event_stream(job_id: str, queue: Queue) -> StreamingResponse:
        job = queue.get(job_id)
        return StreamingResponse(job_events(queue, job), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    @app.delete("/jobs/{job_id}", dependencies=keyed)
    async def cancel_job(job_id: str, queue: Queue) -> dict[str, Any]:
        return job_snapshot(queue, queue.cancel(job_id))

    @app.get("/images")
    async def list_images(
        queue: Queue,
        tokenId: Annotated[str | None, Query(pattern=r"^[0-9]{1,78}$")] = None,
        limit: Annotated[int, Query(ge=1, le=100)] = 20,
        offset: Annotated[int, Query(ge=0)] = 0,
    ) -> dict[str, Any]:
        token = str(int(tokenId)) if tokenId is not None else None
        images, total = queue.store.list(token_id=token, limit=limit, offset=offset)
        items = [image_result(queue.store, i, cached=True, with_base64=False) for i in images]
        return {"images": items, "total": total, "limit": limit, "offset": offset}

    @app.get("/generated_images/{filename}")
    async def generated_image(filename: str, queue: Queue) -> FileResponse:
        path = queue.store.path_of(filename)
        return FileResponse(path, media_type="image/png", headers={"Cache-Control": IMMUTABLE})
