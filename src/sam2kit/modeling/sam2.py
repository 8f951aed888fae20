"""SAM2Model: wires the image encoder, SAM heads, memory attention and memory encoder.

The model sees tensors only. Tracking state (which frames are remembered) belongs to the predictors,
which pass the memories to :meth:`SAM2Model.track_step` as plain mappings ``frame_idx -> entry``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Protocol

import torch
import torch.nn.functional as F
from torch import nn

from .common import MLP
from .mask_decoder import MaskDecoder
from .memory_attention import MemoryAttention
from .memory_encoder import MemoryEncoder
from .neck import ImageEncoder
from .position import sine_encoding_1d
from .prompt_encoder import PromptEncoder
from .transformer import TwoWayTransformer

#: Logit given to every pixel of an object the decoder says is absent.
NO_OBJ_SCORE = -1024.0


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
            for feat, size in zip(self.vision_feats[:-1], self.feat_sizes[:-1])
        ]

    def select(self, index: torch.Tensor | slice | int) -> "FrameFeatures":
        """Features of some batch entries (e.g. one image of a batch)."""
        if isinstance(index, int):
            index = slice(index, index + 1)
        return FrameFeatures(
            [f[:, index] for f in self.vision_feats], [p[:, index] for p in self.vision_pos], self.feat_sizes
        )

    def expand(self, batch: int) -> "FrameFeatures":
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
    maskmem_features: torch.Tensor | None = None  # (B, mem_dim, S/16, S/16)
    maskmem_pos_enc: torch.Tensor | None = None  # (B, mem_dim, S/16, S/16)


class SAM2Model(nn.Module):
    """The SAM 2 model. Build it with :func:`sam2kit.build_model`; see :class:`sam2kit.config.SAM2Config`
    for the meaning of every option."""

    def __init__(
        self,
        image_encoder: ImageEncoder,
        memory_attention: MemoryAttention,
        memory_encoder: MemoryEncoder,
        *,
        image_size: int = 1024,
        backbone_stride: int = 16,
        num_maskmem: int = 7,
        mem_dim: int = 64,
        sigmoid_scale_for_mem_enc: float = 20.0,
        sigmoid_bias_for_mem_enc: float = -10.0,
        binarize_mask_from_pts_for_mem_enc: bool = True,
        non_overlap_masks_for_mem_enc: bool = False,
        use_mask_input_as_output_without_sam: bool = True,
        max_cond_frames_in_attn: int = -1,
        directly_add_no_mem_embed: bool = True,
        use_high_res_features_in_sam: bool = True,
        multimask_output_in_sam: bool = True,
        multimask_min_pt_num: int = 0,
        multimask_max_pt_num: int = 1,
        multimask_output_for_tracking: bool = True,
        use_multimask_token_for_obj_ptr: bool = True,
        iou_prediction_use_sigmoid: bool = True,
        memory_temporal_stride_for_eval: int = 1,
        use_obj_ptrs_in_encoder: bool = True,
        max_obj_ptrs_in_encoder: int = 16,
        add_tpos_enc_to_obj_ptrs: bool = True,
        proj_tpos_enc_in_obj_ptrs: bool = True,
        use_signed_tpos_enc_to_obj_ptrs: bool = True,
        only_obj_ptrs_in_the_past_for_eval: bool = True,
        pred_obj_scores: bool = True,
        pred_obj_scores_mlp: bool = True,
        fixed_no_obj_ptr: bool = True,
        soft_no_obj_ptr: bool = False,
        use_mlp_for_obj_ptr_proj: bool = True,
        no_obj_embed_spatial: bool = True,
        dynamic_multimask_via_stability: bool = True,
        dynamic_multimask_stability_delta: float = 0.05,
        dynamic_multimask_stability_thresh: float = 0.98,
    ) -> None:
        super().__init__()
        self.image_encoder = image_encoder
        self.memory_attention = memory_attention
        self.memory_encoder = memory_encoder
        hidden = image_encoder.neck.d_model
        self.hidden_dim = hidden
        self.mem_dim = mem_dim
        self.image_size = image_size
        self.backbone_stride = backbone_stride
        self.num_feature_levels = 3 if use_high_res_features_in_sam else 1
        self.use_high_res_features_in_sam = use_high_res_features_in_sam

        self.num_maskmem = num_maskmem
        self.maskmem_tpos_enc = nn.Parameter(torch.zeros(num_maskmem, 1, 1, mem_dim))
        self.no_mem_embed = nn.Parameter(torch.zeros(1, 1, hidden))
        self.no_mem_pos_enc = nn.Parameter(torch.zeros(1, 1, hidden))
        self.directly_add_no_mem_embed = directly_add_no_mem_embed
        self.sigmoid_scale_for_mem_enc = sigmoid_scale_for_mem_enc
        self.sigmoid_bias_for_mem_enc = sigmoid_bias_for_mem_enc
        self.binarize_mask_from_pts_for_mem_enc = binarize_mask_from_pts_for_mem_enc
        self.non_overlap_masks_for_mem_enc = non_overlap_masks_for_mem_enc
        self.memory_temporal_stride_for_eval = memory_temporal_stride_for_eval
        self.use_mask_input_as_output_without_sam = use_mask_input_as_output_without_sam
        self.max_cond_frames_in_attn = max_cond_frames_in_attn

        self.multimask_output_in_sam = multimask_output_in_sam
        self.multimask_min_pt_num = multimask_min_pt_num
        self.multimask_max_pt_num = multimask_max_pt_num
        self.multimask_output_for_tracking = multimask_output_for_tracking

        self.use_obj_ptrs_in_encoder = use_obj_ptrs_in_encoder
        self.max_obj_ptrs_in_encoder = max_obj_ptrs_in_encoder
        self.add_tpos_enc_to_obj_ptrs = add_tpos_enc_to_obj_ptrs
        self.proj_tpos_enc_in_obj_ptrs = proj_tpos_enc_in_obj_ptrs
        self.use_signed_tpos_enc_to_obj_ptrs = use_signed_tpos_enc_to_obj_ptrs
        self.only_obj_ptrs_in_the_past_for_eval = only_obj_ptrs_in_the_past_for_eval
        self.pred_obj_scores = pred_obj_scores
        self.fixed_no_obj_ptr = fixed_no_obj_ptr
        self.soft_no_obj_ptr = soft_no_obj_ptr
        if use_obj_ptrs_in_encoder:
            # Mask prompts enter the SAM heads at 1/4 scale when computing their object pointer.
            self.mask_downsample = nn.Conv2d(1, 1, kernel_size=4, stride=4)
        if pred_obj_scores and use_obj_ptrs_in_encoder:
            self.no_obj_ptr = nn.Parameter(torch.zeros(1, hidden))
        self.no_obj_embed_spatial = nn.Parameter(torch.zeros(1, mem_dim)) if no_obj_embed_spatial else None

        embed_size = image_size // backbone_stride
        self.sam_prompt_encoder = PromptEncoder(
            embed_dim=hidden,
            image_embedding_size=(embed_size, embed_size),
            input_image_size=(image_size, image_size),
            mask_in_chans=16,
        )
        self.sam_mask_decoder = MaskDecoder(
            transformer_dim=hidden,
            transformer=TwoWayTransformer(depth=2, embedding_dim=hidden, mlp_dim=2048, num_heads=8),
            num_multimask_outputs=3,
            iou_head_depth=3,
            iou_head_hidden_dim=256,
            use_high_res_features=use_high_res_features_in_sam,
            iou_prediction_use_sigmoid=iou_prediction_use_sigmoid,
            dynamic_multimask_via_stability=dynamic_multimask_via_stability,
            dynamic_multimask_stability_delta=dynamic_multimask_stability_delta,
            dynamic_multimask_stability_thresh=dynamic_multimask_stability_thresh,
            pred_obj_scores=pred_obj_scores,
            pred_obj_scores_mlp=pred_obj_scores_mlp,
            use_multimask_token_for_obj_ptr=use_multimask_token_for_obj_ptr,
        )
        if use_obj_ptrs_in_encoder:
            self.obj_ptr_proj = MLP(hidden, hidden, hidden, 3) if use_mlp_for_obj_ptr_proj else nn.Linear(hidden, hidden)
        else:
            self.obj_ptr_proj = nn.Identity()
        self.obj_ptr_tpos_proj = nn.Linear(hidden, mem_dim) if proj_tpos_enc_in_obj_ptrs else nn.Identity()

    @property
    def device(self) -> torch.device:
        return self.no_mem_embed.device

    @property
    def compute_dtype(self) -> torch.dtype:
        """The dtype of the image encoder and the memory attention (see :meth:`set_precision`)."""
        return self.memory_attention.norm.weight.dtype

    def set_precision(self, dtype: torch.dtype) -> "SAM2Model":
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
        if self.use_high_res_features_in_sam:
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
        if self.directly_add_no_mem_embed:
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
        if self.pred_obj_scores:
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
        if self.pred_obj_scores:
            appearing = decoded.object_score_logits.sigmoid() if self.soft_no_obj_ptr else is_obj_appearing.float()
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
        if self.fixed_no_obj_ptr:
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
        if self.use_obj_ptrs_in_encoder:
            obj_ptr = self.forward_sam_heads(
                backbone_features, mask_inputs=self.mask_downsample(mask_float), high_res_features=high_res_features
            ).obj_ptr
        else:
            obj_ptr = torch.zeros(mask_inputs.shape[0], self.hidden_dim, device=mask_inputs.device)
        appearing = (mask_float.flatten(1) > 0.0).any(dim=1, keepdim=True).float()
        object_score_logits = scale * appearing + bias
        if self.pred_obj_scores:
            obj_ptr = self._blend_no_obj_ptr(obj_ptr, appearing)
        return SamHeadOutput(
            low_res_masks, high_res_masks, ious, low_res_masks, high_res_masks, obj_ptr, object_score_logits
        )

    # ------------------------------------------------------------------ memory
    def _memory_frame_offsets(self, frame_idx: int, track_in_reverse: bool) -> list[tuple[int, int]]:
        """``(t_pos, frame)`` pairs of the non-conditioning memory slots, t_pos = 1 (oldest) .. num_maskmem-1."""
        stride = self.memory_temporal_stride_for_eval
        slots = []
        for t_pos in range(1, self.num_maskmem):
            t_rel = self.num_maskmem - t_pos  # frames before the current one
            if t_rel == 1:
                prev = frame_idx + 1 if track_in_reverse else frame_idx - 1
            elif track_in_reverse:
                prev = -(-(frame_idx + 2) // stride) * stride + (t_rel - 2) * stride
            else:
                prev = ((frame_idx - 2) // stride) * stride - (t_rel - 2) * stride
            slots.append((t_pos, prev))
        return slots

    def prepare_memory_conditioned_features(
        self,
        frame_idx: int,
        is_init_cond_frame: bool,
        features: FrameFeatures,
        cond_outputs: Mapping[int, MemoryLike],
        non_cond_outputs: Mapping[int, MemoryLike],
        num_frames: int | None,
        track_in_reverse: bool = False,
    ) -> torch.Tensor:
        """Fuse the current frame's top-level features with remembered frames: ``(B, C, H, W)``."""
        vision_feat = features.vision_feats[-1]  # (HW, B, C)
        batch = vision_feat.shape[1]
        h, w = features.feat_sizes[-1]
        hidden = self.hidden_dim
        if self.num_maskmem == 0:
            return vision_feat.permute(1, 2, 0).reshape(batch, hidden, h, w)

        num_obj_ptr_tokens = 0
        if is_init_cond_frame:
            if self.directly_add_no_mem_embed:
                fused = vision_feat + self.no_mem_embed
                return fused.permute(1, 2, 0).reshape(batch, hidden, h, w)
            memory = self.no_mem_embed.expand(1, batch, self.mem_dim)
            memory_pos = self.no_mem_pos_enc.expand(1, batch, self.mem_dim)
        else:
            if not cond_outputs:
                raise ValueError("a non-initial frame needs at least one conditioning frame in memory")
            selected, unselected = select_closest_cond_frames(frame_idx, cond_outputs, self.max_cond_frames_in_attn)
            dtype = self.compute_dtype
            memories, memory_positions = [], []
            slots: list[tuple[int, MemoryLike | None]] = [(0, out) for out in selected.values()]
            for t_pos, prev in self._memory_frame_offsets(frame_idx, track_in_reverse):
                entry = non_cond_outputs.get(prev)
                if entry is None:
                    entry = unselected.get(prev)
                slots.append((t_pos, entry))
            for t_pos, entry in slots:
                if entry is None or entry.maskmem_features is None:
                    continue
                feats = entry.maskmem_features.to(device=vision_feat.device, dtype=dtype)
                memories.append(feats.flatten(2).permute(2, 0, 1))
                pos = entry.maskmem_pos_enc.to(device=vision_feat.device).flatten(2).permute(2, 0, 1)
                memory_positions.append((pos + self.maskmem_tpos_enc[self.num_maskmem - t_pos - 1]).to(dtype))

            if self.use_obj_ptrs_in_encoder:
                ptrs, num_obj_ptr_tokens = self._object_pointer_tokens(
                    frame_idx, selected, unselected, non_cond_outputs, num_frames, track_in_reverse, batch
                )
                if ptrs is not None:
                    memories.append(ptrs[0].to(dtype))
                    memory_positions.append(ptrs[1].to(dtype))
            memory = torch.cat(memories, dim=0)
            memory_pos = torch.cat(memory_positions, dim=0)

        fused = self.memory_attention(
            curr=None,
            curr_pos=None,
            memory=memory.to(self.compute_dtype),
            memory_pos=memory_pos.to(self.compute_dtype),
            num_obj_ptr_tokens=num_obj_ptr_tokens,
            query=self.memory_query(features),
        )
        return fused.to(vision_feat.dtype).permute(1, 2, 0).reshape(batch, hidden, h, w)

    def memory_query(self, features: FrameFeatures) -> torch.Tensor:
        """The memory attention's query of a frame (:meth:`MemoryAttention.encode_query`):
        ``(1, HW, C)`` when every batch entry holds the same frame, computed once per frame and
        kept in ``features.shared``; else ``(B, HW, C)``."""
        vision_feat, vision_pos = features.vision_feats[-1], features.vision_pos[-1]
        dtype = self.compute_dtype
        if not features.is_single_frame:
            return self.memory_attention.encode_query(vision_feat.to(dtype), vision_pos.to(dtype))
        query = features.shared.get("memory_query")
        if query is None:
            query = self.memory_attention.encode_query(vision_feat[:, :1].to(dtype), vision_pos[:, :1].to(dtype))
            features.shared["memory_query"] = query
        return query

    def _object_pointer_tokens(
        self,
        frame_idx: int,
        selected: Mapping[int, MemoryLike],
        unselected: Mapping[int, MemoryLike],
        non_cond_outputs: Mapping[int, MemoryLike],
        num_frames: int | None,
        track_in_reverse: bool,
        batch: int,
    ) -> tuple[tuple[torch.Tensor, torch.Tensor] | None, int]:
        """Object pointers of conditioning frames and of up to ``max_obj_ptrs_in_encoder - 1`` recent
        frames, split into ``mem_dim``-wide tokens: ``((N, B, mem_dim) pointers, positions), N``."""
        max_ptrs = self.max_obj_ptrs_in_encoder if num_frames is None else min(num_frames, self.max_obj_ptrs_in_encoder)
        sign = -1 if track_in_reverse else 1
        if self.only_obj_ptrs_in_the_past_for_eval:
            ptr_cond = {
                t: out for t, out in selected.items() if (t >= frame_idx if track_in_reverse else t <= frame_idx)
            }
        else:
            ptr_cond = dict(selected)
        positions: list[int] = []
        pointers: list[torch.Tensor] = []
        for t, out in ptr_cond.items():
            positions.append((frame_idx - t) * sign if self.use_signed_tpos_enc_to_obj_ptrs else abs(frame_idx - t))
            pointers.append(out.obj_ptr)
        for t_diff in range(1, max_ptrs):
            t = frame_idx + t_diff if track_in_reverse else frame_idx - t_diff
            if t < 0 or (num_frames is not None and t >= num_frames):
                break
            out = non_cond_outputs.get(t)
            if out is None:
                out = unselected.get(t)
            if out is not None:
                positions.append(t_diff)
                pointers.append(out.obj_ptr)
        if not pointers:
            return None, 0
        device = pointers[0].device
        obj_ptrs = torch.stack(pointers, dim=0)  # (N, B, C)
        if self.add_tpos_enc_to_obj_ptrs:
            tpos_dim = self.hidden_dim if self.proj_tpos_enc_in_obj_ptrs else self.mem_dim
            rel = torch.tensor(positions, device=device, dtype=torch.float32) / (max_ptrs - 1)
            obj_pos = self.obj_ptr_tpos_proj(sine_encoding_1d(rel, tpos_dim))
            obj_pos = obj_pos.unsqueeze(1).expand(-1, batch, self.mem_dim)
        else:
            obj_pos = obj_ptrs.new_zeros(len(positions), batch, self.mem_dim)
        if self.mem_dim < self.hidden_dim:
            split = self.hidden_dim // self.mem_dim
            obj_ptrs = obj_ptrs.reshape(-1, batch, split, self.mem_dim).permute(0, 2, 1, 3).flatten(0, 1)
            obj_pos = obj_pos.repeat_interleave(split, dim=0)
        return (obj_ptrs, obj_pos), obj_ptrs.shape[0]

    def encode_new_memory(
        self,
        features: FrameFeatures,
        pred_masks_high_res: torch.Tensor,
        object_score_logits: torch.Tensor,
        is_mask_from_pts: bool,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Memory of a frame from its features and ``(B, 1, S, S)`` mask logits.

        Returns ``maskmem_features`` and ``maskmem_pos_enc``, both ``(B, mem_dim, H, W)``.
        """
        h, w = features.feat_sizes[-1]
        top = features.vision_feats[-1]
        if features.is_single_frame:  # one frame for every object: its projection runs once
            top = top[:, :1]
        pix_feat = top.permute(1, 2, 0).reshape(top.shape[1], self.hidden_dim, h, w)
        if self.non_overlap_masks_for_mem_enc and not self.training:
            pred_masks_high_res = apply_non_overlapping_constraints(pred_masks_high_res)
        if self.binarize_mask_from_pts_for_mem_enc and is_mask_from_pts and not self.training:
            mask_for_mem = (pred_masks_high_res > 0).float()
        else:
            mask_for_mem = torch.sigmoid(pred_masks_high_res)
        mask_for_mem = mask_for_mem * self.sigmoid_scale_for_mem_enc + self.sigmoid_bias_for_mem_enc
        maskmem_features, maskmem_pos_enc = self.memory_encoder(pix_feat, mask_for_mem, skip_mask_sigmoid=True)
        if self.no_obj_embed_spatial is not None:
            absent = (object_score_logits <= 0).float()  # (B, 1)
            maskmem_features = maskmem_features + absent[..., None, None] * self.no_obj_embed_spatial[..., None, None]
        return maskmem_features, maskmem_pos_enc

    def use_multimask(self, is_init_cond_frame: bool, point_inputs: PointPrompts | None) -> bool:
        """Whether the SAM heads should output 3 masks for this prompt."""
        num_pts = 0 if point_inputs is None else point_inputs.labels.shape[1]
        return (
            self.multimask_output_in_sam
            and (is_init_cond_frame or self.multimask_output_for_tracking)
            and self.multimask_min_pt_num <= num_pts <= self.multimask_max_pt_num
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
        if mask_inputs is not None and self.use_mask_input_as_output_without_sam:
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
        )
        if run_mem_encoder and self.num_maskmem > 0:
            out.maskmem_features, out.maskmem_pos_enc = self.encode_new_memory(
                features, heads.high_res_masks, heads.object_score_logits, point_inputs is not None
            )
        return out


def select_closest_cond_frames(
    frame_idx: int, cond_outputs: Mapping[int, MemoryLike], max_cond_frames: int
) -> tuple[dict[int, MemoryLike], dict[int, MemoryLike]]:
    """Pick at most ``max_cond_frames`` conditioning frames (-1: all): the closest before, the closest
    at/after, then the temporally closest others. Returns (selected, unselected) in that order."""
    if max_cond_frames == -1 or len(cond_outputs) <= max_cond_frames:
        return dict(cond_outputs), {}
    if max_cond_frames < 2:
        raise ValueError("max_cond_frames must be at least 2 (or -1 for all)")
    selected: dict[int, MemoryLike] = {}
    before = max((t for t in cond_outputs if t < frame_idx), default=None)
    if before is not None:
        selected[before] = cond_outputs[before]
    after = min((t for t in cond_outputs if t >= frame_idx), default=None)
    if after is not None:
        selected[after] = cond_outputs[after]
    rest = sorted((t for t in cond_outputs if t not in selected), key=lambda t: abs(t - frame_idx))
    for t in rest[: max_cond_frames - len(selected)]:
        selected[t] = cond_outputs[t]
    unselected = {t: v for t, v in cond_outputs.items() if t not in selected}
    return selected, unselected


def apply_non_overlapping_constraints(pred_masks: torch.Tensor) -> torch.Tensor:
    """Keep only the highest-scoring object at each pixel: ``(B, 1, H, W)`` logits; the others are
    clamped to at most -10."""
    if pred_masks.shape[0] == 1:
        return pred_masks
    winner = pred_masks.argmax(dim=0, keepdim=True)
    objects = torch.arange(pred_masks.shape[0], device=pred_masks.device)[:, None, None, None]
    return torch.where(winner == objects, pred_masks, pred_masks.clamp(max=-10.0))
