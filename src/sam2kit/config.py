"""Typed model configurations: the eight official SAM 2 / SAM 2.1 presets and a YAML reader.

Every default equals the official hyper-parameter, so ``SAM2Config()`` is SAM 2.1 tiny. Presets are
named like the official checkpoints (``"sam2.1_hiera_tiny"``) and can be looked up by hub id too.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "HieraConfig",
    "SAM2Config",
    "PRESETS",
    "HUB_IDS",
    "MINI_NAME",
    "EXTRA_PRESETS",
    "BUNDLED",
    "bundled_name",
    "get_config",
    "config_from_yaml",
    "list_presets",
]


@dataclass(frozen=True)
class HieraConfig:
    """Hiera trunk hyper-parameters (official names; defaults are the Hiera class defaults, which
    official YAMLs rely on for omitted keys).

    ``drop_path_rate`` is a training option: the stochastic-depth rate of the last block (rising
    linearly from 0 at the first); it acts only in ``model.train()`` mode and adds no weights.
    """

    embed_dim: int = 96
    num_heads: int = 1
    stages: tuple[int, ...] = (2, 3, 16, 3)
    global_att_blocks: tuple[int, ...] = (12, 16, 20)
    window_pos_embed_bkg_spatial_size: tuple[int, int] = (14, 14)
    window_spec: tuple[int, ...] = (8, 4, 14, 7)
    q_pool: int = 3
    q_stride: tuple[int, int] = (2, 2)
    dim_mul: float = 2.0
    head_mul: float = 2.0
    mlp_ratio: float = 4.0
    drop_path_rate: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.drop_path_rate < 1.0:
            raise ValueError(f"drop_path_rate must be in [0, 1), got {self.drop_path_rate}")

    @property
    def channel_list(self) -> tuple[int, ...]:
        """Output channels of each stage, lowest resolution first (as the FPN neck expects)."""
        dims = [int(self.embed_dim * self.dim_mul**i) for i in range(len(self.stages))]
        return tuple(reversed(dims))


_TINY = HieraConfig(
    stages=(1, 2, 7, 2), global_att_blocks=(5, 7, 9), window_pos_embed_bkg_spatial_size=(7, 7)
)
_SMALL = HieraConfig(
    stages=(1, 2, 11, 2), global_att_blocks=(7, 10, 13), window_pos_embed_bkg_spatial_size=(7, 7)
)
_BASE_PLUS = HieraConfig(embed_dim=112, num_heads=2)
_LARGE = HieraConfig(
    embed_dim=144,
    num_heads=2,
    stages=(2, 6, 36, 4),
    global_att_blocks=(23, 33, 43),
    window_pos_embed_bkg_spatial_size=(7, 7),
    window_spec=(8, 4, 16, 8),
)


@dataclass(frozen=True)
class SAM2Config:
    """All hyper-parameters of a SAM 2 model. Defaults are SAM 2.1 hiera tiny.

    Training options act only in ``model.train()`` mode and add no weights:
    ``memory_attention_dropout`` (the official 0.1) is the dropout of the memory-attention layers
    (attention weights, sub-layer outputs, MLP hidden units).
    """

    name: str = "sam2.1_hiera_tiny"
    trunk: HieraConfig = field(default_factory=lambda: _TINY)
    image_size: int = 1024
    backbone_stride: int = 16
    d_model: int = 256  # width of the neck, decoder and memory attention
    mem_dim: int = 64  # width of memory features
    fpn_top_down_levels: tuple[int, ...] = (2, 3)
    scalp: int = 1  # number of lowest-resolution FPN levels discarded
    # memory attention
    num_maskmem: int = 7
    memory_attention_layers: int = 4
    memory_attention_heads: int = 1
    memory_attention_ffn_dim: int = 2048
    rope_theta: float = 10000.0
    memory_attention_dropout: float = 0.1
    # memory encoder
    sigmoid_scale_for_mem_enc: float = 20.0
    sigmoid_bias_for_mem_enc: float = -10.0
    binarize_mask_from_pts_for_mem_enc: bool = True
    # Tracking (eval mode): each pixel of the masks written to memory goes to the highest-scoring
    # object among all objects tracked on the frame, or prompted on it. This is what sam2's legacy
    # (SAM 2.0) video predictor does; its 1.1.0 predictor tracks objects one at a time, so there
    # the flag no longer has an effect.
    non_overlap_masks_for_mem_enc: bool = False
    no_obj_embed_spatial: bool = True
    # SAM heads
    use_high_res_features_in_sam: bool = True
    use_mask_input_as_output_without_sam: bool = True
    directly_add_no_mem_embed: bool = True
    multimask_output_in_sam: bool = True
    multimask_output_for_tracking: bool = True
    multimask_min_pt_num: int = 0
    multimask_max_pt_num: int = 1
    iou_prediction_use_sigmoid: bool = True
    dynamic_multimask_via_stability: bool = True
    dynamic_multimask_stability_delta: float = 0.05
    dynamic_multimask_stability_thresh: float = 0.98
    pred_obj_scores: bool = True
    pred_obj_scores_mlp: bool = True
    # object pointers
    use_obj_ptrs_in_encoder: bool = True
    max_obj_ptrs_in_encoder: int = 16
    add_tpos_enc_to_obj_ptrs: bool = True
    proj_tpos_enc_in_obj_ptrs: bool = True
    use_signed_tpos_enc_to_obj_ptrs: bool = True
    only_obj_ptrs_in_the_past_for_eval: bool = True
    fixed_no_obj_ptr: bool = True
    soft_no_obj_ptr: bool = False
    use_multimask_token_for_obj_ptr: bool = True
    use_mlp_for_obj_ptr_proj: bool = True
    # evaluation-time memory selection
    max_cond_frames_in_attn: int = -1
    memory_temporal_stride_for_eval: int = 1

    def __post_init__(self) -> None:
        if self.image_size % 32 != 0 or self.image_size <= 0:
            raise ValueError(f"image_size must be a positive multiple of 32, got {self.image_size}")
        if not 0.0 <= self.memory_attention_dropout < 1.0:
            raise ValueError(f"memory_attention_dropout must be in [0, 1), got {self.memory_attention_dropout}")
        if self.proj_tpos_enc_in_obj_ptrs and not self.add_tpos_enc_to_obj_ptrs:
            raise ValueError("proj_tpos_enc_in_obj_ptrs requires add_tpos_enc_to_obj_ptrs")
        if self.fixed_no_obj_ptr and not (self.pred_obj_scores and self.use_obj_ptrs_in_encoder):
            raise ValueError("fixed_no_obj_ptr requires pred_obj_scores and use_obj_ptrs_in_encoder")

    def replace(self, **changes: Any) -> SAM2Config:
        """A copy with some fields changed (e.g. ``image_size=512`` for fast tests)."""
        return dataclasses.replace(self, **changes)


_SIZES = {"tiny": _TINY, "small": _SMALL, "base_plus": _BASE_PLUS, "large": _LARGE}
# SAM 2.0 lacks the 2.1 additions: spatial no-object embedding and projected, signed
# temporal encodings of object pointers.
_SAM2_0_FLAGS: dict[str, Any] = dict(
    no_obj_embed_spatial=False,
    add_tpos_enc_to_obj_ptrs=False,
    proj_tpos_enc_in_obj_ptrs=False,
    use_signed_tpos_enc_to_obj_ptrs=False,
)

PRESETS: dict[str, SAM2Config] = {}
for _size, _trunk in _SIZES.items():
    PRESETS[f"sam2.1_hiera_{_size}"] = SAM2Config(name=f"sam2.1_hiera_{_size}", trunk=_trunk)
    PRESETS[f"sam2_hiera_{_size}"] = SAM2Config(
        name=f"sam2_hiera_{_size}", trunk=_trunk, **_SAM2_0_FLAGS
    )

#: Hugging Face hub id -> (preset name, checkpoint file name in that repository).
HUB_IDS: dict[str, tuple[str, str]] = {}
for _size in _SIZES:
    _dash = _size.replace("_", "-")
    HUB_IDS[f"facebook/sam2.1-hiera-{_dash}"] = (f"sam2.1_hiera_{_size}", f"sam2.1_hiera_{_size}.pt")
    HUB_IDS[f"facebook/sam2-hiera-{_dash}"] = (f"sam2_hiera_{_size}", f"sam2_hiera_{_size}.pt")

#: The small model that ``sam2kit train`` trains from scratch on synthetic scenes.
MINI_NAME = "sam2kit-mini"

#: Presets of sam2kit's own models, beside the official ones. ``sam2kit-mini`` is SAM 2.1 made
#: narrow, small enough to train on a CPU: 256 px input, a Hiera trunk of width 24 with stages
#: (1, 2, 4, 1) (block 5 global; at 256 px the last two stages' windows are whole maps), a 64-wide
#: neck / decoder / memory attention (2 layers, FFN 256, no dropout) and 32-wide memories; 2.07 M parameters.
#: Every behaviour flag keeps its SAM 2.1 value but one: ``non_overlap_masks_for_mem_enc``, so that
#: tracked objects do not remember each other's pixels (its small memory would otherwise follow a
#: neighbouring shape; models/sam2kit-mini/README.md gives the figures).
EXTRA_PRESETS: dict[str, SAM2Config] = {
    MINI_NAME: SAM2Config(
        name=MINI_NAME,
        trunk=HieraConfig(
            embed_dim=24,
            num_heads=1,
            stages=(1, 2, 4, 1),
            global_att_blocks=(5,),
            window_pos_embed_bkg_spatial_size=(8, 8),
            window_spec=(8, 4, 8, 8),
        ),
        image_size=256,
        d_model=64,
        mem_dim=32,
        memory_attention_layers=2,
        memory_attention_ffn_dim=256,
        # Trained on a CPU: no memory-attention dropout (it makes attention 6x slower there and a
        # model this small on synthetic scenes does not need it). Inference is the same either way.
        memory_attention_dropout=0.0,
        non_overlap_masks_for_mem_enc=True,
    )
}

#: Models whose weights ship inside the package: name -> weights file under ``sam2kit/weights/``
#: (official layout). They load offline by name: ``--checkpoint sam2kit-mini``,
#: ``from_pretrained("sam2kit-mini")``.
BUNDLED: dict[str, str] = {MINI_NAME: "sam2kit_mini.pt"}


def bundled_name(name: object) -> str | None:
    """The bundled model ``name`` refers to (``"sam2kit-mini"`` or ``"sam2kit_mini"``), or None."""
    key = str(name).strip().replace("_", "-")
    return key if key in BUNDLED else None

_ALIASES = {"t": "tiny", "s": "small", "b+": "base_plus", "b": "base_plus", "l": "large"}


def list_presets() -> list[str]:
    """Names of the eight official presets."""
    return sorted(PRESETS)


def get_config(name: str | SAM2Config) -> SAM2Config:
    """Look up a preset by name (``"sam2.1_hiera_tiny"``, ``"sam2.1_hiera_t"``, ``"sam2kit-mini"``), hub
    id, or pass through.

    Raises:
        KeyError: the name is not a known preset or hub id (the message lists them).
    """
    if isinstance(name, SAM2Config):
        return name
    key = str(name).strip()
    if key in PRESETS:
        return PRESETS[key]
    if key.replace("_", "-") in EXTRA_PRESETS:
        return EXTRA_PRESETS[key.replace("_", "-")]
    if key in HUB_IDS:
        return PRESETS[HUB_IDS[key][0]]
    stem = Path(key).name.removesuffix(".yaml").removesuffix(".pt").replace("-", "_")
    prefix, _, size = stem.rpartition("_")
    candidate = f"{prefix}_{_ALIASES.get(size, size)}"
    if candidate in PRESETS:
        return PRESETS[candidate]
    raise KeyError(
        f"unknown model config {name!r}; known presets: {', '.join(list_presets())}, {', '.join(EXTRA_PRESETS)}; "
        f"hub ids: {', '.join(sorted(HUB_IDS))}"
    )


def _tuple(value: Any) -> Any:
    return tuple(value) if isinstance(value, (list, tuple)) else value


def config_from_yaml(path: str | Path, name: str | None = None) -> SAM2Config:
    """Read an official SAM 2 Hydra YAML config (``model: {image_encoder: ..., ...}``).

    Only the hyper-parameters are read; ``_target_`` class paths are ignored (our modules are fixed).
    Keys that sam2kit does not know raise ``ValueError`` rather than being silently dropped.
    """
    import yaml

    with open(path, encoding="utf-8") as f:
        doc = yaml.safe_load(f)
    if not isinstance(doc, Mapping) or "model" not in doc:
        raise ValueError(f"{path}: not a SAM 2 config (no top-level 'model' section)")
    model = dict(doc["model"])
    trunk_cfg = dict(model.get("image_encoder", {}).get("trunk", {}))
    trunk_cfg.pop("_target_", None)
    trunk_fields = {f.name for f in dataclasses.fields(HieraConfig)}
    unknown = set(trunk_cfg) - trunk_fields
    if unknown:
        raise ValueError(f"{path}: unsupported Hiera options {sorted(unknown)}")
    trunk = HieraConfig(**{k: _tuple(v) for k, v in trunk_cfg.items()})
    neck = model.get("image_encoder", {}).get("neck", {})
    expected_channels = list(trunk.channel_list)
    if "backbone_channel_list" in neck and list(neck["backbone_channel_list"]) != expected_channels:
        raise ValueError(
            f"{path}: backbone_channel_list {neck['backbone_channel_list']} does not match the trunk "
            f"(expected {expected_channels})"
        )
    values: dict[str, Any] = {
        "name": name or Path(path).stem,
        "trunk": trunk,
    }
    if "d_model" in neck:
        values["d_model"] = neck["d_model"]
    if "fpn_top_down_levels" in neck:
        values["fpn_top_down_levels"] = tuple(neck["fpn_top_down_levels"])
    if "scalp" in model.get("image_encoder", {}):
        values["scalp"] = model["image_encoder"]["scalp"]
    mem_attn = model.get("memory_attention", {})
    if "num_layers" in mem_attn:
        values["memory_attention_layers"] = mem_attn["num_layers"]
    layer = mem_attn.get("layer", {})
    if "dim_feedforward" in layer:
        values["memory_attention_ffn_dim"] = layer["dim_feedforward"]
    if "rope_theta" in layer.get("self_attention", {}):
        values["rope_theta"] = layer["self_attention"]["rope_theta"]
    if "num_heads" in layer.get("self_attention", {}):
        values["memory_attention_heads"] = layer["self_attention"]["num_heads"]
    sections = {"layer": layer, "self_attention": layer.get("self_attention") or {}}
    sections["cross_attention"] = layer.get("cross_attention") or {}
    dropouts = {where: section["dropout"] for where, section in sections.items() if "dropout" in section}
    if len(set(dropouts.values())) > 1:
        raise ValueError(f"{path}: memory attention dropouts differ ({dropouts}); sam2kit uses one rate for all")
    if dropouts:
        values["memory_attention_dropout"] = float(next(iter(dropouts.values())))
    if "out_dim" in model.get("memory_encoder", {}):
        values["mem_dim"] = model["memory_encoder"]["out_dim"]
    ignored = {"_target_", "image_encoder", "memory_attention", "memory_encoder", "compile_image_encoder"}
    top_fields = {f.name for f in dataclasses.fields(SAM2Config)}
    for key, value in model.items():
        if key in ignored:
            continue
        if key == "sam_mask_decoder_extra_args":
            for sub_key, sub_value in (value or {}).items():
                values[sub_key] = sub_value
            continue
        if key not in top_fields:
            raise ValueError(f"{path}: unsupported model option {key!r}")
        values[key] = _tuple(value)
    # Options absent from an official YAML take the reference's class defaults, not the 2.1 ones.
    for flag in ("no_obj_embed_spatial", "proj_tpos_enc_in_obj_ptrs", "use_signed_tpos_enc_to_obj_ptrs"):
        values.setdefault(flag, False)
    values.setdefault("add_tpos_enc_to_obj_ptrs", True)
    return SAM2Config(**values)
