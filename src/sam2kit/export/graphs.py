"""The four exportable graphs of a :class:`~sam2kit.modeling.sam2.SAM2Model`, as plain modules.

Each wraps the model's own sub-modules with a tensor-only signature (no dataclasses, no Python
lists, no optional arguments), so that it traces into one ONNX graph:

- :class:`ImageEncoderGraph`: trunk + neck -> the raw multi-scale features (no memory folded in);
- :class:`PromptDecoderGraph`: prompt encoder + mask decoder + object pointer;
- :class:`MemoryAttentionGraph`: conditions a frame's features on its memories and object pointers;
- :class:`MemoryEncoderGraph`: a frame's features + its predicted masks -> its memory.

The no-memory embedding (what a frame without memory gets instead of memory attention) is not in
any graph: it is a constant of the manifest, added by the caller where the tracking loop needs it.
Shapes: ``S`` the input size, ``C`` ``d_model``, ``H = W = S / 16``, ``B`` objects, ``N`` points,
``M`` remembered frames, ``P`` object pointers.
"""

from __future__ import annotations

import torch
from torch import nn

from ..modeling.position import sine_encoding_1d
from ..modeling.sam2 import SAM2Model
from ..modeling.tracking import apply_non_overlapping_constraints

__all__ = ["GRAPHS", "ImageEncoderGraph", "MemoryAttentionGraph", "MemoryEncoderGraph", "PromptDecoderGraph"]


def _grid(model: SAM2Model) -> int:
    """Side of the top-level feature map, ``S / 16``."""
    return model.image_size // model.config.backbone_stride


def _to_sequence(feature_map: torch.Tensor) -> torch.Tensor:
    """``(B, C, H, W)`` -> sequence-first ``(HW, B, C)``, as the model keeps features."""
    return feature_map.flatten(2).permute(2, 0, 1)


class ImageEncoderGraph(nn.Module):
    """``image`` ``(1, 3, S, S)`` normalised -> ``high_res_feat0`` ``(1, C/8, S/4, S/4)``,
    ``high_res_feat1`` ``(1, C/4, S/8, S/8)`` (already through the decoder's ``conv_s0`` /
    ``conv_s1``) and ``image_embed`` ``(1, C, H, W)``, the raw top level."""

    name = "image_encoder"
    input_names = ("image",)
    output_names = ("high_res_feat0", "high_res_feat1", "image_embed")
    dynamic_axes: dict[str, dict[int, str]] = {}

    def __init__(self, model: SAM2Model) -> None:
        super().__init__()
        self.model = model

    def example_inputs(self) -> tuple[torch.Tensor, ...]:
        size = self.model.image_size
        return (torch.randn(1, 3, size, size),)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        features = self.model.forward_image(image)
        feat_s0, feat_s1 = features.high_res_features()
        h, w = features.feat_sizes[-1]
        top = features.vision_feats[-1]  # (HW, 1, C)
        return feat_s0, feat_s1, top.permute(1, 2, 0).reshape(top.shape[1], top.shape[2], h, w)


class PromptDecoderGraph(nn.Module):
    """Prompt encoder + mask decoder (+ object pointer) for ``B`` prompts.

    Inputs: ``image_embed`` ``(1, C, H, W)`` (plus the no-memory embedding for a lone image, or the
    output of :class:`MemoryAttentionGraph`, then ``(B, C, H, W)``); ``high_res_feat0`` /
    ``high_res_feat1`` of the image; ``point_coords`` ``(B, N, 2)`` float (x, y) in model-input
    pixels and ``point_labels`` ``(B, N)`` int32 (1 positive, 0 negative, 2 / 3 box corners, -1
    padding): the tokens as given, so the caller appends the padding point (0, 0) / -1 that the
    model adds to prompts without a box; ``mask_input`` ``(B, 1, 4H, 4W)`` low-res logits, used
    where ``has_mask_input`` ``(1,)`` is 1 (0: no mask prompt).

    Outputs: ``masks`` ``(B, 1, 4H, 4W)`` and ``iou_predictions`` ``(B, 1)``, the single-mask answer
    (the model's stability fallback included); ``multimasks`` ``(B, 3, 4H, 4W)`` and
    ``multimask_iou_predictions`` ``(B, 3)``; ``object_score_logits`` ``(B, 1)``; ``obj_ptr`` and
    ``multimask_obj_ptr`` ``(B, C)``, the object pointer of either answer. Mask logits are the
    decoder's, before the "absent object" fill of the tracking step.
    """

    name = "prompt_decoder"
    input_names = ("image_embed", "high_res_feat0", "high_res_feat1", "point_coords", "point_labels",
                   "mask_input", "has_mask_input")
    output_names = ("masks", "iou_predictions", "multimasks", "multimask_iou_predictions",
                    "object_score_logits", "obj_ptr", "multimask_obj_ptr")
    dynamic_axes = {
        "image_embed": {0: "objects"},
        "point_coords": {0: "objects", 1: "points"},
        "point_labels": {0: "objects", 1: "points"},
        "mask_input": {0: "objects"},
    }

    def __init__(self, model: SAM2Model) -> None:
        super().__init__()
        self.model = model

    def example_inputs(self) -> tuple[torch.Tensor, ...]:
        # Dynamic sizes must be >= 2 in the example: torch.export specialises sizes 0 and 1.
        size, channels, grid = self.model.image_size, self.model.hidden_dim, _grid(self.model)
        return (
            torch.randn(2, channels, grid, grid),
            torch.randn(1, channels // 8, 4 * grid, 4 * grid),
            torch.randn(1, channels // 4, 2 * grid, 2 * grid),
            torch.rand(2, 3, 2) * size,
            torch.tensor([[1, 0, -1], [2, 3, 1]], dtype=torch.int32),
            torch.randn(2, 1, 4 * grid, 4 * grid),
            torch.ones(1),
        )

    def forward(
        self,
        image_embed: torch.Tensor,
        high_res_feat0: torch.Tensor,
        high_res_feat1: torch.Tensor,
        point_coords: torch.Tensor,
        point_labels: torch.Tensor,
        mask_input: torch.Tensor,
        has_mask_input: torch.Tensor,
    ) -> tuple[torch.Tensor, ...]:
        model = self.model
        prompt_encoder, decoder = model.sam_prompt_encoder, model.sam_mask_decoder
        sparse = prompt_encoder.embed_points(point_coords, point_labels, pad=False)
        batch = sparse.shape[0]
        h, w = prompt_encoder.image_embedding_size
        no_mask = prompt_encoder.no_mask_embed.weight.reshape(1, -1, 1, 1).expand(batch, -1, h, w)
        has_mask = has_mask_input.reshape(1, 1, 1, 1)
        dense = has_mask * prompt_encoder.mask_downscaling(mask_input) + (1 - has_mask) * no_mask
        all_masks, all_ious, mask_tokens, object_score_logits = decoder._predict_masks(
            image_embed, prompt_encoder.get_dense_pe(), sparse, dense, False, [high_res_feat0, high_res_feat1]
        )
        if decoder.dynamic_multimask_via_stability:
            masks, ious = decoder._select_stable_mask(all_masks, all_ious)
        else:
            masks, ious = all_masks[:, 0:1], all_ious[:, 0:1]
        multimasks, multimask_ious = all_masks[:, 1:], all_ious[:, 1:]
        best = multimask_ious.argmax(dim=-1)
        rows = torch.arange(batch, device=best.device)
        multimask_token = mask_tokens[rows, best + 1] if decoder.use_multimask_token_for_obj_ptr else mask_tokens[:, 0]
        obj_ptr = self._object_pointer(mask_tokens[:, 0], object_score_logits)
        multimask_obj_ptr = self._object_pointer(multimask_token, object_score_logits)
        return masks, ious, multimasks, multimask_ious, object_score_logits, obj_ptr, multimask_obj_ptr

    def _object_pointer(self, sam_token: torch.Tensor, object_score_logits: torch.Tensor) -> torch.Tensor:
        """As :meth:`SAM2Model.forward_sam_heads`: ``(B, C)`` token -> ``(B, C)`` pointer."""
        model = self.model
        obj_ptr = model.obj_ptr_proj(sam_token)
        if model.config.pred_obj_scores:
            if model.config.soft_no_obj_ptr:
                appearing = object_score_logits.sigmoid()
            else:
                appearing = (object_score_logits > 0).float()
            obj_ptr = model._blend_no_obj_ptr(obj_ptr, appearing)
        return obj_ptr


class MemoryAttentionGraph(nn.Module):
    """Memory-conditioned features of a frame for ``B`` objects.

    Inputs: ``image_embed`` ``(1, C, H, W)`` the frame's raw top level; ``memory`` and ``memory_pos``
    ``(M, B, mem_dim, H, W)``: the remembered frames' ``maskmem_features`` / ``maskmem_pos_enc``;
    ``memory_slot`` ``(M,)`` int64: each memory's temporal slot (0 for a conditioning frame, else
    ``t_pos`` in 1 .. num_maskmem - 1, see :func:`~sam2kit.modeling.tracking.memory_frame_offsets`);
    ``obj_ptrs`` ``(P, B, C)`` object pointers and ``obj_ptr_pos`` ``(P,)`` float their temporal
    distances divided by ``max_ptrs - 1`` (see :func:`~sam2kit.modeling.tracking.object_pointer_frames`).

    Output: ``pix_feat`` ``(B, C, H, W)``, the input of :class:`PromptDecoderGraph`.
    """

    name = "memory_attention"
    input_names = ("image_embed", "memory", "memory_pos", "memory_slot", "obj_ptrs", "obj_ptr_pos")
    output_names = ("pix_feat",)
    dynamic_axes = {
        "memory": {0: "memories", 1: "objects"},
        "memory_pos": {0: "memories", 1: "objects"},
        "memory_slot": {0: "memories"},
        "obj_ptrs": {0: "pointers", 1: "objects"},
        "obj_ptr_pos": {0: "pointers"},
    }

    def __init__(self, model: SAM2Model) -> None:
        super().__init__()
        self.model = model

    def example_inputs(self) -> tuple[torch.Tensor, ...]:
        channels, mem_dim, grid = self.model.hidden_dim, self.model.mem_dim, _grid(self.model)
        return (
            torch.randn(1, channels, grid, grid),
            torch.randn(3, 2, mem_dim, grid, grid),
            torch.randn(3, 2, mem_dim, grid, grid),
            torch.tensor([0, self.model.num_maskmem - 2, self.model.num_maskmem - 1]),
            torch.randn(2, 2, channels),
            torch.tensor([0.0, 0.5]),
        )

    def forward(
        self,
        image_embed: torch.Tensor,
        memory: torch.Tensor,
        memory_pos: torch.Tensor,
        memory_slot: torch.Tensor,
        obj_ptrs: torch.Tensor,
        obj_ptr_pos: torch.Tensor,
    ) -> torch.Tensor:
        model, config = self.model, self.model.config
        hidden, mem_dim = model.hidden_dim, model.mem_dim
        batch = memory.shape[1]
        _, _, h, w = image_embed.shape
        image_pos = model.image_encoder.neck.position_encoding(image_embed)
        query = model.memory_attention.encode_query(_to_sequence(image_embed), _to_sequence(image_pos))

        # (M, B, mem_dim, H, W) -> (M * HW, B, mem_dim), each frame's tokens in a row
        tokens = memory.flatten(3).permute(0, 3, 1, 2).flatten(0, 1)
        slot_enc = model.maskmem_tpos_enc[config.num_maskmem - memory_slot - 1]  # (M, 1, 1, mem_dim)
        token_pos = (memory_pos.flatten(3).permute(0, 3, 1, 2) + slot_enc).flatten(0, 1)

        if config.add_tpos_enc_to_obj_ptrs:
            tpos_dim = hidden if config.proj_tpos_enc_in_obj_ptrs else mem_dim
            ptr_pos = model.obj_ptr_tpos_proj(sine_encoding_1d(obj_ptr_pos, tpos_dim))  # (P, mem_dim)
            ptr_pos = ptr_pos.unsqueeze(1).expand(-1, batch, mem_dim)
        else:
            ptr_pos = obj_ptrs.new_zeros(obj_ptrs.shape[0], batch, mem_dim)
        ptr_tokens = obj_ptrs
        if mem_dim < hidden:  # each pointer becomes hidden / mem_dim tokens
            split = hidden // mem_dim
            ptr_tokens = obj_ptrs.reshape(-1, batch, split, mem_dim).permute(0, 2, 1, 3).flatten(0, 1)
            # the same encoding for each part (repeat_interleave, as broadcast: no data-dependent shape)
            ptr_pos = ptr_pos.unsqueeze(1).expand(-1, split, -1, -1).flatten(0, 1)

        fused = model.memory_attention(
            curr=None,
            curr_pos=None,
            memory=torch.cat([tokens, ptr_tokens], dim=0),
            memory_pos=torch.cat([token_pos, ptr_pos], dim=0),
            num_obj_ptr_tokens=ptr_tokens.shape[0],
            query=query,
        )  # (HW, B, C)
        return fused.permute(1, 2, 0).reshape(batch, hidden, h, w)


class MemoryEncoderGraph(nn.Module):
    """The memory of a frame for ``B`` objects.

    Inputs: ``image_embed`` ``(1, C, H, W)`` the frame's raw top level; ``mask_logits`` ``(B, 1, S, S)``
    the predicted high-resolution logits; ``object_score_logits`` ``(B, 1)``; ``mask_from_points``
    ``(1,)`` bool: the masks answer point prompts on this frame (then binarised, as the model does).

    Outputs: ``maskmem_features`` and ``maskmem_pos_enc`` ``(B, mem_dim, H, W)``.
    """

    name = "memory_encoder"
    input_names = ("image_embed", "mask_logits", "object_score_logits", "mask_from_points")
    output_names = ("maskmem_features", "maskmem_pos_enc")
    dynamic_axes = {"mask_logits": {0: "objects"}, "object_score_logits": {0: "objects"}}

    def __init__(self, model: SAM2Model) -> None:
        super().__init__()
        self.model = model

    def example_inputs(self) -> tuple[torch.Tensor, ...]:
        size, channels, grid = self.model.image_size, self.model.hidden_dim, _grid(self.model)
        return (torch.randn(1, channels, grid, grid), torch.randn(2, 1, size, size), torch.randn(2, 1),
                torch.tensor([True]))

    def forward(
        self,
        image_embed: torch.Tensor,
        mask_logits: torch.Tensor,
        object_score_logits: torch.Tensor,
        mask_from_points: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        model, config = self.model, self.model.config
        if config.non_overlap_masks_for_mem_enc:
            mask_logits = apply_non_overlapping_constraints(mask_logits)
        mask_for_mem = torch.sigmoid(mask_logits)
        if config.binarize_mask_from_pts_for_mem_enc:
            mask_for_mem = torch.where(mask_from_points.reshape(1, 1, 1, 1), (mask_logits > 0).float(), mask_for_mem)
        mask_for_mem = mask_for_mem * config.sigmoid_scale_for_mem_enc + config.sigmoid_bias_for_mem_enc
        features, pos_enc = model.memory_encoder(image_embed, mask_for_mem, skip_mask_sigmoid=True)
        if model.no_obj_embed_spatial is not None:
            absent = (object_score_logits <= 0).float()  # (B, 1)
            features = features + absent[..., None, None] * model.no_obj_embed_spatial[..., None, None]
        return features, pos_enc


#: The exported graphs, in the order of the tracking loop.
GRAPHS: tuple[type[ImageEncoderGraph | PromptDecoderGraph | MemoryAttentionGraph | MemoryEncoderGraph], ...] = (
    ImageEncoderGraph,
    MemoryAttentionGraph,
    PromptDecoderGraph,
    MemoryEncoderGraph,
)
