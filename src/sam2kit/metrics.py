"""Segmentation metrics: region similarity J, boundary F-measure, J&F of video sequences (the
DAVIS definitions, as also used by SA-V), and image mIoU.

- J of a mask is its IoU with the ground truth; two empty masks score 1 (nothing to find, nothing
  found), an empty prediction of a present object 0.
- F compares boundaries: the boundary pixels of each mask (DAVIS's ``seg2bmap``: a pixel whose
  right, lower or lower-right neighbour differs) are matched within a tolerance of
  ``ceil(0.008 * image diagonal)`` pixels (a disk-shaped dilation); precision is the share of
  predicted boundary pixels near a true boundary, recall the share of true boundary pixels near a
  predicted one, F their harmonic mean. Both boundaries empty: 1; only one empty: 0.
- A sequence's J (F) of an object is the mean over its frames, the sequence's J&F the mean of J and
  F over objects; the official benchmarks leave out the first frame (the prompt's) and the last.

Inputs are numpy arrays or torch tensors (bool, or anything where non-zero means inside); the
dilation runs in torch, on the tensors' device.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

__all__ = [
    "BOUNDARY_TOLERANCE",
    "SequenceScores",
    "region_similarity",
    "boundary_map",
    "boundary_f_measure",
    "sequence_j_and_f",
    "mean_j_and_f",
    "image_miou",
]

#: DAVIS's boundary tolerance, as a fraction of the image diagonal.
BOUNDARY_TOLERANCE = 0.008


def _as_bool(masks: Any, name: str) -> torch.Tensor:
    if isinstance(masks, np.ndarray):
        masks = torch.from_numpy(np.ascontiguousarray(masks))
    if not isinstance(masks, torch.Tensor):
        raise TypeError(f"{name} must be a numpy array or a torch tensor, got {type(masks).__name__}")
    return masks if masks.dtype == torch.bool else masks != 0


def _pair(pred: Any, gt: Any, min_ndim: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    pred_t, gt_t = _as_bool(pred, "pred"), _as_bool(gt, "gt")
    if pred_t.shape != gt_t.shape:
        raise ValueError(f"pred {tuple(pred_t.shape)} and gt {tuple(gt_t.shape)} must have the same shape")
    if pred_t.ndim < min_ndim:
        raise ValueError(f"masks must have at least {min_ndim} dimensions (..., H, W), got {tuple(pred_t.shape)}")
    return pred_t, gt_t.to(pred_t.device)


def region_similarity(pred: Any, gt: Any) -> np.ndarray:
    """J (IoU) of each mask: ``(..., H, W)`` pairs -> ``(...)`` float64 (0-d for one mask; use
    ``float()``). Empty prediction and empty ground truth: 1."""
    pred_t, gt_t = _pair(pred, gt)
    intersection = (pred_t & gt_t).flatten(-2).sum(-1).double()
    union = (pred_t | gt_t).flatten(-2).sum(-1).double()
    j = torch.where(union > 0, intersection / union.clamp(min=1), torch.ones_like(union))
    return j.cpu().numpy()


def boundary_map(masks: Any) -> torch.Tensor:
    """Boundary pixels (DAVIS ``seg2bmap`` at the same size): ``(..., H, W)`` -> bool, same shape.

    A pixel is on the boundary when it differs from its right, lower or lower-right neighbour
    (outside the image counts as background on the right and bottom edges only).
    """
    seg = _as_bool(masks, "masks")
    right = torch.zeros_like(seg)
    below = torch.zeros_like(seg)
    below_right = torch.zeros_like(seg)
    right[..., :, :-1] = seg[..., :, 1:]
    below[..., :-1, :] = seg[..., 1:, :]
    below_right[..., :-1, :-1] = seg[..., 1:, 1:]
    boundary = (seg ^ right) | (seg ^ below) | (seg ^ below_right)
    boundary[..., -1, :] = seg[..., -1, :] ^ right[..., -1, :]
    boundary[..., :, -1] = seg[..., :, -1] ^ below[..., :, -1]
    boundary[..., -1, -1] = False
    return boundary


def _tolerance_pixels(height: int, width: int, tolerance: float) -> int:
    """The dilation radius: ``tolerance`` pixels when >= 1, else that fraction of the diagonal."""
    return int(tolerance) if tolerance >= 1 else math.ceil(tolerance * math.hypot(height, width))


def _dilate(boundaries: torch.Tensor, radius: int) -> torch.Tensor:
    """Binary dilation of ``(B, H, W)`` bool by a disk of ``radius`` (x² + y² <= r²)."""
    if radius == 0:
        return boundaries
    offsets = torch.arange(-radius, radius + 1, device=boundaries.device, dtype=torch.float32)
    disk = (offsets[:, None] ** 2 + offsets[None, :] ** 2 <= radius**2).float()[None, None]
    hits = F.conv2d(boundaries[:, None].float(), disk, padding=radius)[:, 0]
    return hits > 0.5


def boundary_f_measure(pred: Any, gt: Any, tolerance: float = BOUNDARY_TOLERANCE) -> np.ndarray:
    """F (boundary F-measure) of each mask: ``(..., H, W)`` pairs -> ``(...)`` float64.

    Args:
        tolerance: matching distance, as a fraction of the image diagonal (< 1) or in pixels (>= 1).
    """
    pred_t, gt_t = _pair(pred, gt)
    shape = pred_t.shape[:-2]
    height, width = pred_t.shape[-2:]
    pred_b = boundary_map(pred_t).reshape(-1, height, width)
    gt_b = boundary_map(gt_t).reshape(-1, height, width)
    radius = _tolerance_pixels(height, width, tolerance)
    pred_near_gt = (pred_b & _dilate(gt_b, radius)).flatten(1).sum(-1).double()
    gt_near_pred = (gt_b & _dilate(pred_b, radius)).flatten(1).sum(-1).double()
    num_pred, num_gt = pred_b.flatten(1).sum(-1).double(), gt_b.flatten(1).sum(-1).double()
    precision = torch.where(num_pred > 0, pred_near_gt / num_pred.clamp(min=1), (num_gt == 0).double())
    recall = torch.where(num_gt > 0, gt_near_pred / num_gt.clamp(min=1), (num_pred == 0).double())
    total = precision + recall
    f = torch.where(total > 0, 2 * precision * recall / total.clamp(min=1e-12), torch.zeros_like(total))
    return f.reshape(shape).cpu().numpy()


@dataclass
class SequenceScores:
    """J and F of a video sequence.

    Attributes:
        j / f: ``(T', N)`` per evaluated frame and object.
        object_ids: the N objects' ids (0..N-1 unless given).
    """

    j: np.ndarray
    f: np.ndarray
    object_ids: list[int]

    @property
    def j_per_object(self) -> np.ndarray:
        """``(N,)`` mean J over the frames."""
        return self.j.mean(axis=0)

    @property
    def f_per_object(self) -> np.ndarray:
        """``(N,)`` mean F over the frames."""
        return self.f.mean(axis=0)

    @property
    def j_mean(self) -> float:
        return float(self.j_per_object.mean())

    @property
    def f_mean(self) -> float:
        return float(self.f_per_object.mean())

    @property
    def j_and_f(self) -> float:
        """(J + F) / 2, each the mean over objects of the per-object means over frames."""
        return (self.j_mean + self.f_mean) / 2


def sequence_j_and_f(
    pred: Any,
    gt: Any,
    *,
    skip_first_and_last: bool = True,
    tolerance: float = BOUNDARY_TOLERANCE,
    object_ids: Sequence[int] | None = None,
) -> SequenceScores:
    """J and F of a sequence: ``pred`` / ``gt`` ``(T, N, H, W)`` masks of N objects on T frames.

    Args:
        skip_first_and_last: leave out frame 0 (where the prompt is) and the last frame, as the
            DAVIS 2017 and SA-V benchmarks do.
        tolerance: boundary tolerance (see :func:`boundary_f_measure`).
        object_ids: names for the N objects, kept in the result.
    Raises:
        ValueError: shapes differ or are not 4-D, or no frame is left to evaluate.
    """
    pred_t, gt_t = _pair(pred, gt, min_ndim=4)
    if pred_t.ndim != 4:
        raise ValueError(f"sequence masks must have shape (T, N, H, W), got {tuple(pred_t.shape)}")
    if skip_first_and_last:
        pred_t, gt_t = pred_t[1:-1], gt_t[1:-1]
    if pred_t.shape[0] == 0 or pred_t.shape[1] == 0:
        hint = " (the first and last frames are skipped: pass skip_first_and_last=False)" if skip_first_and_last else ""
        raise ValueError(f"no frame or no object to evaluate{hint}")
    ids = list(object_ids) if object_ids is not None else list(range(pred_t.shape[1]))
    if len(ids) != pred_t.shape[1]:
        raise ValueError(f"{len(ids)} object_ids for {pred_t.shape[1]} objects")
    return SequenceScores(
        j=region_similarity(pred_t, gt_t), f=boundary_f_measure(pred_t, gt_t, tolerance), object_ids=ids
    )


def mean_j_and_f(sequences: Sequence[SequenceScores]) -> dict[str, float]:
    """Data-set figures: J, F and J&F averaged over every object of every sequence (the DAVIS
    "global" means). Raises ValueError for an empty list."""
    if not sequences:
        raise ValueError("no sequence to average")
    j = float(np.concatenate([s.j_per_object for s in sequences]).mean())
    f = float(np.concatenate([s.f_per_object for s in sequences]).mean())
    return {"J": j, "F": f, "J&F": (j + f) / 2}


def image_miou(preds: Any, gts: Any) -> float:
    """Mean IoU over masks: ``(N, H, W)`` arrays / tensors, or sequences of ``(H, W)`` masks of
    possibly different sizes (one per object or image). Empty / empty pairs count 1.

    Raises:
        ValueError: different numbers of masks or shapes, or no mask at all.
    """
    if isinstance(preds, (np.ndarray, torch.Tensor)) and isinstance(gts, (np.ndarray, torch.Tensor)):
        scores = np.atleast_1d(region_similarity(preds, gts)).ravel()
    else:
        preds, gts = list(preds), list(gts)
        if len(preds) != len(gts):
            raise ValueError(f"{len(preds)} predictions for {len(gts)} ground-truth masks")
        scores = np.array([float(region_similarity(p, g)) for p, g in zip(preds, gts, strict=True)])
    if scores.size == 0:
        raise ValueError("no mask to score")
    return float(scores.mean())
