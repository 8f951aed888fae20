"""VideoWriter: frames come back in order, odd sizes are padded, failed writes leave nothing."""

from __future__ import annotations

import numpy as np
import pytest

from sam2kit.io.frames import open_frames
from sam2kit.io.video_writer import VideoWriter

pytest.importorskip("av")


def test_roundtrip_with_odd_size_padding(clip, tmp_path, read_index):
    path = tmp_path / "out.mp4"
    with VideoWriter(path, fps=29.97) as writer:
        for frame in clip[:, :63, :95]:
            writer.write(frame)
    assert (writer.height, writer.width) == (64, 96) and writer.frames_written == len(clip)
    assert [p.name for p in tmp_path.iterdir()] == ["out.mp4"]
    source = open_frames(path)
    assert len(source) == len(clip) and source.fps == pytest.approx(29.97)
    assert [read_index(frame) for frame in source] == list(range(len(clip)))
    assert np.abs(source[10][:63, :95].astype(int) - clip[10, :63, :95]).mean() < 6


def test_exception_inside_with_leaves_no_file(clip, tmp_path):
    with pytest.raises(RuntimeError, match="boom"):
        with VideoWriter(tmp_path / "out.mp4", fps=10) as writer:
            writer.write(clip[0])
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_errors(clip, tmp_path):
    with pytest.raises(ValueError, match="no frames"):
        with VideoWriter(tmp_path / "empty.mp4"):
            pass
    with pytest.raises(ValueError, match="fps"):
        VideoWriter(tmp_path / "x.mp4", fps=0)
    with pytest.raises(ValueError, match="not available"):
        VideoWriter(tmp_path / "x.mp4", codec="no-such-codec")
    with VideoWriter(tmp_path / "sizes.mp4", codec="mpeg4") as writer:
        writer.write(clip[0])
        with pytest.raises(ValueError, match=r"frame 1 is \(32, 96\)"):
            writer.write(clip[1, :32])
        with pytest.raises(TypeError, match="uint8"):
            writer.write(clip[1].astype(np.float32))
    assert [p.name for p in tmp_path.iterdir()] == ["sizes.mp4"]
