"""``ModelSpec`` / ``load_model``: the one path from what a user names to a model, and its errors
(neutral wording: the field at fault is named, never a command-line flag)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from sam2kit.build import build_model, resolve_config
from sam2kit.checkpoints import save_checkpoint
from sam2kit.config import get_config
from sam2kit.model_spec import LoadedModel, ModelSpec, ModelSpecError, load_model

SIZE = 128


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random SAM 2.1 tiny checkpoint with an official file name."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt") / "sam2.1_hiera_tiny.pt"
    save_checkpoint(build_model(get_config("sam2.1_hiera_tiny").replace(image_size=SIZE), device="cpu"), path)
    return path


def test_load_a_file_named_like_the_official_ones(checkpoint: Path) -> None:
    spec = ModelSpec(checkpoint=checkpoint, device="cpu", image_size=SIZE)
    loaded = load_model(spec)
    assert isinstance(loaded, LoadedModel) and not loaded.model.training
    assert loaded.config.name == "sam2.1_hiera_tiny" and loaded.config.image_size == SIZE
    assert loaded.to_json() == {"checkpoint": str(checkpoint), "config": "sam2.1_hiera_tiny", "image_size": SIZE,
                                "device": "cpu", "precision": "fp32"}
    reference = build_model(get_config("sam2.1_hiera_tiny").replace(image_size=SIZE), checkpoint, device="cpu")
    for name, value in reference.state_dict().items():
        assert torch.equal(value, loaded.model.state_dict()[name]), name


def test_random_weights_need_a_config() -> None:
    with pytest.raises(ModelSpecError, match="config needed") as info:
        load_model(ModelSpec(checkpoint=None, device="cpu"))
    assert info.value.argument == "config"
    loaded = load_model(ModelSpec(checkpoint=None, config="sam2.1_hiera_tiny", device="cpu", image_size=SIZE))
    assert loaded.to_json()["checkpoint"] is None and loaded.config.image_size == SIZE


@pytest.mark.parametrize(
    "spec, argument, message",
    [
        (ModelSpec(checkpoint="missing.pt"), "checkpoint", "checkpoint 'missing.pt' not found"),
        (ModelSpec(checkpoint="facebook/sam2.1-hiera-tiny", config="sam9_huge"), "config",
         "config 'sam9_huge' is unknown"),
        (ModelSpec(checkpoint=None, config="sam2.1_hiera_tiny", device="nonsense"), "device", "device 'nonsense'"),
        (ModelSpec(checkpoint=None, config="sam2.1_hiera_tiny", device="cpu", precision="fp16"), "precision",
         "precision fp16: fp16 is not supported on the CPU"),
        (ModelSpec(checkpoint=None, config="sam2.1_hiera_tiny", image_size=100), "image_size", "multiple of 32"),
    ],
)
def test_spec_errors_name_the_field_not_a_flag(spec: ModelSpec, argument: str, message: str) -> None:
    with pytest.raises(ModelSpecError) as info:
        load_model(spec)
    assert info.value.argument == argument and message in str(info.value)
    assert "--" not in str(info.value)


def test_checkpoint_folder_and_unnamed_file(tmp_path: Path, checkpoint: Path) -> None:
    with pytest.raises(ModelSpecError, match="is a folder"):
        load_model(ModelSpec(checkpoint=tmp_path))
    renamed = tmp_path / "weights.pt"
    renamed.write_bytes(checkpoint.read_bytes())
    loaded = load_model(ModelSpec(checkpoint=renamed, device="cpu", image_size=SIZE))  # the weights tell the preset
    assert loaded.config.name == "sam2.1_hiera_tiny"


def test_resolve_config_is_shared_by_build_model(tmp_path: Path) -> None:
    tiny = get_config("sam2.1_hiera_tiny")
    assert resolve_config("facebook/sam2.1-hiera-tiny") == tiny
    assert resolve_config(None, "facebook/sam2-hiera-large").name == "sam2_hiera_large"
    assert resolve_config(None, Path("/models/sam2.1_hiera_small.safetensors")).name == "sam2.1_hiera_small"
    assert resolve_config("configs/sam2.1/sam2.1_hiera_t.yaml") == tiny  # an official YAML name, no file
    assert resolve_config(tiny) is tiny
    with pytest.raises(FileNotFoundError, match="config file not found"):
        resolve_config(tmp_path / "custom.yaml")
    with pytest.raises(ValueError, match="config needed"):
        resolve_config(None, None)
    with pytest.raises(FileNotFoundError, match="config file not found"):
        build_model(tmp_path / "custom.yaml")
