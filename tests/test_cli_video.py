"""``sam2kit video`` end to end on a small random checkpoint (128 px input) and an 8-frame clip, run
in-process through :func:`sam2kit.cli.main`: mask files, ``tracks.json``, palette PNGs, the overlay
video, ``--reverse`` / ``--max-frames``, and the errors (exit 1 at run time, 2 for usage)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from sam2kit.build import build_model
from sam2kit.checkpoints import save_checkpoint
from sam2kit.cli import main
from sam2kit.config import get_config
from sam2kit.model_spec import LoadedModel, ModelSpec

pytest.importorskip("av", reason="PyAV writes and reads the mp4 clip")

IMAGE_SIZE = 128
NUM_FRAMES, HEIGHT, WIDTH = 8, 48, 64


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A seeded random SAM 2.1 tiny checkpoint (official file name) whose objects reliably appear."""
    torch.manual_seed(0)
    model = build_model(get_config("sam2.1_hiera_tiny").replace(image_size=IMAGE_SIZE), device="cpu")
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for param in model.parameters():
            param.add_(0.01 * torch.randn(param.shape, generator=generator))
        model.sam_mask_decoder.pred_obj_score_head.layers[2].bias.add_(2.0)
    path = tmp_path_factory.mktemp("ckpt") / "sam2.1_hiera_tiny.pt"
    save_checkpoint(model, path)
    return path


@pytest.fixture(scope="module")
def model_cache() -> dict:
    return {}


@pytest.fixture(autouse=True)
def load_model_once(monkeypatch: pytest.MonkeyPatch, model_cache: dict) -> None:
    """Every run of the module shares one model load (the real one, made by the first run)."""
    import sam2kit.pipelines.common

    real = sam2kit.pipelines.common.load_model

    def cached(spec: ModelSpec) -> LoadedModel:
        if spec not in model_cache:
            model_cache[spec] = real(spec)
        return model_cache[spec]

    monkeypatch.setattr(sam2kit.pipelines.common, "load_model", cached)


def synthetic_clip() -> np.ndarray:
    """A textured background with a bright square moving right: ``(8, 48, 64, 3)`` uint8."""
    rng = np.random.default_rng(0)
    background = rng.integers(0, 80, size=(HEIGHT, WIDTH, 3), dtype=np.uint8)
    frames = np.repeat(background[None], NUM_FRAMES, axis=0)
    for t in range(NUM_FRAMES):
        frames[t, 16:32, 8 + 2 * t : 24 + 2 * t] = (230, 200, 40)
    return frames


@pytest.fixture(scope="module")
def clip_mp4(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from sam2kit.io.video_writer import VideoWriter

    path = tmp_path_factory.mktemp("clip") / "clip.mp4"
    with VideoWriter(path, fps=10) as writer:
        for frame in synthetic_clip():
            writer.write(frame)
    return path


@pytest.fixture(scope="module")
def clip_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from sam2kit.io.frames import write_frames_to_folder

    return write_frames_to_folder(synthetic_clip(), tmp_path_factory.mktemp("frames"), extension=".png")


def model_args(checkpoint: Path) -> list[str]:
    return ["--checkpoint", str(checkpoint), "--image-size", str(IMAGE_SIZE), "--device", "cpu"]


def run_cli(capsys: pytest.CaptureFixture[str], argv: list[str]) -> tuple[int, str, str]:
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def check_tracks(out: Path, frames: list[int], obj_ids: list[int], palette: bool = False) -> dict:
    """tracks.json lists exactly ``frames`` x ``obj_ids``, and every record agrees with its PNG."""
    tracks = json.loads((out / "tracks.json").read_text())
    assert tracks["video"]["width"] == WIDTH and tracks["video"]["height"] == HEIGHT
    assert tracks["objects"] == obj_ids
    assert [record["frame"] for record in tracks["frames"]] == frames
    for record in tracks["frames"]:
        assert [obj["id"] for obj in record["objects"]] == obj_ids
        if palette:
            with Image.open(out / "palette" / f"{record['frame']:05d}.png") as png:
                assert png.mode == "P" and png.size == (WIDTH, HEIGHT)
                label = np.array(png)
            assert set(np.unique(label).tolist()) <= {0, *obj_ids}
        for obj in record["objects"]:
            if palette:
                mask = label == obj["id"]
            else:
                with Image.open(out / "masks" / str(obj["id"]) / f"{record['frame']:05d}.png") as png:
                    assert png.mode == "L" and png.size == (WIDTH, HEIGHT)
                    values = np.array(png)
                assert set(np.unique(values).tolist()) <= {0, 255}
                mask = values > 0
            assert obj["area"] == int(mask.sum())
            assert obj["present"] == (obj["area"] > 0)
            if obj["area"]:
                rows, cols = np.nonzero(mask)
                box = [cols.min(), rows.min(), cols.max() - cols.min() + 1, rows.max() - rows.min() + 1]
                assert obj["bbox_xywh"] == [int(v) for v in box]
                assert 0.5 <= obj["score"] <= 1.0
            else:
                assert obj["bbox_xywh"] == [0, 0, 0, 0] and obj["score"] == 0.0
    assert not [p for p in out.rglob(".*")], "temporary files left behind"
    return tracks


def mask_files(out: Path) -> list[str]:
    return sorted(str(p.relative_to(out)) for p in out.rglob("*.png"))


def test_video_file_writes_masks_tracks_and_overlay(checkpoint, clip_mp4, tmp_path, capsys) -> None:
    out, overlay = tmp_path / "out", tmp_path / "overlay.mp4"
    code, stdout, stderr = run_cli(capsys, [
        "video", str(clip_mp4), "--prompt", "0:1:16,24", "--prompt", "0:1:60,44,0", "--box", "0:2:0,0,20,14",
        "--overlay", str(overlay), "--out", str(out), *model_args(checkpoint),
    ])
    assert code == 0, stderr
    assert "propagate in video" in stderr  # the progress bar
    summary = json.loads(stdout)
    assert summary["num_frames"] == NUM_FRAMES and summary["tracked_frames"] == NUM_FRAMES
    assert summary["frame_range"] == [0, NUM_FRAMES - 1] and summary["objects"] == [1, 2]
    assert summary["overlay"] == str(overlay)
    assert mask_files(out) == [f"masks/{obj}/{t:05d}.png" for obj in (1, 2) for t in range(NUM_FRAMES)]
    tracks = check_tracks(out, list(range(NUM_FRAMES)), [1, 2])
    assert tracks["prompts"][0] == {"frame": 0, "obj_id": 1, "points": [[16.0, 24.0], [60.0, 44.0]],
                                    "labels": [1, 0], "box": None}
    assert tracks["model"]["config"] == "sam2.1_hiera_tiny" and tracks["model"]["image_size"] == IMAGE_SIZE
    assert any(obj["present"] for record in tracks["frames"] for obj in record["objects"])

    from sam2kit.io.frames import open_frames

    with open_frames(overlay) as video:
        assert len(video) == NUM_FRAMES and (video.height, video.width) == (HEIGHT, WIDTH)
        assert video.fps == pytest.approx(10)


def test_frame_folder_palette_non_overlap(checkpoint, clip_folder, tmp_path, capsys) -> None:
    out = tmp_path / "out"
    code, stdout, stderr = run_cli(capsys, [
        "video", str(clip_folder), "--box", "0:1:8,16,24,32", "--box", "0:3:0,0,40,40", "--palette",
        "--non-overlap", "--fill-hole-area", "0", "--max-frames", "4", "--out", str(out), "-q",
        *model_args(checkpoint),
    ])
    assert code == 0, stderr
    assert "propagate" not in stderr  # --quiet hides the progress bar
    assert json.loads(stdout)["masks"] == str(out / "palette")
    assert mask_files(out) == [f"palette/{t:05d}.png" for t in range(4)]
    tracks = check_tracks(out, list(range(4)), [1, 3], palette=True)
    assert tracks["options"]["non_overlap"] and tracks["options"]["fill_hole_area"] == 0


def test_forward_only_from_the_earliest_prompt_within_max_frames(checkpoint, clip_mp4, tmp_path, capsys) -> None:
    out = tmp_path / "out"
    argv = ["video", str(clip_mp4), "--prompt", "4:5:16,24", "--max-frames", "6", *model_args(checkpoint)]
    code, stdout, stderr = run_cli(capsys, argv + ["--out", str(out)])
    assert code == 0, stderr
    summary = json.loads(stdout)
    assert summary["num_frames"] == 6 and summary["frame_range"] == [4, 5]
    assert mask_files(out) == [f"masks/5/{t:05d}.png" for t in (4, 5)]  # nothing before the prompt
    check_tracks(out, [4, 5], [5])

    argv[3] = "6:5:16,24"
    code, _, stderr = run_cli(capsys, argv + ["--out", str(tmp_path / "none")])
    assert code == 1 and "frame 6" in stderr and "--max-frames" in stderr


def test_reverse_tracks_back_to_frame_zero(checkpoint, clip_folder, tmp_path, capsys) -> None:
    out, overlay = tmp_path / "out", tmp_path / "overlay.mp4"
    code, stdout, stderr = run_cli(capsys, [
        "video", str(clip_folder), "--prompt", "4:0:20,24", "--reverse", "--overlay", str(overlay),
        "--out", str(out), *model_args(checkpoint),
    ])
    assert code == 0, stderr
    assert json.loads(stdout)["frame_range"] == [0, NUM_FRAMES - 1]
    assert mask_files(out) == [f"masks/0/{t:05d}.png" for t in range(NUM_FRAMES)]
    tracks = check_tracks(out, list(range(NUM_FRAMES)), [0])
    assert tracks["options"]["reverse"]

    from sam2kit.io.frames import open_frames

    with open_frames(overlay) as video:  # assembled in frame order after the backward pass
        assert len(video) == NUM_FRAMES and video.fps == pytest.approx(30)


# ---------------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    "prompt, message",
    [
        (["--prompt", "8:1:10,10"], "frame 8 is out of range"),
        (["--prompt", "0:1:65,10"], "outside"),
        (["--box", "2:1:10,10,30,49"], "outside"),
    ],
)
def test_bad_prompts_fail_before_loading_the_model(clip_mp4, tmp_path, capsys, prompt, message) -> None:
    code, stdout, stderr = run_cli(capsys, [
        "video", str(clip_mp4), *prompt, "--out", str(tmp_path / "out"), "--checkpoint", str(tmp_path / "none.pt"),
    ])
    assert code == 1 and stdout == ""
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("sam2kit: error: ") and message in lines[0]
    assert not (tmp_path / "out").exists()


def test_missing_and_unreadable_video(checkpoint, tmp_path, capsys) -> None:
    code, _, stderr = run_cli(capsys, ["video", str(tmp_path / "nope.mp4"), "--prompt", "0:1:1,1",
                                       "--out", str(tmp_path / "out"), *model_args(checkpoint)])
    assert code == 1 and stderr.startswith("sam2kit: error: ") and "nope.mp4" in stderr
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"this is not a video")
    code, _, stderr = run_cli(capsys, ["video", str(broken), "--prompt", "0:1:1,1",
                                       "--out", str(tmp_path / "out"), *model_args(checkpoint)])
    assert code == 1 and stderr.startswith("sam2kit: error: ") and "broken.mp4" in stderr
    assert len(stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "options, message",
    [
        ([], "at least one prompt"),
        (["--prompt", "0:1"], "FRAME:OBJ:X,Y"),
        (["--prompt", "10,20"], "FRAME:OBJ:X,Y"),
        (["--prompt", "a:1:10,20"], "integers FRAME and OBJ"),
        (["--prompt", "0:-1:10,20"], ">= 0"),
        (["--prompt", "0:1:10"], "X,Y or X,Y,LABEL, got '10' (in '0:1:10')"),
        (["--prompt", "0:1:10,20,5"], "label"),
        (["--box", "0:1:10,20,30"], "X0,Y0,X1,Y1"),
        (["--box", "0:1:30,20,10,40"], "X0 <= X1"),
        (["--box", "0:1:0,0,5,5", "--box", "0:1:1,1,6,6"], "two --box"),
        (["--prompt", "0:0:10,20", "--palette"], "1..255"),
        (["--prompt", "0:1:10,20", "--max-frames", "0"], "integer >= 1"),
        (["--prompt", "0:1:10,20", "--fill-hole-area", "-1"], "integer >= 0"),
    ],
)
def test_usage_errors_exit_2(clip_mp4, tmp_path, capsys, options, message) -> None:
    code, stdout, stderr = run_cli(capsys, ["video", str(clip_mp4), *options, "--out", str(tmp_path / "out")])
    assert code == 2 and stdout == "" and message in stderr


def test_bad_overlay_path(checkpoint, clip_mp4, tmp_path, capsys) -> None:
    code, _, stderr = run_cli(capsys, ["video", str(clip_mp4), "--prompt", "0:1:10,10", "--overlay",
                                       str(tmp_path / "overlay.gif"), "--out", str(tmp_path / "out"),
                                       *model_args(checkpoint)])
    assert code == 1 and "--overlay must be a video file" in stderr


def test_help_lists_the_video_command(capsys) -> None:
    assert main(["--help"]) == 0
    assert "video" in capsys.readouterr().out
    assert main(["video", "--help"]) == 0
    text = capsys.readouterr().out
    assert "--reverse" in text and "tracks.json" in text and "mean foreground probability" in text
