"""The offline demo: a synthetic clip, two shapes clicked once on its first frame, tracked through it.

Nothing is downloaded: the clip comes from :mod:`sam2kit.synthetic` and the default model is
``sam2kit-mini``, shipped inside the package. Written into the output folder (created; files
atomically): ``demo.mp4`` (the clip with each tracked shape in its colour and the clicks marked on
the first frame) and ``demo.json`` (what :class:`DemoResult` holds). Since the clip is synthetic,
its true masks are known, and the result says how well the shapes were tracked (J&F).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..io.atomic import save_json
from ..io.overlay import object_color, overlay_masks
from ..io.video_writer import VideoWriter
from ..metrics import sequence_j_and_f
from ..model_spec import LoadedModel, ModelSpec
from ..synthetic import SceneOptions, render_clip
from .common import check_out_dir, resolve_model
from .synthetic_eval import interior_point

__all__ = ["DEMO_MODEL", "DemoResult", "run_demo"]

#: The model of the demo unless told otherwise: bundled, so the demo runs offline.
DEMO_MODEL = "sam2kit-mini"


@dataclass
class DemoResult:
    """What the demo did.

    Attributes:
        video: the overlay video; summary: ``demo.json`` beside it.
        frames / size: the clip's length and side in pixels; seed: the clip's.
        clicks: per tracked object, ``{"obj_id", "x", "y"}`` of its click on frame 0 (pixels).
        j_and_f / j / f: tracking quality against the clip's true masks (frames 1 .. T-2).
        model: the checkpoint used.
    """

    video: str
    summary: str
    frames: int
    size: int
    seed: int
    clicks: list[dict[str, float]]
    j_and_f: float
    j: float
    f: float
    model: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _mark(frame: np.ndarray, x: float, y: float, color: tuple[int, int, int], radius: int = 4) -> None:
    """Draw a filled square click marker with a white border, in place."""
    height, width = frame.shape[:2]
    cx, cy = int(round(x)), int(round(y))
    for r, paint in ((radius + 1, (255, 255, 255)), (radius, color)):
        frame[max(cy - r, 0) : min(cy + r + 1, height), max(cx - r, 0) : min(cx + r + 1, width)] = paint


def run_demo(
    out_dir: str | Path,
    *,
    model: ModelSpec | LoadedModel | None = None,
    frames: int = 48,
    size: int = 256,
    seed: int = 0,
    fps: float = 12.0,
    show_progress: bool = True,
) -> DemoResult:
    """Make a ``frames``-frame synthetic clip of ``size`` x ``size`` pixels (from ``seed``), click
    the two largest shapes once each on frame 0, track them (each pixel to at most one of them, the
    predictor's ``non_overlap_masks``), and write the overlay video.

    Args:
        model: the model (default: ``sam2kit-mini``, bundled).
        fps: of the written video; show_progress: a progress bar on stderr while tracking.
    Raises:
        ValueError: ``frames`` < 3 or ``size`` not in 64 .. 2048.
        ArgumentError: ``out_dir`` exists and is not a folder.
    """
    from ..predict.video import VideoPredictor

    if frames < 3:
        raise ValueError(f"frames must be >= 3, got {frames}")
    if not 64 <= size <= 2048:
        raise ValueError(f"size must be in 64 .. 2048 pixels, got {size}")
    out = check_out_dir(out_dir)
    loaded = resolve_model(ModelSpec(checkpoint=DEMO_MODEL) if model is None else model)
    clip, truth = render_clip(np.random.default_rng([seed, 99]), frames, size, SceneOptions(min_objects=3))
    areas = truth[0].reshape(truth.shape[1], -1).sum(axis=1)
    chosen = [int(i) for i in np.argsort(-areas, kind="stable")[:2]]
    predictor = VideoPredictor(loaded.model, show_progress=show_progress, non_overlap_masks=True)
    state = predictor.init_state(clip)
    clicks = []
    for obj_id, index in enumerate(chosen, start=1):
        x, y = interior_point(truth[0, index])
        predictor.add_new_points_or_box(state, frame_idx=0, obj_id=obj_id, points=[[x, y]], labels=[1])
        clicks.append({"obj_id": obj_id, "x": x, "y": y})
    tracked = np.zeros((frames, len(chosen), size, size), dtype=bool)
    for frame_idx, obj_ids, logits in predictor.propagate_in_video(state):
        for row, obj_id in enumerate(obj_ids):
            tracked[frame_idx, obj_id - 1] = (logits[row, 0] > 0).cpu().numpy()
    out.mkdir(parents=True, exist_ok=True)
    video_path = out / "demo.mp4"
    with VideoWriter(video_path, fps=fps) as writer:
        for t in range(frames):
            frame = overlay_masks(clip[t], tracked[t], object_ids=[int(c["obj_id"]) for c in clicks])
            if t == 0:
                for click in clicks:
                    _mark(frame, click["x"], click["y"], object_color(int(click["obj_id"])))
            writer.write(frame)
    scores = sequence_j_and_f(tracked, truth[:, chosen])
    result = DemoResult(
        video=str(video_path),
        summary=str(out / "demo.json"),
        frames=frames,
        size=size,
        seed=seed,
        clicks=clicks,
        j_and_f=scores.j_and_f,
        j=scores.j_mean,
        f=scores.f_mean,
        model=str(loaded.spec.checkpoint),
    )
    save_json(out / "demo.json", result.to_json())
    return result
