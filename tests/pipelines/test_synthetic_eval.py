"""Held-out scoring on synthetic scenes: the click placement, and the sam2kit-mini preset with random
weights (the floor a trained model is measured against)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sam2kit.build import build_model
from sam2kit.config import get_config
from sam2kit.pipelines.synthetic_eval import evaluate_synthetic, interior_point


@pytest.fixture(scope="module")
def single_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(min(threads, 2))
    yield
    torch.set_num_threads(threads)


def test_interior_point_is_the_deepest_pixel() -> None:
    mask = np.zeros((40, 60), dtype=bool)
    mask[5:15, 5:55] = True  # a thin bar ...
    mask[5:35, 40:55] = True  # ... with a thick block at its right end
    x, y = interior_point(mask)
    assert mask[int(y), int(x)]
    assert 40 + 4 <= x <= 55 - 5 and 5 + 4 <= y <= 35 - 5  # inside the block, away from its edges


def test_interior_point_of_a_single_pixel_and_of_nothing() -> None:
    mask = np.zeros((9, 9), dtype=bool)
    mask[3, 7] = True
    assert interior_point(mask) == (7.0, 3.0)
    with pytest.raises(ValueError, match="empty mask"):
        interior_point(np.zeros((9, 9), dtype=bool))


def test_the_same_preset_with_random_weights_does_not(single_thread) -> None:
    torch.manual_seed(0)
    model = build_model(get_config("sam2kit-mini"), device="cpu").eval()
    scores = evaluate_synthetic(model, images=20, clips=3, frames=24, seed=2)
    assert scores.image_miou < 0.3, scores
    assert scores.video_j_and_f < 0.3, scores


def test_clips_are_scored_as_label_maps(single_thread) -> None:
    """By default each pixel of a tracked clip belongs to at most one object, as in a DAVIS result;
    ``non_overlap=False`` scores the objects' own masks, which the shipped model lets overlap."""
    from sam2kit import from_pretrained
    from sam2kit.pipelines.synthetic_eval import _track_clip
    from sam2kit.synthetic import render_clip

    model = from_pretrained("sam2kit-mini", device="cpu").eval()
    overlapped = 0
    for index in range(3):
        clip, masks = render_clip(np.random.default_rng([2, 12, index]), 24, 256)
        exclusive = _track_clip(model, clip, masks, non_overlap=True)
        assert exclusive.sum(axis=1).max() <= 1
        overlapped += int((_track_clip(model, clip, masks, non_overlap=False).sum(axis=1) > 1).sum())
    assert overlapped > 0
