"""Configs: the eight presets equal the official YAMLs; name lookup, aliases and errors."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from conftest import reference_available, reference_yaml, require_reference
from sam2kit.config import HUB_IDS, PRESETS, SAM2Config, config_from_yaml, get_config, list_presets

SIZES = {"t": "tiny", "s": "small", "b+": "base_plus", "l": "large"}


def official_yamls() -> list[Path]:
    """The model YAMLs shipped with the reference package (``configs/sam2/``, ``configs/sam2.1/``;
    the training configs under ``configs/sam2.1_training/`` are not model configs)."""
    if not reference_available():
        return []
    import importlib.util

    root = Path(importlib.util.find_spec("sam2").origin).parent / "configs"  # type: ignore[arg-type]
    return sorted(path for folder in ("sam2", "sam2.1") for path in (root / folder).glob("*.yaml"))


def preset_for_yaml(path: Path) -> str:
    version, _, size = path.stem.partition("_hiera_")
    return f"{version}_hiera_{SIZES[size]}"


def test_eight_presets() -> None:
    assert list_presets() == sorted(PRESETS) and len(PRESETS) == 8
    assert {config.name for config in PRESETS.values()} == set(PRESETS)
    assert SAM2Config() == PRESETS["sam2.1_hiera_tiny"]


def test_official_yamls_found(sam2_reference: Any) -> None:
    assert len(official_yamls()) == 8


@pytest.mark.parametrize("path", official_yamls(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_preset_equals_official_yaml(path: Path) -> None:
    preset = get_config(preset_for_yaml(path))
    parsed = config_from_yaml(path, name=preset.name)
    differences = {
        field.name: (getattr(parsed, field.name), getattr(preset, field.name))
        for field in dataclasses.fields(SAM2Config)
        if getattr(parsed, field.name) != getattr(preset, field.name)
    }
    assert not differences, f"{path.name}: (yaml, preset) differ: {differences}"
    assert parsed == preset
    assert config_from_yaml(path).name == path.stem  # the default name is the file's


@pytest.mark.parametrize("config_name", ["sam2.1_hiera_tiny", "sam2_hiera_tiny"])
def test_preset_matches_reference_model_attributes(config_name: str) -> None:
    """Every hyper-parameter the reference video model stores under our field name has our value."""
    require_reference()
    import torch
    from sam2.build_sam import build_sam2_video_predictor

    torch.manual_seed(0)
    ref = build_sam2_video_predictor(reference_yaml(config_name), None, device="cpu")
    config = get_config(config_name)
    compared = 0
    for field in dataclasses.fields(SAM2Config):
        for owner in (ref, ref.sam_mask_decoder):
            value = getattr(owner, field.name, None)
            if isinstance(value, (bool, int, float, str, tuple, list)):
                assert value == getattr(config, field.name), field.name
                compared += 1
                break
    assert compared >= 30
    assert (getattr(ref, "no_obj_embed_spatial", None) is not None) == config.no_obj_embed_spatial
    assert ref.hidden_dim == config.d_model
    assert len(ref.memory_attention.layers) == config.memory_attention_layers


def test_unknown_name_lists_presets() -> None:
    with pytest.raises(KeyError) as info:
        get_config("sam2.1_hiera_huge")
    message = str(info.value)
    for name in PRESETS:
        assert name in message
    assert "facebook/sam2.1-hiera-tiny" in message


@pytest.mark.parametrize("name", ["", "tiny", "sam3_hiera_t", "facebook/sam2.1-hiera-xl"])
def test_unknown_names(name: str) -> None:
    with pytest.raises(KeyError, match="known presets"):
        get_config(name)


@pytest.mark.parametrize(
    "alias, expected",
    [
        ("sam2.1_hiera_tiny", "sam2.1_hiera_tiny"),
        ("sam2.1_hiera_t", "sam2.1_hiera_tiny"),
        ("sam2.1_hiera_s", "sam2.1_hiera_small"),
        ("sam2.1_hiera_b+", "sam2.1_hiera_base_plus"),
        ("sam2_hiera_l", "sam2_hiera_large"),
        ("facebook/sam2.1-hiera-tiny", "sam2.1_hiera_tiny"),
        ("facebook/sam2.1-hiera-base-plus", "sam2.1_hiera_base_plus"),
        ("facebook/sam2-hiera-small", "sam2_hiera_small"),
        ("sam2.1_hiera_t.yaml", "sam2.1_hiera_tiny"),
        ("configs/sam2.1/sam2.1_hiera_b+.yaml", "sam2.1_hiera_base_plus"),
        ("configs/sam2/sam2_hiera_l.yaml", "sam2_hiera_large"),
        ("sam2_hiera_large.pt", "sam2_hiera_large"),
        ("  sam2_hiera_small ", "sam2_hiera_small"),
    ],
)
def test_aliases(alias: str, expected: str) -> None:
    assert get_config(alias) is PRESETS[expected]


def test_every_hub_id_resolves() -> None:
    assert len(HUB_IDS) == 8
    for hub_id, (preset, filename) in HUB_IDS.items():
        assert get_config(hub_id) is PRESETS[preset]
        assert filename == f"{preset}.pt"


def test_config_passes_through_and_replace() -> None:
    config = get_config("sam2_hiera_small").replace(image_size=512)
    assert get_config(config) is config
    assert config.image_size == 512 and config.trunk == PRESETS["sam2_hiera_small"].trunk
    assert PRESETS["sam2_hiera_small"].image_size == 1024, "replace must not mutate the preset"
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.image_size = 256  # type: ignore[misc]
    with pytest.raises(ValueError, match="multiple of 32"):
        config.replace(image_size=500)


def test_sam2_0_and_2_1_differ() -> None:
    old, new = PRESETS["sam2_hiera_tiny"], PRESETS["sam2.1_hiera_tiny"]
    assert new.no_obj_embed_spatial and not old.no_obj_embed_spatial
    assert new.proj_tpos_enc_in_obj_ptrs and not old.proj_tpos_enc_in_obj_ptrs
    assert old.trunk == new.trunk


def test_yaml_with_unknown_option_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "custom.yaml"
    path.write_text("model:\n  image_size: 512\n  frobnicate: true\n")
    with pytest.raises(ValueError, match="frobnicate"):
        config_from_yaml(path)
    path.write_text("trainer:\n  max_epochs: 1\n")
    with pytest.raises(ValueError, match="no top-level 'model'"):
        config_from_yaml(path)
