"""The preset told from a checkpoint's weights: every official preset and sam2kit-mini, under
names that say nothing (or the wrong thing), through ``build_model``, ``resolve_config``,
``load_model`` and the command line; and the error of weights that match no preset."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import ALL_PRESETS, expanded, meta_state
from sam2kit.build import build_model, resolve_config
from sam2kit.checkpoints import (
    CheckpointConfigError,
    CheckpointMismatchError,
    config_shapes,
    infer_config,
    infer_config_from_file,
    save_checkpoint,
    weight_shapes,
)
from sam2kit.cli import main
from sam2kit.config import MINI_NAME, get_config
from sam2kit.model_spec import ModelSpec, load_model

#: Names that reveal nothing, with the layouts written under them.
NAMES = ["weights.pt", "model.bin", "checkpoint", "my_finetune.pth"]


@pytest.mark.parametrize("name", sorted(ALL_PRESETS))
def test_every_preset_is_told_from_a_renamed_file(name: str, tmp_path: Path) -> None:
    state = expanded(meta_state(ALL_PRESETS[name]))
    for index, file_name in enumerate(NAMES):
        path = tmp_path / file_name
        torch.save({"model": state} if index % 2 == 0 else state, path)  # official layout, and a bare dict
        assert infer_config_from_file(path).name == name, file_name
    assert resolve_config(None, path).name == name


@pytest.mark.parametrize("name", sorted(ALL_PRESETS))
def test_shapes_of_the_weights_equal_the_shapes_of_the_config(name: str) -> None:
    assert weight_shapes(meta_state(ALL_PRESETS[name])) == config_shapes(ALL_PRESETS[name])


def test_no_two_presets_share_their_shapes() -> None:
    shapes = [config_shapes(cfg) for cfg in ALL_PRESETS.values()]
    assert len(set(shapes)) == len(shapes)


def test_sam2_and_sam21_differ_only_in_their_21_keys() -> None:
    sam2, sam21 = meta_state(ALL_PRESETS["sam2_hiera_small"]), meta_state(ALL_PRESETS["sam2.1_hiera_small"])
    only_21 = ["no_obj_embed_spatial", "obj_ptr_tpos_proj.bias", "obj_ptr_tpos_proj.weight"]
    assert sorted(set(sam21) - set(sam2)) == only_21
    assert set(sam2) < set(sam21)
    assert weight_shapes(sam2).version == "SAM 2" and weight_shapes(sam21).version == "SAM 2.1"


@pytest.mark.parametrize("suffix", ["x.safetensors", "weights.pt"])
def test_build_model_without_config_loads_the_weights(tmp_path: Path, suffix: str) -> None:
    torch.manual_seed(0)
    model = build_model(MINI_NAME, device="cpu")
    path = tmp_path / suffix
    save_checkpoint(model, path)
    loaded = build_model(checkpoint=path, device="cpu")
    assert loaded.config.name == MINI_NAME
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key


def test_safetensors_of_an_official_preset_in_half_precision(tmp_path: Path) -> None:
    """A renamed .safetensors of SAM 2 tiny stored in float16: the shapes tell the preset."""
    from safetensors.torch import save_file

    shapes = meta_state(ALL_PRESETS["sam2_hiera_tiny"])
    state = {key: torch.zeros(value.shape, dtype=torch.float16) for key, value in shapes.items()}
    path = tmp_path / "x.safetensors"
    save_file(state, str(path))
    assert infer_config_from_file(path).name == "sam2_hiera_tiny"
    renamed = tmp_path / "blob"  # no suffix at all: the content says safetensors
    path.rename(renamed)
    assert infer_config_from_file(renamed).name == "sam2_hiera_tiny"


def test_the_weights_win_over_the_file_name(tmp_path: Path) -> None:
    path = tmp_path / "sam2.1_hiera_large.pt"  # an official name, but tiny's weights
    torch.save({"model": expanded(meta_state(ALL_PRESETS["sam2.1_hiera_tiny"]))}, path)
    assert infer_config_from_file(path).name == "sam2.1_hiera_tiny"


def test_weights_of_no_preset_name_the_shapes_and_the_nearest(tmp_path: Path) -> None:
    tiny = ALL_PRESETS["sam2.1_hiera_tiny"]
    custom = tiny.replace(name="custom", trunk=tiny.trunk.__class__(**{**tiny.trunk.__dict__, "embed_dim": 80}))
    path = tmp_path / "weights.pt"
    torch.save({"model": expanded(meta_state(custom))}, path)
    with pytest.raises(CheckpointConfigError) as info:
        build_model(checkpoint=path, device="cpu")
    message = str(info.value)
    assert "\n" not in message and str(path) in message
    assert "match no preset" in message and "Hiera embed dim 80" in message and "stages (1, 2, 7, 2)" in message
    assert "nearest preset, sam2.1_hiera_tiny" in message and "embed_dim 80 vs 96" in message
    assert info.value.nearest == "sam2.1_hiera_tiny"
    # given the config, the strict load names the keys instead
    with pytest.raises(CheckpointMismatchError):
        build_model("sam2.1_hiera_tiny", checkpoint=path, device="cpu")


def test_half_a_sam21_checkpoint_matches_no_preset() -> None:
    state = meta_state(ALL_PRESETS["sam2.1_hiera_base_plus"])
    del state["obj_ptr_tpos_proj.weight"], state["obj_ptr_tpos_proj.bias"]
    with pytest.raises(CheckpointConfigError, match="no_obj_embed_spatial without obj_ptr_tpos_proj") as info:
        infer_config(state, source="half.pt")
    assert info.value.nearest in ("sam2.1_hiera_base_plus", "sam2_hiera_base_plus")


def test_a_config_of_another_size_names_the_preset_of_the_weights(tmp_path: Path) -> None:
    path = tmp_path / "weights.pt"
    torch.save({"model": expanded(meta_state(ALL_PRESETS["sam2.1_hiera_small"]))}, path)
    with pytest.raises(CheckpointMismatchError, match="those of 'sam2.1_hiera_small'") as info:
        build_model("sam2.1_hiera_tiny", checkpoint=path, device="cpu")
    assert info.value.weights_preset == "sam2.1_hiera_small"


# ----------------------------------------------------------------------------- load_model and the CLI
@pytest.fixture(scope="module")
def finetune(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A seeded sam2kit-mini checkpoint under a name that tells nothing."""
    torch.manual_seed(0)
    model = build_model(MINI_NAME, device="cpu")
    path = tmp_path_factory.mktemp("weights") / "my_finetune.pt"
    save_checkpoint(model, path)
    return path


def test_load_model_without_config(finetune: Path) -> None:
    loaded = load_model(ModelSpec(checkpoint=finetune, device="cpu"))
    assert loaded.config == get_config(MINI_NAME) and loaded.to_json()["config"] == MINI_NAME


def test_cli_with_a_renamed_checkpoint_and_no_config(
    finetune: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    image = tmp_path / "x.png"
    Image.fromarray(np.full((40, 60, 3), 128, dtype=np.uint8)).save(image)
    out = tmp_path / "out"
    code = main(["image", str(image), "--point", "1,1", "--checkpoint", str(finetune), "--device", "cpu",
                 "--out", str(out)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert '"config": "sam2kit-mini"' in captured.out
    assert (out / "mask_0.png").is_file()
