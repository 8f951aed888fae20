"""Where AOI masks come from: a source yields, for the scene frames asked for, one ``(H, W)`` bool
mask per AOI id, one frame at a time (nothing is kept for the whole recording).

:class:`MaskFolderAOIs` reads masks drawn elsewhere: a folder of DAVIS palette PNGs named by frame
index (``00000.png``, ...; palette index = AOI id, 0 = background), nothing tracked. The tracked
sources are in :mod:`sam2kit.gaze.tracked`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from ..errors import ArgumentError
from ..io.eyetracking import Fixations, Recording

__all__ = ["AOISource", "MaskFolderAOIs", "load_names"]


class AOISource(Protocol):
    """What the gaze job needs from AOIs."""

    #: AOI id -> name ("" when unnamed); AOIs known before any frame is read (may be empty)
    names: dict[int, str]

    def prepare(self, recording: Recording, fixations: Fixations) -> None:
        """Called once before :meth:`masks`, with the recording and its fixations (default: nothing)."""
        return None

    def masks(
        self, video: Path, num_frames: int, size: tuple[int, int], frames: Sequence[int]
    ) -> Iterator[tuple[int, dict[int, np.ndarray]]]:
        """Yield ``(frame, {aoi_id: (H, W) bool mask})`` for each of ``frames`` (in any order)."""
        ...

    def relabel(self) -> dict[int, int]:
        """After :meth:`masks`: yielded id -> AOI id where they differ (ids not listed stay; default: none)."""
        return {}


def load_names(path: str | Path | None) -> dict[int, str]:
    """AOI names from a JSON object ``{"1": "cup", "2": "face"}`` (id -> name).

    Raises:
        ArgumentError: a missing file, bad JSON, or keys that are not integer ids 1..255.
    """
    if path is None:
        return {}
    path = Path(path)
    if not path.is_file():
        raise ArgumentError(f"aoi_names file not found: {path}", argument="aoi_names")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ArgumentError(f"aoi_names {path} is not JSON ({error})", argument="aoi_names") from None
    if not isinstance(data, dict) or not all(re.fullmatch(r"\d+", str(k)) for k in data):
        raise ArgumentError(f'aoi_names must be a JSON object of AOI id -> name, e.g. {{"1": "cup"}}; got {path}',
                            argument="aoi_names")
    return {int(k): str(v) for k, v in data.items()}


class MaskFolderAOIs(AOISource):
    """AOIs from a folder of palette PNGs named by frame index (``00000.png`` = frame 0).

    Args:
        folder: the PNG folder; one PNG for every frame of the scene video.
        names: AOI id -> name.
    Raises (when read):
        ArgumentError: a missing folder, PNGs missing for some frames or beyond the video's frames,
            a PNG whose size is not the video's.
    """

    def __init__(self, folder: str | Path, names: dict[int, str] | None = None) -> None:
        self.folder = Path(folder)
        self.names = dict(names or {})
        if not self.folder.is_dir():
            raise ArgumentError(f"aoi_masks folder not found: {self.folder}", argument="aoi_masks")
        self._files = {int(p.stem): p for p in self.folder.glob("*.png") if re.fullmatch(r"\d+", p.stem)}

    def check(self, num_frames: int, size: tuple[int, int]) -> None:
        """Raise :class:`ArgumentError` unless there is one PNG of the video's size per frame."""
        from ..io.masks import load_palette_png

        missing = [i for i in range(num_frames) if i not in self._files]
        extra = sorted(i for i in self._files if i >= num_frames)
        if missing or extra:
            detail = (f"missing {len(missing)} (first: {missing[0]:05d}.png)" if missing
                      else f"{len(extra)} beyond the last frame (first: {self._files[extra[0]].name})")
            raise ArgumentError(
                f"aoi_masks {self.folder} has {len(self._files)} frame PNGs for a video of {num_frames} frames: "
                f"{detail}; "
                f"give one palette PNG per frame, named 00000.png .. {num_frames - 1:05d}.png", argument="aoi_masks",
            )
        first = load_palette_png(self._files[0])
        self._check_size(first, 0, size)

    def _check_size(self, label: np.ndarray, frame: int, size: tuple[int, int]) -> None:
        if label.shape != size:
            raise ArgumentError(
                f"aoi_masks {self._files[frame].name} is {label.shape[1]}x{label.shape[0]} pixels but the scene video "
                f"is "
                f"{size[1]}x{size[0]}; AOI masks must have the video's size", argument="aoi_masks",
            )

    def masks(
        self, video: Path, num_frames: int, size: tuple[int, int], frames: Sequence[int]
    ) -> Iterator[tuple[int, dict[int, np.ndarray]]]:
        from ..io.masks import load_palette_png

        self.check(num_frames, size)
        for frame in frames:
            label = load_palette_png(self._files[frame])
            self._check_size(label, frame, size)
            ids = np.unique(label)
            yield frame, {int(aoi): label == aoi for aoi in ids if aoi != 0}
