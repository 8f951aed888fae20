"""Track boxed objects through a live camera, a network stream or a video file, frame by frame.

Frames are decoded one at a time with PyAV (:func:`sam2kit.io.open_stream`) and tracked with a
:class:`~sam2kit.predict.stream.StreamPredictor` (constant memory however long the stream runs);
each frame's result is handed to a callback at once, as one JSON-able record::

    {"frame": 12, "time_s": 0.4, "objects": [{"id": 0, "bbox_xywh": [x, y, w, h], "area": 5210,
     "score": 0.98}, ...]}

``bbox_xywh`` is the tight box of the mask in pixels (zeros when the mask is empty), ``area`` its
pixel count, ``score`` the model's probability that the object is visible. Object ids are the
positions of the boxes (0, 1, ...), which also pick the overlay colours.

How a run ends: the end of the stream, ``max_frames``, or the stream breaking after at least one
frame (a decode or network error, a frame of another size) finish cleanly (the overlay video closed
and playable) and are told apart by :attr:`StreamSummary.ended`; so does Ctrl-C. A source that cannot
be opened or fails before its first frame, a box outside the frame, or a model error raise.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ArgumentError
from ..model_spec import LoadedModel, ModelSpec
from .common import check_overlay_path, resolve_model

__all__ = ["StreamSummary", "frame_record", "track_stream"]

logger = logging.getLogger(__name__)

#: Seconds between two progress lines (frames per second) in the log.
PROGRESS_INTERVAL_S = 5.0


@dataclass(frozen=True)
class StreamSummary:
    """How a :func:`track_stream` run went.

    Attributes:
        frames: frames tracked (and records handed out).
        seconds: wall-clock time of the tracking loop (decode + track + write), in seconds.
        ended: ``"end"`` (end of stream), ``"max-frames"``, ``"broken"`` (error after the first
            frame) or ``"interrupted"`` (Ctrl-C).
        reason: a human-readable explanation of ``ended``.
    """

    frames: int
    seconds: float
    ended: str
    reason: str

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0


def frame_record(
    frame_index: int, timestamp_s: float, obj_ids: Sequence[int], masks: np.ndarray, scores: Sequence[float]
) -> dict[str, Any]:
    """The JSON record of one frame: masks ``(N, H, W)`` bool, one presence score per object."""
    from ..io.masks import mask_to_box_xywh

    objects = []
    for obj_id, mask, score in zip(obj_ids, masks, scores, strict=True):
        objects.append({
            "id": int(obj_id),
            "bbox_xywh": mask_to_box_xywh(mask),
            "area": int(mask.sum()),
            "score": None if score != score else round(float(score), 6),  # NaN -> null
        })
    return {"frame": int(frame_index), "time_s": round(float(timestamp_s), 6), "objects": objects}


def _check_source(source: str) -> None:
    """Fail before the (slow) model load when a local source file is missing."""
    is_url = "://" in source
    if not is_url and not source.startswith("/dev/video") and not Path(source).exists():
        raise FileNotFoundError(f"stream source not found: {source} (expected a file, a URL or /dev/videoN)")


def _finish_overlay(writer: Any, failing: bool) -> None:
    """Close the overlay video so that it plays up to the last frame written (none: no file). While
    another error is on its way out, a failure here is only logged so as not to hide it."""
    try:
        if writer.frames_written:
            writer.close()
        else:
            writer.abort()
    except Exception as error:
        if not failing:
            raise
        logger.warning("could not finish the overlay video %s: %s", writer.path, error)


def track_stream(
    source: str,
    boxes: Sequence[tuple[float, float, float, float]],
    *,
    model: ModelSpec | LoadedModel | None = None,
    overlay: str | Path | None = None,
    max_frames: int | None = None,
    max_cond_frames: int | None = 8,
    on_frame: Callable[[dict[str, Any]], None] | None = None,
) -> StreamSummary:
    """Track the objects boxed on the first frame through ``source``.

    Args:
        source: a video file, a URL (rtsp://, http(s)://, ...) or a camera device (/dev/video0).
        boxes: XYXY boxes in pixels of the first frame, one object each (id = position).
        model: the model to load, or one already loaded; default ``ModelSpec()`` (SAM 2.1 tiny from the hub).
        overlay: write the frames with coloured masks to this video file.
        max_frames: stop after this many frames (None: until the stream ends).
        max_cond_frames: conditioning frames kept per object (see :class:`StreamPredictor`).
        on_frame: called with each frame's record (see :func:`frame_record`) as soon as it is tracked.
    Returns:
        a :class:`StreamSummary`.
    Raises:
        FileNotFoundError, sam2kit.io.StreamError: the source cannot be opened or fails before its
            first frame. ArgumentError: no box, a bad overlay path or ``max_frames``.
        ValueError: a box outside the frame. The errors of :func:`sam2kit.model_spec.load_model`.
    """
    from ..io.overlay import overlay_masks
    from ..io.stream import StreamError, open_stream
    from ..io.video_writer import VideoWriter
    from ..predict.stream import StreamPredictor

    if not boxes:
        raise ArgumentError("no box given: one box per object is needed", argument="boxes")
    if max_frames is not None and max_frames < 1:
        raise ArgumentError(f"max_frames must be >= 1, got {max_frames}", argument="max_frames")
    source = str(source)
    _check_source(source)
    overlay_path = check_overlay_path(overlay)
    loaded = resolve_model(model)
    predictor = StreamPredictor(loaded.model, max_cond_frames=max_cond_frames)

    stream = open_stream(source)
    writer = None
    count = 0
    ended, reason = "end", ""
    started = last_report = time.perf_counter()
    try:
        if overlay_path is not None:
            writer = VideoWriter(overlay_path, fps=stream.fps or 30.0)
        frames = iter(stream)
        while True:
            if max_frames is not None and count >= max_frames:
                ended, reason = "max-frames", f"stopped after {max_frames} frame(s), the frame limit"
                break
            try:
                frame_index, timestamp, rgb = next(frames)
            except StopIteration:
                ended, reason = "end", f"stream {source} ended"
                break
            except StreamError as error:
                if count == 0:
                    raise
                ended, reason = "broken", str(error)
                break
            if count == 0:
                predictor.load_first_frame(rgb)
                for obj_id, box in enumerate(boxes):
                    _, obj_ids, logits = predictor.add_new_prompt(0, obj_id, box=list(box))
            else:
                try:
                    obj_ids, logits = predictor.track(rgb)
                except (TypeError, ValueError) as error:  # e.g. the stream changed resolution
                    ended, reason = "broken", f"stream {source}, frame {frame_index}: {error}"
                    break
            masks = (logits[:, 0] > 0).cpu().numpy()  # (N, H, W)
            if on_frame is not None:
                on_frame(frame_record(frame_index, timestamp, obj_ids, masks, predictor.object_scores().tolist()))
            if writer is not None:
                writer.write(overlay_masks(rgb, masks, object_ids=obj_ids))
            count += 1
            now = time.perf_counter()
            if now - last_report >= PROGRESS_INTERVAL_S:
                logger.info("frame %d: %.2f frames per second", frame_index, count / (now - started))
                last_report = now
    except KeyboardInterrupt:
        ended, reason = "interrupted", "interrupted (Ctrl-C)"
    finally:
        stream.close()
        if writer is not None:
            _finish_overlay(writer, failing=sys.exc_info()[0] is not None)
    summary = StreamSummary(count, time.perf_counter() - started, ended, reason)
    message = (
        f"{reason}: tracked {summary.frames} frame(s) of {len(boxes)} object(s) in {summary.seconds:.1f} s "
        f"({summary.fps:.2f} frames per second)"
    )
    if overlay_path is not None and count:
        message += f"; overlay written to {overlay_path}"
    (logger.warning if ended in ("broken", "interrupted") else logger.info)(message)
    return summary
