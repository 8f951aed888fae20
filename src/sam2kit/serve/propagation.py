"""Propagation of a video session's prompts through its frames, in a thread of its own.

A :class:`PropagationJob` runs forward, backward or both from a start frame, holding the model
lock one frame at a time (image clicks of other sessions get their turn between frames), storing
each frame's masks as COCO RLE in the session as soon as they exist. Progress is read by any number
of observers (the SSE stream); a client that disconnects does not stop the job, :meth:`cancel` does.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .sessions import ModelWorker, VideoSession

__all__ = ["DIRECTIONS", "PropagationJob", "frame_masks_to_rle"]

DIRECTIONS = ("forward", "backward", "both")


def frame_masks_to_rle(obj_ids: list[int], logits: Any) -> dict[int, dict[str, Any]]:
    """``{obj_id: COCO RLE}`` of a frame's logits ``(num_objects, 1, H, W)`` (mask = logit > 0)."""
    from ..io.masks import to_coco_rle

    masks = (logits[:, 0] > 0).cpu().numpy()  # (N, H, W) bool
    if not obj_ids:
        return {}
    rles = to_coco_rle(masks)
    assert isinstance(rles, list)
    return dict(zip(obj_ids, rles, strict=True))


class PropagationJob:
    """One propagation run of a session (see the module docstring).

    Attributes:
        direction: ``"forward"``, ``"backward"`` or ``"both"``. start_frame: where it starts.
        total: frames it will visit. done: frames visited so far. last_frame: the latest one.
        status: ``"running"``, ``"done"``, ``"cancelled"`` or ``"failed"`` (then ``error`` says why).
    """

    def __init__(self, session: VideoSession, worker: ModelWorker, direction: str, start_frame: int) -> None:
        self.session = session
        self.worker = worker
        self.direction = direction
        self.start_frame = start_frame
        n = session.num_frames
        forward, backward = n - start_frame, start_frame + 1
        self.total = {"forward": forward, "backward": backward, "both": forward + backward - 1}[direction]
        self.done = 0
        self.last_frame: int | None = None
        self.status = "running"
        self.error: str | None = None
        self.started = time.monotonic()
        self.finished: float | None = None
        self._cancel = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"propagate-{session.session_id}", daemon=True)

    @property
    def running(self) -> bool:
        return self.status == "running"

    def start(self) -> None:
        self._thread.start()

    def cancel(self) -> None:
        self._cancel.set()

    def join(self, timeout: float | None = None) -> None:
        if self._thread.is_alive():
            self._thread.join(timeout)

    def to_json(self) -> dict[str, Any]:
        end = self.finished if self.finished is not None else time.monotonic()
        return {"status": self.status, "direction": self.direction, "start_frame": self.start_frame,
                "done": self.done, "total": self.total, "last_frame": self.last_frame,
                "error": self.error, "elapsed_s": round(end - self.started, 3)}

    def _run(self) -> None:
        session = self.session
        try:
            with session.lock:  # no prompt changes while tracking
                passes = {"forward": [False], "backward": [True], "both": [False, True]}[self.direction]
                for reverse in passes:
                    if not self._track(reverse, skip_start=reverse and self.direction == "both"):
                        break
            self.status = "cancelled" if self._cancel.is_set() else "done"
        except Exception as error:  # reported to observers; the service keeps serving
            self.status, self.error = "failed", f"{type(error).__name__}: {error}"
        finally:
            self.finished = time.monotonic()

    def _track(self, reverse: bool, skip_start: bool) -> bool:
        """One pass; False when cancelled."""
        session = self.session
        assert session.predictor is not None and session.state is not None
        frames = session.predictor.propagate_in_video(session.state, start_frame_idx=self.start_frame, reverse=reverse)
        try:
            while True:
                if self._cancel.is_set():
                    return False
                with self.worker.inference():
                    item = next(frames, None)
                if item is None:
                    return True
                frame_idx, obj_ids, logits = item
                session.masks[frame_idx] = frame_masks_to_rle(list(obj_ids), logits)
                session.last_used = time.monotonic()
                if not (skip_start and frame_idx == self.start_frame):
                    self.done += 1
                self.last_frame = frame_idx
        finally:
            frames.close()  # type: ignore[attr-defined]  # a generator
