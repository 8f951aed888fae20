"""``sam2kit stream``: track boxed objects through a live camera, network stream or video file.

The argument parsing lives in :mod:`sam2kit.cli`; this module does the work. Frames are decoded one
at a time with PyAV (:func:`sam2kit.io.open_stream`), tracked with a
:class:`~sam2kit.predict.stream.StreamPredictor` (constant memory however long the stream runs), and
each frame's result is written at once as one JSON line on stdout::

    {"frame": 12, "time_s": 0.4, "objects": [{"id": 0, "bbox_xywh": [x, y, w, h], "area": 5210,
     "score": 0.98}, ...]}

``bbox_xywh`` is the tight box of the mask in pixels (zeros when the mask is empty), ``area`` its
pixel count, ``score`` the model's probability that the object is visible. Object ids are the
positions of the ``--box`` options (0, 1, ...), which also pick the overlay colours.

How a run ends: the end of the stream, ``--max-frames``, or the stream breaking after at least one
frame (a decode or network error, a frame of another size) finish cleanly (every line flushed, the
overlay video closed and playable) with exit status 0 and the reason on stderr; Ctrl-C does the same
with status 130. Status 1 means nothing could be tracked: missing source, unreadable model, a box
outside the frame, a stream that fails before its first frame, or a model error.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence, TextIO

import numpy as np

__all__ = ["OVERLAY_SUFFIXES", "StreamSummary", "frame_record", "run", "track_stream"]

logger = logging.getLogger("sam2kit")

#: Containers the overlay video can be written to (the encoder is H.264 or MPEG-4).
OVERLAY_SUFFIXES = (".mp4", ".mkv", ".mov", ".avi")
#: Seconds between two progress lines (frames per second) on stderr.
PROGRESS_INTERVAL_S = 5.0


@dataclass
class StreamSummary:
    """How a ``sam2kit stream`` run went.

    Attributes:
        frames: frames tracked (and lines written).
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

    @property
    def exit_code(self) -> int:
        return 130 if self.ended == "interrupted" else 0


def frame_record(
    frame_index: int, timestamp_s: float, obj_ids: Sequence[int], masks: np.ndarray, scores: Sequence[float]
) -> dict[str, Any]:
    """The JSON record of one frame: masks ``(N, H, W)`` bool, one presence score per object."""
    from .io.masks import mask_to_box_xywh

    objects = []
    for obj_id, mask, score in zip(obj_ids, masks, scores):
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


def _check_overlay_path(overlay: str | Path | None) -> Path | None:
    if overlay is None:
        return None
    path = Path(overlay)
    if path.suffix.lower() not in OVERLAY_SUFFIXES:
        raise ValueError(f"--overlay must be a video file ending in {', '.join(OVERLAY_SUFFIXES)}; got {path}")
    if path.is_dir():
        raise IsADirectoryError(f"--overlay {path} is a folder; give a file name such as {path / 'overlay.mp4'}")
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


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
    checkpoint: str,
    config: str | None = None,
    device: str | None = None,
    image_size: int | None = None,
    precision: str = "fp32",
    overlay: str | Path | None = None,
    max_frames: int | None = None,
    max_cond_frames: int | None = 8,
    out: TextIO | None = None,
) -> StreamSummary:
    """Track the objects boxed on the first frame through ``source``, one JSON line per frame.

    Args:
        source: a video file, a URL (rtsp://, http(s)://, ...) or a camera device (/dev/video0).
        boxes: XYXY boxes in pixels of the first frame, one object each (id = position).
        checkpoint / config / device / image_size: the model (see :func:`sam2kit.cli_image.load_model`).
        overlay: write the frames with coloured masks to this video file.
        max_frames: stop after this many frames (None: until the stream ends).
        max_cond_frames: conditioning frames kept per object (see :class:`StreamPredictor`).
        out: where JSON lines go (default stdout); flushed after every frame.
    Returns:
        a :class:`StreamSummary`.
    Raises:
        FileNotFoundError, sam2kit.io.StreamError: the source cannot be opened or fails before its
            first frame. ValueError: no box, a box outside the frame, a bad overlay path, unknown model.
    """
    from .cli_image import load_model
    from .io.overlay import overlay_masks
    from .io.stream import StreamError, open_stream
    from .io.video_writer import VideoWriter
    from .predict.stream import StreamPredictor

    if not boxes:
        raise ValueError("give at least one --box X0,Y0,X1,Y1 (one object each)")
    if max_frames is not None and max_frames < 1:
        raise ValueError(f"--max-frames must be >= 1, got {max_frames}")
    out = sys.stdout if out is None else out
    source = str(source)
    _check_source(source)
    overlay_path = _check_overlay_path(overlay)
    model, _ = load_model(checkpoint, config, device, image_size, precision)
    predictor = StreamPredictor(model, max_cond_frames=max_cond_frames)

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
                ended, reason = "max-frames", f"stopped after --max-frames {max_frames}"
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
            masks = (logits[:, 0] > 0).cpu().numpy()
            record = frame_record(frame_index, timestamp, obj_ids, masks, predictor.object_scores().tolist())
            out.write(json.dumps(record) + "\n")
            out.flush()
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


def run(args: argparse.Namespace) -> int:
    """Handler of ``sam2kit stream`` (see :func:`sam2kit.cli.add_stream_parser`)."""
    summary = track_stream(
        args.source,
        args.boxes,
        checkpoint=args.checkpoint,
        config=args.config,
        device=args.device,
        image_size=args.image_size,
        precision=args.precision,
        overlay=args.overlay,
        max_frames=args.max_frames,
        max_cond_frames=args.max_cond_frames,
    )
    return summary.exit_code
