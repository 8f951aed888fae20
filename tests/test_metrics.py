"""J, F, J&F and mIoU on cases checkable by hand, plus F against an independent scipy
implementation of the DAVIS definition."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from sam2kit.metrics import (
    SequenceScores,
    boundary_f_measure,
    boundary_map,
    image_miou,
    mean_j_and_f,
    region_similarity,
    sequence_j_and_f,
)


def box(h: int, w: int, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
    mask = np.zeros((h, w), dtype=bool)
    mask[y0:y1, x0:x1] = True
    return mask


def test_region_similarity() -> None:
    a = box(10, 10, 0, 4, 0, 4)  # 16 px
    b = box(10, 10, 2, 6, 0, 4)  # 16 px, 8 shared
    assert float(region_similarity(a, b)) == pytest.approx(8 / 24)
    assert float(region_similarity(a, a)) == 1.0
    empty = np.zeros((10, 10), dtype=bool)
    assert float(region_similarity(empty, empty)) == 1.0  # DAVIS: nothing to find, nothing found
    assert float(region_similarity(empty, a)) == 0.0
    assert float(region_similarity(a, empty)) == 0.0
    stack = region_similarity(np.stack([a, empty]), np.stack([b, empty]))
    assert stack.shape == (2,) and stack.tolist() == pytest.approx([1 / 3, 1.0])
    assert float(region_similarity(torch.from_numpy(a).int(), torch.from_numpy(b))) == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="same shape"):
        region_similarity(a, a[:5])


def test_boundary_map() -> None:
    mask = box(6, 6, 1, 4, 1, 4)  # a 3x3 square
    boundary = boundary_map(mask).numpy()
    # The square's pixels that touch the outside on the right/bottom, and the outside pixels just
    # above/left of it (seg2bmap marks a pixel differing from its right / lower neighbours).
    expected = np.zeros((6, 6), dtype=bool)
    expected[0, 0:4] = True  # row above: its lower (or lower-right) neighbour is inside
    expected[1:4, 0] = True  # column left
    expected[1:4, 3] = True  # right column of the square
    expected[3, 1:4] = True  # bottom row of the square
    assert np.array_equal(boundary, expected)
    full = np.ones((4, 4), dtype=bool)
    assert not boundary_map(full).any()  # no edge inside, and the image border does not count here


def test_boundary_f_by_hand() -> None:
    a = box(100, 100, 20, 60, 20, 60)
    assert float(boundary_f_measure(a, a)) == 1.0
    # Tolerance: ceil(0.008 * diagonal 141.4) = 2 px. A 1-px shift stays within it, 5 px does not.
    shifted = box(100, 100, 21, 61, 20, 60)
    assert float(boundary_f_measure(shifted, a)) == 1.0
    far = box(100, 100, 25, 65, 25, 65)
    assert float(boundary_f_measure(far, a)) < 0.5
    empty = np.zeros((100, 100), dtype=bool)
    assert float(boundary_f_measure(empty, empty)) == 1.0
    assert float(boundary_f_measure(empty, a)) == 0.0
    assert float(boundary_f_measure(a, empty)) == 0.0
    # Pixel tolerance >= 1 is taken as pixels.
    assert float(boundary_f_measure(far, a, tolerance=8)) == 1.0


def davis_f_reference(pred: np.ndarray, gt: np.ndarray, bound_th: float = 0.008) -> float:
    """The DAVIS definition written with scipy / scikit-image (independent of sam2kit's torch code)."""
    from scipy.ndimage import binary_dilation
    from skimage.morphology import disk

    def bmap(seg: np.ndarray) -> np.ndarray:
        e = np.zeros_like(seg)
        s = np.zeros_like(seg)
        se = np.zeros_like(seg)
        e[:, :-1], s[:-1, :], se[:-1, :-1] = seg[:, 1:], seg[1:, :], seg[1:, 1:]
        b = seg ^ e | seg ^ s | seg ^ se
        b[-1, :] = seg[-1, :] ^ e[-1, :]
        b[:, -1] = seg[:, -1] ^ s[:, -1]
        b[-1, -1] = 0
        return b

    radius = math.ceil(bound_th * np.linalg.norm(pred.shape))
    pb, gb = bmap(pred), bmap(gt)
    pd, gd = binary_dilation(pb, disk(radius)), binary_dilation(gb, disk(radius))
    n_p, n_g = pb.sum(), gb.sum()
    if n_p == 0 and n_g == 0:
        return 1.0
    if n_p == 0 or n_g == 0:
        return 0.0
    precision, recall = (pb & gd).sum() / n_p, (gb & pd).sum() / n_g
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


def test_boundary_f_matches_scipy_definition() -> None:
    pytest.importorskip("scipy")
    pytest.importorskip("skimage")
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:120, :160]
    for _ in range(6):
        cy, cx, r = rng.uniform(30, 90), rng.uniform(40, 120), rng.uniform(10, 35)
        gt = (yy - cy) ** 2 + (xx - cx) ** 2 < r**2
        pred = (yy - cy - rng.normal(0, 4)) ** 2 / rng.uniform(0.7, 1.3) + (xx - cx - rng.normal(0, 4)) ** 2 < r**2
        pred ^= rng.random(pred.shape) < 0.01  # speckles
        assert float(boundary_f_measure(pred, gt)) == pytest.approx(davis_f_reference(pred, gt), abs=1e-12)


def test_sequence_j_and_f() -> None:
    h = w = 50
    gt = np.zeros((5, 2, h, w), dtype=bool)
    gt[:, 0, 10:30, 10:30] = True  # object 0: always present
    gt[:2, 1, 35:45, 35:45] = True  # object 1: leaves after frame 1
    pred = gt.copy()
    pred[2, 0] = False  # object 0 lost on frame 2: J = F = 0 there
    pred[3, 1, 0:5, 0:5] = True  # object 1 hallucinated on frame 3 (truth empty): J = F = 0
    scores = sequence_j_and_f(pred, gt)  # frames 1..3 evaluated
    assert scores.j.shape == (3, 2)
    assert scores.j_per_object.tolist() == pytest.approx([2 / 3, 2 / 3])
    assert scores.f_per_object.tolist() == pytest.approx([2 / 3, 2 / 3])
    assert scores.j_and_f == pytest.approx(2 / 3)
    full = sequence_j_and_f(pred, gt, skip_first_and_last=False, object_ids=[7, 9])
    assert full.j.shape == (5, 2) and full.object_ids == [7, 9]
    assert full.j_mean == pytest.approx(0.8)
    with pytest.raises(ValueError, match="skip_first_and_last"):
        sequence_j_and_f(pred[:2], gt[:2])
    with pytest.raises(ValueError, match=r"\(T, N, H, W\)"):
        sequence_j_and_f(pred[None], gt[None])


def test_mean_j_and_f_over_objects() -> None:
    one = SequenceScores(j=np.array([[1.0]]), f=np.array([[1.0]]), object_ids=[1])
    two = SequenceScores(j=np.array([[0.0, 0.5]]), f=np.array([[0.0, 0.5]]), object_ids=[1, 2])
    figures = mean_j_and_f([one, two])
    assert figures["J"] == pytest.approx(0.5) and figures["J&F"] == pytest.approx(0.5)
    with pytest.raises(ValueError):
        mean_j_and_f([])


def test_image_miou() -> None:
    a, b = box(10, 10, 0, 4, 0, 4), box(10, 10, 2, 6, 0, 4)
    assert image_miou(np.stack([a, a]), np.stack([a, b])) == pytest.approx((1 + 1 / 3) / 2)
    assert image_miou([a, box(5, 7, 0, 1, 0, 1)], [b, box(5, 7, 0, 1, 0, 1)]) == pytest.approx((1 / 3 + 1) / 2)
    with pytest.raises(ValueError, match="2 predictions for 1"):
        image_miou([a, a], [a])
