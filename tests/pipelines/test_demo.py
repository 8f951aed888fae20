"""``sam2kit demo``: offline, on the bundled model, a real video with the two clicked shapes tracked."""

from __future__ import annotations

import json

import pytest

from sam2kit.cli import main

pytest.importorskip("av")

#: J&F of the demo's default clip (seed 0, 16 frames here) with the shipped sam2kit-mini (0.39), less a
#: margin (random weights: below 0.1).
MIN_DEMO_J_AND_F = 0.3


def test_demo_writes_a_video_of_tracked_shapes(tmp_path, capsys) -> None:
    code = main(["demo", "--out", str(tmp_path / "demo"), "--frames", "16", "-q", "--device", "cpu"])
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert result["model"] == "sam2kit-mini"
    assert [c["obj_id"] for c in result["clicks"]] == [1, 2]
    assert result["j_and_f"] >= MIN_DEMO_J_AND_F  # the shipped model follows the clicked shapes
    from sam2kit.io.frames import open_frames

    with open_frames(str(tmp_path / "demo" / "demo.mp4")) as frames:
        assert len(frames) == 16
        assert (frames.height, frames.width) == (256, 256)
    assert json.loads((tmp_path / "demo" / "demo.json").read_text()) == result


def test_demo_rejects_a_too_short_clip(tmp_path, capsys) -> None:
    assert main(["demo", "--out", str(tmp_path), "--frames", "2"]) == 2
    assert "--frames" in capsys.readouterr().err


def test_demo_out_must_be_a_folder(tmp_path, capsys) -> None:
    target = tmp_path / "file.txt"
    target.write_text("x")
    assert main(["demo", "--out", str(target), "-q"]) == 1
    assert "--out" in capsys.readouterr().err
