"""AOIs from prompts, tracked through the scene video with :class:`~sam2kit.predict.video.VideoPredictor`.

Prompts use the ``sam2kit video`` syntax (a click or a box on an AOI on any frame; AOI id =
object id). Tracking runs forwards from the earliest prompted frame to the end and then backwards
from it to frame 0, yielding each frame's masks as soon as it is tracked; the predictor keeps only
the memory later frames attend to, so memory does not grow with the recording. With ``stride`` K the
predictor sees only frames 0, K, 2K, ... (prompts must then sit on those frames).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ArgumentError
from ..io.source import FrameSource
from ..model_spec import LoadedModel, ModelSpec
from .aois import AOISource

__all__ = ["AOIPrompt", "PromptAOIs", "group_aoi_prompts"]


@dataclass(frozen=True)
class AOIPrompt:
    """One AOI's prompt on one scene frame: clicks (pixels, label 1 foreground / 0 background) and
    at most one XYXY box in pixels."""

    frame: int
    aoi: int
    points: tuple[tuple[float, float], ...] = ()
    labels: tuple[int, ...] = ()
    box: tuple[float, float, float, float] | None = None


def group_aoi_prompts(
    points: Sequence[tuple[int, int, tuple[float, float, int]]],
    boxes: Sequence[tuple[int, int, tuple[float, float, float, float]]],
) -> list[AOIPrompt]:
    """``(frame, aoi, (x, y, label))`` clicks and ``(frame, aoi, (x0, y0, x1, y1))`` boxes -> one
    :class:`AOIPrompt` per (frame, AOI), sorted.

    Raises:
        ArgumentError: AOI ids outside 1..255, or two boxes for one AOI on one frame.
    """
    clicks: dict[tuple[int, int], list[tuple[float, float, int]]] = {}
    box_of: dict[tuple[int, int], tuple[float, float, float, float]] = {}
    for frame, aoi, point in points:
        clicks.setdefault((frame, aoi), []).append(point)
    for frame, aoi, box in boxes:
        if (frame, aoi) in box_of:
            raise ArgumentError(f"AOI {aoi} has two boxes on frame {frame}; give at most one", argument="boxes")
        box_of[(frame, aoi)] = box
    prompts = []
    for frame, aoi in sorted(set(clicks) | set(box_of)):
        if not 1 <= aoi <= 255:
            raise ArgumentError(f"AOI ids must be 1..255, got {aoi}", argument="points")
        given = clicks.get((frame, aoi), [])
        prompts.append(AOIPrompt(frame, aoi, tuple((x, y) for x, y, _ in given), tuple(lab for _, _, lab in given),
                                 box_of.get((frame, aoi))))
    return prompts


class _StridedFrames(FrameSource):
    """Frames 0, K, 2K, ... of another source."""

    def __init__(self, source: FrameSource, stride: int) -> None:
        super().__init__(source.name)
        self._source, self._stride = source, stride

    def __len__(self) -> int:
        return (len(self._source) + self._stride - 1) // self._stride

    @property
    def height(self) -> int:
        return self._source.height

    @property
    def width(self) -> int:
        return self._source.width

    def _read(self, index: int) -> np.ndarray:
        return self._source[index * self._stride]

    def close(self) -> None:
        self._source.close()


class PromptAOIs(AOISource):
    """AOIs tracked from prompts (see the module docstring).

    Args:
        prompts: from :func:`group_aoi_prompts`.
        model: the model to load, or one already loaded; default ``ModelSpec()``.
        names: AOI id -> name.
        fill_hole_area: the predictor's hole filling (low-res mask pixels).
    """

    def __init__(self, prompts: Sequence[AOIPrompt], *, model: ModelSpec | LoadedModel | None = None,
                 names: dict[int, str] | None = None, fill_hole_area: int = 8, show_progress: bool = False) -> None:
        if not prompts:
            raise ArgumentError("no AOI prompt given", argument="points")
        self.prompts = list(prompts)
        self.model = model
        self.names = {p.aoi: "" for p in self.prompts} | dict(names or {})
        self.fill_hole_area = fill_hole_area
        self.show_progress = show_progress

    def _check(self, num_frames: int, size: tuple[int, int], stride: int) -> None:
        height, width = size
        for prompt in self.prompts:
            where = f"prompt of AOI {prompt.aoi} on frame {prompt.frame}"
            if prompt.frame >= num_frames:
                raise ArgumentError(f"{where}: the video has {num_frames} frames (0..{num_frames - 1})",
                                    argument="points")
            if prompt.frame % stride:
                raise ArgumentError(f"{where}: with stride {stride} prompts must be on tracked frames (multiples of "
                                    f"{stride}), e.g. {prompt.frame - prompt.frame % stride}", argument="stride")
            coords = [c for point in prompt.points for c in point] + list(prompt.box or ())
            xs, ys = coords[0::2], coords[1::2]
            if any(not 0 <= x <= width for x in xs) or any(not 0 <= y <= height for y in ys):
                raise ArgumentError(f"{where} lies outside the {width}x{height} frame", argument="points")

    def masks(
        self, video: Path, num_frames: int, size: tuple[int, int], frames: Sequence[int]
    ) -> Iterator[tuple[int, dict[int, np.ndarray]]]:
        from ..io.frames import open_frames
        from ..model_spec import load_model
        from ..predict.video import VideoPredictor

        stride = frames[1] - frames[0] if len(frames) > 1 else 1
        self._check(num_frames, size, stride)
        loaded = self.model if isinstance(self.model, LoadedModel) else load_model(self.model or ModelSpec())
        predictor = VideoPredictor(loaded.model, fill_hole_area=self.fill_hole_area, show_progress=self.show_progress)
        source: FrameSource = open_frames(video, cache_size=4)
        if stride > 1:
            source = _StridedFrames(source, stride)
        try:
            state = predictor.init_state(source)
            for prompt in self.prompts:
                predictor.add_new_points_or_box(
                    state, prompt.frame // stride, prompt.aoi,
                    points=np.array(prompt.points, np.float32) if prompt.points else None,
                    labels=np.array(prompt.labels, np.int32) if prompt.points else None,
                    box=None if prompt.box is None else np.array(prompt.box, np.float32),
                )
            earliest = min(p.frame for p in self.prompts) // stride
            yield from self._results(predictor.propagate_in_video(state), stride)
            if earliest > 0:
                backwards = (step for step in predictor.propagate_in_video(state, reverse=True) if step[0] != earliest)
                yield from self._results(backwards, stride)
        finally:
            source.close()

    @staticmethod
    def _results(
        steps: Iterator[tuple[int, list[int], Any]], stride: int
    ) -> Iterator[tuple[int, dict[int, np.ndarray]]]:
        for index, obj_ids, logits in steps:
            masks = (logits[:, 0] > 0).cpu().numpy()  # (N, H, W) bool
            yield index * stride, {int(aoi): mask for aoi, mask in zip(obj_ids, masks, strict=True)}
