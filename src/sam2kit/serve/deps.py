"""What the image and video routes share: the context, session locking, error mapping, replies."""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Any

import numpy as np
from fastapi import Depends, Request
from fastapi.responses import Response

from .app import ServeContext
from .uploads import ApiError

if TYPE_CHECKING:
    from .sessions import ImageSession, VideoSession

__all__ = ["ERROR_RESPONSES", "Context", "context_of", "export_response", "locked", "png_response", "user_errors"]

#: Documented error replies (for the OpenAPI schema).
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"description": "bad input (the message says what is accepted)"},
    404: {"description": "unknown session, object or frame"},
    409: {"description": "the session is busy (a propagation is running)"},
    413: {"description": "over a limit"},
    415: {"description": "unsupported file type"},
    422: {"description": "invalid request body or parameters"},
}

#: How long a request waits for another request on the same session before giving up (409).
SESSION_WAIT_S = 120.0


def context_of(request: Request) -> ServeContext:
    """The app's :class:`~sam2kit.serve.app.ServeContext` (a FastAPI dependency)."""
    context: ServeContext = request.app.state.context
    return context


#: A route parameter that receives the :class:`~sam2kit.serve.app.ServeContext`.
Context = Annotated[ServeContext, Depends(context_of)]


@contextmanager
def locked(session: ImageSession | VideoSession) -> Iterator[None]:
    """Hold the session for one change. Raises ApiError 409 while it propagates or stays busy."""
    job = getattr(session, "job", None)
    if job is not None and job.running:
        raise ApiError(409, "busy", "a propagation is running on this session; wait for it or cancel it first")
    if not session.lock.acquire(timeout=SESSION_WAIT_S):
        raise ApiError(409, "busy", "the session is busy with another request; retry later")
    try:
        if session.closed:
            raise ApiError(404, "unknown_session", "the session was closed while this request waited for it")
        yield
    finally:
        session.lock.release()


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn the predictors' input errors (ValueError, TypeError, IndexError, KeyError) into 400s."""
    try:
        yield
    except ApiError:
        raise
    except KeyError as error:
        message = error.args[0] if error.args and isinstance(error.args[0], str) else str(error)
        raise ApiError(400, "bad_prompt", message) from None
    except (ValueError, TypeError, IndexError) as error:
        raise ApiError(400, "bad_prompt", str(error)) from None


def png_response(array: np.ndarray, palette: bytes | None = None) -> Response:
    """An (H, W) uint8 / bool array as a PNG reply (indexed with ``palette``)."""
    from PIL import Image

    image = Image.fromarray(array.astype(np.uint8) * (255 if array.dtype == np.bool_ else 1))
    if palette is not None:
        image.putpalette(palette)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return Response(buffer.getvalue(), media_type="image/png")


def export_response(content: bytes, media_type: str, file_name: str) -> Response:
    return Response(content, media_type=media_type,
                    headers={"Content-Disposition": f'attachment; filename="{file_name}"'})
