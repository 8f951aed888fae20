"""Synthetic scenes: determinism, occlusion-aware masks, shapes leaving the frame, file layouts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sam2kit.io.masks import load_palette_png
from sam2kit.synthetic import (
    SceneOptions,
    _render,
    _Shape,
    render_clip,
    render_image,
    write_synthetic_dataset,
)


def square(center: tuple[float, float], colour: int, speed: float) -> _Shape:
    return _Shape(
        kind="rectangle",
        outline=np.array([[-1.0, -1.0], [1.0, -1.0], [1.0, 1.0], [-1.0, 1.0]]),
        center=np.array(center),
        velocity=np.array([speed, 0.0]),
        radius=10.0,
        growth=0.0,
        angle=0.0,
        turn=0.0,
        texture=np.full((64, 64, 3), colour, dtype=np.uint8),
    )


def test_occlusion_by_hand() -> None:
    background = np.zeros((64, 64, 3), dtype=np.uint8)
    back, front = square((20, 32), 100, 0.0), square((32, 32), 200, 4.0)  # front covers x 22..42
    no_grain = np.zeros((64, 64, 1), dtype=np.int16)
    image, masks = _render(background, [back, front], 0, no_grain)
    alone = _render(background, [back], 0, no_grain)[1][0]
    assert masks[1].sum() >= 400 and alone.sum() >= 400  # about 20 x 20 px each
    assert not (masks[0] & masks[1]).any() and np.array_equal(masks[0] | (alone & masks[1]), alone)
    assert (alone & masks[1]).sum() >= 9 * 20  # x 22..30 of the back square is hidden
    overlap_column = 25  # inside both squares: belongs to the front one only
    assert masks[1][32, overlap_column] and not masks[0][32, overlap_column]
    assert (image[masks[1]] == 200).all() and (image[masks[0]] == 100).all()
    assert (image[~(masks[0] | masks[1])] == 0).all()
    # The front one moves right by 4 px per frame: after 12 frames it has left the frame, and the
    # back one is whole again.
    _, later = _render(background, [back, front], 12, no_grain)
    assert later[1].sum() == 0 and np.array_equal(later[0], alone)


def test_deterministic_per_seed() -> None:
    a = render_clip(np.random.default_rng([5, 2, 0]), 6, 64)
    b = render_clip(np.random.default_rng([5, 2, 0]), 6, 64)
    c = render_clip(np.random.default_rng([6, 2, 0]), 6, 64)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])


def test_clip_masks_are_consistent() -> None:
    options = SceneOptions(prob_leave=0.5)
    left = 0
    for seed in range(20):
        frames, masks = render_clip(np.random.default_rng(seed), 16, 64, options)
        assert frames.shape == (16, 64, 64, 3) and frames.dtype == np.uint8
        assert masks.shape[0] == 16 and masks.shape[2:] == (64, 64) and masks.dtype == bool
        assert 1 <= masks.shape[1] <= options.max_objects
        assert (masks.sum(axis=1) <= 1).all()  # a pixel belongs to at most one object
        assert (masks[0].reshape(masks.shape[1], -1).sum(1) >= options.min_visible * 64 * 64).all()
        empty_later = ~masks[1:].reshape(15, masks.shape[1], -1).any(-1)  # (T-1, N)
        left += int(empty_later[-1].sum())
    assert left > 0  # some objects are gone by the last frame (out of frame or hidden)


def test_objects_leave_the_frame() -> None:
    options = SceneOptions(prob_leave=1.0, min_objects=3, max_objects=3)
    gone = 0
    for seed in range(10):
        _, masks = render_clip(np.random.default_rng(seed), 24, 64, options)
        gone += int((~masks[-1].reshape(masks.shape[1], -1).any(-1)).sum())
    assert gone >= 15  # nearly every shape of 30 has left after 24 frames


def test_still_image() -> None:
    image, masks = render_image(np.random.default_rng(0), 96)
    assert image.shape == (96, 96, 3) and masks.shape[1:] == (96, 96) and masks.any(axis=(1, 2)).all()


def test_write_layouts(tmp_path: Path) -> None:
    summary = write_synthetic_dataset(tmp_path, num_images=3, num_clips=2, frames=4, size=64, seed=1)
    assert summary.images == ["img_00000", "img_00001", "img_00002"]
    assert summary.clips == ["clip_0000", "clip_0001"]
    for name in summary.images:
        image = Image.open(tmp_path / "images" / f"{name}.jpg")
        ids = load_palette_png(tmp_path / "masks" / f"{name}.png")
        assert image.size == (64, 64) and ids.shape == (64, 64) and ids.max() >= 1
    frames = sorted((tmp_path / "JPEGImages" / "clip_0001").iterdir())
    annotations = sorted((tmp_path / "Annotations" / "clip_0001").iterdir())
    assert [f.name for f in frames] == [f"{t:05d}.jpg" for t in range(4)]
    assert [a.name for a in annotations] == [f"{t:05d}.png" for t in range(4)]
    with Image.open(annotations[0]) as first:
        assert first.mode == "P"
    again = write_synthetic_dataset(tmp_path / "again", num_images=3, num_clips=2, frames=4, size=64, seed=1)
    for name in summary.images:
        for folder, suffix in (("masks", ".png"), ("images", ".jpg")):
            written, rewritten = tmp_path / folder / f"{name}{suffix}", again.root / folder / f"{name}{suffix}"
            assert written.read_bytes() == rewritten.read_bytes()


def test_bad_options() -> None:
    with pytest.raises(ValueError, match="min_objects"):
        SceneOptions(min_objects=3, max_objects=2)
    with pytest.raises(ValueError, match="num_frames"):
        render_clip(np.random.default_rng(0), 0)
