"""The typed tensors that cross :class:`~sam2kit.modeling.sam2.SAM2Model`'s boundary.

Frame features in, prompts in, head and tracking-step outputs out, plus the two logit conventions
every caller shares. Plain dataclasses of tensors: no module, no state.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import torch

__all__ = [
    "NO_OBJ_SCORE",
    "LOW_RES_CLAMP",
    "FrameFeatures",
    "PointPrompts",
    "SamHeadOutput",
    "MemoryLike",
    "TrackStepOutput",
]

#: Logit given to every pixel of an object the decoder says is absent.
NO_OBJ_SCORE = -1024.0
#: Low-resolution logits handed back to the model as a mask prompt (a previous prediction refined
#: by new clicks, the automatic generator's mask-to-mask pass) are clamped to +-this, as the
#: reference does: a confident prediction must not dominate the new prompts.
LOW_RES_CLAMP = 32.0


@dataclass
class FrameFeatures:
    """Image features of one frame (or image), ready for the SAM heads and memory attention.

    Attributes:
        vision_feats: per level, sequence-first ``(H_i * W_i, B, C_i)``; levels at strides 4, 8, 16.
            The two high-resolution levels already went through the decoder's ``conv_s0`` / ``conv_s1``.
        vision_pos: matching position encodings ``(H_i * W_i, B, C)``.
        feat_sizes: ``(H_i, W_i)`` of each level.
        shared: results that depend on the frame only, not on the objects tracked on it (the memory
            attention's query, see :meth:`SAM2Model.memory_query`), computed once and reused by
            every batch of objects. :meth:`expand` keeps it, :meth:`select` starts a new one.
    """

    vision_feats: list[torch.Tensor]
    vision_pos: list[torch.Tensor]
    feat_sizes: list[tuple[int, int]]
    shared: dict[str, torch.Tensor] = field(default_factory=dict, repr=False)

    @property
    def batch_size(self) -> int:
        return self.vision_feats[-1].shape[1]

    def high_res_features(self) -> list[torch.Tensor]:
        """The skip features as ``(B, C_i, H_i, W_i)`` maps."""
        return [
            feat.permute(1, 2, 0).reshape(feat.shape[1], feat.shape[2], *size)
            for feat, size in zip(self.vision_feats[:-1], self.feat_sizes[:-1], strict=True)
        ]

    def select(self, index: torch.Tensor | slice | int) -> FrameFeatures:
        """Features of some batch entries (e.g. one image of a batch)."""
        if isinstance(index, int):
            index = slice(index, index + 1)
        return FrameFeatures(
            [f[:, index] for f in self.vision_feats], [p[:, index] for p in self.vision_pos], self.feat_sizes
        )

    def expand(self, batch: int) -> FrameFeatures:
        """Broadcast a single frame's features to ``batch`` objects (a view, no copy)."""
        if self.batch_size == batch:
            return self
        if self.batch_size != 1:
            raise ValueError(f"only single-frame features can be expanded, these hold {self.batch_size}")
        return FrameFeatures(
            [f.expand(-1, batch, -1) for f in self.vision_feats],
            [p.expand(-1, batch, -1) for p in self.vision_pos],
            self.feat_sizes,
            self.shared,
        )

    @property
    def is_single_frame(self) -> bool:
        """Whether every batch entry holds the same frame (batch 1, or an :meth:`expand` view)."""
        top = self.vision_feats[-1]
        return top.shape[1] == 1 or top.stride(1) == 0


@dataclass
class PointPrompts:
    """Point prompts in model-input pixels: ``coords`` ``(B, P, 2)`` float (x, y), ``labels`` ``(B, P)``
    int (1 positive, 0 negative, 2/3 box corners, -1 padding)."""

    coords: torch.Tensor
    labels: torch.Tensor


@dataclass
class SamHeadOutput:
    """Output of the SAM heads for B objects (M = 3 with multimask, else 1).

    Attributes:
        low_res_multimasks: ``(B, M, S/4, S/4)`` logits; high_res_multimasks: ``(B, M, S, S)``.
        ious: ``(B, M)``.
        low_res_masks / high_res_masks: the best of the M: ``(B, 1, S/4, S/4)`` / ``(B, 1, S, S)``.
        obj_ptr: ``(B, C)`` object pointer. object_score_logits: ``(B, 1)``.
    """

    low_res_multimasks: torch.Tensor
    high_res_multimasks: torch.Tensor
    ious: torch.Tensor
    low_res_masks: torch.Tensor
    high_res_masks: torch.Tensor
    obj_ptr: torch.Tensor
    object_score_logits: torch.Tensor


class MemoryLike(Protocol):
    """What track_step needs of a remembered frame (a batch of B objects)."""

    maskmem_features: torch.Tensor | None  # (B, mem_dim, H, W), may be stored in bfloat16
    maskmem_pos_enc: torch.Tensor | None  # (B, mem_dim, H, W)
    obj_ptr: torch.Tensor  # (B, C)


@dataclass
class TrackStepOutput:
    """Result of :meth:`SAM2Model.track_step` for one frame and B objects."""

    pred_masks: torch.Tensor  # (B, 1, S/4, S/4) low-res logits
    pred_masks_high_res: torch.Tensor  # (B, 1, S, S)
    obj_ptr: torch.Tensor  # (B, C)
    object_score_logits: torch.Tensor  # (B, 1)
    ious: torch.Tensor  # (B, M)
    # (B, M, S/4, S/4) logits of all M candidates (pred_masks is the chosen one); training's loss scores them
    multimasks: torch.Tensor | None = None
    maskmem_features: torch.Tensor | None = None  # (B, mem_dim, S/16, S/16)
    maskmem_pos_enc: torch.Tensor | None = None  # (B, mem_dim, S/16, S/16)
