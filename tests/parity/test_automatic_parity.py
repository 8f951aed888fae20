"""Parity of :class:`sam2kit.predict.automatic.MaskGenerator` with the reference
``SAM2AutomaticMaskGenerator`` (``sam2==1.1.0``), fp32 on CPU.

Both sides load the same seeded random weights (``make_model_pair`` in ``tests/conftest.py``) at
``image_size=512``. Random weights give flat, weak logits (|logit| < 1, a stability score of 0 at
the default offset of 1), so the cases lower ``stability_score_offset`` and the thresholds:

- "large masks" (``mask_threshold=0``): masks of tens of thousands of pixels whose boxes nearly all
  cover the image, so the box NMS is off (``box_nms_thresh=1``) and the IoU and stability filters
  pick a few dozen;
- "small masks" (``mask_threshold=0.3``): specks and thin regions whose boxes differ, so the NMS
  does real work.

Each case asserts the same number of masks, in the same order, each of ours matched one-to-one to
a reference mask with mask IoU >= 0.99 and the same box (in practice every pixel agrees), and the
per-record numbers (area, box, crop box, point) equal, scores within 1e-4.
"""

from __future__ import annotations

import math
from functools import cache
from typing import Any

import numpy as np
import pytest
import torch

from conftest import (
    MEASURED,
    ModelPair,
    make_model_pair,
    make_test_image,
    require_reference,
    scipy_connected_components,
)

SIZE = 512
IMAGE_HW = (384, 512)
MIN_MASK_IOU = 0.99
IOU_PRED_ATOL = 1e-4
#: A pixel that flips at threshold +- offset moves the stability score by about 1 / area.
STABILITY_ATOL = 1e-3

#: Settings that keep a few dozen large masks on the seeded random weights.
LARGE = dict(mask_threshold=0.0, stability_score_offset=0.05, pred_iou_thresh=0.5,
             stability_score_thresh=0.5, box_nms_thresh=1.0)
#: Settings that keep a few dozen small masks whose boxes differ (the NMS removes most).
SMALL = dict(mask_threshold=0.3, stability_score_offset=0.05, pred_iou_thresh=0.0,
             stability_score_thresh=0.0)

CASES: dict[str, dict[str, Any]] = {
    "large masks": dict(points_per_side=8, **LARGE),
    "small masks, NMS, uncompressed RLE": dict(points_per_side=8, output_mode="uncompressed_rle", **SMALL),
    "crop layer": dict(points_per_side=8, crop_n_layers=1, crop_n_points_downscale_factor=2, **SMALL),
    "min region area, COCO RLE": dict(points_per_side=8, min_mask_region_area=25, output_mode="coco_rle", **LARGE),
    "m2m refinement": dict(
        points_per_side=4, use_m2m=True, **{**LARGE, "pred_iou_thresh": 0.0, "stability_score_thresh": 0.2}
    ),
    "single mask": dict(points_per_side=6, multimask_output=False, **{**LARGE, "pred_iou_thresh": 0.0}),
}


# ----------------------------------------------------------------------------- helpers
@pytest.fixture(scope="module")
def pair(sam2_reference: Any) -> ModelPair:
    return make_model_pair("sam2.1_hiera_tiny", SIZE)


@cache
def _outputs(case: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(reference records, our records) of one case, computed once per session."""
    require_reference()
    import warnings

    import sam2.utils.misc
    from sam2.automatic_mask_generator import SAM2AutomaticMaskGenerator

    from sam2kit.predict.automatic import MaskGenerator

    pair = make_model_pair("sam2.1_hiera_tiny", SIZE)
    kwargs = CASES[case]
    image = make_test_image(*IMAGE_HW)
    reference = SAM2AutomaticMaskGenerator(pair.ref, **kwargs)
    reference.predictor._bb_feat_sizes = [(SIZE // 4,) * 2, (SIZE // 8,) * 2, (SIZE // 16,) * 2]
    original = sam2.utils.misc.get_connected_components
    sam2.utils.misc.get_connected_components = scipy_connected_components
    try:
        with torch.inference_mode(), warnings.catch_warnings():
            # The reference warns (and skips its hole filling) if the stand-in did not take.
            warnings.filterwarnings("error", message="(?s).*post-processing", category=UserWarning)
            ref_records = reference.generate(image)
    finally:
        sam2.utils.misc.get_connected_components = original
    ours = MaskGenerator(pair.ours, **kwargs).generate(image)
    return ref_records, ours


def _decode(segmentation: Any) -> np.ndarray:
    if isinstance(segmentation, np.ndarray):
        return segmentation
    from sam2kit.io.masks import decode_rle

    return decode_rle(segmentation)


def _mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)


def _same_score(a: float, b: float, atol: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or abs(a - b) <= atol


def check_case(case: str) -> float:
    """Compare the two record lists of ``case``; returns the smallest matched mask IoU."""
    ref_records, ours = _outputs(case)
    assert 3 <= len(ref_records) <= 200, f"{case}: the case keeps {len(ref_records)} masks; retune it"
    assert len(ours) == len(ref_records), f"{case}: {len(ours)} masks, reference {len(ref_records)}"
    ref_masks = [_decode(r["segmentation"]) for r in ref_records]
    unmatched = set(range(len(ref_records)))
    worst = 1.0
    for index, record in enumerate(ours):
        assert record.keys() == ref_records[index].keys()
        mask = _decode(record["segmentation"])
        assert mask.dtype == bool and mask.shape == IMAGE_HW
        best = max(unmatched, key=lambda j: _mask_iou(mask, ref_masks[j]))
        iou = _mask_iou(mask, ref_masks[best])
        assert iou >= MIN_MASK_IOU, f"{case}: mask {index} has IoU {iou:.4f} with its best reference match"
        assert record["bbox"] == ref_records[best]["bbox"], f"{case}: mask {index} box differs"
        unmatched.remove(best)
        worst = min(worst, iou)
        # Same order as the reference (NMS order), same numbers.
        ref = ref_records[index]
        assert best == index, f"{case}: mask {index} matches reference mask {best} (order differs)"
        for key in ("bbox", "crop_box", "point_coords"):
            assert record[key] == ref[key], f"{case}: mask {index} {key} {record[key]} != {ref[key]}"
        assert isinstance(record["area"], int) and abs(record["area"] - ref["area"]) <= (1 - MIN_MASK_IOU) * ref["area"]
        for key, atol in (("predicted_iou", IOU_PRED_ATOL), ("stability_score", STABILITY_ATOL)):
            assert isinstance(record[key], float)
            assert _same_score(record[key], ref[key], atol), f"{case}: mask {index} {key} {record[key]} != {ref[key]}"
    differing = sum(not np.array_equal(_decode(r["segmentation"]), m) for r, m in zip(ours, ref_masks, strict=True))
    MEASURED["automatic masks: 1 - min IoU"] = max(MEASURED.get("automatic masks: 1 - min IoU", 0.0), 1 - worst)
    MEASURED["automatic masks: not pixel-identical"] = (
        MEASURED.get("automatic masks: not pixel-identical", 0) + differing
    )
    return worst


# ----------------------------------------------------------------------------- tests
@pytest.mark.parametrize("case", list(CASES))
def test_matches_reference(pair: ModelPair, case: str) -> None:
    check_case(case)


def test_rle_outputs_equal_reference_format(pair: ModelPair) -> None:
    """RLE records are the reference's dicts: same keys, sizes and, mask for mask, counts."""
    for case in ("small masks, NMS, uncompressed RLE", "min region area, COCO RLE"):
        ref_records, ours = _outputs(case)
        for record, ref in zip(ours, ref_records, strict=True):
            segmentation, expected = record["segmentation"], ref["segmentation"]
            assert segmentation.keys() == expected.keys()
            assert list(segmentation["size"]) == list(expected["size"])
            assert type(segmentation["counts"]) is type(expected["counts"])
            if np.array_equal(_decode(segmentation), _decode(expected)):
                assert segmentation["counts"] == expected["counts"]


def test_min_region_area_changes_masks(pair: ModelPair) -> None:
    """The hole / speck clean-up must change something, or its case proves nothing."""
    _, cleaned = _outputs("min region area, COCO RLE")
    _, plain = _outputs("large masks")
    assert [r["area"] for r in cleaned] != [r["area"] for r in plain]


def test_postprocess_small_regions_matches_reference(sam2_reference: Any) -> None:
    """The optional clean-up of final masks (OpenCV in the reference) keeps the same masks, cleaned
    the same way, in the same NMS order."""
    from sam2.automatic_mask_generator import SAM2AutomaticMaskGenerator
    from sam2.utils.amg import MaskData, batched_mask_to_box, mask_to_rle_pytorch, rle_to_mask

    from sam2kit.predict.automatic import MaskGenerator

    generator = torch.Generator().manual_seed(5)
    noise = torch.nn.functional.avg_pool2d(torch.randn(12, 1, 64, 80, generator=generator), 5, 1, 2)[:, 0]
    masks = noise > torch.linspace(-0.2, 0.3, 12)[:, None, None]  # blobs, holes and specks of many sizes
    masks[3] = masks[2]  # a duplicate for the NMS
    data = MaskData(rles=mask_to_rle_pytorch(masks), boxes=batched_mask_to_box(masks))
    expected = SAM2AutomaticMaskGenerator.postprocess_small_regions(data, 30, 0.7)
    cleaned, keep = MaskGenerator.postprocess_small_regions(masks, 30, 0.7)
    assert 0 < len(keep) < len(masks)
    assert len(expected["rles"]) == len(keep)
    changed = 0
    for ours, rle, index in zip(cleaned, expected["rles"], keep.tolist(), strict=True):
        assert np.array_equal(ours.numpy(), rle_to_mask(rle))
        changed += not torch.equal(ours, masks[index])
    assert changed > 0, "the case does not exercise the clean-up"
