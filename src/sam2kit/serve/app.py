"""The FastAPI application: shared context, authentication, JSON errors, info routes and the UI.

:func:`create_app` builds the app around an already loaded model (loaded once per process by
:func:`sam2kit.serve.run_server`); the image, video and eye-tracking recording routes live in
:mod:`.image_routes`, :mod:`.video_routes` and :mod:`.recording_routes`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .sessions import ModelWorker, SessionStore
from .settings import ServeSettings
from .uploads import ApiError

if TYPE_CHECKING:
    from ..model_spec import LoadedModel

__all__ = ["ServeContext", "create_app", "error_body"]

logger = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).parent / "static"
#: Routes served without a token: the UI shell and its assets (they hold no data).
PUBLIC_PATHS = ("/", "/favicon.ico")
PUBLIC_PREFIXES = ("/static/",)


@dataclass
class ServeContext:
    """What every route shares: settings, the model worker, the session store, the work folder."""

    settings: ServeSettings
    worker: ModelWorker
    store: SessionStore
    work_dir: Path


def error_body(code: str, message: str, **extra: Any) -> dict[str, Any]:
    """The JSON body of every error: ``{"error": {"code", "message", ...}}``."""
    return {"error": {"code": code, "message": message, **extra}}


class _BodyLimit:
    """Refuses request bodies over the upload limit before they are read (413), by their declared
    length or, without one, as soon as the bytes received pass it."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes + 64 * 1024  # room for multipart headers around the file

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        too_large = error_body("too_large", f"request body is larger than the limit of "
                               f"{(self.max_bytes - 65536) / 2**20:.3g} MiB (max_upload_mb)")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            await JSONResponse(too_large, status_code=413, headers={"Connection": "close"})(scope, receive, send)
            return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:  # FastAPI passes an HTTPException through body parsing
                    raise StarletteHTTPException(413, too_large["error"]["message"])
            return message

        await self.app(scope, counted, send)


def _authorized(request: Request, token: str) -> bool:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(value.strip().encode(), token.encode())


def create_app(settings: ServeSettings, loaded: LoadedModel) -> FastAPI:
    """The service around ``loaded`` (the process's one model) with ``settings``."""
    from . import image_routes, recording_routes, video_routes

    try:  # masks travel as COCO RLE: fail at start, not at the first click
        import pycocotools.mask  # noqa: F401
    except ImportError as error:
        raise ImportError("sam2kit serve needs pycocotools: pip install 'sam2kit[serve]'") from error
    own_dir = settings.work_dir is None
    work_dir = Path(tempfile.mkdtemp(prefix="sam2kit-serve-")) if own_dir else Path(settings.work_dir)  # type: ignore[arg-type]
    work_dir.mkdir(parents=True, exist_ok=True)
    context = ServeContext(settings, ModelWorker(loaded), SessionStore(settings.max_sessions, settings.idle_timeout_s),
                           work_dir)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async def sweeper() -> None:
            while True:
                await asyncio.sleep(min(60.0, max(settings.idle_timeout_s / 4, 0.5)))
                await asyncio.to_thread(context.store.sweep)

        task = asyncio.create_task(sweeper())
        try:
            yield
        finally:
            task.cancel()
            await asyncio.to_thread(context.store.close_all)
            if own_dir:
                import shutil

                shutil.rmtree(work_dir, ignore_errors=True)

    app = FastAPI(
        title="sam2kit serve",
        version=_version(),
        description="Segment Anything 2 in images and videos over HTTP: sessions, prompts, propagation, exports. "
        "Errors are JSON: {\"error\": {\"code\", \"message\"}}.",
        lifespan=lifespan,
    )
    app.state.context = context

    @app.exception_handler(ApiError)
    async def api_error(request: Request, error: ApiError) -> JSONResponse:
        return JSONResponse(error_body(error.code, error.message), status_code=error.status)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, error: RequestValidationError) -> JSONResponse:
        details = [{"loc": list(item.get("loc", ())), "msg": str(item.get("msg", ""))} for item in error.errors()]
        first = details[0] if details else {"loc": [], "msg": "invalid request"}
        where = ".".join(str(p) for p in first["loc"])
        message = f"invalid request: {where}: {first['msg']}" if where else f"invalid request: {first['msg']}"
        return JSONResponse(error_body("invalid_request", message, details=details), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        codes = {404: "not_found", 405: "method_not_allowed", 400: "bad_request", 413: "too_large"}
        return JSONResponse(error_body(codes.get(error.status_code, "http_error"), str(error.detail)),
                            status_code=error.status_code, headers=getattr(error, "headers", None))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, error: Exception) -> JSONResponse:
        logger.exception("unexpected error on %s %s", request.method, request.url.path)
        return JSONResponse(error_body("internal_error", f"internal error: {type(error).__name__}"), status_code=500)

    if settings.token is not None:
        token = settings.token

        @app.middleware("http")
        async def require_token(request: Request, call_next: Any) -> Any:
            path = request.url.path
            if path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES) or _authorized(request, token):
                return await call_next(request)
            return JSONResponse(error_body("unauthorized", "missing or wrong bearer token: send "
                                           "'Authorization: Bearer <token>'"), status_code=401,
                                headers={"WWW-Authenticate": "Bearer"})

    app.add_middleware(_BodyLimit, max_bytes=settings.max_upload_bytes)

    @app.get("/healthz", tags=["service"])
    def healthz() -> dict[str, str]:
        """Liveness: ``{"status": "ok"}``."""
        return {"status": "ok"}

    @app.get("/v1/info", tags=["service"])
    def info() -> dict[str, Any]:
        """The model (checkpoint, config, image size, device, precision), limits and open sessions."""
        return {"version": _version(), "model": loaded.to_json(), "device": str(loaded.device),
                "limits": settings.limits(), "sessions": context.store.counts(),
                "auth": settings.token is not None}

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html")

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.include_router(image_routes.router)
    app.include_router(video_routes.router)
    app.include_router(recording_routes.router)
    return app


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("sam2kit")
    except PackageNotFoundError:
        return "0+unknown"
