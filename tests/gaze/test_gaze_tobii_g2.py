"""The Tobii Pro Glasses 2 reader on synthetic SD-card folders (``segments/<n>/livedata.json.gz``,
``fullstream.mp4``, ``et.tslv.gz``), against ground truth computed here."""

from __future__ import annotations

import csv
import gzip
import json
import logging
import math
import struct
from pathlib import Path

import numpy as np
import pytest
from gaze_helpers import SIZE, Truth, aoi_sets, make_truth, write_masks, write_video

from sam2kit.cli import main
from sam2kit.io.eyetracking import RecordingFormatError, detect_format, read_recording

T0_US = 488_682_903  # device clock (µs) at the scene video's first frame
DISTORTION = (0.1, 0.01, 0.001, 0.002, 0.003)  # k1, k2, k3, p1, p2 as the TSLV record holds them


def _write_lines(path: Path, packets: list[dict[str, object]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt") as lines:
        lines.writelines(json.dumps(packet) + "\n" for packet in packets)


def _tslv_record(kind: int, payload: bytes) -> bytes:
    return struct.pack("<hhi", kind, 0, len(payload)) + payload + b"\0" * (-len(payload) % 4)


def write_tslv(path: Path, focal: float, centre: float, size: int) -> None:
    """A TSLV stream: format, stream type, a camera record (type 300), end."""
    k1, k2, k3, p1, p2 = DISTORTION
    camera = (struct.pack("<BBxx", 0, 1) + struct.pack("<3f", 0.0, 0.0, 0.0) + struct.pack("<9f", *np.eye(3).ravel())
              + struct.pack("<2f", focal, focal) + struct.pack("<f", 0.0) + struct.pack("<2f", centre, centre)
              + struct.pack("<3f", k1, k2, k3) + struct.pack("<3f", p1, p2, 0.0) + struct.pack("<2h", size, size))
    data = _tslv_record(21332, b"TSLV1") + _tslv_record(2, b"ET") + _tslv_record(300, camera) + _tslv_record(5, b"")
    with gzip.open(path, "wb") as stream:
        stream.write(data)


def sample_us(truth: Truth) -> np.ndarray:
    return T0_US + np.round(truth.time_s * 1e6).astype(np.int64)


def write_tobii_g2(truth: Truth, folder: Path) -> Path:
    """A recording folder: blinks as 'gp' packets with a non-zero status, not-worn samples without 'gp',
    IMU / live-stream 'pts' / failed 'vts' packets mixed in (all to be ignored)."""
    segment = folder / "segments" / "1"
    segment.mkdir(parents=True)
    (folder / "recording.json").write_text(json.dumps({"rec_id": "r1", "rec_info": {"Name": "synthetic"}}))
    write_video(segment / "fullstream.mp4", truth.frames, truth.frame_s)
    write_tslv(segment / "et.tslv.gz", 100.0, SIZE / 2, SIZE)
    packets: list[dict[str, object]] = [{"ts": T0_US - 9000, "s": 0, "pts": 90_000, "pv": 7},
                                        {"ts": T0_US, "s": 0, "vts": 0}]
    for i, ts in enumerate(sample_us(truth).tolist()):
        gidx, status = 7000 + i, 0 if truth.worn[i] else 2
        for eye in ("left", "right"):
            packets += [{"ts": ts, "s": status, "gidx": gidx, "pc": [30.0, -20.0, -25.0], "eye": eye},
                        {"ts": ts, "s": status, "gidx": gidx, "pd": 3.5, "eye": eye},
                        {"ts": ts, "s": status, "gidx": gidx, "gd": [0.0, 0.0, 1.0], "eye": eye}]
        if truth.worn[i]:
            gaze = [-1.0, -1.0] if truth.blink[i] else [truth.x[i] / SIZE, truth.y[i] / SIZE]
            packets += [{"ts": ts, "s": 1 if truth.blink[i] else 0, "gidx": gidx, "l": 24, "gp": gaze},
                        {"ts": ts, "s": 0, "gidx": gidx, "gp3": [10.0, 20.0, 600.0]}]
        if i % 25 == 0:
            packets += [{"ts": ts + 3, "s": 0, "ac": [0.1, -9.8, 0.2]}, {"ts": ts + 4, "s": 0, "gy": [1.0, 2.0, 3.0]},
                        {"ts": ts + 5, "s": 0, "pts": 12345 + i, "pv": 3}, {"ts": ts + 6, "s": 1, "vts": 42}]
        if i == 300:
            packets.append({"ts": T0_US + 1_500_000, "s": 0, "vts": 1_500_000})
    _write_lines(segment / "livedata.json.gz", packets)
    return folder


@pytest.fixture(scope="module")
def truth() -> Truth:
    return make_truth(1)


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory, truth: Truth) -> Path:
    root = tmp_path_factory.mktemp("g2")
    write_masks(truth, root / "masks")
    write_tobii_g2(truth, root / "rec")
    return root


def test_detect_and_read_against_truth(root: Path, truth: Truth) -> None:
    assert detect_format(root / "rec") == detect_format(root / "rec" / "segments" / "1") == "tobii_g2"
    recording = read_recording(root / "rec")
    assert recording.format == "tobii_g2" and recording.video == root / "rec" / "segments" / "1" / "fullstream.mp4"
    np.testing.assert_allclose(recording.frame_times_s, truth.frame_s, atol=1e-6)
    samples = recording.samples
    assert len(samples) == len(truth.time_s)  # one per gaze index, nothing dropped, input order
    assert samples.timestamp.dtype == np.int64 and samples.timestamp.tolist() == sample_us(truth).tolist()
    np.testing.assert_allclose(samples.time_s, truth.time_s, atol=1e-6)
    assert samples.frame.tolist() == truth.nearest_frame().tolist()  # nearest scene frame by time
    assert samples.valid.tolist() == truth.valid().tolist()
    lost = truth.blink | ~truth.worn  # status != 0, or no gp packet at all: kept, invalid, no position
    assert set(samples.reason[lost]) == {"no_gaze"} and np.isnan(samples.x_px[lost]).all()
    assert truth.blink.any() and (~truth.worn).any()
    kept = truth.valid()
    np.testing.assert_allclose(samples.x_px[kept], truth.x[kept], atol=1e-6)
    np.testing.assert_allclose(samples.y_px[kept], truth.y[kept], atol=1e-6)
    camera = recording.camera  # from et.tslv.gz; OpenCV distortion order k1, k2, p1, p2, k3
    assert camera.camera_matrix is not None and camera.distortion is not None
    assert camera.focal_px == pytest.approx(100.0) and camera.camera_matrix[0, 2] == pytest.approx(SIZE / 2)
    k1, k2, k3, p1, p2 = DISTORTION
    np.testing.assert_allclose(camera.distortion, np.array([k1, k2, p1, p2, k3]), rtol=1e-6)


def test_frames_timed_by_video_timestamps_and_vts(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Irregular frame times come from the video; the vts packets move them onto the device clock,
    interpolated between packets when the clocks drift, held beyond the last packet. A sample the
    file has out of time order is kept and put in place."""
    video_s = np.array([0.0, 0.030, 0.071, 0.100, 0.141, 0.170])
    frames = np.zeros((len(video_s), 32, 32, 3), np.uint8)
    segment = tmp_path / "seg"
    segment.mkdir()
    write_video(segment / "fullstream.mp4", frames, video_s)
    drift_us = 2000  # the device clock gains 2 ms on the video's over the first 0.1 s
    device_us = T0_US + np.round(video_s * 1e6).astype(np.int64) + np.round(
        np.minimum(video_s / 0.1, 1.0) * drift_us).astype(np.int64)
    # one sample just after each frame's device time, then (out of order) one between frames 2 and 3, nearer 3
    gaze_us = [*(device_us + 500).tolist(), int(device_us[2] + 0.6 * (device_us[3] - device_us[2]))]
    packets: list[dict[str, object]] = [{"ts": T0_US, "s": 0, "vts": 0},
                                        {"ts": T0_US + 100_000 + drift_us, "s": 0, "vts": 100_000},
                                        {"ts": T0_US + 1, "s": 0, "pts": 5_000_000, "pv": 1}]
    packets += [{"ts": ts, "s": 0, "gidx": k, "gp": [k / 10, 0.5]} for k, ts in enumerate(gaze_us)]
    _write_lines(segment / "livedata.json.gz", packets)
    with caplog.at_level(logging.WARNING, logger="sam2kit.io.eyetracking.tobii_g2"):
        recording = read_recording(segment)
    assert "1 gaze samples come after later ones in the file; all kept, put in time order" in caplog.text
    np.testing.assert_allclose(recording.frame_times_s, (device_us - device_us[0]) / 1e6, atol=1e-9)
    assert recording.samples.timestamp.tolist() == sorted(gaze_us)
    assert recording.samples.frame.tolist() == [0, 1, 2, 3, 3, 4, 5]
    np.testing.assert_allclose(recording.samples.x_px, np.array([0, 1, 2, 6, 3, 4, 5]) / 10 * 32)
    assert recording.camera.camera_matrix is None  # no et.tslv.gz


def _tiny_segment(segment: Path, num_frames: int, size: int) -> None:
    write_video(segment / "fullstream.mp4", np.zeros((num_frames, size, size, 3), np.uint8),
                np.arange(num_frames) / 25)
    _write_lines(segment / "livedata.json.gz",
                 [{"ts": 10, "s": 0, "vts": 0}, {"ts": 20, "s": 0, "gidx": 1, "gp": [0.5, 0.5]}])


def test_several_segments_read_the_first_and_say_so(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    folder = tmp_path / "rec"
    for name, size in (("10", 16), ("2", 32)):
        (folder / "segments" / name).mkdir(parents=True)
        _tiny_segment(folder / "segments" / name, 3, size)
    with caplog.at_level(logging.WARNING, logger="sam2kit.io.eyetracking.tobii_g2"):
        recording = read_recording(folder)
    assert recording.video == folder / "segments" / "2" / "fullstream.mp4" and recording.camera.width == 32
    assert "2 segments (2, 10)" in caplog.text and "reading segment 2 only" in caplog.text
    assert read_recording(folder / "segments" / "10").camera.width == 16


def _cli_error(capsys: pytest.CaptureFixture[str], folder: Path) -> str:
    assert main(["-q", "gaze", str(folder), "--aoi-masks", str(folder), "--out", str(folder / "out")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("sam2kit: error: ") and "Traceback" not in err and err.count("\n") == 0, err
    return err


def test_errors_are_one_clear_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    no_livedata = tmp_path / "a" / "segments" / "1"
    no_livedata.mkdir(parents=True)
    _tiny_segment(no_livedata, 2, 16)
    (no_livedata / "livedata.json.gz").unlink()
    assert "1: no livedata.json.gz; a Tobii Glasses 2 recording needs recording.json + segments/<n>/livedata.json.gz" \
        in _cli_error(capsys, tmp_path / "a")
    no_video = tmp_path / "b"
    _write_lines(no_video / "livedata.json.gz", [{"ts": 1, "s": 0, "vts": 0}])
    assert "b: no fullstream.mp4; a Tobii Glasses 2 recording needs" in _cli_error(capsys, no_video)
    empty = tmp_path / "c"
    (empty / "segments").mkdir(parents=True)
    (empty / "recording.json").write_text("{}")
    assert "no numbered folders in segments/" in _cli_error(capsys, empty)
    no_vts = tmp_path / "d"
    no_vts.mkdir()
    _tiny_segment(no_vts, 2, 16)
    _write_lines(no_vts / "livedata.json.gz",
                 [{"ts": 5, "s": 0, "pts": 9, "pv": 1}, {"ts": 5, "s": 0, "gidx": 1, "gp": [0, 0]}])
    assert "no valid 'vts' packets (video timestamps)" in _cli_error(capsys, no_vts)
    (no_vts / "livedata.json.gz").write_bytes(gzip.compress(b'{"ts": 1, "s": 0, "vts": 0}\n\n{"ts": 2,\n'))
    with pytest.raises(RecordingFormatError, match="line 3 is not a JSON object"):
        read_recording(no_vts)
    (no_vts / "livedata.json.gz").write_bytes(gzip.compress(b'{"ts": 1, "s": 0, "vts": 0}\n{"ts": "soon", "s": 0}\n'))
    with pytest.raises(RecordingFormatError, match="line 2 has no integer 'ts'"):
        read_recording(no_vts)
    (no_vts / "livedata.json.gz").write_bytes(gzip.compress(b'{"ts": 1, "s": 0, "gidx": 4, "gp": 0.5}\n'))
    with pytest.raises(RecordingFormatError, match=r"line 1: 'gp' is not \[x, y\] \(0.5\)"):
        read_recording(no_vts)
    (tmp_path / "e").mkdir()
    with pytest.raises(RecordingFormatError, match=r"tobii_g2: recording.json \+ segments/<n>/livedata.json.gz"):
        detect_format(tmp_path / "e")


def test_cli_aoi_masks_end_to_end(root: Path, truth: Truth) -> None:
    out = root / "out"
    assert main(["-q", "gaze", str(root / "rec"), "--aoi-masks", str(root / "masks"), "--tolerance", "1deg",
                 "--out", str(out)]) == 0
    with open(out / "gaze_samples.csv", newline="") as handle:
        samples = list(csv.DictReader(handle))
    assert [int(s["timestamp"]) for s in samples] == sample_us(truth).tolist()  # device µs, unchanged
    assert [int(s["frame"]) if s["frame"] else -1 for s in samples] == truth.nearest_frame().tolist()
    assert [s["valid"] == "1" for s in samples] == truth.valid().tolist()
    radius = 100.0 * math.tan(math.radians(1.0))  # degrees through the TSLV focal length
    want = truth.sample_aois(radius)
    assert aoi_sets(s["aois"] for s in samples) == want
    assert any(want) and any(not hits for hits in want)
    with open(out / "aoi_metrics.csv", newline="") as handle:
        metrics = list(csv.DictReader(handle))
    assert [int(m["aoi"]) for m in metrics] == sorted(set(np.unique(truth.labels).tolist()) - {0})
    assert sum(float(m["dwell_s"]) for m in metrics) > 0
