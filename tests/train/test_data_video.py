"""DAVIS / SA-V video folders: clips, objects, layouts and errors, on tiny generated videos."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from sam2kit.io.masks import load_palette_png, save_mask_png, save_palette_png
from sam2kit.synthetic import write_synthetic_dataset
from sam2kit.train.data import DataError, VideoFolderDataset


def write_video(root: Path, name: str, num_frames: int, size: tuple[int, int] = (40, 48), first_empty: int = 0) -> None:
    """A square (id 2) moving right by 2 px per frame; absent from the first ``first_empty`` frames."""
    height, width = size
    (root / "JPEGImages" / name).mkdir(parents=True, exist_ok=True)
    (root / "Annotations" / name).mkdir(parents=True, exist_ok=True)
    for t in range(num_frames):
        image = np.zeros((height, width, 3), dtype=np.uint8)
        ids = np.zeros((height, width), dtype=np.uint8)
        if t >= first_empty:
            image[10:20, 2 + 2 * t : 12 + 2 * t] = 255
            ids[10:20, 2 + 2 * t : 12 + 2 * t] = 2
        Image.fromarray(image).save(root / "JPEGImages" / name / f"{t:05d}.jpg")
        save_palette_png(root / "Annotations" / name / f"{t:05d}.png", ids)


def test_clips_from_synthetic_layout(tmp_path: Path) -> None:
    write_synthetic_dataset(tmp_path, num_images=0, num_clips=3, frames=10, size=64, seed=0)
    data = VideoFolderDataset(tmp_path, 32, num_frames=4, augment=None, max_objects=None, clips_per_video=2)
    assert len(data) == 6 and data.names == ["clip_0000", "clip_0001", "clip_0002"]
    sample = data[3]
    assert sample.name == "clip_0001" and len(sample.frame_names) == 4
    assert sample.frames.shape == (4, 3, 32, 32) and sample.frames.dtype == torch.float32
    assert sample.masks.shape == (4, len(sample.object_ids), 32, 32) and sample.masks.dtype == torch.bool
    assert sample.masks[0].flatten(1).any(1).all()  # every object is visible on the clip's first frame
    start = int(sample.frame_names[0])
    assert sample.frame_names == [f"{t:05d}" for t in range(start, start + 4)]
    ids = load_palette_png(tmp_path / "Annotations" / "clip_0001" / f"{start:05d}.png")
    assert set(sample.object_ids) <= set(np.unique(ids).tolist()) - {0}
    again = VideoFolderDataset(tmp_path, 32, num_frames=4, augment=None, max_objects=None, clips_per_video=2)[3]
    assert again.frame_names == sample.frame_names and torch.equal(again.masks, sample.masks)


def test_full_video_and_late_objects(tmp_path: Path) -> None:
    write_video(tmp_path, "late", 6, first_empty=2)
    data = VideoFolderDataset(tmp_path, 32, num_frames=3, augment=None)
    sample = data[0]
    assert int(sample.frame_names[0]) >= 2 and sample.object_ids == [2]  # starts where the object is
    whole = data.full_video("late")
    assert whole.frames.shape == (6, 3, 32, 32) and whole.object_ids == [2]
    assert not whole.masks[:2].any() and whole.masks[2:].flatten(1).any(1).all()
    with pytest.raises(KeyError, match="unknown video"):
        data.full_video("nope")


def test_augmented_clip_is_consistent(tmp_path: Path) -> None:
    write_video(tmp_path, "v", 5)
    data = VideoFolderDataset(tmp_path, 48, num_frames=5, seed=1)
    sample = data[0]
    areas = sample.masks.flatten(1).sum(1).float()
    assert areas.min() > 0 and (areas.max() - areas.min()) / areas.max() < 0.2  # one warp for all frames


def test_sav_per_object_layout(tmp_path: Path) -> None:
    frames_dir, ann_dir = tmp_path / "JPEGImages_24fps" / "sav_1", tmp_path / "Annotations_6fps" / "sav_1"
    frames_dir.mkdir(parents=True)
    for t in range(8):  # 24 fps frames, annotations on every other one (like SA-V's 6 fps)
        Image.fromarray(np.zeros((32, 32, 3), dtype=np.uint8)).save(frames_dir / f"{t:05d}.jpg")
    for obj_id, rows in ((0, slice(0, 8)), (3, slice(16, 24))):
        (ann_dir / str(obj_id)).mkdir(parents=True)
        for t in range(0, 8, 2):
            mask = np.zeros((32, 32), dtype=bool)
            if not (obj_id == 3 and t == 4):  # object 3 hidden on frame 4: SA-V writes an empty PNG
                mask[rows, 4:12] = True
            save_mask_png(ann_dir / str(obj_id) / f"{t:05d}.png", mask)
    data = VideoFolderDataset(tmp_path, 32, num_frames=4, augment=None)
    sample = data[0]
    assert sample.frame_names == ["00000", "00002", "00004", "00006"]
    assert sample.object_ids == [0, 3]
    assert sample.masks[:, 0].flatten(1).any(1).all()
    assert sample.masks[:, 1].flatten(1).any(1).tolist() == [True, True, False, True]


def test_davis_resolution_folder(tmp_path: Path) -> None:
    write_video(tmp_path / "tmp", "bear", 3)
    for kind in ("JPEGImages", "Annotations"):
        shutil.move(tmp_path / "tmp" / kind, tmp_path / kind / "480p")
    assert VideoFolderDataset(tmp_path, 32, num_frames=3).names == ["bear"]


def test_video_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no JPEGImages/ folder"):
        VideoFolderDataset(tmp_path, 32)
    write_video(tmp_path, "short", 2)
    with pytest.warns(RuntimeWarning, match="fewer than 4 annotated frames"), pytest.raises(DataError) as error:
        VideoFolderDataset(tmp_path, 32, num_frames=4)
    assert "\n" not in str(error.value) and "no video with at least 4" in str(error.value)

    write_video(tmp_path, "empty", 4, first_empty=4)
    write_video(tmp_path, "resized", 4)
    save_palette_png(tmp_path / "Annotations" / "resized" / "00001.png", np.full((20, 48), 2, dtype=np.uint8))
    with pytest.warns(RuntimeWarning):
        data = VideoFolderDataset(tmp_path, 32, num_frames=4, augment=None)
    with pytest.raises(DataError) as error:
        data[data.names.index("empty")]
    assert "\n" not in str(error.value) and "empty" in str(error.value)
    with pytest.raises(DataError) as error:
        data[data.names.index("resized")]
    message = str(error.value)
    assert "00001.png" in message and "48x20" in message and "48x40" in message and "\n" not in message

    (tmp_path / "JPEGImages" / "resized" / "00003.jpg").unlink()
    with pytest.raises(DataError) as error:
        VideoFolderDataset(tmp_path, 32, num_frames=4)
    assert "00003.png has no frame" in str(error.value)
