"""``build_model``: the one place where a :class:`SAM2Config` becomes modules."""

from __future__ import annotations

from pathlib import Path

import torch

from .checkpoint import load_checkpoint, resolve_device
from .config import SAM2Config, get_config
from .modeling.hiera import Hiera
from .modeling.memory_attention import MemoryAttention
from .modeling.memory_encoder import MemoryEncoder
from .modeling.neck import FpnNeck, ImageEncoder
from .modeling.sam2 import SAM2Model


def build_model(
    config: str | SAM2Config = "sam2.1_hiera_tiny",
    checkpoint: str | Path | None = None,
    device: str | torch.device | None = None,
    *,
    strict: bool = True,
) -> SAM2Model:
    """Build a SAM 2 model in eval mode, optionally loading weights.

    Args:
        config: a preset name (``"sam2.1_hiera_tiny"``, ``"sam2_hiera_large"``, ...), a hub id,
            a :class:`SAM2Config`, or the path of an official YAML config.
        checkpoint: an official ``.pt`` file (``{"model": state_dict}``) or a ``.safetensors`` file.
            Without it the weights are randomly initialised.
        device: ``"cpu"``, ``"cuda"``, ``"mps"`` ...; default: the best available.
        strict: raise :class:`~sam2kit.checkpoint.CheckpointMismatchError` on any missing,
            unexpected or mis-shaped key.
    """
    if isinstance(config, (str, Path)) and str(config).endswith((".yaml", ".yml")) and Path(config).is_file():
        from .config import config_from_yaml

        cfg = config_from_yaml(config)
    else:
        cfg = get_config(config)  # type: ignore[arg-type]
    model = _construct(cfg)
    if checkpoint is not None:
        load_checkpoint(model, checkpoint, strict=strict, config_name=cfg.name)
    model.config = cfg  # type: ignore[assignment]
    return model.to(resolve_device(device)).eval()


def _construct(cfg: SAM2Config) -> SAM2Model:
    trunk_cfg = cfg.trunk
    trunk = Hiera(
        embed_dim=trunk_cfg.embed_dim,
        num_heads=trunk_cfg.num_heads,
        stages=trunk_cfg.stages,
        global_att_blocks=trunk_cfg.global_att_blocks,
        window_pos_embed_bkg_spatial_size=trunk_cfg.window_pos_embed_bkg_spatial_size,
        window_spec=trunk_cfg.window_spec,
        q_pool=trunk_cfg.q_pool,
        q_stride=trunk_cfg.q_stride,
        dim_mul=trunk_cfg.dim_mul,
        head_mul=trunk_cfg.head_mul,
        mlp_ratio=trunk_cfg.mlp_ratio,
    )
    neck = FpnNeck(
        backbone_channel_list=trunk_cfg.channel_list,
        d_model=cfg.d_model,
        fpn_top_down_levels=cfg.fpn_top_down_levels,
    )
    memory_attention = MemoryAttention(
        d_model=cfg.d_model,
        num_layers=cfg.memory_attention_layers,
        dim_feedforward=cfg.memory_attention_ffn_dim,
        num_heads=cfg.memory_attention_heads,
        kv_in_dim=cfg.mem_dim,
        rope_theta=cfg.rope_theta,
    )
    memory_encoder = MemoryEncoder(out_dim=cfg.mem_dim, in_dim=cfg.d_model)
    return SAM2Model(
        ImageEncoder(trunk, neck, scalp=cfg.scalp),
        memory_attention,
        memory_encoder,
        image_size=cfg.image_size,
        backbone_stride=cfg.backbone_stride,
        num_maskmem=cfg.num_maskmem,
        mem_dim=cfg.mem_dim,
        sigmoid_scale_for_mem_enc=cfg.sigmoid_scale_for_mem_enc,
        sigmoid_bias_for_mem_enc=cfg.sigmoid_bias_for_mem_enc,
        binarize_mask_from_pts_for_mem_enc=cfg.binarize_mask_from_pts_for_mem_enc,
        non_overlap_masks_for_mem_enc=cfg.non_overlap_masks_for_mem_enc,
        use_mask_input_as_output_without_sam=cfg.use_mask_input_as_output_without_sam,
        max_cond_frames_in_attn=cfg.max_cond_frames_in_attn,
        directly_add_no_mem_embed=cfg.directly_add_no_mem_embed,
        use_high_res_features_in_sam=cfg.use_high_res_features_in_sam,
        multimask_output_in_sam=cfg.multimask_output_in_sam,
        multimask_min_pt_num=cfg.multimask_min_pt_num,
        multimask_max_pt_num=cfg.multimask_max_pt_num,
        multimask_output_for_tracking=cfg.multimask_output_for_tracking,
        use_multimask_token_for_obj_ptr=cfg.use_multimask_token_for_obj_ptr,
        iou_prediction_use_sigmoid=cfg.iou_prediction_use_sigmoid,
        memory_temporal_stride_for_eval=cfg.memory_temporal_stride_for_eval,
        use_obj_ptrs_in_encoder=cfg.use_obj_ptrs_in_encoder,
        max_obj_ptrs_in_encoder=cfg.max_obj_ptrs_in_encoder,
        add_tpos_enc_to_obj_ptrs=cfg.add_tpos_enc_to_obj_ptrs,
        proj_tpos_enc_in_obj_ptrs=cfg.proj_tpos_enc_in_obj_ptrs,
        use_signed_tpos_enc_to_obj_ptrs=cfg.use_signed_tpos_enc_to_obj_ptrs,
        only_obj_ptrs_in_the_past_for_eval=cfg.only_obj_ptrs_in_the_past_for_eval,
        pred_obj_scores=cfg.pred_obj_scores,
        pred_obj_scores_mlp=cfg.pred_obj_scores_mlp,
        fixed_no_obj_ptr=cfg.fixed_no_obj_ptr,
        soft_no_obj_ptr=cfg.soft_no_obj_ptr,
        use_mlp_for_obj_ptr_proj=cfg.use_mlp_for_obj_ptr_proj,
        no_obj_embed_spatial=cfg.no_obj_embed_spatial,
        dynamic_multimask_via_stability=cfg.dynamic_multimask_via_stability,
        dynamic_multimask_stability_delta=cfg.dynamic_multimask_stability_delta,
        dynamic_multimask_stability_thresh=cfg.dynamic_multimask_stability_thresh,
    )


def from_pretrained(
    model_id: str = "facebook/sam2.1-hiera-tiny",
    device: str | torch.device | None = None,
    *,
    cache_dir: str | Path | None = None,
    local_files_only: bool = False,
) -> SAM2Model:
    """Build a model from a Hugging Face hub id (one of the eight official repositories).

    The checkpoint is fetched once with huggingface_hub and cached. Offline and uncached, a
    :class:`~sam2kit.checkpoint.CheckpointDownloadError` says how to get the file or pass a local one.
    """
    from .checkpoint import download_checkpoint

    path = download_checkpoint(model_id, cache_dir=cache_dir, local_files_only=local_files_only)
    return build_model(model_id, checkpoint=path, device=device)
