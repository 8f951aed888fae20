"""SAM 2's training loss: focal + dice on mask logits, IoU regression and object-score BCE, summed
over the interactive steps of every frame.

Per interactive step (one prompt or correction click) the model predicts M candidate masks per
object (M = 3 with multimask output, else 1):

- mask losses: the sigmoid focal loss (mean over pixels) and the dice loss of each candidate; only
  the candidate with the lowest ``weights.mask * focal + weights.dice * dice`` is trained on them,
  so the candidates can specialise on the ambiguous parts, wholes and sub-parts of an object;
- IoU loss: the IoU head's prediction is regressed (L1, or MSE) onto the IoU between each
  candidate (logits > 0) and the target; on every candidate (the recipe's ``supervise_all_iou``)
  or only on the selected one;
- object-score loss: binary cross-entropy of the "object present" logit against "the target mask
  is not empty"; the mask and IoU losses of objects whose target is empty are dropped, since an
  absent object has no mask to learn.

Every term is divided by the number of objects of the batch (averaged over processes under
``torch.distributed``), summed over steps and frames, and weighted ``20 : 1 : 1 : 1`` (mask : dice :
iou : object score) by default, the official fine-tuning recipe.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "LossWeights",
    "StepOutput",
    "LossTerms",
    "SAM2Loss",
    "sigmoid_focal_loss",
    "dice_loss",
    "mask_iou",
    "global_num_objects",
]


@dataclass(frozen=True)
class LossWeights:
    """Weights of the four terms; defaults are the official recipe's (20 : 1 : 1 : 1)."""

    mask: float = 20.0  # focal loss
    dice: float = 1.0
    iou: float = 1.0
    object_score: float = 1.0


@dataclass
class StepOutput:
    """Predictions of one interactive step for N objects.

    Attributes:
        mask_logits: ``(N, M, H, W)`` candidate mask logits at the target's resolution.
        ious: ``(N, M)`` IoUs predicted by the IoU head.
        object_score_logits: ``(N, 1)`` "object present" logits.
    """

    mask_logits: torch.Tensor
    ious: torch.Tensor
    object_score_logits: torch.Tensor


@dataclass
class LossTerms:
    """Scalar losses: the four unweighted terms (each already divided by the number of objects and
    summed over steps and frames) and their weighted sum ``total``, the one to backpropagate."""

    total: torch.Tensor
    mask: torch.Tensor
    dice: torch.Tensor
    iou: torch.Tensor
    object_score: torch.Tensor


def sigmoid_focal_loss(
    logits: torch.Tensor, targets: torch.Tensor, alpha: float = 0.25, gamma: float = 2.0
) -> torch.Tensor:
    """Element-wise focal loss (Lin et al., 2017) of logits against {0, 1} targets (same shape).

    ``alpha`` weighs positives (``1 - alpha`` negatives; a negative ``alpha`` disables the weighting),
    ``gamma`` down-weighs easy pixels; ``gamma = 0`` and ``alpha < 0`` give plain BCE.
    """
    bce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    if gamma != 0:
        prob = torch.sigmoid(logits)
        prob_of_truth = prob * targets + (1 - prob) * (1 - targets)
        bce = bce * (1 - prob_of_truth) ** gamma
    if alpha >= 0:
        bce = bce * (alpha * targets + (1 - alpha) * (1 - targets))
    return bce


def dice_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Soft dice loss per mask: ``(..., H, W)`` logits and {0, 1} targets -> ``(...)``.

    ``1 - (2 |P ∩ T| + 1) / (|P| + |T| + 1)`` with ``P = sigmoid(logits)``; the +1 keeps an empty
    target against an empty prediction at 0.
    """
    prob = torch.sigmoid(logits).flatten(-2)
    targets = targets.flatten(-2)
    overlap = 2 * (prob * targets).sum(-1)
    return 1 - (overlap + 1) / (prob.sum(-1) + targets.sum(-1) + 1)


@torch.no_grad()
def mask_iou(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """IoU between binarised logits (> 0) and targets (> 0): ``(..., H, W)`` -> ``(...)`` float.

    An empty union counts as IoU 0 (the IoU head of an absent object is not trained anyway).
    """
    pred = (logits > 0).flatten(-2)
    truth = (targets > 0).flatten(-2)
    intersection = (pred & truth).sum(-1).float()
    union = (pred | truth).sum(-1).float()
    return intersection / union.clamp(min=1.0)


def global_num_objects(num_objects: int, device: torch.device) -> float:
    """Objects per process, averaged over all processes when ``torch.distributed`` is initialised
    (each process then divides by the same number, so summed gradients equal one big batch's);
    at least 1."""
    count = torch.tensor(float(num_objects), device=device)
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.all_reduce(count)
        count = count / torch.distributed.get_world_size()
    return max(float(count), 1.0)


class SAM2Loss(nn.Module):
    """The multi-step, multi-mask loss of SAM 2's training recipe.

    Args:
        weights: the weights of the mask (focal), dice, IoU and object-score terms.
        focal_alpha / focal_gamma: of the mask focal loss (recipe: 0.25 / 2).
        iou_loss: ``"l1"`` (recipe) or ``"mse"`` between predicted and real IoUs.
        supervise_all_iou: regress the IoU of every candidate (recipe), not only the selected one's.
        object_score: train the object-score head and drop the mask / IoU losses of objects whose
            target is empty (models with ``pred_obj_scores``, every SAM 2.1 preset). When False,
            every object counts as present and the object-score term is 0.
    Raises:
        ValueError: an unknown ``iou_loss``, or a negative weight.
    """

    def __init__(
        self,
        weights: LossWeights = LossWeights(),
        *,
        focal_alpha: float = 0.25,
        focal_gamma: float = 2.0,
        iou_loss: Literal["l1", "mse"] = "l1",
        supervise_all_iou: bool = True,
        object_score: bool = True,
    ) -> None:
        super().__init__()
        if iou_loss not in ("l1", "mse"):
            raise ValueError(f"iou_loss must be 'l1' or 'mse', got {iou_loss!r}")
        if min(weights.mask, weights.dice, weights.iou, weights.object_score) < 0:
            raise ValueError(f"loss weights must be >= 0, got {weights}")
        self.weights = weights
        self.focal_alpha = focal_alpha
        self.focal_gamma = focal_gamma
        self.iou_loss = iou_loss
        self.supervise_all_iou = supervise_all_iou
        self.object_score = object_score

    def forward(
        self,
        frames: Sequence[Sequence[StepOutput]],
        targets: torch.Tensor,
        num_objects: float | None = None,
    ) -> LossTerms:
        """Loss of a clip (or an image: one frame).

        Args:
            frames: per frame, the predictions of its interactive steps (first prompt, then each
                correction); a frame that was only tracked has one step.
            targets: ``(T, N, H, W)`` ground-truth masks (bool or {0, 1}), one per frame.
            num_objects: the normaliser; default: N, averaged over processes (see
                :func:`global_num_objects`).
        Raises:
            ValueError: the number of frames, or a step's shape, does not match ``targets``.
        """
        if targets.ndim != 4:
            raise ValueError(f"targets must have shape (T, N, H, W), got {tuple(targets.shape)}")
        if len(frames) != targets.shape[0]:
            raise ValueError(f"{len(frames)} frames of predictions for {targets.shape[0]} target frames")
        if num_objects is None:
            num_objects = global_num_objects(targets.shape[1], targets.device)
        zero = targets.new_zeros((), dtype=torch.float32)
        sums = {"mask": zero, "dice": zero, "iou": zero, "object_score": zero}
        for steps, target in zip(frames, targets, strict=True):
            for step in steps:
                for name, value in self.step_losses(step, target, num_objects).items():
                    sums[name] = sums[name] + value
        total = (
            self.weights.mask * sums["mask"]
            + self.weights.dice * sums["dice"]
            + self.weights.iou * sums["iou"]
            + self.weights.object_score * sums["object_score"]
        )
        return LossTerms(total=total, **sums)

    def step_losses(self, step: StepOutput, target: torch.Tensor, num_objects: float) -> dict[str, torch.Tensor]:
        """The four unweighted terms of one step: ``step`` for N objects, ``target`` ``(N, H, W)``."""
        logits = step.mask_logits.float()  # (N, M, H, W)
        if logits.ndim != 4 or logits.shape[0] != target.shape[0] or logits.shape[-2:] != target.shape[-2:]:
            raise ValueError(
                f"mask logits of shape {tuple(logits.shape)} do not match targets {tuple(target.shape)}: "
                "expected (N, M, H, W) with the targets' N, H, W"
            )
        truth = target.float()[:, None].expand_as(logits)  # (N, M, H, W)
        focal = sigmoid_focal_loss(logits, truth, self.focal_alpha, self.focal_gamma).flatten(2).mean(-1)
        focal = focal / num_objects  # (N, M)
        dice = dice_loss(logits, truth) / num_objects  # (N, M)
        iou_error = step.ious.float() - mask_iou(logits, truth)
        iou = (iou_error.abs() if self.iou_loss == "l1" else iou_error.square()) / num_objects  # (N, M)

        if logits.shape[1] > 1:
            # Only the best candidate learns the mask: the others stay free for other readings.
            best = (self.weights.mask * focal + self.weights.dice * dice).argmin(dim=1, keepdim=True)
            focal = focal.gather(1, best)
            dice = dice.gather(1, best)
            iou = iou.mean(dim=1, keepdim=True) if self.supervise_all_iou else iou.gather(1, best)

        if self.object_score:
            present = target.flatten(1).any(dim=1, keepdim=True).float()  # (N, 1)
            object_score = F.binary_cross_entropy_with_logits(
                step.object_score_logits.float(), present, reduction="none"
            )
            object_score = object_score.mean(dim=1).sum() / num_objects
            focal, dice, iou = focal * present, dice * present, iou * present
        else:
            object_score = logits.new_zeros(())
        return {"mask": focal.sum(), "dice": dice.sum(), "iou": iou.sum(), "object_score": object_score}
