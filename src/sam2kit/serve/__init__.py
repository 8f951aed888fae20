"""``sam2kit serve``: an HTTP service (FastAPI + uvicorn) and a browser annotation UI.

- :mod:`.settings`: :class:`ServeSettings` (address, token, limits) and the bind check;
- :mod:`.app`: :func:`create_app` (context, authentication, JSON errors, ``/healthz``, ``/v1/info``,
  the UI at ``/`` from ``static/``); :mod:`.image_routes` and :mod:`.video_routes`: the API;
- :mod:`.sessions`: sessions, their store (limits, idle eviction) and the model lock;
  :mod:`.propagation`: video propagation in a background thread; :mod:`.exports`: COCO, DAVIS,
  YOLO, boxes and overlays; :mod:`.uploads`: size limits, type checks by content, the media root.

FastAPI, uvicorn and python-multipart come with ``pip install 'sam2kit[serve]'``; importing this
package imports none of them (nor torch).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .settings import TOKEN_ENV, ServeSettings, check_bind

if TYPE_CHECKING:
    from ..model_spec import ModelSpec

__all__ = ["TOKEN_ENV", "ServeSettings", "check_bind", "create_app", "require_serve_deps", "run_server"]


def require_serve_deps() -> None:
    """Raises ImportError naming the extra to install when FastAPI, uvicorn or python-multipart is missing."""
    from importlib.util import find_spec

    needed = {"fastapi": ("fastapi",), "uvicorn": ("uvicorn",), "python-multipart": ("python_multipart", "multipart")}
    missing = [package for package, modules in needed.items() if not any(find_spec(m) for m in modules)]
    if missing:
        raise ImportError(f"sam2kit serve needs {', '.join(missing)}: pip install 'sam2kit[serve]'")


def create_app(*args: Any, **kwargs: Any) -> Any:
    """See :func:`sam2kit.serve.app.create_app` (imported on use: it needs FastAPI)."""
    require_serve_deps()
    from .app import create_app as create

    return create(*args, **kwargs)


def run_server(settings: ServeSettings, spec: ModelSpec, *, log_level: str = "info") -> None:
    """Check the address, load the model once, and serve until interrupted.

    Raises:
        ArgumentError: a non-loopback address without a token (see :func:`check_bind`).
        ImportError: the ``serve`` extra is not installed.
    """
    import logging

    check_bind(settings)
    require_serve_deps()
    import uvicorn

    from ..model_spec import load_model

    loaded = load_model(spec)
    app = create_app(settings, loaded)
    logging.getLogger("sam2kit").info("serving on http://%s:%d/ (model %s on %s)", settings.host, settings.port,
                                      loaded.config.name, loaded.device)
    uvicorn.run(app, host=settings.host, port=settings.port, log_level=log_level, timeout_graceful_shutdown=5)
