"""``build_model``: the one place where a :class:`SAM2Config` becomes modules."""

from __future__ import annotations

import warnings
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
    precision: str | torch.dtype = "fp32",
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
        precision: ``"fp32"`` (default, exact), or the opt-in reduced precision ``"bf16"`` (CPUs with
            AVX-512 BF16 or AMX, and GPUs) or ``"fp16"`` (GPUs): the image encoder and the memory
            attention, nearly all the FLOPs, run in that dtype; the heads stay float32 (see
            :meth:`SAM2Model.set_precision`).
    Raises:
        ValueError: an unknown precision, or fp16 on the CPU.
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
    torch_device = resolve_device(device)
    dtype = resolve_precision(precision, torch_device)
    model = model.to(torch_device).eval()
    if dtype != torch.float32:
        model.set_precision(dtype)
    return model


#: Names accepted for ``precision``.
PRECISIONS = {
    "fp32": torch.float32, "float32": torch.float32,
    "bf16": torch.bfloat16, "bfloat16": torch.bfloat16,
    "fp16": torch.float16, "float16": torch.float16,
}


def resolve_precision(precision: str | torch.dtype, device: torch.device) -> torch.dtype:
    """``"fp32"`` / ``"bf16"`` / ``"fp16"`` (or a dtype) -> the dtype, checked against the device.

    bf16 on a CPU without bf16 instructions (AVX-512 BF16 or AMX) still works but is emulated and
    slower than fp32, so it warns.

    Raises:
        ValueError: an unknown name, or fp16 on the CPU (no fast fp16 matmuls there; use bf16).
    """
    if isinstance(precision, torch.dtype):
        dtype = precision
        if dtype not in PRECISIONS.values():
            raise ValueError(f"unsupported precision {dtype}; use one of fp32, bf16, fp16")
    else:
        try:
            dtype = PRECISIONS[str(precision).lower()]
        except KeyError:
            raise ValueError(f"unknown precision {precision!r}; use one of fp32, bf16, fp16") from None
    if device.type == "cpu" and dtype == torch.float16:
        raise ValueError("fp16 is not supported on the CPU (its fp16 matmuls are slow); use bf16 or fp32")
    if device.type == "cpu" and dtype == torch.bfloat16 and not cpu_has_bf16():
        warnings.warn(
            "this CPU has no bf16 instructions (AVX-512 BF16 / AMX): bf16 runs emulated, slower than fp32",
            RuntimeWarning,
            stacklevel=3,
        )
    return dtype


def cpu_has_bf16() -> bool:
    """Whether this CPU computes bf16 matmuls natively: the ``avx512_bf16`` or ``amx_bf16`` flag
    on Linux x86; elsewhere what oneDNN reports."""
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("flags"):
                    flags = line.split(":", 1)[1].split()
                    return "avx512_bf16" in flags or "amx_bf16" in flags
    except OSError:
        pass
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


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
    precision: str | torch.dtype = "fp32",
) -> SAM2Model:
    """Build a model from a Hugging Face hub id (one of the eight official repositories).

    The checkpoint is fetched once with huggingface_hub and cached. Offline and uncached, a
    :class:`~sam2kit.checkpoint.CheckpointDownloadError` says how to get the file or pass a local one.
    """
    from .checkpoint import download_checkpoint

    path = download_checkpoint(model_id, cache_dir=cache_dir, local_files_only=local_files_only)
    return build_model(model_id, checkpoint=path, device=device, precision=precision)
