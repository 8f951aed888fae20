"""The ``sam2kit`` command line: help, usage errors, and ``sam2kit image`` end to end on a small
random checkpoint (256 px input, so a run takes about a second)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from sam2kit.build import build_model
from sam2kit.checkpoints import save_checkpoint
from sam2kit.cli import main
from sam2kit.config import get_config

IMAGE_SIZE = 256
HEIGHT, WIDTH = 96, 128
SRC = Path(__file__).resolve().parents[1] / "src"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A seeded random SAM 2.1 tiny checkpoint with an official file name."""
    torch.manual_seed(0)
    model = build_model(get_config("sam2.1_hiera_tiny").replace(image_size=IMAGE_SIZE), device="cpu")
    with torch.no_grad():
        for param in model.parameters():  # keep mask decisions off the knife edge of random init
            param.add_(0.01 * torch.randn_like(param))
    path = tmp_path_factory.mktemp("ckpt") / "sam2.1_hiera_tiny.pt"
    save_checkpoint(model, path)
    return path


@pytest.fixture(scope="module")
def image_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A (96, 128) RGB image: a bright disc on a gradient."""
    yy, xx = np.mgrid[:HEIGHT, :WIDTH]
    image = np.zeros((HEIGHT, WIDTH, 3), dtype=np.uint8)
    image[..., 2] = (xx * 255 // WIDTH).astype(np.uint8)
    image[(yy - 48) ** 2 + (xx - 64) ** 2 < 25**2] = (250, 200, 40)
    path = tmp_path_factory.mktemp("img") / "disc.png"
    Image.fromarray(image).save(path)
    return path


def model_args(checkpoint: Path) -> list[str]:
    return ["--checkpoint", str(checkpoint), "--image-size", str(IMAGE_SIZE), "--device", "cpu"]


def check_outputs(out: Path, stdout: str, expected_masks: int) -> dict:
    """result.json equals the printed JSON, and every mask file agrees with its record."""
    result = json.loads((out / "result.json").read_text())
    assert json.loads(stdout) == result
    assert result["image"]["width"] == WIDTH and result["image"]["height"] == HEIGHT
    assert result["model"]["config"] == "sam2.1_hiera_tiny" and result["model"]["image_size"] == IMAGE_SIZE
    assert len(result["masks"]) == expected_masks
    for index, record in enumerate(result["masks"]):
        assert record["file"] == f"mask_{index}.png"
        with Image.open(out / record["file"]) as png:
            assert png.size == (WIDTH, HEIGHT) and png.mode == "L"
            mask = np.array(png)
        assert set(np.unique(mask).tolist()) <= {0, 255}
        assert record["area"] == int((mask > 0).sum())
        x, y, w, h = record["bbox_xywh"]
        assert 0 <= x and 0 <= y and x + w <= WIDTH and y + h <= HEIGHT
        if record["area"]:
            rows, cols = np.nonzero(mask)
            assert [x, y, w, h] == [cols.min(), rows.min(), cols.max() - cols.min() + 1, rows.max() - rows.min() + 1]
        assert 0.0 <= record["score"] <= 1.0 or np.isfinite(record["score"])
    with Image.open(out / result["overlay"]) as overlay:
        assert overlay.size == (WIDTH, HEIGHT) and overlay.mode == "RGB"
    assert not [p for p in out.iterdir() if p.name.startswith(".")], "temporary files left behind"
    return result


# ---------------------------------------------------------------------------- help and usage
def test_main_help_lists_commands_and_examples(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for text in ("usage: sam2kit", "image", "--version", "--verbose", "examples:", "exit status"):
        assert text in out


def test_image_help_documents_every_option(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["image", "--help"]) == 0
    out = capsys.readouterr().out
    for option in ("--point", "--box", "--out", "--multimask", "--single-mask", "--max-hole-area",
                   "--max-sprinkle-area", "--checkpoint", "--config", "--device", "--image-size",
                   "facebook/sam2.1-hiera-tiny", "result.json", "overlay.png", "examples:"):
        assert option in out, option


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.startswith("sam2kit ")


@pytest.mark.parametrize("argv", [[], ["--help"], ["image", "--help"], ["video", "--help"], ["auto", "--help"],
                                  ["stream", "--help"], ["image", "x.png", "--out", "o"]])
def test_parsing_and_help_import_no_torch(argv: list[str]) -> None:
    """``import sam2kit``, ``import sam2kit.cli``, building the parser, ``--help`` and usage errors
    stay light: torch is imported only by a command that runs."""
    code = (
        "import sys\n"
        "import sam2kit\n"
        "assert 'torch' not in sys.modules, 'import sam2kit'\n"
        "import sam2kit.cli\n"
        "assert 'torch' not in sys.modules, 'import sam2kit.cli'\n"
        "sam2kit.cli.build_parser()\n"
        "assert 'torch' not in sys.modules, 'build_parser'\n"
        f"status = sam2kit.cli.main({argv!r})\n"
        "assert 'torch' not in sys.modules, 'main'\n"
        "print('status', status)\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("status 0" if "--help" in argv else "status 2")


def test_public_names_resolve_lazily() -> None:
    import importlib

    import sam2kit

    for name, module in [("build_model", "build"), ("from_pretrained", "build"), ("ImagePredictor", "predict.image"),
                         ("VideoPredictor", "predict.video"), ("StreamPredictor", "predict.stream"),
                         ("CameraPredictor", "predict.stream"), ("MaskGenerator", "predict.automatic"),
                         ("SAM2AutomaticMaskGenerator", "predict.automatic"), ("ModelSpec", "model_spec"),
                         ("load_model", "model_spec")]:
        assert name in sam2kit.__all__ and name in dir(sam2kit)
        assert getattr(sam2kit, name) is getattr(importlib.import_module(f"sam2kit.{module}"), name)
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        sam2kit.nope  # noqa: B018


@pytest.mark.parametrize(
    "argument, message, expected",
    [
        ("max_frames", "max_frames must be >= 1, got 0", "--max-frames must be >= 1, got 0"),
        ("out_dir", "out_dir x exists and is not a folder", "--out x exists and is not a folder"),
        ("max_frames", "frame 6 is out of range (limited by max_frames)",
         "frame 6 is out of range (limited by --max-frames)"),
        ("prompts", "no prompt given", "no prompt given (see --point/--box)"),
        ("config", "config needed: cannot tell the model config", "--config needed: cannot tell the model config"),
    ],
)
def test_library_errors_get_the_option_name(argument: str, message: str, expected: str) -> None:
    from sam2kit.cli import image as image_command
    from sam2kit.cli.common import error_message
    from sam2kit.errors import ArgumentError

    assert error_message(ArgumentError(message, argument=argument), image_command.OPTION_NAMES) == expected


def test_python_dash_m_help() -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-m", "sam2kit", "--help"], capture_output=True, text=True,
                          env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "usage: sam2kit" in done.stdout and "image" in done.stdout


@pytest.mark.parametrize(
    "argv, message",
    [
        ([], "COMMAND"),
        (["image", "x.png", "--out", "o"], "at least one prompt"),
        (["image", "x.png", "--point", "1,2,3,4", "--out", "o"], "X,Y"),
        (["image", "x.png", "--point", "1,2,5", "--out", "o"], "label"),
        (["image", "x.png", "--point", "a,b", "--out", "o"], "numbers"),
        (["image", "x.png", "--box", "9,9,1,1", "--out", "o"], "X0 <= X1"),
        (["image", "x.png", "--point", "1,2", "--box", "0,0,4,4", "--box", "1,1,5,5", "--out", "o"], "one box"),
        (["image", "x.png", "--point", "1,2", "--multimask", "--single-mask", "--out", "o"], "not allowed"),
        (["image", "x.png", "--point", "1,2"], "--out"),
        (["image", "x.png", "--point", "1,2", "--out", "o", "--image-size", "100"], "multiple of 32"),
    ],
)
def test_usage_errors_exit_2(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "usage:" in err and message in err


# ---------------------------------------------------------------------------- end to end
def test_image_point_writes_consistent_outputs(
    checkpoint: Path, image_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    code = main(["image", str(image_file), "--point", "64,48", "--out", str(out), *model_args(checkpoint)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    result = check_outputs(out, captured.out, expected_masks=1)
    assert result["prompts"] == [{"points": [[64.0, 48.0]], "labels": [1], "box": None}]
    assert result["masks"][0]["best"] is True
    assert "wrote 1 mask" in captured.err  # progress goes to stderr, data to stdout


def test_image_multimask_writes_three_candidates(
    checkpoint: Path, image_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    code = main(["image", str(image_file), "--point", "64,48", "--point", "5,5,0", "--box", "30,20,100,80",
                 "--multimask", "--max-hole-area", "4", "--max-sprinkle-area", "4", "-q",
                 "--out", str(out), *model_args(checkpoint)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert captured.err == ""  # --quiet
    result = check_outputs(out, captured.out, expected_masks=3)
    assert [m["candidate"] for m in result["masks"]] == [0, 1, 2]
    assert sum(m["best"] for m in result["masks"]) == 1
    assert result["prompts"][0]["labels"] == [1, 0] and result["prompts"][0]["box"] == [30.0, 20.0, 100.0, 80.0]


def test_image_several_boxes_with_renamed_checkpoint_and_config(
    checkpoint: Path, image_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    renamed = tmp_path / "my_weights.pt"
    shutil.copy(checkpoint, renamed)
    out = tmp_path / "out"
    argv = ["image", str(image_file), "--box", "10,10,60,50", "--box", "40,30,120,90", "--out", str(out),
            *model_args(renamed)]
    assert main(argv) == 0  # the weights tell the preset, whatever the file's name
    check_outputs(out, capsys.readouterr().out, expected_masks=2)
    shutil.rmtree(out)

    assert main([*argv, "--config", "sam2.1_hiera_tiny"]) == 0
    captured = capsys.readouterr()
    result = check_outputs(out, captured.out, expected_masks=2)
    assert [m["prompt"] for m in result["masks"]] == [0, 1]
    assert [p["box"] for p in result["prompts"]] == [[10.0, 10.0, 60.0, 50.0], [40.0, 30.0, 120.0, 90.0]]


# ---------------------------------------------------------------------------- runtime errors
def test_point_outside_the_image_exits_1_without_traceback(
    checkpoint: Path, image_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    code = main(["image", str(image_file), "--point", "500,20", "--out", str(out), *model_args(checkpoint)])
    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith("sam2kit: error: ") and "outside the image" in err and "x=500" in err
    assert "Traceback" not in err
    assert not out.exists()


def test_verbose_shows_the_traceback(
    checkpoint: Path, image_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["-v", "image", str(image_file), "--box", "0,0,500,20", "--out", str(tmp_path / "o"),
                 *model_args(checkpoint)])
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" in err and "sam2kit: error: " in err


def test_missing_checkpoint_file_exits_1(image_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "sam2.1_hiera_tiny.pt"
    code = main(["image", str(image_file), "--point", "5,5", "--out", str(tmp_path / "o"),
                 "--checkpoint", str(missing)])
    err = capsys.readouterr().err
    assert code == 1 and "sam2kit: error: --checkpoint " in err and "not found" in err and str(missing) in err
    assert "Traceback" not in err


def test_checkpoint_folder_exits_1_naming_the_option(image_file: Path, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["image", str(image_file), "--point", "5,5", "--out", str(tmp_path / "o"),
                 "--checkpoint", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 1 and err.startswith(f"sam2kit: error: --checkpoint {tmp_path} is a folder")


def test_missing_image_exits_1(checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["image", str(tmp_path / "nope.jpg"), "--point", "5,5", "--out", str(tmp_path / "o"),
                 *model_args(checkpoint)])
    err = capsys.readouterr().err
    assert code == 1 and "image file not found" in err


def test_offline_hub_id_exits_1_quickly(
    image_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import huggingface_hub.constants as hub_constants

    # huggingface_hub reads these variables at import time: set both the variable and the constant.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(tmp_path / "empty_cache"))
    started = time.perf_counter()
    code = main(["image", str(image_file), "--point", "5,5", "--out", str(tmp_path / "o"),
                 "--checkpoint", "facebook/sam2.1-hiera-small"])
    elapsed = time.perf_counter() - started
    err = capsys.readouterr().err
    assert code == 1
    assert "sam2kit: error: " in err and "sam2.1_hiera_small.pt" in err and "--checkpoint" in err
    assert "Traceback" not in err
    assert elapsed < 10, f"offline failure took {elapsed:.1f} s"


def test_image_in_bf16(checkpoint: Path, image_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "bf16"
    code = main(["image", str(image_file), "--point", "64,48", "--out", str(out), "--precision", "bf16",
                 *model_args(checkpoint)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    result = check_outputs(out, captured.out, expected_masks=1)
    assert result["model"]["precision"] == "bf16"


def test_fp16_on_the_cpu_is_refused(checkpoint: Path, image_file: Path, tmp_path: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["image", str(image_file), "--point", "64,48", "--out", str(tmp_path / "o"), "--precision", "fp16",
                 *model_args(checkpoint)])
    assert code == 1
    assert "--precision fp16: fp16 is not supported on the CPU" in capsys.readouterr().err
