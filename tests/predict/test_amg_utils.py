"""Parity of sam2kit.predict.amg_utils with the reference `sam2.utils.amg`, on random inputs."""

from __future__ import annotations

import importlib
import os
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from sam2kit.predict import amg_utils
from sam2kit.predict.amg_utils import (
    MaskData,
    area_from_rle,
    batch_iterator,
    batched_mask_to_box,
    box_xyxy_to_xywh,
    build_all_layer_point_grids,
    build_point_grid,
    calculate_stability_score,
    coco_encode_rle,
    generate_crop_boxes,
    is_box_near_crop_edge,
    mask_to_rle_pytorch,
    remove_small_regions,
    remove_small_regions_batched,
    rle_to_mask,
    uncrop_boxes_xyxy,
    uncrop_masks,
    uncrop_points,
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
# MaskData


def mask_data_fields(seed: int) -> dict:
    generator = torch.Generator().manual_seed(seed)
    return {
        "iou_preds": torch.rand(6, generator=generator),
        "boxes": torch.randint(0, 50, (6, 4), generator=generator),
        "masks": torch.rand(6, 5, 5, generator=generator) > 0.5,
        "points": np.arange(12, dtype=np.float64).reshape(6, 2) + seed,
        "rles": [{"counts": [i, seed]} for i in range(6)],
    }


def test_mask_data_parity(ref) -> None:
    ours, want = MaskData(**mask_data_fields(0)), ref.MaskData(**mask_data_fields(0))
    for data in (ours, want):
        data.filter(data["iou_preds"] > 0.3)
        data.cat(type(data)(**mask_data_fields(1)))
        data.filter(torch.tensor([0, 2, 3, 7, 8]))
        data["extra"] = torch.arange(5)
        data.cat(type(data)(**mask_data_fields(2)))
        del data["masks"]
        data.to_numpy()
    assert list(ours.keys()) == [key for key, _ in want.items()]
    for key, value in want.items():
        assert_same(ours[key], value)
    assert "boxes" in ours and "masks" not in ours


def test_mask_data_new_field_is_a_copy() -> None:
    rles = [{"counts": [1, 2]}]
    data = MaskData()
    data.cat(MaskData(rles=rles, scores=None))
    data["rles"][0]["counts"].append(3)
    assert rles == [{"counts": [1, 2]}]
    data.filter(torch.tensor([True]))
    assert data["scores"] is None
    with pytest.raises(TypeError, match="scores"):
        MaskData(scores=3.0)


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


def test_box_xyxy_to_xywh_parity(ref) -> None:
    for box in (torch.tensor([3, 4, 10, 20]), torch.tensor([1.5, 2.0, 7.25, 9.0]),
                np.array([3.0, 4.0, 10.0, 20.0], dtype=np.float32)):
        assert_same(box_xyxy_to_xywh(box), ref.box_xyxy_to_xywh(box))
        assert box[2] in (10, 7.25)  # the input is untouched
    batch = torch.tensor([[0, 0, 5, 6], [2, 3, 4, 9]])
    assert_same(box_xyxy_to_xywh(batch), torch.tensor([[0, 0, 5, 6], [2, 3, 2, 6]]))


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


def test_uncrop_parity(ref) -> None:
    generator = torch.Generator().manual_seed(0)
    crop_box = [37, 12, 300, 200]
    for boxes in (torch.randint(0, 100, (5, 4), generator=generator),
                  torch.rand(2, 5, 4, generator=generator) * 100):
        assert_same(uncrop_boxes_xyxy(boxes, crop_box), ref.uncrop_boxes_xyxy(boxes, crop_box))
    for points in (torch.rand(7, 2, generator=generator) * 100,
                   torch.randint(0, 100, (3, 7, 2), generator=generator)):
        assert_same(uncrop_points(points, crop_box), ref.uncrop_points(points, crop_box))
    masks = torch.rand(3, 188, 263, generator=generator) > 0.5
    want = ref.uncrop_masks(masks, crop_box, 240, 320)
    assert_same(uncrop_masks(masks, crop_box, 240, 320), want)
    assert uncrop_masks(masks, [0, 0, 263, 188], 188, 263) is masks


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


def test_mask_to_rle_parity(ref) -> None:
    masks = random_masks((12, 37, 53), seed=1)
    masks[0] = False
    masks[1] = True
    masks[2, 0, 0] = True
    masks[3, 0, 0] = False
    masks[4] = False
    masks[4, -1, -1] = True
    rles = mask_to_rle_pytorch(masks)
    assert_same(rles, ref.mask_to_rle_pytorch(masks))
    for mask, rle in zip(masks, rles, strict=True):
        decoded = rle_to_mask(rle)
        assert_same(decoded, ref.rle_to_mask(rle))
        np.testing.assert_array_equal(decoded, mask.numpy())
        assert area_from_rle(rle) == ref.area_from_rle(rle) == int(mask.sum())
    assert_same(mask_to_rle_pytorch(masks[:0]), [])
    with pytest.raises(ValueError, match="counts"):
        rle_to_mask({"size": [2, 2], "counts": [1, 2]})


def test_coco_encode_rle_parity(ref) -> None:
    import_reference("pycocotools")
    for rle in mask_to_rle_pytorch(random_masks((3, 30, 41), seed=2)):
        assert_same(coco_encode_rle(rle), ref.coco_encode_rle(rle))


# ---------------------------------------------------------------------------------------------
# remove_small_regions


def small_region_cases() -> list[np.ndarray]:
    cases = [m.numpy() for m in random_masks((10, 61, 47), seed=3)]
    cases += [m.numpy() for m in random_masks((4, 64, 64), seed=4, density=1.2)]
    ties = np.zeros((9, 12), dtype=bool)  # four same-size islands; first in 2x2-block order wins
    ties[1, 5:8] = ties[0, 9:12] = ties[5, 0:3] = ties[4, 8:11] = True
    cases += [ties, ties.T.copy(), ties[::-1].copy(), ties[:, ::-1].copy()]
    cases += [np.zeros((8, 8), dtype=bool), np.ones((8, 8), dtype=bool)]
    return cases


@pytest.mark.parametrize("mode", ["holes", "islands"])
@pytest.mark.parametrize("area_thresh", [1, 4, 30, 400, 1e6])
def test_remove_small_regions_parity(ref, mode: str, area_thresh: float) -> None:
    import_reference("cv2")
    for mask in small_region_cases():
        want_mask, want_changed = ref.remove_small_regions(mask, area_thresh, mode)
        ours_mask, ours_changed = remove_small_regions(mask, area_thresh, mode)
        assert ours_changed == want_changed
        np.testing.assert_array_equal(ours_mask, want_mask)
        assert ours_mask.dtype == bool


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


def test_remove_small_regions_without_scipy(ref, monkeypatch: pytest.MonkeyPatch) -> None:
    import_reference("cv2")
    monkeypatch.setitem(sys.modules, "scipy", None)
    monkeypatch.setitem(sys.modules, "scipy.ndimage", None)
    for mask in small_region_cases()[::3]:
        for mode in ("holes", "islands"):
            want_mask, want_changed = ref.remove_small_regions(mask, 20, mode)
            ours_mask, ours_changed = remove_small_regions(mask, 20, mode)
            assert ours_changed == want_changed
            np.testing.assert_array_equal(ours_mask, want_mask)


def test_remove_small_regions_rejects_bad_mode() -> None:
    with pytest.raises(ValueError, match="holes"):
        remove_small_regions(np.zeros((4, 4), dtype=bool), 3, "sprinkles")
    with pytest.raises(ValueError, match="holes"):
        amg_utils.remove_small_regions_batched(torch.zeros(1, 4, 4, dtype=torch.bool), 3, "x")
