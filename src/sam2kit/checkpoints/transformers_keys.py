"""The key map between official SAM 2 state dicts and Hugging Face ``transformers``' SAM 2 models.

``transformers`` (``Sam2Model`` / ``Sam2VideoModel``, written as ``model.safetensors`` with a
``config.json``) stores the same tensors as the official checkpoints under other names. This
module is the one place that knows the renaming, written from both models' parameter names and
shapes; sam2kit's parameters carry the official names, so the official layout is sam2kit's.

What differs besides plain renames:

* ``MLP`` modules: official ``<prefix>.layers.<i>`` are ``proj_in`` / ``layers.<i-1>`` /
  ``proj_out`` in transformers (first, middle, last layer).
* The memory encoder's mask downsampler: the official ``Sequential`` ``encoder.<i>`` of
  (conv, LayerNorm, GELU) x 4 + a final conv becomes ``layers.<i // 3>.conv`` /
  ``layers.<i // 3>.layer_norm`` and ``final_conv``.
* The four point embeddings ``sam_prompt_encoder.point_embeddings.{0..3}.weight`` ``(1, C)`` are
  one ``prompt_encoder.point_embed.weight`` ``(4, C)``.
* The prompt encoder's random Fourier matrix ``(2, C/2)`` exists twice in transformers
  (``prompt_encoder.shared_embedding`` and the model-level ``shared_image_embedding``); files
  that keep one copy (tied weights) are read too.

A ``Sam2Model`` (image-only) state dict is the subset without the memory and object-pointer
keys; converted, it lacks those official keys, which a strict load then names.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

import torch

__all__ = ["from_transformers", "is_transformers_layout", "to_transformers"]

#: Official -> transformers renames, applied in order to every key (after the MLP and mask
#: downsampler rewrites).
_TO_HF: list[tuple[str, str]] = [
    (r"^image_encoder\.trunk\.", "vision_encoder.backbone."),
    (r"^image_encoder\.neck\.convs\.(\d+)\.conv\.", r"vision_encoder.neck.convs.\1."),
    (r"\.patch_embed\.proj\.", ".patch_embed.projection."),
    (r"^sam_prompt_encoder\.mask_downscaling\.0\.", "prompt_encoder.mask_embed.conv1."),
    (r"^sam_prompt_encoder\.mask_downscaling\.1\.", "prompt_encoder.mask_embed.layer_norm1."),
    (r"^sam_prompt_encoder\.mask_downscaling\.3\.", "prompt_encoder.mask_embed.conv2."),
    (r"^sam_prompt_encoder\.mask_downscaling\.4\.", "prompt_encoder.mask_embed.layer_norm2."),
    (r"^sam_prompt_encoder\.mask_downscaling\.6\.", "prompt_encoder.mask_embed.conv3."),
    (r"^sam_prompt_encoder\.", "prompt_encoder."),
    (r"^sam_mask_decoder\.output_upscaling\.0\.", "mask_decoder.upscale_conv1."),
    (r"^sam_mask_decoder\.output_upscaling\.1\.", "mask_decoder.upscale_layer_norm."),
    (r"^sam_mask_decoder\.output_upscaling\.3\.", "mask_decoder.upscale_conv2."),
    (r"^sam_mask_decoder\.", "mask_decoder."),
    (r"\.norm_final_attn\.", ".layer_norm_final_attn."),
    (r"^memory_encoder\.mask_downsampler\.encoder\.12\.", "memory_encoder.mask_downsampler.final_conv."),
    (r"^memory_encoder\.pix_feat_proj\.", "memory_encoder.feature_projection."),
    (r"^memory_encoder\.out_proj\.", "memory_encoder.projection."),
    (r"^memory_encoder\.fuser\.", "memory_encoder.memory_fuser."),
    (r"\.dwconv\.", ".depthwise_conv."),
    (r"\.pwconv(\d)\.", r".pointwise_conv\1."),
    (r"\.gamma$", ".scale"),
    (r"\.out_proj\.", ".o_proj."),
    (r"\.norm(\d?)\.", r".layer_norm\1."),
    (r"^maskmem_tpos_enc$", "memory_temporal_positional_encoding"),
    (r"^no_mem_embed$", "no_memory_embedding"),
    (r"^no_mem_pos_enc$", "no_memory_positional_encoding"),
    (r"^no_obj_ptr$", "no_object_pointer"),
    (r"^no_obj_embed_spatial$", "occlusion_spatial_embedding_parameter"),
    (r"^obj_ptr_proj\.", "object_pointer_proj."),
    (r"^obj_ptr_tpos_proj\.", "temporal_positional_encoding_projection_layer."),
]

#: Transformers -> official renames, applied in order (specific names before the generic
#: ``.layer_norm<i>.`` / ``.o_proj.`` ones that would otherwise take them).
_FROM_HF: list[tuple[str, str]] = [
    (r"^memory_temporal_positional_encoding$", "maskmem_tpos_enc"),
    (r"^no_memory_embedding$", "no_mem_embed"),
    (r"^no_memory_positional_encoding$", "no_mem_pos_enc"),
    (r"^no_object_pointer$", "no_obj_ptr"),
    (r"^occlusion_spatial_embedding_parameter$", "no_obj_embed_spatial"),
    (r"^object_pointer_proj\.", "obj_ptr_proj."),
    (r"^temporal_positional_encoding_projection_layer\.", "obj_ptr_tpos_proj."),
    (r"^vision_encoder\.backbone\.", "image_encoder.trunk."),
    (r"^vision_encoder\.neck\.convs\.(\d+)\.", r"image_encoder.neck.convs.\1.conv."),
    (r"\.patch_embed\.projection\.", ".patch_embed.proj."),
    (r"^prompt_encoder\.mask_embed\.conv1\.", "sam_prompt_encoder.mask_downscaling.0."),
    (r"^prompt_encoder\.mask_embed\.layer_norm1\.", "sam_prompt_encoder.mask_downscaling.1."),
    (r"^prompt_encoder\.mask_embed\.conv2\.", "sam_prompt_encoder.mask_downscaling.3."),
    (r"^prompt_encoder\.mask_embed\.layer_norm2\.", "sam_prompt_encoder.mask_downscaling.4."),
    (r"^prompt_encoder\.mask_embed\.conv3\.", "sam_prompt_encoder.mask_downscaling.6."),
    (r"^prompt_encoder\.", "sam_prompt_encoder."),
    (r"^mask_decoder\.upscale_conv1\.", "sam_mask_decoder.output_upscaling.0."),
    (r"^mask_decoder\.upscale_layer_norm\.", "sam_mask_decoder.output_upscaling.1."),
    (r"^mask_decoder\.upscale_conv2\.", "sam_mask_decoder.output_upscaling.3."),
    (r"^mask_decoder\.", "sam_mask_decoder."),
    (r"\.layer_norm_final_attn\.", ".norm_final_attn."),
    (r"^memory_encoder\.mask_downsampler\.final_conv\.", "memory_encoder.mask_downsampler.encoder.12."),
    (r"^memory_encoder\.feature_projection\.", "memory_encoder.pix_feat_proj."),
    (r"^memory_encoder\.projection\.", "memory_encoder.out_proj."),
    (r"^memory_encoder\.memory_fuser\.", "memory_encoder.fuser."),
    (r"\.depthwise_conv\.", ".dwconv."),
    (r"\.pointwise_conv(\d)\.", r".pwconv\1."),
    (r"\.scale$", ".gamma"),
    (r"\.o_proj\.", ".out_proj."),
    (r"\.layer_norm(\d?)\.", r".norm\1."),
]

#: Official ``MLP`` layers: ``<prefix>.layers.<i>.<weight|bias>``.
_OFFICIAL_MLP = re.compile(r"^(.*(?:\.mlp|_mlps\.\d+|_head)|obj_ptr_proj)\.layers\.(\d+)\.(weight|bias)$")
#: The same layers in transformers: ``<prefix>.proj_in`` / ``.layers.<i>`` / ``.proj_out``.
_HF_MLP = re.compile(
    r"^(.*(?:\.mlp|_mlps\.\d+|_head)|object_pointer_proj)\.(proj_in|proj_out|layers\.(\d+))\.(weight|bias)$"
)
#: The memory encoder's mask downsampler, (conv, LayerNorm, GELU) x 4 in one official Sequential.
_OFFICIAL_DOWNSAMPLER = re.compile(r"^memory_encoder\.mask_downsampler\.encoder\.(\d+)\.(weight|bias)$")
_HF_DOWNSAMPLER = re.compile(r"^memory_encoder\.mask_downsampler\.layers\.(\d+)\.(conv|layer_norm)\.(weight|bias)$")

_POINT_PREFIX = "sam_prompt_encoder.point_embeddings."
_FOURIER = "sam_prompt_encoder.pe_layer.positional_encoding_gaussian_matrix"
_HF_POINTS = "prompt_encoder.point_embed.weight"
_HF_FOURIER = ("prompt_encoder.shared_embedding.positional_embedding", "shared_image_embedding.positional_embedding")


def is_transformers_layout(keys: Iterable[str]) -> bool:
    """Whether state-dict keys are named like ``transformers``' SAM 2 (``vision_encoder.backbone...``)
    rather than the official ``image_encoder.trunk...``."""
    return any(key.startswith(("vision_encoder.", "prompt_encoder.point_embed")) for key in keys)


def _rename(key: str, rules: list[tuple[str, str]]) -> str:
    for pattern, replacement in rules:
        key = re.sub(pattern, replacement, key)
    return key


def to_transformers(official: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Official SAM 2 state dict -> the ``Sam2VideoModel`` state dict of ``transformers``
    (``Sam2Model`` takes the subset without memory / object-pointer keys).

    The point embeddings are stacked into one ``(4, C)`` tensor; the Fourier matrix fills both of
    transformers' copies (the second is a clone, so the result can be written to safetensors).

    Raises:
        KeyError: two official keys would map to one name (not an official state dict).
    """
    mlp_depth: dict[str, int] = {}
    for key in official:
        if match := _OFFICIAL_MLP.match(key):
            mlp_depth[match.group(1)] = max(mlp_depth.get(match.group(1), 0), int(match.group(2)) + 1)
    points = sorted((k for k in official if k.startswith(_POINT_PREFIX)), key=lambda k: int(k.split(".")[2]))
    out: dict[str, torch.Tensor] = {}
    if points:
        out[_HF_POINTS] = torch.cat([official[k] for k in points], dim=0)  # 4 x (1, C) -> (4, C)
    for key, value in official.items():
        if key in points:
            continue
        if key == _FOURIER:
            out[_HF_FOURIER[0]], out[_HF_FOURIER[1]] = value, value.clone()
            continue
        new = key
        if match := _OFFICIAL_MLP.match(key):
            prefix, index, kind = match.group(1), int(match.group(2)), match.group(3)
            last = mlp_depth[prefix] - 1
            part = "proj_in" if index == 0 else "proj_out" if index == last else f"layers.{index - 1}"
            new = f"{prefix}.{part}.{kind}"
        elif (match := _OFFICIAL_DOWNSAMPLER.match(key)) and int(match.group(1)) < 12:
            index = int(match.group(1))
            part = ("conv", "layer_norm")[index % 3]  # index % 3 == 2 is a GELU, without weights
            new = f"memory_encoder.mask_downsampler.layers.{index // 3}.{part}.{match.group(2)}"
        new = _rename(new, _TO_HF)
        if new in out:
            raise KeyError(f"two official keys map to the transformers key {new!r}")
        out[new] = value
    return out


def from_transformers(hf: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A ``transformers`` SAM 2 state dict (``Sam2VideoModel``, or ``Sam2Model`` without the memory
    keys) -> the official / sam2kit state dict; the inverse of :func:`to_transformers`.

    Keys this map does not know keep a best-effort name, so that a strict load names them.

    Raises:
        ValueError: the two copies of the Fourier matrix differ (no official model has that), or
            ``point_embed`` is not ``(4, C)``.
    """
    middle: dict[str, int] = {}  # MLP prefix -> number of its middle layers
    for key in hf:
        if (match := _HF_MLP.match(key)) and match.group(3) is not None:
            middle[match.group(1)] = max(middle.get(match.group(1), 0), int(match.group(3)) + 1)
    out: dict[str, torch.Tensor] = {}
    fourier = [hf[k] for k in _HF_FOURIER if k in hf]
    if fourier:
        first, last = fourier[0], fourier[-1]
        same = first.shape == last.shape and (first.device.type == "meta" or torch.equal(first, last))
        if not same:  # meta tensors (shapes only) have no values to compare
            raise ValueError(f"the two copies of the prompt encoder's Fourier matrix differ ({', '.join(_HF_FOURIER)})")
        out[_FOURIER] = fourier[0]
    if _HF_POINTS in hf:
        points = hf[_HF_POINTS]
        if points.dim() != 2 or points.shape[0] != 4:
            raise ValueError(f"{_HF_POINTS} must be (4, C), got {tuple(points.shape)}")
        for index in range(4):
            out[f"{_POINT_PREFIX}{index}.weight"] = points[index : index + 1]  # (1, C)
    for key, value in hf.items():
        if key in _HF_FOURIER or key == _HF_POINTS:
            continue
        new = key
        if match := _HF_MLP.match(key):
            prefix, part, kind = match.group(1), match.group(2), match.group(4)
            if part == "proj_in":
                index = 0
            elif part == "proj_out":
                index = middle.get(prefix, 0) + 1
            else:
                index = int(match.group(3)) + 1
            new = f"{prefix}.layers.{index}.{kind}"
        elif match := _HF_DOWNSAMPLER.match(key):
            index = 3 * int(match.group(1)) + (0 if match.group(2) == "conv" else 1)
            new = f"memory_encoder.mask_downsampler.encoder.{index}.{match.group(3)}"
        new = _rename(new, _FROM_HF)
        if new in out:
            raise ValueError(f"two transformers keys map to the official key {new!r}")
        out[new] = value
    return out
