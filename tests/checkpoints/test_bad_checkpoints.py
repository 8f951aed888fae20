"""Files that are not usable SAM 2 checkpoints: each a one-line error that says what is wrong and
what is accepted, from the library and from the command line (``sam2kit: error: ...``, exit 1)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import ALL_PRESETS, expanded, meta_state
from sam2kit.build import build_model
from sam2kit.checkpoints import CheckpointError, infer_config_from_file, read_state_dict, save_checkpoint
from sam2kit.cli import main
from sam2kit.config import MINI_NAME


@pytest.fixture(scope="module")
def mini_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("mini") / "weights.safetensors"
    save_checkpoint(build_model(MINI_NAME, device="cpu"), path)
    return path


def _sam1_state() -> dict[str, torch.Tensor]:
    """Keys of a Segment Anything (SAM 1) ViT checkpoint."""
    return {
        "image_encoder.pos_embed": torch.zeros(1, 64, 64, 8),
        "image_encoder.patch_embed.proj.weight": torch.zeros(8, 3, 16, 16),
        "image_encoder.blocks.0.attn.qkv.weight": torch.zeros(24, 8),
        "image_encoder.neck.0.weight": torch.zeros(4, 8, 1, 1),
        "prompt_encoder.point_embeddings.0.weight": torch.zeros(1, 4),
        "mask_decoder.iou_token.weight": torch.zeros(1, 4),
    }


def _bad_files(folder: Path, mini_file: Path) -> dict[str, tuple[Path, str]]:
    """name -> (file, what its error must say)."""
    from safetensors.torch import save_file

    data = mini_file.read_bytes()
    files: dict[str, tuple[Path, str]] = {}
    path = folder / "truncated.safetensors"
    path.write_bytes(data[: len(data) // 2])
    files["truncated safetensors"] = (path, "cannot read safetensors checkpoint")
    pt = folder / "full.pt"
    save_checkpoint(build_model(MINI_NAME, device="cpu"), pt)
    path = folder / "truncated.pt"
    path.write_bytes(pt.read_bytes()[: pt.stat().st_size // 2])
    files["truncated pt"] = (path, "cannot read checkpoint")
    path = folder / "sam1.pt"
    torch.save({"model": _sam1_state()}, path)
    files["SAM 1"] = (path, "Segment Anything (SAM 1)")
    path = folder / "resnet.pt"
    torch.save({"conv1.weight": torch.zeros(4, 3, 7, 7), "fc.weight": torch.zeros(10, 4)}, path)
    files["another model"] = (path, "is not a SAM 2 checkpoint: it lacks image_encoder.trunk.patch_embed.proj.weight")
    path = folder / "ints.safetensors"
    save_file({k: torch.zeros(v.shape, dtype=torch.int64) for k, v in expanded(
        meta_state(ALL_PRESETS[MINI_NAME])).items()}, str(path))
    files["int safetensors"] = (path, "holds int64 values; SAM 2 weights are floating point")
    path = folder / "ints.pt"
    state = dict(expanded(meta_state(ALL_PRESETS[MINI_NAME])))
    state["no_mem_embed"] = torch.zeros(1, 1, 64, dtype=torch.int32)
    torch.save({"model": state}, path)
    files["int tensor in a .pt"] = (path, "no_mem_embed holds int32 values")
    path = folder / "empty.safetensors"
    save_file({}, str(path))
    files["no tensors"] = (path, "holds no tensors")
    return files


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory: pytest.TempPathFactory, mini_file: Path) -> dict[str, tuple[Path, str]]:
    return _bad_files(tmp_path_factory.mktemp("bad"), mini_file)


CASES = ["truncated safetensors", "truncated pt", "SAM 1", "another model", "int safetensors",
         "int tensor in a .pt", "no tensors"]


@pytest.mark.parametrize("case", CASES)
def test_library_error_is_one_clear_line(case: str, bad_files: dict[str, tuple[Path, str]]) -> None:
    path, expected = bad_files[case]
    for call in (lambda: build_model(checkpoint=path, device="cpu"), lambda: infer_config_from_file(path)):
        with pytest.raises(CheckpointError) as info:
            call()
        message = str(info.value)
        assert expected in message and str(path) in message
        assert "\n" not in message, message


def test_shapes_only_and_full_reads_agree_on_errors(bad_files: dict[str, tuple[Path, str]]) -> None:
    for case in ("int safetensors", "int tensor in a .pt"):
        path, expected = bad_files[case]
        for shapes_only in (False, True):
            with pytest.raises(CheckpointError, match=expected):
                read_state_dict(path, shapes_only=shapes_only)


@pytest.mark.parametrize("case", ["truncated safetensors", "SAM 1", "int safetensors"])
def test_cli_error_exits_1_with_one_line(
    case: str, bad_files: dict[str, tuple[Path, str]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path, expected = bad_files[case]
    image = tmp_path / "x.png"
    Image.fromarray(np.zeros((32, 32, 3), dtype=np.uint8)).save(image)
    code = main(["image", str(image), "--point", "1,1", "--checkpoint", str(path), "--device", "cpu",
                 "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 1
    lines = [line for line in err.splitlines() if line.startswith("sam2kit: error: ")]
    assert len(lines) == 1 and expected in lines[0], err
    assert "Traceback" not in err and not (tmp_path / "out").exists()
