"""``sam2kit gaze`` with AOIs from palette PNGs, against ground truth computed here from the geometry.

Every format the readers support is written from one synthetic recording (:mod:`gaze_helpers`);
each sample's AOIs must equal the truth and each metric a value computed here independently.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
from gaze_helpers import (
    SIZE,
    Truth,
    aoi_sets,
    make_truth,
    write_generic,
    write_masks,
    write_neon,
    write_pupil_cloud,
    write_pupil_player,
    write_tobii,
)

from sam2kit.cli import main
from sam2kit.errors import ArgumentError
from sam2kit.gaze import METRIC_COLUMNS, FixationOptions, MaskFolderAOIs, analyse_gaze, hit_test
from sam2kit.io.eyetracking import RecordingFormatError, read_generic_csv, read_recording

NAMES = {1: "red thing", 3: "third"}


@pytest.fixture(scope="module")
def truth() -> Truth:
    return make_truth(0)


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory, truth: Truth) -> Path:
    root = tmp_path_factory.mktemp("gaze")
    write_masks(truth, root / "masks", NAMES)
    write_pupil_cloud(truth, root / "cloud")
    return root


def _durations(times: np.ndarray) -> np.ndarray:
    return np.append(np.diff(times), np.median(np.diff(times)))


def expected_metrics(truth: Truth, fixations: list[tuple[int, float, float]], sample_fixation: np.ndarray,
                     aoi: int) -> dict[str, float]:
    """The metrics of one AOI from the truth, by their definitions (README "Gaze and AOIs")."""
    valid, hits = truth.valid(), truth.sample_aois()
    frame_durations = _durations(truth.frame_s)
    visible = np.array([(label == aoi).any() for label in truth.labels])
    visible_s = float(frame_durations[visible].sum())
    first_visible = float(truth.frame_s[visible][0]) if visible.any() else math.nan
    on = []
    for fid, start, end in sorted(fixations, key=lambda f: f[1]):
        members = [i for i in np.flatnonzero(sample_fixation == fid) if valid[i]]
        votes = sum(aoi in hits[i] for i in members)
        on.append((2 * votes > len(members), start, end))
    durations = [end - start for hit, start, end in on if hit]
    visits, current = [], None
    for hit, start, end in on:
        if hit:
            current = [start, end] if current is None else [current[0], end]
        elif current is not None:
            visits.append(current)
            current = None
    if current is not None:
        visits.append(current)
    gazed = [i for i in range(len(truth.time_s)) if valid[i] and aoi in hits[i]]
    sample_durations = _durations(truth.time_s)
    dwell = float(sum(sample_durations[i] for i in gazed))
    first_fix = next((start for hit, start, _ in on if hit), math.nan)
    return {
        "visible_s": visible_s, "fixation_count": len(durations), "total_fixation_duration_s": sum(durations),
        "average_fixation_duration_s": float(np.mean(durations)) if durations else math.nan,
        "time_to_first_fixation_s": first_fix, "time_to_first_fixation_visible_s": first_fix - first_visible,
        "first_fixation_duration_s": durations[0] if durations else math.nan, "visit_count": len(visits),
        "total_visit_duration_s": sum(end - start for start, end in visits), "dwell_s": dwell,
        "time_to_first_gaze_s": float(truth.time_s[gazed[0]]) if gazed else math.nan,
        "dwell_share_of_visible": dwell / visible_s if visible_s else math.nan,
    }


def _check_metrics(table: object, truth: Truth, fixations: list[tuple[int, float, float]],
                   sample_fixation: np.ndarray) -> None:
    rows = table.to_dict("records")  # type: ignore[attr-defined]
    assert [row["aoi"] for row in rows] == sorted(set(np.unique(truth.labels).tolist()) - {0})
    for row in rows:
        want = expected_metrics(truth, fixations, sample_fixation, row["aoi"])
        for name, value in want.items():
            assert row[name] == pytest.approx(value, abs=2e-6, nan_ok=True), (row["aoi"], name)


def test_pupil_cloud_cli_matches_truth(root: Path, truth: Truth) -> None:
    out = root / "out_cloud"
    code = main(["-q", "gaze", str(root / "cloud"), "--aoi-masks", str(root / "masks"),
                 "--aoi-names", str(root / "names.json"), "--out", str(out)])
    assert code == 0
    assert sorted(p.name for p in out.iterdir()) == ["aoi_metrics.csv", "fixations.csv", "gaze_samples.csv"]
    with open(out / "gaze_samples.csv", newline="") as handle:
        samples = list(csv.DictReader(handle))
    assert list(samples[0]) == ["time_s", "timestamp", "frame", "x_px", "y_px", "valid", "fixation_id", "aois"]
    assert len(samples) == len(truth.time_s)  # nothing dropped, input order
    frames = truth.nearest_frame()
    assert [int(s["frame"]) if s["frame"] else -1 for s in samples] == frames.tolist()
    assert [s["valid"] == "1" for s in samples] == truth.valid().tolist()
    assert aoi_sets(s["aois"] for s in samples) == truth.sample_aois()
    assert any(truth.sample_aois()) and any(len(a) == 0 for a in truth.sample_aois())
    timestamps = [int(s["timestamp"]) for s in samples]  # the recording's own ns, unchanged
    assert np.allclose((np.array(timestamps) - timestamps[0]) / 1e9, truth.time_s - truth.time_s[0], atol=1e-9)
    assert float(samples[0]["time_s"]) == pytest.approx(truth.time_s[0], abs=1e-9)
    with open(out / "fixations.csv", newline="") as handle:
        fixations = list(csv.DictReader(handle))
    assert list(fixations[0]) == ["fixation_id", "start_s", "end_s", "duration_s", "x_px", "y_px", "aois"]
    assert len(fixations) == len(truth.fixations)
    with open(out / "aoi_metrics.csv", newline="") as handle:
        metrics = list(csv.DictReader(handle))
    assert tuple(metrics[0]) == METRIC_COLUMNS
    assert {int(m["aoi"]): m["name"] for m in metrics if m["name"]} == {k: v for k, v in NAMES.items()}

    import pandas

    table = pandas.read_csv(out / "aoi_metrics.csv")
    sample_fixation = np.full(len(truth.time_s), -1)
    truth_fixations = []
    for k, (start, end) in enumerate(truth.fixations, 1):
        sample_fixation[(truth.time_s >= start) & (truth.time_s <= end)] = k
        truth_fixations.append((k, start, end))
    _check_metrics(table, truth, truth_fixations, sample_fixation)
    hits = truth.sample_aois()
    for row in fixations:  # majority of valid samples
        members = [i for i in np.flatnonzero(sample_fixation == int(row["fixation_id"])) if truth.valid()[i]]
        want = {a for a in range(1, 6) if 2 * sum(a in hits[i] for i in members) > len(members)}
        assert aoi_sets([row["aois"]])[0] == want


@pytest.mark.parametrize("kind", ["pupil_player", "tobii_g3", "generic_csv", "neon"])
def test_other_formats_match_truth(tmp_path: Path, root: Path, truth: Truth, kind: str) -> None:
    if kind == "pupil_player":
        recording = read_recording(write_pupil_player(truth, tmp_path / "rec"))
    elif kind == "tobii_g3":
        recording = read_recording(write_tobii(truth, tmp_path / "rec"))
    elif kind == "neon":
        recording = read_recording(write_neon(truth, tmp_path / "rec"))
    else:
        gaze_csv, video = write_generic(truth, tmp_path / "rec")
        recording = read_generic_csv(gaze_csv, video, time_column="t_ms", x_column="gx", y_column="gy",
                                     time_unit="ms", coordinates="norm", valid_column="ok")
    assert recording.format == kind and (recording.fixations is None) == (kind != "neon")
    np.testing.assert_allclose(recording.frame_times_s, truth.frame_s, atol=1e-6)
    options = FixationOptions(dispersion_deg=6.0)  # the synthetic camera has a short focal length
    tables = analyse_gaze(recording, MaskFolderAOIs(root / "masks"), fixation_options=options)
    assert tables.samples["valid"].astype(bool).tolist() == truth.valid().tolist()
    assert aoi_sets(tables.samples["aois"].tolist()) == truth.sample_aois()
    if kind == "neon":  # the recording's own fixations; positions (NaN there) from their samples
        assert tables.fixations_source == "recording" and len(tables.fixations) == len(truth.fixations)
        assert tables.fixations[["x_px", "y_px"]].notna().all().all()
    else:
        assert tables.fixations_source == "pymovements-idt" and len(tables.fixations) >= 5
    # detected fixations: the metrics still follow their definitions
    fixations = [(int(r.fixation_id), float(r.start_s), float(r.end_s)) for r in tables.fixations.itertuples()]
    sample_fixation = tables.samples["fixation_id"].fillna(-1).astype(int).to_numpy()
    _check_metrics(tables.aoi_metrics, truth, fixations, sample_fixation)


def test_tolerance_in_pixels_and_degrees(root: Path, truth: Truth) -> None:
    recording = read_recording(root / "cloud")
    for tolerance, radius in (("3px", 3.0), ("12px", 12.0), ("2deg", 100 * math.tan(math.radians(2)))):
        tables = analyse_gaze(recording, MaskFolderAOIs(root / "masks"), tolerance=tolerance)
        assert tables.tolerance_px == pytest.approx(radius)
        assert aoi_sets(tables.samples["aois"].tolist()) == truth.sample_aois(radius)
    assert sum(map(len, truth.sample_aois(12.0))) > sum(map(len, truth.sample_aois()))


def test_hit_test_geometry() -> None:
    left = np.zeros((10, 10), bool)
    left[:, :5] = True  # pixel centres x = 0.5 .. 4.5
    x, y = np.array([4.99, 5.0, 6.4, 6.6, -0.5]), np.array([3.0, 3.0, 3.0, 3.0, 3.0])
    assert hit_test(left, x, y).tolist() == [True, False, False, False, False]
    assert hit_test(left, x, y, radius=2.0).tolist() == [True, True, True, False, True]
    right = ~left  # overlapping AOIs: a point near both hits both
    assert hit_test(right, x, y, radius=2.0).tolist() == [True, True, True, True, False]


def test_stride_uses_nearest_tracked_frame(root: Path, truth: Truth) -> None:
    tables = analyse_gaze(read_recording(root / "cloud"), MaskFolderAOIs(root / "masks"), stride=3)
    tracked = np.arange(0, len(truth.frame_s), 3)
    valid, got = truth.valid(), aoi_sets(tables.samples["aois"].tolist())
    for i in np.flatnonzero(valid):
        frame = tracked[np.argmin(np.abs(truth.frame_s[tracked] - truth.time_s[i]))]
        assert got[i] == {int(truth.labels[frame][int(truth.y[i]), int(truth.x[i])])} - {0}
    video_end = truth.frame_s[-1] + np.median(np.diff(truth.frame_s))
    durations = np.diff(np.append(truth.frame_s[tracked], video_end))
    for row in tables.aoi_metrics.itertuples():
        seen = np.array([(truth.labels[f] == row.aoi).any() for f in tracked])
        assert row.visible_s == pytest.approx(durations[seen].sum(), abs=1e-6)


# ---------------------------------------------------------------------------- bad input
def _cli_error(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    assert main(["-q", "gaze", *argv]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("sam2kit: error: ") and "Traceback" not in err and err.count("\n") == 0, err
    return err


def test_unknown_folder_names_what_formats_need(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    err = _cli_error(capsys, [str(tmp_path), "--aoi-masks", str(tmp_path), "--out", str(tmp_path / "o")])
    for needed in ("gaze.csv", "world_timestamps.csv", "gaze_positions.csv", "recording.g3", "gazedata.gz"):
        assert needed in err


def _edit_csv(path: Path, column: str, change: object) -> None:
    import pandas

    table = pandas.read_csv(path)
    table[column] = change(table[column])  # type: ignore[operator]
    table.to_csv(path, index=False)


def test_gaze_that_does_not_overlap_the_video(tmp_path: Path, truth: Truth, root: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    folder = write_pupil_cloud(truth, tmp_path / "rec")
    _edit_csv(folder / "gaze.csv", "timestamp [ns]", lambda c: c + 60 * 10**9)
    err = _cli_error(capsys, [str(folder), "--aoi-masks", str(root / "masks"), "--out", str(tmp_path / "o")])
    assert "do not overlap" in err and "by 57." in err


def test_non_monotonic_timestamps(tmp_path: Path, truth: Truth) -> None:
    folder = write_pupil_cloud(truth, tmp_path / "rec")
    _edit_csv(folder / "world_timestamps.csv", "timestamp [ns]", lambda c: c.where(c.index != 10, c[3]))
    with pytest.raises(RecordingFormatError, match="scene frame timestamps are not increasing: entry 10"):
        read_recording(folder)
    folder = write_pupil_cloud(truth, tmp_path / "rec2")
    _edit_csv(folder / "gaze.csv", "timestamp [ns]", lambda c: c.where(c.index != 40, c[2]))
    with pytest.raises(RecordingFormatError, match="gaze sample timestamps are not in time order: entry 40"):
        read_recording(folder)


def test_velocity_threshold_detection(tmp_path: Path, root: Path, truth: Truth) -> None:
    recording = read_recording(write_pupil_player(truth, tmp_path / "rec"))
    tables = analyse_gaze(recording, MaskFolderAOIs(root / "masks"), fixation_options=FixationOptions(method="ivt"))
    assert tables.fixations_source == "pymovements-ivt" and len(tables.fixations) >= 5
    samples = tables.samples
    for row in tables.fixations.itertuples():  # a fixation's valid samples stay together (no saccade inside)
        members = samples[(samples["fixation_id"] == row.fixation_id) & (samples["valid"] == 1)]
        assert members["x_px"].max() - members["x_px"].min() < 10
        assert row.start_s <= members["time_s"].min() and members["time_s"].max() <= row.end_s


def test_masks_that_do_not_fit_the_video(tmp_path: Path, truth: Truth, root: Path) -> None:
    recording = read_recording(root / "cloud")
    short = tmp_path / "short"
    short.mkdir()
    for index in range(10):
        (short / f"{index:05d}.png").write_bytes((root / "masks" / f"{index:05d}.png").read_bytes())
    with pytest.raises(ArgumentError, match=r"10 frame PNGs for a video of 75 frames: missing 65 \(first: 00010.png\)"):
        analyse_gaze(recording, MaskFolderAOIs(short))
    small = tmp_path / "small"
    write_masks(Truth(truth.frames, truth.labels[:, :64, :100], *list(vars(truth).values())[2:]), small)
    with pytest.raises(ArgumentError, match=f"100x64 pixels but the scene video is {SIZE}x{SIZE}"):
        analyse_gaze(recording, MaskFolderAOIs(small))


def test_degrees_without_intrinsics_and_bad_tolerance(tmp_path: Path, truth: Truth, root: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    folder = write_pupil_player(truth, tmp_path / "rec")
    err = _cli_error(capsys, [str(folder), "--aoi-masks", str(root / "masks"), "--tolerance", "1.5deg",
                              "--out", str(tmp_path / "o")])
    assert "--tolerance in degrees needs the scene camera intrinsics" in err
    err = _cli_error(capsys, [str(folder), "--aoi-masks", str(root / "masks"), "--tolerance", "wide",
                              "--out", str(tmp_path / "o")])
    assert "--tolerance must be a number >= 0 with unit px or deg" in err


def test_missing_column_is_named(tmp_path: Path, truth: Truth, root: Path) -> None:
    gaze_csv, video = write_generic(truth, tmp_path / "rec")
    with pytest.raises(RecordingFormatError, match="no column\\(s\\) 'time'; its columns are 't_ms', 'gx'"):
        read_generic_csv(gaze_csv, video, time_column="time", x_column="gx", y_column="gy")
    names = tmp_path / "names.json"
    names.write_text(json.dumps(["cup"]))
    assert main(["-q", "gaze", str(root / "cloud"), "--aoi-masks", str(root / "masks"), "--aoi-names", str(names),
                 "--out", str(tmp_path / "o")]) == 1


def test_overlay_and_summary(root: Path, truth: Truth) -> None:
    from PIL import Image

    from sam2kit.io.video_file import VideoFileSource

    out = root / "out_pictures"
    assert main(["-q", "gaze", str(root / "cloud"), "--aoi-masks", str(root / "masks"), "--stride", "2",
                 "--tolerance", "4px", "--overlay", "--summary", "--out", str(out)]) == 0
    with Image.open(out / "summary.png") as image:
        assert image.width > 300 and image.height > 100
    video = VideoFileSource(out / "overlay.mp4")
    try:
        assert len(video) == 38 and (video.height, video.width) == (SIZE, SIZE)
        import pandas

        samples = pandas.read_csv(out / "gaze_samples.csv", keep_default_na=False)
        # a used frame whose samples look at an AOI: that AOI is drawn yellow (R, G high, B low)
        used = np.arange(0, len(truth.frame_s), 2)
        checked = 0
        for index, row in samples[samples["aois"] != ""].iterrows():
            slot = int(np.argmin(np.abs(truth.frame_s[used] - truth.time_s[index])))
            frame, aoi = int(used[slot]), int(str(row["aois"]).split(";")[0])
            inside = truth.labels[frame] == aoi
            if inside.sum() < 150:
                continue
            rgb = video[slot].astype(float)[inside]
            assert (rgb[:, 0] + rgb[:, 1]).mean() / 2 - rgb[:, 2].mean() > 40
            checked += 1
            if checked == 3:
                break
        assert checked
    finally:
        video.close()
