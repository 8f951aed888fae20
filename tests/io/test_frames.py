"""Frame sources: exact frames, lazy bounded decoding, sort order, and the errors users hit."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from sam2kit.io.frames import (
    ArraySource,
    FrameSource,
    ImageFolderSource,
    ImageListSource,
    StreamError,
    VideoReadError,
    open_frames,
    open_stream,
    write_frames_to_folder,
)


def assert_all_frames_exact(source: FrameSource, clip: np.ndarray) -> None:
    assert len(source) == len(clip)
    assert (source.height, source.width) == clip.shape[1:3]
    for index in [7, 0, 39, 12, 13, 11, 25, 8, 24, 39]:
        frame = source[index]
        assert frame.dtype == np.uint8 and frame.flags.c_contiguous and frame.shape == clip.shape[1:]
        np.testing.assert_array_equal(frame, clip[index], err_msg=f"frame {index}")
    for index, frame in enumerate(source):
        np.testing.assert_array_equal(frame, clip[index], err_msg=f"forward frame {index}")
    for offset, frame in enumerate(reversed(source)):
        np.testing.assert_array_equal(frame, clip[len(clip) - 1 - offset], err_msg=f"reverse frame {offset}")


# ---- in-memory sources -----------------------------------------------------------------------
def test_array_source_returns_owned_copies(clip):
    source = open_frames(clip)
    assert isinstance(source, ArraySource) and source.fps is None
    assert_all_frames_exact(source, clip)
    source[3][:] = 0  # the caller owns what it gets
    np.testing.assert_array_equal(source[3], clip[3])


def test_array_source_accepts_non_contiguous_input(clip):
    source = open_frames(np.asfortranarray(clip))
    assert source[5].flags.c_contiguous
    np.testing.assert_array_equal(source[5], clip[5])


@pytest.mark.parametrize(
    ("array", "error", "match"),
    [
        (np.zeros((2, 8, 8, 3), np.float32), TypeError, "float32.*uint8"),
        (np.zeros((2, 8, 8, 3), np.int64), TypeError, "int64"),
        (np.zeros((2, 8, 8), np.uint8), ValueError, r"\(T, H, W, 3\)"),
        (np.zeros((2, 8, 8, 4), np.uint8), ValueError, r"\(T, H, W, 3\)"),
        (np.zeros((0, 8, 8, 3), np.uint8), ValueError, "T, H, W > 0"),
        (np.zeros((8, 8, 3), np.uint8), ValueError, "single image"),
    ],
)
def test_bad_arrays_are_rejected(array, error, match):
    with pytest.raises(error, match=match):
        open_frames(array)


def test_image_list_mixes_paths_pil_and_arrays(clip, tmp_path):
    path = tmp_path / "frame.png"
    Image.fromarray(clip[0]).save(path)
    source = open_frames([path, Image.fromarray(clip[1]), clip[2], str(path)])
    assert isinstance(source, ImageListSource) and len(source) == 4
    for index, expected in enumerate([clip[0], clip[1], clip[2], clip[0]]):
        np.testing.assert_array_equal(source[index], expected)


def test_image_list_errors(clip):
    with pytest.raises(ValueError, match="same size"):
        open_frames([clip[0], clip[1, :32]])
    with pytest.raises(TypeError, match="frame 1.*uint8"):
        open_frames([clip[0], clip[1].astype(np.float32)])
    with pytest.raises(TypeError, match="frame 1: expected an image path"):
        open_frames([clip[0], 3])
    with pytest.raises(ValueError, match="empty"):
        open_frames([])


def test_open_frames_dispatch_and_type_errors(clip):
    source = ArraySource(clip)
    assert open_frames(source) is source
    with pytest.raises(TypeError, match="folder of .jpg"):
        open_frames(42)  # type: ignore[arg-type]


def test_index_errors(clip):
    source = open_frames(clip[:32])
    with pytest.raises(IndexError, match=r"frame index 40 is out of range for a video of 32 frames \(valid: 0..31\)"):
        source[40]
    with pytest.raises(IndexError, match="negative frame indices are not supported"):
        source[-1]
    with pytest.raises(TypeError, match="slices are not supported"):
        source[1:3]  # type: ignore[index]
    assert source[np.int64(3)].shape == clip.shape[1:]


# ---- image folders ---------------------------------------------------------------------------
def test_png_folder_is_exact_and_jpeg_close(clip, tmp_path, read_index):
    png = open_frames(write_frames_to_folder(clip, tmp_path / "png", extension=".png"))
    assert isinstance(png, ImageFolderSource) and png.frame_paths[0].name == "00000.png"
    assert_all_frames_exact(png, clip)

    jpeg = open_frames(write_frames_to_folder(clip, tmp_path / "jpeg", quality=95))
    assert len(jpeg) == len(clip) and sorted(p.name for p in (tmp_path / "jpeg").iterdir())[0] == "00000.jpg"
    for index in [39, 0, 20]:
        frame = jpeg[index]
        assert read_index(frame) == index
        assert np.abs(frame.astype(int) - clip[index]).mean() < 3


def test_folder_sorts_integer_stems_numerically(clip, tmp_path):
    for index, stem in enumerate(["10", "2", "1"]):
        Image.fromarray(clip[index]).save(tmp_path / f"{stem}.png")
    source = open_frames(tmp_path)
    assert [path.name for path in source.frame_paths] == ["1.png", "2.png", "10.png"]
    np.testing.assert_array_equal(source[0], clip[2])


def test_folder_natural_sort_extensions_and_other_files(clip, tmp_path):
    names = ["frame10.JPG", "frame2.jpeg", "frame1.png"]
    for index, name in enumerate(names):
        Image.fromarray(clip[index]).save(tmp_path / name, format="PNG" if name.endswith("png") else "JPEG")
    (tmp_path / "notes.txt").write_text("not a frame")
    (tmp_path / "._frame0.jpg").write_bytes(b"macOS resource fork")
    source = open_frames(tmp_path)
    assert [path.name for path in source.frame_paths] == ["frame1.png", "frame2.jpeg", "frame10.JPG"]


def test_folder_frame_of_another_size_names_the_file(clip, tmp_path):
    write_frames_to_folder(clip[:3], tmp_path, extension=".png")
    Image.fromarray(clip[0, :32]).save(tmp_path / "00001.png")
    source = open_frames(tmp_path)
    source[0]
    with pytest.raises(ValueError, match="00001.png.*same size"):
        source[1]


def test_missing_and_empty_inputs(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.mp4"):
        open_frames(tmp_path / "nope.mp4")
    with pytest.raises(FileNotFoundError, match="open_stream"):
        open_frames("rtsp://camera/stream")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("")
    with pytest.raises(ValueError, match="no .jpg/.jpeg/.png frames.*empty"):
        open_frames(tmp_path / "empty")


def test_write_frames_to_folder_validates(clip, tmp_path):
    with pytest.raises(ValueError, match="quality"):
        write_frames_to_folder(clip, tmp_path, quality=0)
    with pytest.raises(ValueError, match="no frames"):
        write_frames_to_folder([], tmp_path)
    with pytest.raises(ValueError, match="frame 1 has shape"):
        write_frames_to_folder([clip[0], clip[1, :8]], tmp_path)


# ---- video files -----------------------------------------------------------------------------
def test_lossless_videos_are_exact(lossless_videos, clip):
    for name, path in lossless_videos.items():
        with open_frames(path, cache_size=6) as source:
            assert source.fps == pytest.approx(10.0), name
            assert_all_frames_exact(source, clip)


def test_lossy_mp4_gives_the_right_frames(lossy_mp4, clip, read_index):
    source = open_frames(lossy_mp4, cache_size=4)
    assert len(source) == len(clip) and (source.height, source.width) == (64, 96)
    for index in [39, 0, 17, 16, 15, 33, 1, 38]:
        frame = source[index]
        assert read_index(frame) == index
        assert np.abs(frame.astype(int) - clip[index]).mean() < 6
    assert [read_index(frame) for frame in reversed(source)] == list(range(39, -1, -1))
    assert [read_index(frame) for frame in source] == list(range(40))


def test_opening_decodes_almost_nothing_and_cache_is_bounded(long_mp4, read_index):
    source = open_frames(long_mp4, cache_size=5)
    assert len(source) == 120 and source.num_decoded <= 2  # the index pass only demuxes
    assert read_index(source[95]) == 95 % 64
    assert source.num_decoded <= 2 + 30 + 4  # one GOP (+ decoder delay), not the 95 frames before
    for _ in source:
        assert len(source.cached_indices) <= 5
    assert len(source.cached_indices) == 5


def test_forward_and_reverse_iteration_decode_linearly(long_mp4, read_index):
    source = open_frames(long_mp4, cache_size=16)
    before = source.num_decoded
    assert [read_index(frame) for frame in source] == [i % 64 for i in range(120)]
    assert source.num_decoded - before <= 120 + 4  # each frame once

    source = open_frames(long_mp4, cache_size=16)
    before = source.num_decoded
    assert [read_index(frame) for frame in reversed(source)] == [i % 64 for i in range(119, -1, -1)]
    # One decode from the keyframe per 16 cached frames: ~300 here, ~1800 for frame-by-frame seeking.
    assert source.num_decoded - before < 400


def test_close_then_read_reopens(lossless_videos, clip):
    source = open_frames(next(iter(lossless_videos.values())))
    source.close()
    source.close()
    np.testing.assert_array_equal(source[30], clip[30])


def test_not_a_video_raises_value_error(tmp_path):
    pytest.importorskip("av")
    fake = tmp_path / "movie.mp4"
    fake.write_text("this is not a video\n" * 20)
    with pytest.raises(VideoReadError, match="movie.mp4"):
        open_frames(fake)
    with pytest.raises(ValueError):  # VideoReadError is a ValueError
        open_frames(fake)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(indices=st.lists(st.integers(0, 39), min_size=1, max_size=25), cache_size=st.integers(1, 8))
def test_any_access_pattern_gives_exact_frames(lossless_videos, clip, indices, cache_size):
    path = lossless_videos.get("x264rgb.mkv", next(iter(lossless_videos.values())))
    source = open_frames(path, cache_size=cache_size)
    for index in indices:
        np.testing.assert_array_equal(source[index], clip[index])
    assert len(source.cached_indices) <= cache_size


# ---- live streams ----------------------------------------------------------------------------
def test_live_stream_over_a_file_yields_every_frame_then_stops(lossless_videos, clip):
    with open_stream(next(iter(lossless_videos.values()))) as stream:
        assert (stream.height, stream.width) == clip.shape[1:3]
        items = list(stream)
    assert [index for index, _, _ in items] == list(range(len(clip)))
    timestamps = [timestamp for _, timestamp, _ in items]
    assert timestamps == sorted(timestamps) and timestamps[1] - timestamps[0] == pytest.approx(0.1)
    for index, _, frame in items:
        np.testing.assert_array_equal(frame, clip[index])


def test_live_stream_errors(tmp_path):
    pytest.importorskip("av")
    with pytest.raises(FileNotFoundError, match="missing.mkv"):
        open_stream(tmp_path / "missing.mkv")
    fake = tmp_path / "fake.mkv"
    fake.write_bytes(b"\x00garbage" * 100)
    with pytest.raises(StreamError, match="fake.mkv"):
        open_stream(fake)


def test_a_seek_that_lands_after_the_target_steps_back(lossless_videos, clip):
    if "x264rgb.mkv" not in lossless_videos:
        pytest.skip("needs a lossless codec with GOPs (libx264rgb)")
    source = open_frames(lossless_videos["x264rgb.mkv"], cache_size=2)
    source._seek_ts[2] = source._seek_ts[3]  # simulate a demuxer whose seek index is off by a GOP
    index = source._keyframes[2] + 1
    np.testing.assert_array_equal(source[index], clip[index])
    assert source.num_seeks == 2  # landed on keyframe 3, stepped back to keyframe 1
