"""Sessions (one image or one video each), the store that bounds them, and the model lock.

The model is loaded once per process and shared: :class:`ModelWorker` serialises every forward
pass through one lock, so concurrent requests queue instead of fighting for the cores. A session
has its own lock too: two requests on one session never interleave, while requests on different
sessions interleave between forward passes.
"""

from __future__ import annotations

import gc
import secrets
import shutil
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .uploads import ApiError

if TYPE_CHECKING:
    import numpy as np

    from ..model_spec import LoadedModel
    from ..predict.image import ImagePredictor
    from ..predict.video import VideoPredictor
    from ..predict.video_state import InferenceState
    from .propagation import PropagationJob

__all__ = ["ImageObject", "ImageSession", "ModelWorker", "SessionStore", "VideoSession"]


class ModelWorker:
    """The process's one model, and the lock that serialises inference on it."""

    def __init__(self, loaded: LoadedModel) -> None:
        self.loaded = loaded
        self._lock = threading.Lock()

    @contextmanager
    def inference(self) -> Iterator[None]:
        """Hold the model for one forward pass (blocks while another request holds it)."""
        with self._lock:
            yield


@dataclass
class ImageObject:
    """One object of an image session: its prompts and its mask (COCO RLE, str counts)."""

    obj_id: int
    name: str
    points: list[list[float]] = field(default_factory=list)  # [[x, y, label], ...] pixels
    box: list[float] | None = None  # [x0, y0, x1, y1] pixels
    rle: dict[str, Any] | None = None
    score: float | None = None
    area: int = 0  # pixels
    bbox: list[int] | None = None  # [x, y, w, h] pixels

    def set_mask(self, mask: np.ndarray | None, score: float | None) -> None:
        """Keep ``mask`` ((H, W) bool, or None for none) as COCO RLE, with its area and box."""
        from ..io.masks import mask_to_box_xywh, to_coco_rle

        if mask is None:
            self.rle, self.score, self.area, self.bbox = None, None, 0, None
            return
        rle = to_coco_rle(mask)
        assert isinstance(rle, dict)
        self.rle, self.score, self.area, self.bbox = rle, score, int(mask.sum()), mask_to_box_xywh(mask)

    def to_json(self) -> dict[str, Any]:
        return {"obj_id": self.obj_id, "name": self.name, "points": self.points, "box": self.box,
                "score": self.score, "area": self.area, "bbox": self.bbox, "mask": self.rle}


@dataclass
class _Session:
    session_id: str
    file_name: str
    width: int
    height: int
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    last_used: float = field(default_factory=time.monotonic)
    closed: bool = False

    @property
    def busy(self) -> bool:
        return self.lock.locked()

    def close(self) -> None:
        """Release what the session holds (subclasses)."""


@dataclass
class ImageSession(_Session):
    """An uploaded image with its embedding (held by its predictor) and its objects."""

    kind = "image"
    image: np.ndarray | None = None  # (H, W, 3) uint8
    predictor: ImagePredictor | None = None
    objects: dict[int, ImageObject] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"session_id": self.session_id, "kind": self.kind, "file_name": self.file_name,
                "width": self.width, "height": self.height,
                "objects": [obj.to_json() for obj in self.objects.values()]}

    def close(self) -> None:
        self.closed = True
        self.image = None
        self.predictor = None
        self.objects.clear()


@dataclass
class VideoSession(_Session):
    """A video being tracked: the predictor's state, prompts per (frame, object), masks per frame."""

    kind = "video"
    num_frames: int = 0
    fps: float | None = None
    folder: Path | None = None  # the session's own files (the uploaded video), removed on close
    predictor: VideoPredictor | None = None
    state: InferenceState | None = None
    names: dict[int, str] = field(default_factory=dict)
    prompts: dict[tuple[int, int], dict[str, Any]] = field(default_factory=dict)  # (frame, obj) -> points/box
    masks: dict[int, dict[int, dict[str, Any]]] = field(default_factory=dict)  # frame -> obj -> COCO RLE
    job: PropagationJob | None = None

    def masked_frames(self) -> list[int]:
        snapshot = list(self.masks.items())  # one C-level copy: the propagation thread may be adding frames
        return sorted(frame for frame, objects in snapshot if any(_rle_nonempty(r) for r in objects.values()))

    def to_json(self) -> dict[str, Any]:
        return {
            "session_id": self.session_id, "kind": self.kind, "file_name": self.file_name,
            "width": self.width, "height": self.height, "num_frames": self.num_frames, "fps": self.fps,
            "objects": [{"obj_id": obj_id, "name": name} for obj_id, name in self.names.items()],
            "prompts": [{"frame": frame, "obj_id": obj_id, **prompt} for (frame, obj_id), prompt in
                        sorted(list(self.prompts.items()))],
            "masked_frames": self.masked_frames(),
            "propagation": self.job.to_json() if self.job is not None else None,
        }

    def close(self) -> None:
        self.closed = True
        if self.job is not None:
            self.job.cancel()
            self.job.join(timeout=30.0)
        frames = getattr(self.state, "frames", None)
        if frames is not None and hasattr(frames, "close"):
            frames.close()
        self.state = None
        self.predictor = None
        self.masks.clear()
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)


def _rle_nonempty(rle: dict[str, Any]) -> bool:
    from ..io.masks import rle_area

    return rle_area(rle) > 0


Session = ImageSession | VideoSession


class SessionStore:
    """At most ``max_sessions`` sessions; idle ones are closed after ``idle_timeout_s``.

    When full, a new session evicts the least recently used session that is not busy; if every
    session is busy the new one is refused (429).
    """

    def __init__(self, max_sessions: int, idle_timeout_s: float) -> None:
        self.max_sessions = max_sessions
        self.idle_timeout_s = idle_timeout_s
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()
        self.closed = 0

    def __len__(self) -> int:
        return len(self._sessions)

    @staticmethod
    def new_id() -> str:
        return secrets.token_urlsafe(12)

    def add(self, session: Session) -> None:
        """Keep ``session``, making room first. Raises ApiError 429 when no session can go."""
        self.sweep()
        evicted = None
        with self._lock:
            if len(self._sessions) >= self.max_sessions:
                idle = [s for s in self._sessions.values() if not _active(s)]
                if not idle:
                    raise ApiError(429, "too_many_sessions",
                                   f"all {self.max_sessions} sessions are busy (max_sessions); retry later")
                evicted = self._sessions.pop(min(idle, key=lambda s: s.last_used).session_id)
            self._sessions[session.session_id] = session
        self._close([evicted] if evicted is not None else [])

    def get(self, session_id: str, kind: str | None = None) -> Session:
        """The session (its idle clock reset). Raises ApiError 404 for an unknown or closed id."""
        with self._lock:
            session = self._sessions.get(session_id)
        if session is None or (kind is not None and session.kind != kind):
            what = f"{kind} session" if kind else "session"
            raise ApiError(404, "unknown_session",
                           f"no {what} {session_id!r} (closed, evicted after being idle, or never created)")
        session.last_used = time.monotonic()
        return session

    def remove(self, session_id: str) -> bool:
        """Close a session (after the request using it, if any); False when unknown."""
        with self._lock:
            session = self._sessions.pop(session_id, None)
        self._close([session] if session is not None else [])
        return session is not None

    def sweep(self) -> int:
        """Close the sessions idle for longer than the timeout; returns how many."""
        now = time.monotonic()
        with self._lock:
            stale = [s for s in self._sessions.values() if now - s.last_used > self.idle_timeout_s and not _active(s)]
            for session in stale:
                del self._sessions[session.session_id]
        self._close(stale)
        return len(stale)

    def close_all(self) -> None:
        with self._lock:
            sessions = list(self._sessions.values())
            self._sessions.clear()
        self._close(sessions)

    def _close(self, sessions: list[Session]) -> None:
        """Close sessions already out of the store: a running propagation is cancelled first, and a
        request still using a session finishes before its memory goes (outside the store's lock)."""
        for session in sessions:
            job = getattr(session, "job", None)
            if job is not None:
                job.cancel()
                job.join(timeout=30.0)
            acquired = session.lock.acquire(timeout=120.0)
            try:
                session.close()
            finally:
                if acquired:
                    session.lock.release()
            self.closed += 1
        if sessions:
            gc.collect()

    def counts(self) -> dict[str, int]:
        with self._lock:
            kinds = [s.kind for s in self._sessions.values()]
        return {"images": kinds.count("image"), "videos": kinds.count("video")}


def _active(session: Session) -> bool:
    job = getattr(session, "job", None)
    return session.busy or (job is not None and job.running)
