"""Checkpoints in the key layout of Hugging Face ``transformers``' SAM 2 models: the key map both
ways for every preset, files read into sam2kit with the same weights and logits, and the hub
cache's ``model.safetensors`` used offline."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from conftest import ALL_PRESETS, meta_state
from sam2kit.build import build_model
from sam2kit.checkpoints import (
    CheckpointDownloadError,
    CheckpointError,
    CheckpointMismatchError,
    download_checkpoint,
    from_transformers,
    is_transformers_layout,
    read_state_dict,
    save_checkpoint,
    to_transformers,
)
from sam2kit.config import MINI_NAME

#: Official key -> transformers key, one of each kind of rename (pinned from transformers 5.24's
#: ``Sam2VideoModel``, against which the benchmark peer loads every key strictly).
PINNED = {
    "image_encoder.trunk.patch_embed.proj.weight": "vision_encoder.backbone.patch_embed.projection.weight",
    "image_encoder.trunk.blocks.1.norm1.weight": "vision_encoder.backbone.blocks.1.layer_norm1.weight",
    "image_encoder.trunk.blocks.0.mlp.layers.0.weight": "vision_encoder.backbone.blocks.0.mlp.proj_in.weight",
    "image_encoder.trunk.blocks.0.mlp.layers.1.bias": "vision_encoder.backbone.blocks.0.mlp.proj_out.bias",
    "image_encoder.neck.convs.2.conv.weight": "vision_encoder.neck.convs.2.weight",
    "sam_prompt_encoder.mask_downscaling.4.bias": "prompt_encoder.mask_embed.layer_norm2.bias",
    "sam_mask_decoder.output_upscaling.1.weight": "mask_decoder.upscale_layer_norm.weight",
    "sam_mask_decoder.iou_prediction_head.layers.1.weight": "mask_decoder.iou_prediction_head.layers.0.weight",
    "sam_mask_decoder.iou_prediction_head.layers.2.weight": "mask_decoder.iou_prediction_head.proj_out.weight",
    "sam_mask_decoder.transformer.norm_final_attn.bias": "mask_decoder.transformer.layer_norm_final_attn.bias",
    "sam_mask_decoder.transformer.layers.0.self_attn.out_proj.weight":
        "mask_decoder.transformer.layers.0.self_attn.o_proj.weight",
    "memory_attention.layers.1.norm3.weight": "memory_attention.layers.1.layer_norm3.weight",
    "memory_encoder.mask_downsampler.encoder.4.weight": "memory_encoder.mask_downsampler.layers.1.layer_norm.weight",
    "memory_encoder.mask_downsampler.encoder.9.bias": "memory_encoder.mask_downsampler.layers.3.conv.bias",
    "memory_encoder.mask_downsampler.encoder.12.weight": "memory_encoder.mask_downsampler.final_conv.weight",
    "memory_encoder.fuser.layers.1.gamma": "memory_encoder.memory_fuser.layers.1.scale",
    "memory_encoder.fuser.layers.0.pwconv2.weight": "memory_encoder.memory_fuser.layers.0.pointwise_conv2.weight",
    "memory_encoder.out_proj.weight": "memory_encoder.projection.weight",
    "maskmem_tpos_enc": "memory_temporal_positional_encoding",
    "no_obj_embed_spatial": "occlusion_spatial_embedding_parameter",
    "obj_ptr_proj.layers.1.weight": "object_pointer_proj.layers.0.weight",
    "obj_ptr_tpos_proj.weight": "temporal_positional_encoding_projection_layer.weight",
}


def test_pinned_names() -> None:
    hf = to_transformers(meta_state(ALL_PRESETS["sam2.1_hiera_tiny"]))
    for official, name in PINNED.items():
        assert name in hf, (official, name)
    assert tuple(hf["prompt_encoder.point_embed.weight"].shape) == (4, 256)
    assert hf["prompt_encoder.shared_embedding.positional_embedding"].shape == (2, 128)
    assert hf["shared_image_embedding.positional_embedding"].shape == (2, 128)
    assert not any(key.startswith(("image_encoder.", "sam_")) for key in hf)
    assert is_transformers_layout(hf) and not is_transformers_layout(meta_state(ALL_PRESETS["sam2.1_hiera_tiny"]))


@pytest.mark.parametrize("name", sorted(ALL_PRESETS))
def test_key_map_round_trip(name: str) -> None:
    official = meta_state(ALL_PRESETS[name])
    hf = to_transformers(official)
    assert len(hf) == len(official) - 4 + 1 + 1  # 4 point embeddings -> 1, the Fourier matrix -> 2
    back = from_transformers(hf)
    assert sorted(back) == sorted(official)
    assert all(back[key].shape == official[key].shape for key in official)


@pytest.fixture(scope="module")
def mini() -> torch.nn.Module:
    torch.manual_seed(0)
    model = build_model(MINI_NAME, device="cpu")
    with torch.no_grad():
        for param in model.parameters():
            param.add_(0.01 * torch.randn_like(param))
    return model


def _logits(model: torch.nn.Module) -> torch.Tensor:
    """Low-res mask logits of a fixed image and click, ``(1, 3, 64, 64)``."""
    image = torch.randn(1, 3, 256, 256, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        features = model.forward_image(image)
        embed = model.image_embedding_without_memory(features)
        points = (torch.tensor([[[100.0, 120.0]]]), torch.tensor([[1]], dtype=torch.int32))
        sparse, dense = model.sam_prompt_encoder(points=points, boxes=None, masks=None)
        decoded = model.sam_mask_decoder(
            image_embeddings=embed, image_pe=model.sam_prompt_encoder.get_dense_pe(),
            sparse_prompt_embeddings=sparse, dense_prompt_embeddings=dense, multimask_output=True,
            repeat_image=False, high_res_features=features.high_res_features(),
        )
    return decoded.masks


@pytest.mark.parametrize("file_name", ["model.safetensors", "pytorch_model.bin"])
def test_official_to_transformers_to_sam2kit(mini: torch.nn.Module, tmp_path: Path, file_name: str) -> None:
    path = tmp_path / "hf" / file_name
    save_checkpoint(mini, path, layout="transformers")
    (path.parent / "config.json").write_text(json.dumps({"model_type": "sam2_video"}))  # beside it, not needed
    assert is_transformers_layout(read_state_dict(path, shapes_only=True).keys()) is False  # read as official keys
    loaded = build_model(checkpoint=path, device="cpu")  # no config: the weights tell sam2kit-mini
    assert loaded.config.name == MINI_NAME
    expected = mini.state_dict()
    assert sorted(loaded.state_dict()) == sorted(expected)
    for key, value in expected.items():
        assert torch.equal(loaded.state_dict()[key], value), key
    assert (_logits(loaded) - _logits(mini)).abs().max().item() <= 1e-5


def test_values_survive_the_key_map(mini: torch.nn.Module) -> None:
    official = mini.state_dict()
    hf = to_transformers(official)
    points = hf["prompt_encoder.point_embed.weight"]
    for index in range(4):
        assert torch.equal(points[index], official[f"sam_prompt_encoder.point_embeddings.{index}.weight"][0])
    back = from_transformers(hf)
    assert all(torch.equal(back[key], official[key]) for key in official)


def test_one_copy_of_the_tied_fourier_matrix_is_enough(mini: torch.nn.Module) -> None:
    hf = to_transformers(mini.state_dict())
    del hf["shared_image_embedding.positional_embedding"]
    back = from_transformers(hf)
    key = "sam_prompt_encoder.pe_layer.positional_encoding_gaussian_matrix"
    assert torch.equal(back[key], mini.state_dict()[key])


def test_differing_fourier_copies_are_refused(mini: torch.nn.Module, tmp_path: Path) -> None:
    from safetensors.torch import save_file

    hf = to_transformers(mini.state_dict())
    hf["shared_image_embedding.positional_embedding"] = hf["shared_image_embedding.positional_embedding"] + 1
    path = tmp_path / "model.safetensors"
    save_file(hf, str(path))
    with pytest.raises(CheckpointError, match="Fourier matrix differ") as info:
        read_state_dict(path)
    assert "\n" not in str(info.value) and str(path) in str(info.value)


def test_image_only_transformers_weights_name_the_missing_memory(mini: torch.nn.Module, tmp_path: Path) -> None:
    """``Sam2Model`` (images only) lacks the memory modules: with a config, the strict load says so."""
    hf = {k: v for k, v in to_transformers(mini.state_dict()).items() if not k.startswith("memory_")}
    path = tmp_path / "image_only.bin"
    torch.save(hf, path)
    with pytest.raises(CheckpointMismatchError, match="missing keys: .*memory_attention"):
        build_model(MINI_NAME, checkpoint=path, device="cpu")


# ----------------------------------------------------------------------------- hub
def _cache_file(cache: Path, repo: str, file_name: str, payload: bytes) -> Path:
    commit = "0" * 40
    folder = cache / f"models--{repo.replace('/', '--')}"
    (folder / "refs").mkdir(parents=True, exist_ok=True)
    (folder / "refs" / "main").write_text(commit)
    path = folder / "snapshots" / commit / file_name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(payload)
    return path


def test_offline_hub_serves_the_cached_transformers_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A cache filled by transformers (``model.safetensors`` only) serves a hub id offline."""
    _cache_file(tmp_path, "facebook/sam2.1-hiera-tiny", "model.safetensors", b"transformers weights")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    found = download_checkpoint("facebook/sam2.1-hiera-tiny", cache_dir=tmp_path)
    assert found.name == "model.safetensors" and found.read_bytes() == b"transformers weights"
    _cache_file(tmp_path, "facebook/sam2.1-hiera-tiny", "sam2.1_hiera_tiny.pt", b"official")
    assert download_checkpoint("facebook/sam2.1-hiera-tiny", cache_dir=tmp_path).read_bytes() == b"official"
    found = download_checkpoint("facebook/sam2.1-hiera-tiny", cache_dir=tmp_path, layout="transformers")
    assert found.name == "model.safetensors"


def test_offline_transformers_layout_not_cached(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(CheckpointDownloadError, match="model.safetensors of the Hugging Face hub repository") as info:
        download_checkpoint("facebook/sam2-hiera-small", cache_dir=tmp_path, layout="transformers")
    assert "offline" in str(info.value) and info.value.filename == "model.safetensors"
