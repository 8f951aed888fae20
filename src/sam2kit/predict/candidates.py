"""Candidate masks of the automatic generator: the quality filters, NMS within and across crops,
and the final full-resolution masks.

Candidates stay low-resolution logits until the very end: the filters upsample them chunk by chunk
(bounded memory) only to score them, and :func:`merge_crops` rebuilds full-resolution masks (the
same bilinear upsampling, so the same pixels) only for the masks that survive every NMS.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, fields

import torch
import torch.nn.functional as F

from .amg_utils import boxes_from_extent, calculate_stability_score, is_box_near_crop_edge
from .postprocess import postprocess_low_res_masks

__all__ = ["Candidates", "QualityFilter", "batched_nms", "merge_crops"]

#: Elements of one chunk of full-resolution float logits (64 MiB): bounds the peak memory.
UPSAMPLE_CHUNK_ELEMENTS = 1 << 24


def batched_nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Indices of the XYXY ``boxes`` ``(K, 4)`` kept by NMS over ``scores`` ``(K,)``, best first.

    Raises:
        ImportError: torchvision is not installed.
    """
    try:
        from torchvision.ops import batched_nms as torchvision_nms
    except ImportError as error:  # pragma: no cover - torchvision is a dependency of the extra
        raise ImportError("MaskGenerator needs torchvision for NMS: pip install 'sam2kit[coco]'") from error
    categories = torch.zeros(boxes.shape[0], dtype=torch.int64, device=boxes.device)
    return torchvision_nms(boxes.float(), scores, categories, iou_threshold=iou_threshold)


@dataclass
class Candidates:
    """Masks that passed the filters, still in their crop's frame.

    Attributes:
        low_res: ``(K, h4, w4)`` mask logits (after hole / speck clean-up); upsampled to the crop
            and thresholded they give the mask.
        iou_preds: ``(K,)`` predicted IoU. stability: ``(K,)`` stability score.
        points: ``(K, 2)`` float32 (x, y) prompt of each mask, crop pixels.
        boxes: ``(K, 4)`` int64 XYXY box of each mask, crop pixels.
    """

    low_res: torch.Tensor
    iou_preds: torch.Tensor
    stability: torch.Tensor
    points: torch.Tensor
    boxes: torch.Tensor

    def select(self, index: torch.Tensor) -> Candidates:
        return Candidates(*(getattr(self, field.name)[index] for field in fields(self)))

    @staticmethod
    def cat(parts: Sequence[Candidates]) -> Candidates:
        return Candidates(*(torch.cat([getattr(p, field.name) for p in parts]) for field in fields(Candidates)))


@dataclass(frozen=True)
class QualityFilter:
    """The generator's per-mask filters, in the order they run: predicted IoU (before anything is
    upsampled), small-region clean-up of the low-res logits, stability score, crop edges.

    Attributes are those of :class:`~sam2kit.predict.automatic.MaskGenerator` (0 disables a filter).
    """

    pred_iou_thresh: float
    stability_score_thresh: float
    stability_score_offset: float
    mask_threshold: float
    min_mask_region_area: float

    def apply(
        self,
        iou_preds: torch.Tensor,
        low_res_of: Callable[[torch.Tensor], torch.Tensor],
        points: torch.Tensor,
        crop_box: list[int],
        orig_hw: tuple[int, int],
    ) -> Candidates:
        """Keep the masks of one batch of prompts that pass every filter.

        Args:
            iou_preds: ``(P*M,)`` predicted IoUs, point-major (M masks per prompt).
            low_res_of: mask indices ``(K,)`` -> their low-res logits ``(K, h4, w4)``; called once,
                with the masks that passed the IoU filter.
            points: ``(P, 2)`` float32 prompts, crop pixels.
            crop_box: the crop, XYXY image pixels. orig_hw: the image's (H, W).
        """
        x0, y0, x1, y1 = crop_box
        crop_hw = (y1 - y0, x1 - x0)
        num_masks = iou_preds.shape[0] // points.shape[0]
        point_of_mask = points.repeat_interleave(num_masks, dim=0)  # (P*M, 2)

        index = torch.arange(iou_preds.shape[0], device=iou_preds.device)
        if self.pred_iou_thresh > 0.0:
            index = index[iou_preds > self.pred_iou_thresh]
        low_res = low_res_of(index)  # (K, h4, w4)
        if self.min_mask_region_area > 0:
            # The reference predictor's clean-up, with its own (default) threshold 0.
            area = self.min_mask_region_area
            low_res = postprocess_low_res_masks(low_res[:, None], area, area, mask_threshold=0.0)[:, 0]

        kept, stability, boxes = [], [], []
        for chunk in chunks(torch.arange(len(index), device=index.device), crop_hw[0] * crop_hw[1]):
            logits = upsample_logits(low_res[chunk], crop_hw)  # (k, h, w)
            scores = calculate_stability_score(logits, self.mask_threshold, self.stability_score_offset)
            if self.stability_score_thresh > 0.0:
                passed = scores >= self.stability_score_thresh
                chunk, scores, logits = chunk[passed], scores[passed], logits[passed]
            kept.append(chunk)
            stability.append(scores)
            boxes.append(boxes_above(logits, self.mask_threshold).to(torch.int64))
        if kept:
            kept_t, stability_t, boxes_t = torch.cat(kept), torch.cat(stability), torch.cat(boxes)
        else:
            device = iou_preds.device
            kept_t = torch.zeros(0, dtype=torch.int64, device=device)
            stability_t = torch.zeros(0, device=device)
            boxes_t = torch.zeros((0, 4), dtype=torch.int64, device=device)
        orig_h, orig_w = orig_hw
        inside = ~is_box_near_crop_edge(boxes_t, crop_box, [0, 0, orig_w, orig_h])
        kept_t, stability_t, boxes_t = kept_t[inside], stability_t[inside], boxes_t[inside]
        mask_index = index[kept_t]
        return Candidates(
            low_res=low_res[kept_t],
            iou_preds=iou_preds[mask_index],
            stability=stability_t,
            points=point_of_mask[mask_index],
            boxes=boxes_t,
        )


def merge_crops(
    per_crop: Sequence[Candidates],
    crop_boxes: list[list[int]],
    image_hw: tuple[int, int],
    mask_threshold: float,
    crop_nms_thresh: float,
    device: torch.device,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Candidates of every crop (already de-duplicated within it) -> the final masks.

    Across crops, box NMS prefers masks from smaller crops. Returns ``(K, H, W)`` bool masks and
    their fields in image coordinates: ``boxes`` ``(K, 4)`` XYXY, ``crop_boxes`` ``(K, 4)`` XYXY,
    ``iou_preds`` / ``stability`` ``(K,)``, ``points`` ``(K, 2)``.
    """
    height, width = image_hw
    crop_index = torch.cat([
        torch.full((len(c.iou_preds),), i, dtype=torch.int64, device=device) for i, c in enumerate(per_crop)
    ])
    data = Candidates.cat(per_crop)
    crops = torch.tensor(crop_boxes, dtype=torch.int64, device=device)[crop_index]  # (K, 4)
    offsets = crops[:, :2]
    boxes = data.boxes + offsets.repeat(1, 2)  # to image coordinates
    points = data.points + offsets
    order = torch.arange(len(data.iou_preds), device=device)
    if len(crop_boxes) > 1:
        scores = 1 / ((crops[:, 2] - crops[:, 0]) * (crops[:, 3] - crops[:, 1]))
        order = batched_nms(boxes, scores, crop_nms_thresh)
    masks = torch.zeros((len(order), height, width), dtype=torch.bool, device=device)
    chosen_crop = crop_index[order]
    for index, crop_box in enumerate(crop_boxes):
        rows = (chosen_crop == index).nonzero().flatten()
        if len(rows) == 0:
            continue
        x0, y0, x1, y1 = crop_box
        for chunk in chunks(rows, (y1 - y0) * (x1 - x0)):
            logits = upsample_logits(data.low_res[order[chunk]], (y1 - y0, x1 - x0))
            masks[chunk, y0:y1, x0:x1] = logits > mask_threshold
    fields_out = {
        "boxes": boxes[order],
        "crop_boxes": crops[order],
        "iou_preds": data.iou_preds[order],
        "stability": data.stability[order],
        "points": points[order],
    }
    return masks, fields_out


def upsample_logits(low_res: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``(K, h4, w4)`` logits -> ``(K, H, W)``, bilinear as the reference predictor."""
    return F.interpolate(low_res[:, None], size, mode="bilinear", align_corners=False)[:, 0]


def boxes_above(logits: torch.Tensor, threshold: float) -> torch.Tensor:
    """XYXY int64 boxes ``(K, 4)`` of ``logits > threshold`` for ``(K, H, W)`` logits, as
    ``batched_mask_to_box`` gives them (empty masks: zeros), from row and column maxima."""
    rows_used = logits.amax(dim=-1) > threshold  # (K, H)
    cols_used = logits.amax(dim=-2) > threshold  # (K, W)
    return boxes_from_extent(rows_used, cols_used)


def chunks(index: torch.Tensor, pixels_per_mask: int) -> Iterator[torch.Tensor]:
    """Slices of ``index`` whose full-resolution float masks fit :data:`UPSAMPLE_CHUNK_ELEMENTS`."""
    step = max(1, UPSAMPLE_CHUNK_ELEMENTS // max(1, pixels_per_mask))
    for start in range(0, len(index), step):
        yield index[start : start + step]
