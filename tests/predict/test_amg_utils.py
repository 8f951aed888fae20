"""Parity of sam2kit.predict.amg_utils with the reference `sam2.utils.amg`, on random inputs.

(The reference's RLE helpers are compared with `sam2kit.io.masks` in tests/io/test_masks.py.)"""

from __future__ import annotations

import importlib
import os

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from sam2kit.predict.amg_utils import (
    batch_iterator,
    batched_mask_to_box,
    build_all_layer_point_grids,
    build_point_grid,
    calculate_stability_score,
    check_point_grids,
    generate_crop_boxes,
    is_box_near_crop_edge,
    remove_small_regions_batched,
    uncrop_boxes_xyxy,
)


def import_reference(module: str):
    """Import a test-only dependency (the reference `sam2`, cv2); under CI a missing one fails
    the test instead of skipping it."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        if os.environ.get("CI"):
            pytest.fail(
                f"parity tests need {module}: {error}; install the dev extras, "
                "opencv-python-headless and SAM2_BUILD_CUDA=0 pip install sam2==1.1.0",
                pytrace=False,
            )
        return pytest.importorskip(module)


@pytest.fixture(scope="module")
def ref():
    """The reference `sam2.utils.amg` module."""
    return import_reference("sam2.utils.amg")


def random_masks(shape: tuple[int, ...], seed: int, density: float = 0.0) -> torch.Tensor:
    """Blobby bool masks (upsampled noise) with a few flipped pixels: holes and islands."""
    generator = torch.Generator().manual_seed(seed)
    *lead, height, width = shape
    coarse = torch.randn(int(np.prod(lead)), 1, max(height // 6, 1), max(width // 6, 1),
                         generator=generator)
    logits = F.interpolate(coarse, size=(height, width), mode="bilinear").view(shape)
    masks = logits > density
    return masks ^ (torch.rand(shape, generator=generator) < 0.02)


def assert_same(ours, want) -> None:
    """Equal values, types and dtypes (tensors, arrays, nested lists/dicts)."""
    assert type(ours) is type(want)
    if isinstance(want, torch.Tensor):
        assert ours.dtype == want.dtype and ours.shape == want.shape
        assert torch.equal(ours, want) or (
            ours.is_floating_point() and torch.allclose(ours, want, rtol=0, atol=0, equal_nan=True)
        )
    elif isinstance(want, np.ndarray):
        assert ours.dtype == want.dtype
        np.testing.assert_array_equal(ours, want)
    elif isinstance(want, (list, tuple)):
        assert len(ours) == len(want)
        for ours_item, want_item in zip(ours, want, strict=True):
            assert_same(ours_item, want_item)
    elif isinstance(want, dict):
        assert ours.keys() == want.keys()
        for key in want:
            assert_same(ours[key], want[key])
    else:
        assert ours == want


# ---------------------------------------------------------------------------------------------
# boxes, points, crops


def test_is_box_near_crop_edge_parity(ref) -> None:
    generator = torch.Generator().manual_seed(0)
    xy = torch.randint(0, 300, (200, 2), generator=generator)
    wh = torch.randint(0, 300, (200, 2), generator=generator)
    boxes = torch.cat([xy, xy + wh], dim=1)
    for crop_box in ([0, 0, 640, 480], [200, 100, 520, 400], [300, 0, 640, 260]):
        want = ref.is_box_near_crop_edge(boxes, crop_box, [0, 0, 640, 480])
        assert_same(is_box_near_crop_edge(boxes, crop_box, [0, 0, 640, 480]), want)
        want = ref.is_box_near_crop_edge(boxes.float(), crop_box, [0, 0, 640, 480], atol=5.0)
        assert_same(is_box_near_crop_edge(boxes.float(), crop_box, [0, 0, 640, 480], 5.0), want)


def test_batch_iterator_parity(ref) -> None:
    points, labels = np.arange(20).reshape(10, 2), list(range(10))
    for batch_size in (1, 3, 10, 64):
        ours = list(batch_iterator(batch_size, points, labels))
        assert_same(ours, list(ref.batch_iterator(batch_size, points, labels)))
    with pytest.raises(ValueError, match="same length"):
        next(batch_iterator(2, points, labels[:3]))


@pytest.mark.parametrize("n_per_side", [1, 2, 7, 32, 64])
def test_build_point_grid_parity(ref, n_per_side: int) -> None:
    assert_same(build_point_grid(n_per_side), ref.build_point_grid(n_per_side))


def test_build_all_layer_point_grids_parity(ref) -> None:
    for args in ((32, 0, 1), (32, 2, 2), (16, 3, 2), (24, 1, 3)):
        assert_same(build_all_layer_point_grids(*args), ref.build_all_layer_point_grids(*args))
    with pytest.raises(ValueError, match="n_per_side"):
        build_point_grid(0)


@pytest.mark.parametrize("im_size", [(480, 640), (1024, 1024), (333, 517), (1500, 1000)])
@pytest.mark.parametrize("n_layers, overlap_ratio", [(0, 0.34), (1, 512 / 1500), (2, 0.2),
                                                     (3, 0.0)])
def test_generate_crop_boxes_parity(ref, im_size, n_layers, overlap_ratio) -> None:
    ours = generate_crop_boxes(im_size, n_layers, overlap_ratio)
    assert_same(ours, ref.generate_crop_boxes(im_size, n_layers, overlap_ratio))


def test_uncrop_boxes_parity(ref) -> None:
    generator = torch.Generator().manual_seed(0)
    crop_box = [37, 12, 300, 200]
    for boxes in (torch.randint(0, 100, (5, 4), generator=generator),
                  torch.rand(2, 5, 4, generator=generator) * 100):
        assert_same(uncrop_boxes_xyxy(boxes, crop_box), ref.uncrop_boxes_xyxy(boxes, crop_box))


def test_check_point_grids() -> None:
    grids = check_point_grids([np.array([[0.5, 0.5]]), [[0.0, 1.0], [0.25, 0.75]]], crop_n_layers=1)
    assert [grid.dtype for grid in grids] == [np.float64, np.float64]
    assert grids[1].shape == (2, 2)
    with pytest.raises(TypeError, match="list of"):
        check_point_grids(np.zeros((4, 2)), 0)
    with pytest.raises(ValueError, match="needs 2"):
        check_point_grids([np.zeros((4, 2))], 1)
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        check_point_grids([np.zeros((4, 3))], 0)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        check_point_grids([np.full((4, 2), 1.5)], 0)


# ---------------------------------------------------------------------------------------------
# masks: boxes, stability, RLE


def test_batched_mask_to_box_parity(ref) -> None:
    masks = random_masks((3, 4, 40, 50), seed=0, density=1.0)
    masks[0, 1] = False
    masks[1, 2] = True
    masks[2, 3] = False
    masks[2, 3, 39, 0] = True
    for case in (masks, masks[0], masks[1, 2], masks[:, :, :1, :], masks[:0],
                 torch.zeros(2, 0, 5, dtype=torch.bool)):
        assert_same(batched_mask_to_box(case), ref.batched_mask_to_box(case))


@pytest.mark.parametrize("threshold, offset", [(0.0, 1.0), (0.5, 0.25), (-1.0, 3.0)])
def test_calculate_stability_score_parity(ref, threshold: float, offset: float) -> None:
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 6, 64, 80, generator=generator) * 3
    logits[0, 0] = -100.0  # empty low-threshold mask: 0 / 0
    want = ref.calculate_stability_score(logits, threshold, offset)
    assert_same(calculate_stability_score(logits, threshold, offset), want)
    assert torch.isnan(want[0, 0])


# ---------------------------------------------------------------------------------------------
# remove_small_regions_batched


def small_region_cases() -> list[np.ndarray]:
    cases = [m.numpy() for m in random_masks((10, 61, 47), seed=3)]
    cases += [m.numpy() for m in random_masks((4, 64, 64), seed=4, density=1.2)]
    ties = np.zeros((9, 12), dtype=bool)  # four same-size islands; first in 2x2-block order wins
    ties[1, 5:8] = ties[0, 9:12] = ties[5, 0:3] = ties[4, 8:11] = True
    cases += [ties, ties.T.copy(), ties[::-1].copy(), ties[:, ::-1].copy()]
    cases += [np.zeros((8, 8), dtype=bool), np.ones((8, 8), dtype=bool)]
    return cases


@pytest.mark.parametrize("mode", ["holes", "islands"])
def test_remove_small_regions_batched_parity(ref, mode: str) -> None:
    import_reference("cv2")
    cases = small_region_cases()
    for area_thresh in (3, 50, 1e6):
        for shape in {case.shape for case in cases}:
            batch = np.stack([case for case in cases if case.shape == shape])
            ours_masks, ours_changed = remove_small_regions_batched(
                torch.from_numpy(batch), area_thresh, mode
            )
            for mask, ours_mask, changed in zip(batch, ours_masks, ours_changed, strict=True):
                want_mask, want_changed = ref.remove_small_regions(mask, area_thresh, mode)
                assert bool(changed) == want_changed
                np.testing.assert_array_equal(ours_mask.numpy(), want_mask)


def test_remove_small_regions_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="holes"):
        remove_small_regions_batched(torch.zeros(1, 4, 4, dtype=torch.bool), 3, "sprinkles")
    with pytest.raises(ValueError, match=r"\(B, H, W\)"):
        remove_small_regions_batched(torch.zeros(4, 4, dtype=torch.bool), 3, "holes")
