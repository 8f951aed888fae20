"""Mask decoder: two-way transformer over prompt tokens and the image, hypernetwork mask heads,
IoU head, object-score head and high-resolution skip features."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .common import MLP, LayerNorm2d
from .transformer import TwoWayTransformer


@dataclass
class DecoderOutput:
    """Output of :class:`MaskDecoder` for a batch of B prompts (M = 3 with multimask, else 1).

    Attributes:
        masks: ``(B, M, 4H, 4W)`` low-resolution mask logits.
        iou_pred: ``(B, M)`` predicted IoU of each mask.
        sam_tokens: ``(B, M_tok, C)`` output mask tokens (source of the object pointer).
        object_score_logits: ``(B, 1)``; > 0 means the object is present.
    """

    masks: torch.Tensor
    iou_pred: torch.Tensor
    sam_tokens: torch.Tensor
    object_score_logits: torch.Tensor


def stability_score(mask_logits: torch.Tensor, delta: float) -> torch.Tensor:
    """IoU between the masks thresholded at ``+delta`` and ``-delta``: ``(..., H, W)`` -> ``(...)``."""
    flat = mask_logits.flatten(-2)
    inner = (flat > delta).sum(-1).float()
    outer = (flat > -delta).sum(-1).float()
    return torch.where(outer > 0, inner / outer, 1.0)


class MaskDecoder(nn.Module):
    """Predicts masks from image embeddings and prompt embeddings.

    Output tokens, in order: [object-score token,] IoU token, 1 + ``num_multimask_outputs`` mask
    tokens. Token 0's mask is the single-mask answer; tokens 1-3 the multimask answers.
    """

    def __init__(
        self,
        transformer_dim: int = 256,
        transformer: TwoWayTransformer | None = None,
        num_multimask_outputs: int = 3,
        iou_head_depth: int = 3,
        iou_head_hidden_dim: int = 256,
        use_high_res_features: bool = True,
        iou_prediction_use_sigmoid: bool = True,
        dynamic_multimask_via_stability: bool = True,
        dynamic_multimask_stability_delta: float = 0.05,
        dynamic_multimask_stability_thresh: float = 0.98,
        pred_obj_scores: bool = True,
        pred_obj_scores_mlp: bool = True,
        use_multimask_token_for_obj_ptr: bool = True,
    ) -> None:
        super().__init__()
        dim = transformer_dim
        self.transformer = transformer or TwoWayTransformer(embedding_dim=dim)
        self.num_mask_tokens = num_multimask_outputs + 1
        self.iou_token = nn.Embedding(1, dim)
        self.mask_tokens = nn.Embedding(self.num_mask_tokens, dim)
        self.pred_obj_scores = pred_obj_scores
        if pred_obj_scores:
            self.obj_score_token = nn.Embedding(1, dim)
        self.use_multimask_token_for_obj_ptr = use_multimask_token_for_obj_ptr
        self.output_upscaling = nn.Sequential(
            nn.ConvTranspose2d(dim, dim // 4, kernel_size=2, stride=2),
            LayerNorm2d(dim // 4),
            nn.GELU(),
            nn.ConvTranspose2d(dim // 4, dim // 8, kernel_size=2, stride=2),
            nn.GELU(),
        )
        self.use_high_res_features = use_high_res_features
        if use_high_res_features:
            # Applied to the stride-4 / stride-8 FPN levels once per image (see SAM2Model.forward_image).
            self.conv_s0 = nn.Conv2d(dim, dim // 8, kernel_size=1)
            self.conv_s1 = nn.Conv2d(dim, dim // 4, kernel_size=1)
        self.output_hypernetworks_mlps = nn.ModuleList(
            MLP(dim, dim, dim // 8, 3) for _ in range(self.num_mask_tokens)
        )
        self.iou_prediction_head = MLP(
            dim, iou_head_hidden_dim, self.num_mask_tokens, iou_head_depth, sigmoid_output=iou_prediction_use_sigmoid
        )
        if pred_obj_scores:
            self.pred_obj_score_head = MLP(dim, dim, 1, 3) if pred_obj_scores_mlp else nn.Linear(dim, 1)
        self.dynamic_multimask_via_stability = dynamic_multimask_via_stability
        self.dynamic_multimask_stability_delta = dynamic_multimask_stability_delta
        self.dynamic_multimask_stability_thresh = dynamic_multimask_stability_thresh

    def forward(
        self,
        image_embeddings: torch.Tensor,
        image_pe: torch.Tensor,
        sparse_prompt_embeddings: torch.Tensor,
        dense_prompt_embeddings: torch.Tensor,
        multimask_output: bool,
        repeat_image: bool,
        high_res_features: list[torch.Tensor] | None = None,
    ) -> DecoderOutput:
        """Predict masks.

        Args:
            image_embeddings: ``(B_img, C, H, W)``; repeated to the prompt batch if ``repeat_image``.
            image_pe: ``(1, C, H, W)`` dense position encoding.
            sparse_prompt_embeddings: ``(B, N, C)``.
            dense_prompt_embeddings: ``(B, C, H, W)``.
            multimask_output: return the 3 multimask outputs instead of one mask.
            high_res_features: ``[(B_img, C/8, 4H, 4W), (B_img, C/4, 2H, 2W)]`` skip features.
        """
        masks, iou_pred, mask_tokens_out, object_score_logits = self._predict_masks(
            image_embeddings,
            image_pe,
            sparse_prompt_embeddings,
            dense_prompt_embeddings,
            repeat_image,
            high_res_features,
        )
        if multimask_output:
            masks, iou_pred = masks[:, 1:], iou_pred[:, 1:]
        elif self.dynamic_multimask_via_stability and not self.training:
            masks, iou_pred = self._select_stable_mask(masks, iou_pred)
        else:
            masks, iou_pred = masks[:, 0:1], iou_pred[:, 0:1]
        if multimask_output and self.use_multimask_token_for_obj_ptr:
            sam_tokens = mask_tokens_out[:, 1:]
        else:
            sam_tokens = mask_tokens_out[:, 0:1]
        return DecoderOutput(masks, iou_pred, sam_tokens, object_score_logits)

    def _predict_masks(
        self,
        image_embeddings: torch.Tensor,
        image_pe: torch.Tensor,
        sparse_prompt_embeddings: torch.Tensor,
        dense_prompt_embeddings: torch.Tensor,
        repeat_image: bool,
        high_res_features: list[torch.Tensor] | None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        weights = [self.iou_token.weight, self.mask_tokens.weight]
        if self.pred_obj_scores:
            weights.insert(0, self.obj_score_token.weight)
        first = 1 if self.pred_obj_scores else 0
        batch = sparse_prompt_embeddings.shape[0]
        output_tokens = torch.cat(weights, dim=0).unsqueeze(0).expand(batch, -1, -1)
        tokens = torch.cat((output_tokens, sparse_prompt_embeddings), dim=1)

        if repeat_image:
            src = torch.repeat_interleave(image_embeddings, batch, dim=0)
        else:
            src = image_embeddings
        src = src + dense_prompt_embeddings
        pos_src = image_pe.expand(batch, -1, -1, -1)
        b, c, h, w = src.shape

        hs, src = self.transformer(src, pos_src, tokens)
        iou_token_out = hs[:, first]
        mask_tokens_out = hs[:, first + 1 : first + 1 + self.num_mask_tokens]

        src = src.transpose(1, 2).reshape(b, c, h, w)
        deconv1, norm1, act1, deconv2, act2 = self.output_upscaling
        if self.use_high_res_features and high_res_features is not None:
            feat_s0, feat_s1 = high_res_features  # a batch of 1 broadcasts over the prompts
            upscaled = act1(norm1(deconv1(src) + feat_s1))
            upscaled = act2(deconv2(upscaled) + feat_s0)
        else:
            upscaled = act2(deconv2(act1(norm1(deconv1(src)))))

        hyper_in = torch.stack(
            [mlp(mask_tokens_out[:, i]) for i, mlp in enumerate(self.output_hypernetworks_mlps)], dim=1
        )  # (B, num_mask_tokens, C/8)
        b, c, h, w = upscaled.shape
        masks = (hyper_in @ upscaled.view(b, c, h * w)).view(b, -1, h, w)
        iou_pred = self.iou_prediction_head(iou_token_out)
        if self.pred_obj_scores:
            object_score_logits = self.pred_obj_score_head(hs[:, 0])
        else:
            object_score_logits = iou_pred.new_full((iou_pred.shape[0], 1), 10.0)
        return masks, iou_pred, mask_tokens_out, object_score_logits

    def _select_stable_mask(
        self, all_masks: torch.Tensor, all_ious: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Keep the single-mask output where it is stable; else fall back to the best multimask."""
        multi_masks, multi_ious = all_masks[:, 1:], all_ious[:, 1:]
        best = multi_ious.argmax(dim=-1)
        rows = torch.arange(multi_ious.shape[0], device=all_ious.device)
        best_masks = multi_masks[rows, best].unsqueeze(1)
        best_ious = multi_ious[rows, best].unsqueeze(1)
        single_masks, single_ious = all_masks[:, 0:1], all_ious[:, 0:1]
        stable = stability_score(single_masks, self.dynamic_multimask_stability_delta)
        stable = stable >= self.dynamic_multimask_stability_thresh  # (B, 1)
        masks = torch.where(stable[..., None, None].expand_as(single_masks), single_masks, best_masks)
        ious = torch.where(stable.expand_as(single_ious), single_ious, best_ious)
        return masks, ious
