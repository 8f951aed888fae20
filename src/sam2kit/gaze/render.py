"""Pictures of a gaze job: ``overlay.mp4`` (the scene with the AOI masks, an AOI turning yellow while
it is looked at, the gaze point with its tolerance circle and the current fixation) and
``summary.png`` (matplotlib: when each AOI was visible and fixated, and the dwell per AOI).

The overlay's masks are spilled to a temporary folder as they come (one compressed file per frame,
frames may arrive out of order when tracking runs backwards too) and the video is written in frame
order at the end, so memory stays bounded.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from ..io.eyetracking import Fixations, GazeSamples
from ..io.overlay import object_color, overlay_masks

__all__ = ["OverlayWriter", "write_summary"]

LOOKED_AT = (255, 230, 0)
GAZE, FIXATION = (255, 40, 40), (0, 230, 255)


class OverlayWriter:
    """Collects each used frame's masks and hits, then writes the overlay video (:meth:`finish`)."""

    def __init__(self, path: str | Path, video: Path, fps: float, radius: float) -> None:
        self.path, self.video, self.fps, self.radius = Path(path), video, fps, radius
        self._spill = Path(tempfile.mkdtemp(prefix="sam2kit-gaze-overlay-"))
        self._frames: set[int] = set()

    def add(self, frame: int, masks: dict[int, np.ndarray]) -> None:
        ids = sorted(masks)
        stack = np.stack([masks[i] for i in ids]) if ids else np.zeros((0, 1, 1), bool)
        np.savez_compressed(self._spill / f"{frame}.npz", ids=np.asarray(ids, np.int64), masks=np.packbits(stack),
                            shape=np.asarray(stack.shape))
        self._frames.add(frame)

    def _load(self, frame: int) -> tuple[list[int], np.ndarray]:
        with np.load(self._spill / f"{frame}.npz") as data:
            shape = tuple(int(v) for v in data["shape"])
            masks = np.unpackbits(data["masks"], count=int(np.prod(shape))).reshape(shape).astype(bool)
            return data["ids"].tolist(), masks

    def finish(self, samples: GazeSamples, by_frame: dict[int, np.ndarray], hits: list[frozenset[int]],
               fixations: Fixations, fixation_of_sample: np.ndarray, aoi_of: dict[int, int]) -> Path:
        """Write the video (frames in order); ``by_frame``: frame -> indices of its valid samples."""
        from PIL import Image, ImageDraw

        from ..io.frames import open_frames
        from ..io.video_writer import VideoWriter

        position = {int(f): i for i, f in enumerate(fixations.fixation_id)}
        source = open_frames(self.video, cache_size=2)
        try:
            with VideoWriter(self.path, fps=self.fps) as writer:
                for frame in sorted(self._frames):
                    ids, masks = self._load(frame)
                    members = by_frame.get(frame, np.zeros(0, np.int64))
                    looked = set().union(*(hits[i] for i in members)) if len(members) else set()
                    colors = [LOOKED_AT if aoi_of.get(i, i) in looked else object_color(aoi_of.get(i, i)) for i in ids]
                    image = overlay_masks(source[frame], masks, colors=colors) if ids else source[frame]
                    picture = Image.fromarray(image)
                    draw = ImageDraw.Draw(picture)
                    if len(members):
                        last = int(members[-1])
                        x, y = float(samples.x_px[last]), float(samples.y_px[last])
                        fixation = position.get(int(fixation_of_sample[last]))
                        if fixation is not None:
                            fx, fy = fixations.x_px[fixation], fixations.y_px[fixation]
                            if np.isfinite(fx) and np.isfinite(fy):
                                draw.ellipse((fx - 8, fy - 8, fx + 8, fy + 8), outline=FIXATION, width=2)
                        if self.radius > 0:
                            r = self.radius
                            draw.ellipse((x - r, y - r, x + r, y + r), outline=GAZE, width=1)
                        draw.ellipse((x - 3, y - 3, x + 3, y + 3), fill=GAZE)
                    writer.write(np.asarray(picture))
        finally:
            source.close()
            self.close()
        return self.path

    def close(self) -> None:
        shutil.rmtree(self._spill, ignore_errors=True)


def write_summary(path: str | Path, metrics: Any, fixations: Any, visible: dict[int, list[tuple[float, float]]],
                  duration_s: float) -> Path:
    """``summary.png``: per AOI, the time it was visible (light) and its fixations (dark), and the
    dwell per AOI. ``metrics`` / ``fixations``: the job's DataFrames; ``visible``: AOI -> (start, length).

    Raises:
        ImportError: matplotlib is not installed.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as error:
        raise ImportError("summary.png needs matplotlib: pip install matplotlib") from error
    from ..io.atomic import atomic_path

    aois = [int(a) for a in metrics["aoi"]]
    labels = [f"{a} {n}".strip() for a, n in zip(aois, metrics["name"].fillna(""), strict=True)]
    height = max(2.5, 0.45 * len(aois) + 1.2)
    figure, (timeline, dwell) = plt.subplots(1, 2, figsize=(11, height), gridspec_kw={"width_ratios": [3, 1]},
                                             sharey=True)
    for row, aoi in enumerate(aois):
        color = tuple(c / 255 for c in object_color(aoi))
        timeline.broken_barh(visible.get(aoi, []), (row - 0.35, 0.7), facecolors=(*color, 0.3))
        on = [(float(f.start_s), float(f.duration_s)) for f in fixations.itertuples()
              if str(aoi) in str(f.aois).split(";")]
        timeline.broken_barh(on, (row - 0.25, 0.5), facecolors=color)
    timeline.set_xlim(0, max(duration_s, 1e-3))
    timeline.set_yticks(range(len(aois)), labels)
    timeline.set_xlabel("time from the first scene frame (s)")
    timeline.set_title("visible (light) and fixated (dark)")
    dwell.barh(range(len(aois)), metrics["dwell_s"], color=[tuple(c / 255 for c in object_color(a)) for a in aois])
    dwell.set_xlabel("dwell (s)")
    timeline.invert_yaxis()
    figure.tight_layout()
    with atomic_path(path) as temporary:
        figure.savefig(temporary, dpi=100)
    plt.close(figure)
    return Path(path)
