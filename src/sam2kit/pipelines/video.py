"""Track prompted objects through a video file or a folder of frames; write masks and ``tracks.json``.

Prompts name a frame and an object id: clicks and/or a box, and/or a mask PNG of the frame's size
(non-zero = the object; given with clicks or a box of the same object and frame, the mask goes in
first and the clicks and box then correct it, as in SAM 2's interactive refinement). A
:class:`~sam2kit.predict.video.VideoPredictor` tracks every object forwards from the earliest
prompted frame to the end, and with ``reverse`` then also backwards from that frame to frame 0, so
that objects prompted mid-video get masks on the earlier frames too (the prompted frame itself is
written once, from the forward pass). Without ``reverse`` the frames before the earliest prompt
are not tracked: they get no mask files, no ``tracks.json`` entry and no overlay frame.

Written into the output folder, each file atomically and as soon as its frame is tracked (memory
does not grow with the video length):

- ``masks/<obj_id>/<frame:05d>.png``: one 8-bit PNG (0 / 255) per object and tracked frame; or, with
  ``palette``, ``palette/<frame:05d>.png``: one indexed PNG per frame with the DAVIS palette, pixel
  value = object id (0 = background; where masks overlap, the higher id wins).
- ``tracks.json`` (written last): video, model, options, prompts, and for every tracked frame (in
  frame order) and every object: ``bbox_xywh`` (tight box of the written mask in pixels, zeros when
  empty), ``area`` (pixels), ``present`` (``area > 0``) and ``score``.
- optionally an overlay video: the tracked frames, in frame order, with the masks in colour.

``score`` is the mean foreground probability: the mean of ``sigmoid(logit)`` over the pixels of the
written mask, in (0.5, 1]; 0 when the mask is empty (the object is absent or hidden). It says how
sure the model is of the pixels it kept, and unlike the maximum probability it drops when a mask is
mostly made of borderline pixels.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ArgumentError
from ..model_spec import LoadedModel, ModelSpec
from .common import check_out_dir, check_overlay_path, resolve_model
from .video_output import FirstFrames, MaskWriter

__all__ = ["FramePrompt", "VideoTrackSummary", "group_prompts", "track_video"]

logger = logging.getLogger(__name__)

#: Overlay frame rate for sources without one (frame folders).
DEFAULT_FPS = 30.0


@dataclass(frozen=True)
class FramePrompt:
    """One object's prompt on one frame: clicks (pixels; label 1 foreground, 0 background), at
    most one XYXY box in pixels, and/or a mask PNG of the frame's size (non-zero = the object)."""

    frame: int
    obj_id: int
    points: tuple[tuple[float, float], ...] = ()
    labels: tuple[int, ...] = ()
    box: tuple[float, float, float, float] | None = None
    mask: str | Path | None = None

    def to_json(self) -> dict[str, Any]:
        described: dict[str, Any] = {"frame": self.frame, "obj_id": self.obj_id,
                                     "points": [list(p) for p in self.points], "labels": list(self.labels),
                                     "box": None if self.box is None else list(self.box)}
        if self.mask is not None:
            described["mask"] = str(self.mask)
        return described


def group_prompts(
    points: Sequence[tuple[int, int, tuple[float, float, int]]],
    boxes: Sequence[tuple[int, int, tuple[float, float, float, float]]],
) -> list[FramePrompt]:
    """Group ``(frame, obj_id, (x, y, label))`` points and ``(frame, obj_id, (x0, y0, x1, y1))`` boxes
    into one :class:`FramePrompt` per (frame, object), sorted by frame then object id.

    Raises:
        ArgumentError: no prompt, negative frame or object id, or two boxes for one object on one frame.
    """
    if not points and not boxes:
        raise ArgumentError("no prompt given: give points and/or boxes", argument="points")
    clicks: dict[tuple[int, int], list[tuple[float, float, int]]] = {}
    box_of: dict[tuple[int, int], tuple[float, float, float, float]] = {}
    for frame, obj_id, point in points:
        clicks.setdefault(_prompt_key(frame, obj_id, "points"), []).append(point)
    for frame, obj_id, box in boxes:
        key = _prompt_key(frame, obj_id, "boxes")
        if key in box_of:
            raise ArgumentError(
                f"object {obj_id} has two boxes on frame {frame}; give at most one box per object and frame",
                argument="boxes",
            )
        box_of[key] = box
    prompts = []
    for frame, obj_id in sorted(set(clicks) | set(box_of)):
        given = clicks.get((frame, obj_id), [])
        prompts.append(FramePrompt(frame, obj_id, tuple((x, y) for x, y, _ in given),
                                   tuple(label for _, _, label in given), box_of.get((frame, obj_id))))
    return prompts


def _prompt_key(frame: int, obj_id: int, argument: str) -> tuple[int, int]:
    if frame < 0 or obj_id < 0:
        raise ArgumentError(
            f"frame index and object id must be >= 0, got frame {frame}, object {obj_id}", argument=argument
        )
    return int(frame), int(obj_id)


def _validate_prompts(
    prompts: Sequence[FramePrompt], num_frames: int, hw: tuple[int, int], truncated: bool
) -> list[np.ndarray | None]:
    """The predictor's own checks, run before the (slow) model load; returns each prompt's mask
    ``(H, W)`` bool read from its file (``None`` without one)."""
    import torch

    from ..predict.transforms import check_boxes, check_points
    from .mask_prompts import load_prompt_mask

    masks: list[np.ndarray | None] = []
    for prompt in prompts:
        if prompt.frame >= num_frames:
            raise ArgumentError(
                f"prompt on frame {prompt.frame} is out of range: the video has {num_frames} frame(s)"
                f"{' (limited by max_frames)' if truncated else ''}, valid frame indices are 0..{num_frames - 1}",
                argument="max_frames" if truncated else "prompts",
            )
        try:
            if not prompt.points and prompt.box is None and prompt.mask is None:
                raise ValueError("give points, a box and/or a mask")
            if prompt.points:
                check_points(torch.tensor(prompt.points, dtype=torch.float32),
                             torch.tensor(prompt.labels, dtype=torch.int32), hw, False)
            if prompt.box is not None:
                check_boxes(torch.tensor(prompt.box, dtype=torch.float32), hw, False)
            masks.append(None if prompt.mask is None else load_prompt_mask(prompt.mask, hw, "video frame"))
        except (ValueError, FileNotFoundError) as error:  # the same error, naming the prompt
            raise type(error)(f"prompt of object {prompt.obj_id} on frame {prompt.frame}: {error}") from None
    return masks


@dataclass(frozen=True)
class VideoTrackSummary:
    """What :func:`track_video` wrote."""

    video: str
    num_frames: int
    tracked_frames: int
    first_frame: int
    last_frame: int
    obj_ids: list[int]
    out: str
    masks: str
    tracks: str
    overlay: str | None
    seconds: float

    def to_json(self) -> dict[str, Any]:
        fps = self.tracked_frames / self.seconds if self.seconds > 0 else 0.0
        return {
            "video": self.video,
            "num_frames": self.num_frames,
            "tracked_frames": self.tracked_frames,
            "frame_range": [self.first_frame, self.last_frame],
            "objects": self.obj_ids,
            "out": self.out,
            "masks": self.masks,
            "tracks": self.tracks,
            "overlay": self.overlay,
            "seconds": round(self.seconds, 3),
            "frames_per_second": round(fps, 3),
        }


def _propagate(predictor: Any, state: Any, earliest: int, reverse: bool) -> Iterator[tuple[int, list[int], Any]]:
    """Forward from the earliest prompt, then (``reverse``) backwards from it to frame 0; the
    prompted frame itself is yielded once."""
    yield from predictor.propagate_in_video(state)
    if reverse and earliest > 0:
        for frame_idx, obj_ids, logits in predictor.propagate_in_video(state, reverse=True):
            if frame_idx != earliest:
                yield frame_idx, obj_ids, logits


def track_video(
    video: str | Path,
    prompts: Sequence[FramePrompt],
    out_dir: str | Path,
    *,
    model: ModelSpec | LoadedModel | None = None,
    palette: bool = False,
    overlay: str | Path | None = None,
    reverse: bool = False,
    max_frames: int | None = None,
    fill_hole_area: int = 8,
    non_overlap: bool = False,
    show_progress: bool = True,
) -> VideoTrackSummary:
    """Track the prompted objects through ``video`` and write masks, ``tracks.json`` and an overlay.

    Args:
        video: a video file (mp4, mov, mkv, webm, avi) or a folder of .jpg/.png frames.
        prompts: one :class:`FramePrompt` per (frame, object) (see :func:`group_prompts`), in pixels
            of the video frames.
        out_dir: output folder (created); see the module docstring for its content.
        model: the model to load, or one already loaded; default ``ModelSpec()`` (SAM 2.1 tiny from the hub).
        palette: one DAVIS palette PNG per frame (object ids 1..255) instead of per-object PNGs.
        overlay: also write the tracked frames with coloured masks to this video file.
        reverse: after the forward pass, also track backwards from the earliest prompt to frame 0.
        max_frames: use only the first ``max_frames`` frames of the video.
        fill_hole_area: fill background holes up to this area (low-res mask pixels; 0: off).
        non_overlap: give each pixel to at most one object (the highest-scoring one).
        show_progress: the predictor's tqdm progress bar on stderr.
    Returns:
        a :class:`VideoTrackSummary`.
    Raises:
        FileNotFoundError, sam2kit.io.VideoReadError: missing or unreadable video.
        ArgumentError: no prompt, a prompt on a frame the video (or ``max_frames``) does not have,
            palette ids outside 1..255, a bad overlay or output path.
        ValueError: a prompt outside the frame, a mask of another size.
        FileNotFoundError, ImageReadError: a missing or unreadable mask file.
        the errors of :func:`sam2kit.model_spec.load_model`.
    """
    from ..io.atomic import save_json
    from ..io.frames import open_frames
    from ..io.overlay import overlay_masks
    from ..io.video_writer import VideoWriter
    from ..predict.video import VideoPredictor

    if not prompts:
        raise ArgumentError("no prompt given", argument="prompts")
    if max_frames is not None and max_frames < 1:
        raise ArgumentError(f"max_frames must be >= 1, got {max_frames}", argument="max_frames")
    obj_ids = sorted({prompt.obj_id for prompt in prompts})
    if palette and not all(1 <= obj_id <= 255 for obj_id in obj_ids):
        raise ArgumentError(f"palette needs object ids 1..255 (0 is the background), got {obj_ids}",
                            argument="palette")
    frames = open_frames(video)
    try:
        truncated = max_frames is not None and max_frames < len(frames)
        if max_frames is not None and truncated:
            frames = FirstFrames(frames, max_frames)
        num_frames, height, width, fps = len(frames), frames.height, frames.width, frames.fps
        prompt_masks = _validate_prompts(prompts, num_frames, (height, width), truncated)
        out = check_out_dir(out_dir)
        overlay_path = check_overlay_path(overlay)

        loaded = resolve_model(model)
        predictor = VideoPredictor(loaded.model, fill_hole_area=fill_hole_area, non_overlap_masks=non_overlap,
                                   show_progress=show_progress)
        earliest = min(prompt.frame for prompt in prompts)
        backwards = reverse and earliest > 0
        logger.info("tracking %d object(s) through %s (%d frames, %dx%d) from frame %d%s", len(obj_ids), video,
                    num_frames, width, height, earliest, " and backwards" if backwards else "")
        out.mkdir(parents=True, exist_ok=True)
        writer = MaskWriter(out, obj_ids, palette)
        records: dict[int, dict[str, Any]] = {}  # a few numbers per frame; the masks go straight to disk
        # The overlay is written while tracking when the frames come in order. A backward pass comes
        # after the forward one, so then the overlay is assembled afterwards from the mask files.
        live_overlay = overlay_path is not None and not backwards
        overlay_fps = fps or DEFAULT_FPS
        started = time.perf_counter()
        state = predictor.init_state(frames)
        for prompt, prompt_mask in zip(prompts, prompt_masks, strict=True):
            if prompt_mask is not None:
                predictor.add_new_mask(state, prompt.frame, prompt.obj_id, prompt_mask)
            if prompt.points or prompt.box is not None:
                predictor.add_new_points_or_box(
                    state, prompt.frame, prompt.obj_id,
                    points=np.array(prompt.points, dtype=np.float32) if prompt.points else None,
                    labels=np.array(prompt.labels, dtype=np.int32) if prompt.points else None,
                    box=None if prompt.box is None else np.array(prompt.box, dtype=np.float32),
                )
        live_writer = VideoWriter(overlay_path, fps=overlay_fps) if live_overlay and overlay_path else None
        with live_writer or contextlib.nullcontext() as video_out:
            for frame_idx, frame_obj_ids, logits in _propagate(predictor, state, earliest, reverse):
                records[frame_idx], masks = writer.write(frame_idx, frame_obj_ids, logits)
                if video_out is not None:
                    video_out.write(overlay_masks(frames[frame_idx], masks, object_ids=writer.obj_ids))
        seconds = time.perf_counter() - started
        tracked = sorted(records)
        if overlay_path is not None and not live_overlay:
            with VideoWriter(overlay_path, fps=overlay_fps) as video_out:
                for frame_idx in tracked:
                    video_out.write(overlay_masks(frames[frame_idx], writer.read(frame_idx), object_ids=writer.obj_ids))
    finally:
        frames.close()

    masks_dir = "palette" if palette else "masks"
    tracks = {
        "video": {"path": str(video), "width": width, "height": height, "num_frames": num_frames,
                  "fps": fps},
        "model": loaded.to_json(),
        "options": {"reverse": reverse, "max_frames": max_frames, "fill_hole_area": fill_hole_area,
                    "non_overlap": non_overlap, "palette": palette},
        "score": "mean foreground probability: mean sigmoid(logit) over the mask's pixels, 0 when empty",
        "masks": f"{masks_dir}/<frame:05d>.png" if palette else f"{masks_dir}/<obj_id>/<frame:05d>.png",
        "prompts": [prompt.to_json() for prompt in prompts],
        "objects": obj_ids,
        "frames": [records[frame_idx] for frame_idx in tracked],
    }
    save_json(out / "tracks.json", tracks)  # written last: its presence marks a complete output
    summary = VideoTrackSummary(
        video=str(video), num_frames=num_frames, tracked_frames=len(tracked), first_frame=tracked[0],
        last_frame=tracked[-1], obj_ids=obj_ids, out=str(out), masks=str(out / masks_dir),
        tracks=str(out / "tracks.json"), overlay=None if overlay_path is None else str(overlay_path),
        seconds=seconds,
    )
    logger.info("tracked %d frame(s) in %.1f s; wrote %s/ and tracks.json to %s%s", len(tracked), seconds,
                masks_dir, out, f", overlay to {overlay_path}" if overlay_path is not None else "")
    return summary
