"""SAM2Model: the SAM 2 network, built from its typed :class:`~sam2kit.config.SAM2Config`.

Two paths share the image encoder and the SAM heads (prompt encoder + mask decoder + object
pointer):

- the image path: :meth:`SAM2Model.forward_image` -> :meth:`~SAM2Model.image_embedding_without_memory`
  -> :meth:`~SAM2Model.forward_sam_heads`;
- the tracking step, :meth:`SAM2Model.track_step`: the frame's features are first conditioned on
  remembered frames (memory attention over their memories and object pointers), then decoded,
  then encoded into the frame's own memory. That memory side lives in :mod:`.tracking`.

The model sees tensors only (:mod:`.structures`). Tracking state (which frames are remembered)
belongs to the predictors, which pass the memories to :meth:`SAM2Model.track_step` as plain
mappings ``frame_idx -> entry``.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from ..config import SAM2Config
from . import tracking
from .common import MLP
from .mask_decoder import MaskDecoder
from .memory_attention import MemoryAttention
from .memory_encoder import MemoryEncoder
from .neck import build_image_encoder
from .prompt_encoder import PromptEncoder
from .structures import (
    LOW_RES_CLAMP,
    NO_OBJ_SCORE,
    FrameFeatures,
    MemoryLike,
    PointPrompts,
    SamHeadOutput,
    TrackStepOutput,
)
from .tracking import apply_non_overlapping_constraints, select_closest_cond_frames
from .transformer import TwoWayTransformer

__all__ = [
    "SAM2Model",
    # Re-exported: the model's inputs and outputs, and the tracking helpers, by their old address.
    "LOW_RES_CLAMP",
    "NO_OBJ_SCORE",
    "FrameFeatures",
    "MemoryLike",
    "PointPrompts",
    "SamHeadOutput",
    "TrackStepOutput",
    "apply_non_overlapping_constraints",
    "select_closest_cond_frames",
]


class SAM2Model(nn.Module):
    """The SAM 2 model. Build it with :func:`sam2kit.build_model` (which also loads weights), or
    directly as ``SAM2Model(config)`` (random weights); every option is a field of
    :class:`~sam2kit.config.SAM2Config` and is read from :attr:`config`.

    Parameter names are the official checkpoint keys.
    """

    def __init__(self, config: SAM2Config | None = None) -> None:
        super().__init__()
        config = SAM2Config() if config is None else config
        if not isinstance(config, SAM2Config):
            raise TypeError(f"config must be a SAM2Config, got {type(config).__name__}")
        self.config = config
        hidden, mem_dim = config.d_model, config.mem_dim
        # The creation order fixes what a seeded random init gives (tests rely on it): keep it.
        self.image_encoder = build_image_encoder(config)
        self.memory_attention = MemoryAttention(
            d_model=hidden,
            num_layers=config.memory_attention_layers,
            dim_feedforward=config.memory_attention_ffn_dim,
            num_heads=config.memory_attention_heads,
            kv_in_dim=mem_dim,
            rope_theta=config.rope_theta,
            dropout=config.memory_attention_dropout,
        )
        self.memory_encoder = MemoryEncoder(out_dim=mem_dim, in_dim=hidden)

        self.maskmem_tpos_enc = nn.Parameter(torch.zeros(config.num_maskmem, 1, 1, mem_dim))
        self.no_mem_embed = nn.Parameter(torch.zeros(1, 1, hidden))
        self.no_mem_pos_enc = nn.Parameter(torch.zeros(1, 1, hidden))
        if config.use_obj_ptrs_in_encoder:
            # Mask prompts enter the SAM heads at 1/4 scale when computing their object pointer.
            self.mask_downsample = nn.Conv2d(1, 1, kernel_size=4, stride=4)
        if config.pred_obj_scores and config.use_obj_ptrs_in_encoder:
            self.no_obj_ptr = nn.Parameter(torch.zeros(1, hidden))
        self.no_obj_embed_spatial = nn.Parameter(torch.zeros(1, mem_dim)) if config.no_obj_embed_spatial else None

        embed_size = config.image_size // config.backbone_stride
        self.sam_prompt_encoder = PromptEncoder(
            embed_dim=hidden,
            image_embedding_size=(embed_size, embed_size),
            input_image_size=(config.image_size, config.image_size),
            mask_in_chans=16,
        )
        self.sam_mask_decoder = MaskDecoder(
            transformer_dim=hidden,
            transformer=TwoWayTransformer(depth=2, embedding_dim=hidden, mlp_dim=2048, num_heads=8),
            num_multimask_outputs=3,
            iou_head_depth=3,
            iou_head_hidden_dim=256,
            use_high_res_features=config.use_high_res_features_in_sam,
            iou_prediction_use_sigmoid=config.iou_prediction_use_sigmoid,
            dynamic_multimask_via_stability=config.dynamic_multimask_via_stability,
            dynamic_multimask_stability_delta=config.dynamic_multimask_stability_delta,
            dynamic_multimask_stability_thresh=config.dynamic_multimask_stability_thresh,
            pred_obj_scores=config.pred_obj_scores,
            pred_obj_scores_mlp=config.pred_obj_scores_mlp,
            use_multimask_token_for_obj_ptr=config.use_multimask_token_for_obj_ptr,
        )
        if not config.use_obj_ptrs_in_encoder:
            self.obj_ptr_proj: nn.Module = nn.Identity()
        elif config.use_mlp_for_obj_ptr_proj:
            self.obj_ptr_proj = MLP(hidden, hidden, hidden, 3)
        else:
            self.obj_ptr_proj = nn.Linear(hidden, hidden)
        self.obj_ptr_tpos_proj = nn.Linear(hidden, mem_dim) if config.proj_tpos_enc_in_obj_ptrs else nn.Identity()

    # ------------------------------------------------------------------ sizes read by the predictors
    @property
    def image_size(self) -> int:
        """Side of the square model input, pixels."""
        return self.config.image_size

    @property
    def hidden_dim(self) -> int:
        """Width of the image features and of the SAM heads' tokens."""
        return self.config.d_model

    @property
    def mem_dim(self) -> int:
        """Width of the memory features."""
        return self.config.mem_dim

    @property
    def num_maskmem(self) -> int:
        """Memory slots: one for the conditioning frames plus ``num_maskmem - 1`` recent frames."""
        return self.config.num_maskmem

    @property
    def memory_temporal_stride_for_eval(self) -> int:
        return self.config.memory_temporal_stride_for_eval

    @property
    def max_obj_ptrs_in_encoder(self) -> int:
        return self.config.max_obj_ptrs_in_encoder

    @property
    def num_feature_levels(self) -> int:
        """Feature levels handed to the heads: 3 with the high-resolution skips, else 1."""
        return 3 if self.config.use_high_res_features_in_sam else 1

    @property
    def device(self) -> torch.device:
        return self.no_mem_embed.device

    @property
    def compute_dtype(self) -> torch.dtype:
        """The dtype of the image encoder and the memory attention (see :meth:`set_precision`)."""
        return self.memory_attention.norm.weight.dtype

    def set_precision(self, dtype: torch.dtype) -> SAM2Model:
        """Run the image encoder and the memory attention, where nearly all the FLOPs are, in
        ``dtype`` (``torch.bfloat16``, ``torch.float16`` or ``torch.float32``). The prompt encoder,
        mask decoder, memory encoder and object pointers stay in float32, and every tensor the
        model returns is float32. Returns ``self``."""
        if dtype not in (torch.float32, torch.bfloat16, torch.float16):
            raise ValueError(f"precision must be float32, bfloat16 or float16, got {dtype}")
        self.image_encoder.to(dtype)
        self.memory_attention.to(dtype)
        return self

    # ------------------------------------------------------------------ image features
    def forward_image(self, images: torch.Tensor) -> FrameFeatures:
        """``(B, 3, S, S)`` normalised images -> :class:`FrameFeatures` (float32, whatever the
        :attr:`compute_dtype` of the encoder)."""
        backbone = self.image_encoder(images.to(self.compute_dtype))
        levels = [level.float() for level in backbone.backbone_fpn]
        if self.config.use_high_res_features_in_sam:
            levels[0] = self.sam_mask_decoder.conv_s0(levels[0])
            levels[1] = self.sam_mask_decoder.conv_s1(levels[1])
        levels = levels[-self.num_feature_levels :]
        positions = [pos.float() for pos in backbone.vision_pos_enc[-self.num_feature_levels :]]
        return FrameFeatures(
            vision_feats=[x.flatten(2).permute(2, 0, 1) for x in levels],
            vision_pos=[x.flatten(2).permute(2, 0, 1) for x in positions],
            feat_sizes=[(x.shape[-2], x.shape[-1]) for x in positions],
        )

    def image_embedding_without_memory(self, features: FrameFeatures) -> torch.Tensor:
        """Lowest-level features of a lone image (no memory): ``(B, C, H, W)``."""
        h, w = features.feat_sizes[-1]
        top = features.vision_feats[-1]
        if self.config.directly_add_no_mem_embed:
            top = top + self.no_mem_embed
        return top.permute(1, 2, 0).reshape(top.shape[1], top.shape[2], h, w)

    # ------------------------------------------------------------------ SAM heads
    def forward_sam_heads(
        self,
        backbone_features: torch.Tensor,
        point_inputs: PointPrompts | None = None,
        mask_inputs: torch.Tensor | None = None,
        high_res_features: list[torch.Tensor] | None = None,
        multimask_output: bool = False,
    ) -> SamHeadOutput:
        """Prompt encoder + mask decoder for B objects on ``(B, C, H, W)`` features.

        ``mask_inputs`` ``(B, 1, h, w)`` are resized (antialiased) to the prompt encoder's mask size.
        """
        batch = backbone_features.shape[0]
        device = backbone_features.device
        if point_inputs is not None:
            coords, labels = point_inputs.coords, point_inputs.labels
        else:
            coords = torch.zeros(batch, 1, 2, device=device)
            labels = -torch.ones(batch, 1, dtype=torch.int32, device=device)
        mask_prompt = None
        if mask_inputs is not None:
            mask_prompt = mask_inputs
            if mask_inputs.shape[-2:] != self.sam_prompt_encoder.mask_input_size:
                mask_prompt = F.interpolate(
                    mask_inputs.float(),
                    size=self.sam_prompt_encoder.mask_input_size,
                    mode="bilinear",
                    align_corners=False,
                    antialias=True,
                )
        sparse, dense = self.sam_prompt_encoder(points=(coords, labels), boxes=None, masks=mask_prompt)
        decoded = self.sam_mask_decoder(
            image_embeddings=backbone_features,
            image_pe=self.sam_prompt_encoder.get_dense_pe(),
            sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense,
            multimask_output=multimask_output,
            repeat_image=False,
            high_res_features=high_res_features,
        )
        low_res_multimasks = decoded.masks
        is_obj_appearing = decoded.object_score_logits > 0
        if self.config.pred_obj_scores:
            low_res_multimasks = torch.where(is_obj_appearing[:, None, None], low_res_multimasks, NO_OBJ_SCORE)
        low_res_multimasks = low_res_multimasks.float()
        high_res_multimasks = F.interpolate(
            low_res_multimasks, size=(self.image_size, self.image_size), mode="bilinear", align_corners=False
        )
        sam_token = decoded.sam_tokens[:, 0]
        if multimask_output:
            best = decoded.iou_pred.argmax(dim=-1)
            rows = torch.arange(batch, device=device)
            low_res_masks = low_res_multimasks[rows, best].unsqueeze(1)
            high_res_masks = high_res_multimasks[rows, best].unsqueeze(1)
            if decoded.sam_tokens.shape[1] > 1:
                sam_token = decoded.sam_tokens[rows, best]
        else:
            low_res_masks, high_res_masks = low_res_multimasks, high_res_multimasks
        obj_ptr = self.obj_ptr_proj(sam_token)
        if self.config.pred_obj_scores:
            if self.config.soft_no_obj_ptr:
                appearing = decoded.object_score_logits.sigmoid()
            else:
                appearing = is_obj_appearing.float()
            obj_ptr = self._blend_no_obj_ptr(obj_ptr, appearing)
        return SamHeadOutput(
            low_res_multimasks,
            high_res_multimasks,
            decoded.iou_pred,
            low_res_masks,
            high_res_masks,
            obj_ptr,
            decoded.object_score_logits,
        )

    def _blend_no_obj_ptr(self, obj_ptr: torch.Tensor, appearing: torch.Tensor) -> torch.Tensor:
        """Replace the pointer of absent objects by the learned no-object pointer. ``appearing`` (B, 1)."""
        if self.config.fixed_no_obj_ptr:
            obj_ptr = appearing * obj_ptr
        return obj_ptr + (1 - appearing) * self.no_obj_ptr

    def use_mask_as_output(
        self, backbone_features: torch.Tensor, high_res_features: list[torch.Tensor] | None, mask_inputs: torch.Tensor
    ) -> SamHeadOutput:
        """Turn a binary mask prompt ``(B, 1, S, S)`` directly into output logits (no decoding);
        the object pointer still comes from the SAM heads run on the mask."""
        scale, bias = 20.0, -10.0  # logits of +-10: sigmoid ~ 1 / ~ 4.5e-5
        mask_float = mask_inputs.float()
        high_res_masks = mask_float * scale + bias
        low_res_masks = F.interpolate(
            high_res_masks,
            size=(high_res_masks.shape[-2] // 4, high_res_masks.shape[-1] // 4),
            mode="bilinear",
            align_corners=False,
            antialias=True,
        )
        ious = mask_inputs.new_ones(mask_inputs.shape[0], 1).float()
        if self.config.use_obj_ptrs_in_encoder:
            obj_ptr = self.forward_sam_heads(
                backbone_features, mask_inputs=self.mask_downsample(mask_float), high_res_features=high_res_features
            ).obj_ptr
        else:
            obj_ptr = torch.zeros(mask_inputs.shape[0], self.hidden_dim, device=mask_inputs.device)
        appearing = (mask_float.flatten(1) > 0.0).any(dim=1, keepdim=True).float()
        object_score_logits = scale * appearing + bias
        if self.config.pred_obj_scores:
            obj_ptr = self._blend_no_obj_ptr(obj_ptr, appearing)
        return SamHeadOutput(
            low_res_masks, high_res_masks, ious, low_res_masks, high_res_masks, obj_ptr, object_score_logits
        )

    # ------------------------------------------------------------------ memory
    # The memory side of the tracking step lives in .tracking as functions of the model; these
    # make them methods of the same names (the predictors call them).
    prepare_memory_conditioned_features = tracking.prepare_memory_conditioned_features
    memory_query = tracking.memory_query
    encode_new_memory = tracking.encode_new_memory

    # ------------------------------------------------------------------ the tracking step
    def use_multimask(self, is_init_cond_frame: bool, point_inputs: PointPrompts | None) -> bool:
        """Whether the SAM heads should output 3 masks for this prompt."""
        num_pts = 0 if point_inputs is None else point_inputs.labels.shape[1]
        return (
            self.config.multimask_output_in_sam
            and (is_init_cond_frame or self.config.multimask_output_for_tracking)
            and self.config.multimask_min_pt_num <= num_pts <= self.config.multimask_max_pt_num
        )

    def track_step(
        self,
        frame_idx: int,
        is_init_cond_frame: bool,
        features: FrameFeatures,
        point_inputs: PointPrompts | None,
        mask_inputs: torch.Tensor | None,
        cond_outputs: Mapping[int, MemoryLike],
        non_cond_outputs: Mapping[int, MemoryLike],
        num_frames: int | None,
        track_in_reverse: bool = False,
        run_mem_encoder: bool = True,
        prev_sam_mask_logits: torch.Tensor | None = None,
    ) -> TrackStepOutput:
        """One tracking step for B objects on one frame.

        Args:
            frame_idx: index of the frame in the video.
            is_init_cond_frame: the frame has prompts and no memory is used (first interaction).
            features: the frame's features, batch B (use ``FrameFeatures.expand``).
            point_inputs / mask_inputs: prompts on this frame (mask ``(B, 1, S, S)``), or None.
            cond_outputs / non_cond_outputs: remembered frames ``frame_idx -> entry``.
            num_frames: video length (None for a stream of unknown length).
            prev_sam_mask_logits: ``(B, 1, S/4, S/4)`` logits of a previous prediction on this frame,
                given as mask prompt together with correction clicks.
        """
        high_res = features.high_res_features() if len(features.vision_feats) > 1 else None
        h, w = features.feat_sizes[-1]
        if mask_inputs is not None and self.config.use_mask_input_as_output_without_sam:
            pix_feat = features.vision_feats[-1].permute(1, 2, 0).reshape(-1, self.hidden_dim, h, w)
            heads = self.use_mask_as_output(pix_feat, high_res, mask_inputs)
        else:
            pix_feat = self.prepare_memory_conditioned_features(
                frame_idx,
                is_init_cond_frame,
                features,
                cond_outputs,
                non_cond_outputs,
                num_frames,
                track_in_reverse,
            )
            if prev_sam_mask_logits is not None:
                mask_inputs = prev_sam_mask_logits
            heads = self.forward_sam_heads(
                pix_feat,
                point_inputs=point_inputs,
                mask_inputs=mask_inputs,
                high_res_features=high_res,
                multimask_output=self.use_multimask(is_init_cond_frame, point_inputs),
            )
        out = TrackStepOutput(
            pred_masks=heads.low_res_masks,
            pred_masks_high_res=heads.high_res_masks,
            obj_ptr=heads.obj_ptr,
            object_score_logits=heads.object_score_logits,
            ious=heads.ious,
            multimasks=heads.low_res_multimasks,
        )
        if run_mem_encoder and self.config.num_maskmem > 0:
            out.maskmem_features, out.maskmem_pos_enc = self.encode_new_memory(
                features, heads.high_res_masks, heads.object_score_logits, point_inputs is not None
            )
        return out
