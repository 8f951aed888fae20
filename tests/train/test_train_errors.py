"""Bad input to ``sam2kit train``: one ``sam2kit: error:`` line naming the file and what is expected,
exit code 1 (2 for usage errors), no traceback."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from train_helpers import MINI, single_thread, synthetic_data, train_cli  # noqa: F401 (a fixture)

pytestmark = pytest.mark.usefixtures("single_thread")

QUICK = [*MINI, "--steps", "2", "--val-max", "0", "--corrections", "1"]


def image_folder(root: Path, mask_size: tuple[int, int] = (64, 64), empty: bool = False) -> Path:
    """Two 64 x 64 images with masks; the second mask has ``mask_size`` (width, height) / is empty."""
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for index, size in enumerate([(64, 64), mask_size]):
        Image.fromarray(np.full((64, 64, 3), 90 + 40 * index, np.uint8)).save(root / "images" / f"img{index}.png")
        ids = np.zeros(size[::-1], np.uint8)
        if not (empty and index == 1):
            ids[10:40, 12:30] = 1
        Image.fromarray(ids).save(root / "masks" / f"img{index}.png")
    return root


def error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("sam2kit")]
    assert "Traceback" not in err
    assert len(lines) == 1, err
    return lines[0]


def test_unknown_train_part_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert train_cli(*QUICK, "--data", tmp_path, "--out", tmp_path / "o", "--train", "heads") == 2
    line = error_line(capsys)
    assert "--train" in line and "decoder" in line and "memory" in line


def test_missing_options_are_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert train_cli("--data", tmp_path, "--out", tmp_path / "o") == 2  # no checkpoint, no config
    assert "config" in error_line(capsys)
    assert train_cli(*QUICK, "--data", tmp_path) == 2
    assert "--out is required" in error_line(capsys)


def test_folder_without_pairs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "images" / "a.png")
    assert train_cli(*QUICK, "--data", tmp_path, "--out", tmp_path / "o") == 1
    line = error_line(capsys)
    assert str(tmp_path) in line and "no image/mask pairs" in line and "expected" in line


def test_folder_without_any_layout(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert train_cli(*QUICK, "--data", tmp_path, "--out", tmp_path / "o") == 1
    line = error_line(capsys)
    assert str(tmp_path) in line and "expected DIR/images + DIR/masks" in line


@pytest.mark.parametrize(
    ("mask_size", "empty", "message"), [((64, 48), False, "64x48"), ((64, 64), True, "empty mask")]
)
def test_bad_mask(tmp_path: Path, capsys: pytest.CaptureFixture[str], mask_size: tuple[int, int], empty: bool,
                  message: str) -> None:
    data = image_folder(tmp_path / "data", mask_size, empty)
    code = train_cli(*QUICK, "--data", data, "--val-fraction", "0", "--batch-size", "2", "--out", tmp_path / "o")
    assert code == 1
    line = error_line(capsys)
    assert str(data / "masks" / "img1.png") in line and message in line and "expected" in line


def test_resume_checks(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_file = tmp_path / "run.yaml"
    run_file.write_text("train: decoder\nlr: 1.0e-3\nsteps: 2\nval_max: 0\ncorrections: 1\nstop_after: 1\n")
    first = [*MINI, "--data", synthetic_data(), "--out", tmp_path / "o"]
    assert train_cli(*first, "--config-file", run_file) == 0
    capsys.readouterr()

    assert train_cli(*first, "--config-file", run_file) == 1  # the folder holds a run: no silent overwrite
    assert "--resume" in error_line(capsys)
    assert train_cli(*first, "--config-file", run_file, "--resume", "--lr", "5e-4") == 1
    line = error_line(capsys)
    assert str(tmp_path / "o" / "last.ckpt") in line and "another run configuration" in line and "lr" in line
    assert train_cli(*MINI, "--data", synthetic_data(), "--out", tmp_path / "none", "--resume") == 1
    assert "nothing to resume" in error_line(capsys)
    assert train_cli(*first, "--config-file", run_file, "--resume", "--stop-after", "5") == 0  # same run: resumes


def test_bad_config_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_file = tmp_path / "run.yaml"
    run_file.write_text("learning_rate: 1.0e-3\n")
    assert train_cli(*QUICK, "--data", tmp_path, "--out", tmp_path / "o", "--config-file", run_file) == 2
    line = error_line(capsys)
    assert str(run_file) in line and "learning_rate" in line
