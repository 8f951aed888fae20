"""The service's settings: where it listens, who may call it, and its limits.

Every limit has a documented default (also reported by ``GET /v1/info``); ``sam2kit serve``
exposes each as an option. Importing this module imports neither torch nor FastAPI.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..errors import ArgumentError

__all__ = ["TOKEN_ENV", "ServeSettings", "check_bind", "is_loopback"]

#: Environment variable read for the bearer token when ``--token`` is not given.
TOKEN_ENV = "SAM2KIT_SERVE_TOKEN"


@dataclass(frozen=True)
class ServeSettings:
    """How the service runs.

    Attributes:
        host / port: where uvicorn listens (loopback by default).
        token: a bearer token every route but the UI shell requires (None: no authentication).
        insecure: allow a non-loopback ``host`` without a token.
        media_root: a folder whose videos (files or folders of frames) may be opened by path; None
            disables opening by path. Paths outside it are refused.
        max_upload_mb: largest accepted upload, in MiB.
        max_frames: longest accepted video, in frames.
        max_image_pixels: largest accepted image, in pixels (width x height).
        max_sessions: sessions (images and videos together) kept at once; a new one evicts the
            least recently used idle session when full, else is refused with 429.
        idle_timeout_s: a session unused this long is closed and its memory returned.
        max_objects: objects per session.
        work_dir: where uploaded videos and tracked masks are kept (None: a temporary folder).
    """

    host: str = "127.0.0.1"
    port: int = 8765
    token: str | None = None
    insecure: bool = False
    media_root: Path | None = None
    max_upload_mb: float = 200.0
    max_frames: int = 3000
    max_image_pixels: int = 40_000_000
    max_sessions: int = 8
    idle_timeout_s: float = 1800.0
    max_objects: int = 64
    work_dir: Path | None = None

    def __post_init__(self) -> None:
        checks = {
            "port": 0 <= self.port <= 65535,
            "max_upload_mb": self.max_upload_mb > 0,
            "max_frames": self.max_frames >= 1,
            "max_image_pixels": self.max_image_pixels >= 1,
            "max_sessions": self.max_sessions >= 1,
            "idle_timeout_s": self.idle_timeout_s > 0,
            "max_objects": 1 <= self.max_objects <= 255,
        }
        for name, ok in checks.items():
            if not ok:
                accepted = "1..255" if name == "max_objects" else "0..65535" if name == "port" else "> 0"
                raise ArgumentError(f"{name} must be {accepted}, got {getattr(self, name)!r}", argument=name)
        if self.token is not None and not self.token.strip():
            raise ArgumentError("token must not be empty", argument="token")
        if self.media_root is not None and not Path(self.media_root).is_dir():
            raise ArgumentError(f"media_root {self.media_root} is not a folder", argument="media_root")

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)

    def limits(self) -> dict[str, Any]:
        """The limits, as ``/v1/info`` reports them."""
        data = asdict(self)
        keep = ("max_upload_mb", "max_frames", "max_image_pixels", "max_sessions", "idle_timeout_s", "max_objects")
        limits = {key: data[key] for key in keep}
        limits["media_root"] = self.media_root is not None
        return limits

    @staticmethod
    def token_from_env() -> str | None:
        """The token of :data:`TOKEN_ENV`, or None when it is unset or empty."""
        return os.environ.get(TOKEN_ENV) or None


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and addresses in 127.0.0.0/8 or ``::1``."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(settings: ServeSettings) -> None:
    """Refuse a non-loopback address without a token unless ``insecure``.

    Raises:
        ArgumentError: (``argument="host"``) the address would expose an unauthenticated service.
    """
    if is_loopback(settings.host) or settings.token is not None or settings.insecure:
        return
    raise ArgumentError(
        f"refusing to listen on {settings.host} without a token: anyone who can reach it could use the "
        f"service; set --token (or {TOKEN_ENV}), listen on 127.0.0.1, or pass --insecure",
        argument="host",
    )
