"""Videos in the DAVIS / SA-V layout, served as clips of N consecutive annotated frames.

``ROOT/JPEGImages/<video>/<frame>.jpg`` with either ``ROOT/Annotations/<video>/<frame>.png``
(DAVIS, YouTube-VOS, MOSE: palette PNGs, each non-zero index one object) or
``ROOT/Annotations/<video>/<object id>/<frame>.png`` (SA-V: one binary PNG per object). Folder
names may carry a suffix (``JPEGImages_24fps``, ``Annotations_6fps``) and DAVIS's resolution level
(``480p``) is entered. Only annotated frames are used; each needs a frame of the same name.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ...io.frames import sort_frame_files
from .augment import DEFAULT_AUGMENT, AugmentOptions, resize_sample
from .common import (
    IMAGE_SUFFIXES,
    ClipSample,
    DataError,
    SampleDataset,
    Split,
    check_same_size,
    label_map_to_masks,
    read_label_map,
    read_rgb,
    warn_unpaired,
)

__all__ = ["VideoFolderDataset"]

_EXPECTED = "expected ROOT/JPEGImages/<video>/<frame>.jpg with ROOT/Annotations/<video>/<frame>.png"


@dataclass
class _Video:
    name: str
    annotations_dir: Path
    frame_names: list[str]  # annotated frames, in order
    frame_paths: list[Path]
    annotation_paths: list[Path]  # palette layout: one per frame
    object_paths: dict[int, dict[str, Path]]  # per-object layout: id -> frame name -> PNG


def _find_dir(root: Path, prefix: str, given: str | Path | None) -> Path:
    if given is not None:
        path = Path(given)
    else:
        candidates = [root / prefix] + sorted(p for p in root.glob(f"{prefix}*") if p.is_dir())
        found = [p for p in candidates if p.is_dir()]
        if not found:
            raise DataError(f"{root}: no {prefix}/ folder; {_EXPECTED}")
        path = found[0]
    if not path.is_dir():
        raise DataError(f"{path}: not a folder; {_EXPECTED}")
    return path


def _frame_file(folder: Path, stem: str) -> Path | None:
    for suffix in IMAGE_SUFFIXES:
        path = folder / f"{stem}{suffix}"
        if path.is_file():
            return path
    return None


def _index_video(name: str, frames_dir: Path, annotations_dir: Path) -> _Video:
    """List a video's annotated frames; raises DataError for an annotation without its frame."""
    children = sorted(annotations_dir.iterdir())
    object_dirs = [p for p in children if p.is_dir() and p.name.isdigit()]
    object_paths: dict[int, dict[str, Path]] = {}
    if object_dirs:
        for folder in object_dirs:
            object_paths[int(folder.name)] = {p.stem: p for p in folder.glob("*.png")}
        stems = sorted({s for paths in object_paths.values() for s in paths})
        stems = [p.stem for p in sort_frame_files(Path(s) for s in stems)]
        annotations: list[Path] = []
    else:
        annotations = sort_frame_files(p for p in children if p.suffix.lower() == ".png")
        stems = [p.stem for p in annotations]
    frames = []
    for stem in stems:
        frame = _frame_file(frames_dir, stem)
        if frame is None:
            raise DataError(
                f"{annotations_dir}: annotation {stem}.png has no frame {frames_dir / stem}.jpg; {_EXPECTED}"
            )
        frames.append(frame)
    return _Video(name, annotations_dir, stems, frames, annotations, object_paths)


class VideoFolderDataset(SampleDataset):
    """Clips of ``num_frames`` consecutive annotated frames with the objects visible on the first.

    Args:
        root: the folder holding ``JPEGImages*/`` and ``Annotations*/`` (or give both folders).
        image_size: the model's input size S.
        num_frames: frames per clip (recipe: 8); shorter videos are left out with a warning.
        augment / max_objects / split / val_fraction / split_seed / seed: see
            :class:`~sam2kit.train.data.common.SampleDataset` (split by video).
        clips_per_video: items per video and epoch (each a random clip).
    Raises:
        DataError: missing folders, no video with annotations and frames, an annotation without
            its frame; at load time: a mask whose size differs from its frame, a video whose
            annotations are all empty, unreadable files.
    """

    def __init__(
        self,
        root: str | Path,
        image_size: int,
        *,
        num_frames: int = 8,
        frames_dir: str | Path | None = None,
        annotations_dir: str | Path | None = None,
        augment: AugmentOptions | None = DEFAULT_AUGMENT,
        max_objects: int | None = 3,
        clips_per_video: int = 1,
        split: Split = "all",
        val_fraction: float = 0.0,
        split_seed: int = 0,
        seed: int = 0,
    ) -> None:
        if num_frames < 1 or clips_per_video < 1:
            raise ValueError(f"num_frames and clips_per_video must be >= 1, got {num_frames}, {clips_per_video}")
        self.root = Path(root)
        frames_root = _find_dir(self.root, "JPEGImages", frames_dir)
        annotations_root = _find_dir(self.root, "Annotations", annotations_dir)
        for level in ("480p", "Full-Resolution"):
            if (frames_root / level).is_dir() and (annotations_root / level).is_dir():
                frames_root, annotations_root = frames_root / level, annotations_root / level
                break
        frame_videos = {p.name for p in frames_root.iterdir() if p.is_dir()}
        annotated = {p.name for p in annotations_root.iterdir() if p.is_dir()}
        warn_unpaired("annotated videos without frames", sorted(annotated - frame_videos), annotations_root)
        videos, short = {}, []
        for name in sorted(annotated & frame_videos):
            video = _index_video(name, frames_root / name, annotations_root / name)
            if len(video.frame_names) >= num_frames:
                videos[name] = video
            else:
                short.append(name)
        warn_unpaired(f"videos with fewer than {num_frames} annotated frames", short, annotations_root)
        if not videos:
            raise DataError(
                f"{self.root}: no video with at least {num_frames} annotated frames "
                f"({len(annotated & frame_videos)} videos with frames and annotations); {_EXPECTED}"
            )
        super().__init__(list(videos), image_size, augment, max_objects, split, val_fraction, split_seed, seed)
        self._videos = videos
        self.num_frames = num_frames
        self.clips_per_video = clips_per_video

    def __len__(self) -> int:
        return len(self.names) * self.clips_per_video

    def _load_masks(self, video: _Video, t: int, object_ids: list[int] | None) -> tuple[np.ndarray, list[int]]:
        """``(N, H, W)`` bool masks of frame ``t`` (of ``object_ids``, default: all present there)."""
        if not video.object_paths:
            return label_map_to_masks(read_label_map(video.annotation_paths[t]), object_ids)
        frame_name = video.frame_names[t]
        wanted = sorted(video.object_paths) if object_ids is None else object_ids
        found = {}
        for obj_id in wanted:
            path = video.object_paths.get(obj_id, {}).get(frame_name)
            if path is not None:  # SA-V omits the PNG of an object absent from a frame
                found[obj_id] = read_label_map(path) > 0
        shapes = {mask.shape for mask in found.values()}
        if len(shapes) > 1:
            raise DataError(f"{video.annotations_dir}: the objects' masks of frame {frame_name} differ in size")
        shape = shapes.pop() if shapes else read_rgb(video.frame_paths[t]).shape[:2]
        empty = np.zeros(shape, dtype=bool)
        stacked = np.stack([found.get(i, empty) for i in wanted]) if wanted else np.zeros((0, *shape), dtype=bool)
        if object_ids is None:
            keep = [i for i, mask in enumerate(stacked) if mask.any()]
            return stacked[keep], [wanted[i] for i in keep]
        return stacked, list(wanted)

    def _first_frame_objects(self, video: _Video, start: int) -> list[int]:
        return self._load_masks(video, start, None)[1]

    def _pick_start(self, video: _Video, generator: torch.Generator) -> tuple[int, list[int]]:
        """A random clip start whose first frame shows an object (a few random tries, then a scan)."""
        last_start = len(video.frame_names) - self.num_frames
        for _ in range(10):
            start = int(torch.randint(0, last_start + 1, (), generator=generator))
            objects = self._first_frame_objects(video, start)
            if objects:
                return start, objects
        for start in range(last_start + 1):
            objects = self._first_frame_objects(video, start)
            if objects:
                return start, objects
        raise DataError(
            f"{video.annotations_dir}: every annotation that can start a {self.num_frames}-frame clip is empty; "
            "expected objects as non-zero values"
        )

    def _clip(self, video: _Video, frames: range, object_ids: list[int]) -> tuple[np.ndarray, np.ndarray]:
        images, masks = [], []
        for t in frames:
            image = read_rgb(video.frame_paths[t])
            frame_masks, _ = self._load_masks(video, t, object_ids)
            where = video.annotation_paths[t] if video.annotation_paths else video.frame_paths[t]
            check_same_size(where, frame_masks.shape[1:], video.frame_paths[t], image.shape[:2])
            images.append(image)
            masks.append(frame_masks)
        return np.stack(images), np.stack(masks)

    def __getitem__(self, index: int) -> ClipSample:
        video = self._videos[self.names[index // self.clips_per_video]]
        generator = self.generator(index)
        start, object_ids = self._pick_start(video, generator)
        frames = range(start, start + self.num_frames)
        images, masks = self._clip(video, frames, object_ids)
        tensors, mask_tensor, kept = self.finish(images, masks, object_ids, generator)
        return ClipSample(tensors, mask_tensor, kept, video.name, [video.frame_names[t] for t in frames])

    def full_video(self, name: str) -> ClipSample:
        """A whole video without augmentation, every object that appears in it (for validation);
        objects absent from frame 0 are kept with empty masks there."""
        if name not in self._videos:
            raise KeyError(f"unknown video {name!r}; this split has {len(self.names)} videos")
        video = self._videos[name]
        ids: set[int] = set()
        for t in range(len(video.frame_names)):
            ids.update(self._load_masks(video, t, None)[1])
        object_ids = sorted(ids)
        images, masks = self._clip(video, range(len(video.frame_names)), object_ids)
        frames = torch.from_numpy(images).permute(0, 3, 1, 2)
        tensors, mask_tensor = resize_sample(frames, torch.from_numpy(masks), self.image_size)
        return ClipSample(tensors, mask_tensor, object_ids, video.name, list(video.frame_names))
