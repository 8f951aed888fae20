"""The tracking step's memory side: which remembered frames a frame attends to, how their
memories and object pointers become tokens, the memory attention over them, and the memory of a
newly segmented frame.

Frame selection (:func:`select_closest_cond_frames`, :func:`memory_frame_offsets`,
:func:`object_pointer_frames`) is plain bookkeeping on frame indices. The tensor functions take the
:class:`~sam2kit.modeling.sam2.SAM2Model` whose parameters (``maskmem_tpos_enc``, ``no_mem_embed``,
``obj_ptr_tpos_proj``, ...) and sub-modules (memory attention, memory encoder) they use; the model
exposes them as methods of the same names. Memories are plain mappings ``frame_idx -> entry``
(:class:`~sam2kit.modeling.structures.MemoryLike`): the model holds no tracking state.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import torch

from .position import sine_encoding_1d
from .structures import FrameFeatures, MemoryLike

if TYPE_CHECKING:
    from ..config import SAM2Config
    from .sam2 import SAM2Model

__all__ = [
    "select_closest_cond_frames",
    "memory_frame_offsets",
    "object_pointer_frames",
    "prepare_memory_conditioned_features",
    "memory_query",
    "encode_new_memory",
    "keeps_memories_apart",
    "apply_non_overlapping_constraints",
]


# ---------------------------------------------------------------------------- frame selection
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


def memory_frame_offsets(
    frame_idx: int, num_maskmem: int, temporal_stride: int, track_in_reverse: bool
) -> list[tuple[int, int]]:
    """``(t_pos, frame)`` pairs of the non-conditioning memory slots, t_pos = 1 (oldest) ..
    ``num_maskmem - 1``: the previous frame, then every ``temporal_stride``-th frame before it."""
    slots = []
    for t_pos in range(1, num_maskmem):
        t_rel = num_maskmem - t_pos  # frames before the current one
        if t_rel == 1:
            prev = frame_idx + 1 if track_in_reverse else frame_idx - 1
        elif track_in_reverse:
            prev = -(-(frame_idx + 2) // temporal_stride) * temporal_stride + (t_rel - 2) * temporal_stride
        else:
            prev = ((frame_idx - 2) // temporal_stride) * temporal_stride - (t_rel - 2) * temporal_stride
        slots.append((t_pos, prev))
    return slots


def object_pointer_frames(
    config: SAM2Config,
    frame_idx: int,
    selected: Mapping[int, MemoryLike],
    unselected: Mapping[int, MemoryLike],
    non_cond_outputs: Mapping[int, MemoryLike],
    num_frames: int | None,
    track_in_reverse: bool,
    training: bool = False,
) -> tuple[list[int], list[torch.Tensor], int]:
    """The object pointers a frame attends to: those of the selected conditioning frames, then
    those of up to ``max_ptrs - 1`` recent frames. Returns their temporal positions (signed: a
    conditioning frame ahead in the tracking direction has a negative one), the ``(B, C)``
    pointers and ``max_ptrs``.

    At inference, with ``only_obj_ptrs_in_the_past_for_eval``, conditioning frames ahead of
    ``frame_idx`` give no pointer; in ``training`` every selected one does, as in SAM 2's
    training, where prompts on later frames of a clip are known when the clip is tracked.
    """
    max_ptrs = config.max_obj_ptrs_in_encoder
    if num_frames is not None:
        max_ptrs = min(num_frames, max_ptrs)
    sign = -1 if track_in_reverse else 1
    if config.only_obj_ptrs_in_the_past_for_eval and not training:
        ptr_cond = {
            t: out for t, out in selected.items() if (t >= frame_idx if track_in_reverse else t <= frame_idx)
        }
    else:
        ptr_cond = dict(selected)
    positions: list[int] = []
    pointers: list[torch.Tensor] = []
    for t, out in ptr_cond.items():
        positions.append((frame_idx - t) * sign if config.use_signed_tpos_enc_to_obj_ptrs else abs(frame_idx - t))
        pointers.append(out.obj_ptr)
    for t_diff in range(1, max_ptrs):
        t = frame_idx + t_diff if track_in_reverse else frame_idx - t_diff
        if t < 0 or (num_frames is not None and t >= num_frames):
            break
        entry = non_cond_outputs.get(t)
        if entry is None:
            entry = unselected.get(t)
        if entry is not None:
            positions.append(t_diff)
            pointers.append(entry.obj_ptr)
    return positions, pointers, max_ptrs


# ---------------------------------------------------------------------------- memory tokens
def _spatial_memory_tokens(
    model: SAM2Model,
    slots: list[tuple[int, MemoryLike | None]],
    device: torch.device,
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Each remembered frame's ``(B, mem_dim, H, W)`` memory -> ``(HW, B, mem_dim)`` tokens, with
    its position encoding plus the temporal encoding of its slot ``t_pos`` (0: conditioning)."""
    dtype = model.compute_dtype
    num_maskmem = model.config.num_maskmem
    memories, positions = [], []
    for t_pos, entry in slots:
        if entry is None or entry.maskmem_features is None or entry.maskmem_pos_enc is None:
            continue
        feats = entry.maskmem_features.to(device=device, dtype=dtype)
        memories.append(feats.flatten(2).permute(2, 0, 1))
        pos = entry.maskmem_pos_enc.to(device=device).flatten(2).permute(2, 0, 1)
        positions.append((pos + model.maskmem_tpos_enc[num_maskmem - t_pos - 1]).to(dtype))
    return memories, positions


def _object_pointer_tokens(
    model: SAM2Model, positions: list[int], pointers: list[torch.Tensor], max_ptrs: int, batch: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """``N`` pointers ``(B, C)`` at temporal distances ``positions`` -> tokens and their encodings,
    both ``(N * C / mem_dim, B, mem_dim)``: each pointer is split into ``mem_dim``-wide tokens."""
    config = model.config
    hidden, mem_dim = model.hidden_dim, model.mem_dim
    obj_ptrs = torch.stack(pointers, dim=0)  # (N, B, C)
    if config.add_tpos_enc_to_obj_ptrs:
        tpos_dim = hidden if config.proj_tpos_enc_in_obj_ptrs else mem_dim
        rel = torch.tensor(positions, device=obj_ptrs.device, dtype=torch.float32) / (max_ptrs - 1)
        obj_pos = model.obj_ptr_tpos_proj(sine_encoding_1d(rel, tpos_dim))
        obj_pos = obj_pos.unsqueeze(1).expand(-1, batch, mem_dim)
    else:
        obj_pos = obj_ptrs.new_zeros(len(positions), batch, mem_dim)
    if mem_dim < hidden:
        split = hidden // mem_dim
        obj_ptrs = obj_ptrs.reshape(-1, batch, split, mem_dim).permute(0, 2, 1, 3).flatten(0, 1)
        obj_pos = obj_pos.repeat_interleave(split, dim=0)
    return obj_ptrs, obj_pos


# ---------------------------------------------------------------------------- memory attention
def prepare_memory_conditioned_features(
    model: SAM2Model,
    frame_idx: int,
    is_init_cond_frame: bool,
    features: FrameFeatures,
    cond_outputs: Mapping[int, MemoryLike],
    non_cond_outputs: Mapping[int, MemoryLike],
    num_frames: int | None,
    track_in_reverse: bool = False,
) -> torch.Tensor:
    """Fuse the current frame's top-level features with remembered frames: ``(B, C, H, W)``.

    An initial conditioning frame sees no memory (only the learned no-memory embedding). In train
    mode (``model.training``) the recent-frame memories are the frames just before (the
    evaluation-only ``memory_temporal_stride_for_eval`` is not applied) and the conditioning
    frames ahead also give object pointers (see :func:`object_pointer_frames`).

    Raises:
        ValueError: a non-initial frame and no conditioning frame in ``cond_outputs``.
    """
    config = model.config
    vision_feat = features.vision_feats[-1]  # (HW, B, C)
    batch = vision_feat.shape[1]
    h, w = features.feat_sizes[-1]
    hidden = model.hidden_dim
    if config.num_maskmem == 0:
        return vision_feat.permute(1, 2, 0).reshape(batch, hidden, h, w)

    num_obj_ptr_tokens = 0
    if is_init_cond_frame:
        if config.directly_add_no_mem_embed:
            fused = vision_feat + model.no_mem_embed
            return fused.permute(1, 2, 0).reshape(batch, hidden, h, w)
        memory = model.no_mem_embed.expand(1, batch, model.mem_dim)
        memory_pos = model.no_mem_pos_enc.expand(1, batch, model.mem_dim)
    else:
        if not cond_outputs:
            raise ValueError("a non-initial frame needs at least one conditioning frame in memory")
        selected, unselected = select_closest_cond_frames(frame_idx, cond_outputs, config.max_cond_frames_in_attn)
        slots: list[tuple[int, MemoryLike | None]] = [(0, out) for out in selected.values()]
        stride = 1 if model.training else config.memory_temporal_stride_for_eval
        offsets = memory_frame_offsets(frame_idx, config.num_maskmem, stride, track_in_reverse)
        for t_pos, prev in offsets:
            entry = non_cond_outputs.get(prev)
            if entry is None:
                entry = unselected.get(prev)
            slots.append((t_pos, entry))
        memories, memory_positions = _spatial_memory_tokens(model, slots, vision_feat.device)

        if config.use_obj_ptrs_in_encoder:
            positions, pointers, max_ptrs = object_pointer_frames(
                config,
                frame_idx,
                selected,
                unselected,
                non_cond_outputs,
                num_frames,
                track_in_reverse,
                training=model.training,
            )
            if pointers:
                obj_ptrs, obj_pos = _object_pointer_tokens(model, positions, pointers, max_ptrs, batch)
                memories.append(obj_ptrs.to(model.compute_dtype))
                memory_positions.append(obj_pos.to(model.compute_dtype))
                num_obj_ptr_tokens = obj_ptrs.shape[0]
        memory = torch.cat(memories, dim=0)
        memory_pos = torch.cat(memory_positions, dim=0)

    fused = model.memory_attention(
        curr=None,
        curr_pos=None,
        memory=memory.to(model.compute_dtype),
        memory_pos=memory_pos.to(model.compute_dtype),
        num_obj_ptr_tokens=num_obj_ptr_tokens,
        query=memory_query(model, features),
    )
    return fused.to(vision_feat.dtype).permute(1, 2, 0).reshape(batch, hidden, h, w)


def memory_query(model: SAM2Model, features: FrameFeatures) -> torch.Tensor:
    """The memory attention's query of a frame (:meth:`MemoryAttention.encode_query`):
    ``(1, HW, C)`` when every batch entry holds the same frame, computed once per frame and
    kept in ``features.shared``; else ``(B, HW, C)``.

    With dropout in train mode, the query is drawn afresh for every call and every batch entry
    (each object its own dropout, as when the objects' queries are computed apart).
    """
    vision_feat, vision_pos = features.vision_feats[-1], features.vision_pos[-1]
    dtype = model.compute_dtype
    if not features.is_single_frame or model.memory_attention.is_stochastic:
        return model.memory_attention.encode_query(vision_feat.to(dtype), vision_pos.to(dtype))
    query = features.shared.get("memory_query")
    if query is None:
        query = model.memory_attention.encode_query(vision_feat[:, :1].to(dtype), vision_pos[:, :1].to(dtype))
        features.shared["memory_query"] = query
    return query


# ---------------------------------------------------------------------------- memory encoding
def keeps_memories_apart(model: SAM2Model) -> bool:
    """Whether :func:`encode_new_memory` gives each pixel of a batch's masks to its highest-scoring
    object (``non_overlap_masks_for_mem_enc``, eval mode only), so that objects encoded in one batch
    affect each other's memories."""
    return model.config.non_overlap_masks_for_mem_enc and not model.training


def encode_new_memory(
    model: SAM2Model,
    features: FrameFeatures,
    pred_masks_high_res: torch.Tensor,
    object_score_logits: torch.Tensor,
    is_mask_from_pts: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Memory of a frame from its features and ``(B, 1, S, S)`` mask logits.

    Returns ``maskmem_features`` and ``maskmem_pos_enc``, both ``(B, mem_dim, H, W)``.
    """
    config = model.config
    h, w = features.feat_sizes[-1]
    top = features.vision_feats[-1]
    if features.is_single_frame:  # one frame for every object: its projection runs once
        top = top[:, :1]
    pix_feat = top.permute(1, 2, 0).reshape(top.shape[1], model.hidden_dim, h, w)
    if keeps_memories_apart(model):
        pred_masks_high_res = apply_non_overlapping_constraints(pred_masks_high_res)
    if config.binarize_mask_from_pts_for_mem_enc and is_mask_from_pts and not model.training:
        mask_for_mem = (pred_masks_high_res > 0).float()
    else:
        mask_for_mem = torch.sigmoid(pred_masks_high_res)
    mask_for_mem = mask_for_mem * config.sigmoid_scale_for_mem_enc + config.sigmoid_bias_for_mem_enc
    maskmem_features, maskmem_pos_enc = model.memory_encoder(pix_feat, mask_for_mem, skip_mask_sigmoid=True)
    if model.no_obj_embed_spatial is not None:
        absent = (object_score_logits <= 0).float()  # (B, 1)
        maskmem_features = maskmem_features + absent[..., None, None] * model.no_obj_embed_spatial[..., None, None]
    return maskmem_features, maskmem_pos_enc


def apply_non_overlapping_constraints(pred_masks: torch.Tensor) -> torch.Tensor:
    """Keep only the highest-scoring object at each pixel: ``(B, 1, H, W)`` logits; the others are
    clamped to at most -10."""
    if pred_masks.shape[0] == 1:
        return pred_masks
    winner = pred_masks.argmax(dim=0, keepdim=True)
    objects = torch.arange(pred_masks.shape[0], device=pred_masks.device)[:, None, None, None]
    return torch.where(winner == objects, pred_masks, pred_masks.clamp(max=-10.0))
