"""Synthetic eye-tracking recordings for the gaze tests, with their ground truth.

A scene (:func:`sam2kit.synthetic.render_clip`: shapes that move and hide one another) of
``NUM_FRAMES`` frames at 30 Hz with jittered frame times, and gaze at 200 Hz: fixations (mostly on
shape centres, with a little noise) joined by fast saccades, a blink, a not-worn stretch, a few
samples off the frame, and samples before the first and after the last frame. Written in each
format the readers support, plus the AOI masks as DAVIS palette PNGs (AOI id k = shape k).
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from sam2kit.io.masks import save_palette_png
from sam2kit.synthetic import render_clip

NUM_FRAMES, SIZE, GAZE_HZ = 75, 128, 200
T0_NS = 1_700_000_000_123_456_789


@dataclass
class Truth:
    frames: np.ndarray  # (T, S, S, 3) uint8
    labels: np.ndarray  # (T, S, S) uint8 AOI ids (0 background)
    frame_s: np.ndarray  # (T,) frame times, s from frame 0
    time_s: np.ndarray  # (N,) sample times, s from frame 0
    x: np.ndarray
    y: np.ndarray  # (N,) pixels, origin top left (NaN: no gaze)
    blink: np.ndarray
    worn: np.ndarray  # (N,) bool
    fixations: list[tuple[float, float]]  # (start_s, end_s) of the generated fixations

    def nearest_frame(self) -> np.ndarray:
        """Nearest frame per sample, brute force; -1 beyond half a frame period outside the video."""
        distance = np.abs(self.time_s[:, None] - self.frame_s[None, :])
        index = distance.argmin(axis=1)
        half = np.median(np.diff(self.frame_s)) / 2
        index[(self.time_s < -half) | (self.time_s > self.frame_s[-1] + half)] = -1
        return index

    def valid(self) -> np.ndarray:
        inside = (self.x >= 0) & (self.x < SIZE) & (self.y >= 0) & (self.y < SIZE)
        return ~self.blink & self.worn & np.isfinite(self.x) & inside & (self.nearest_frame() >= 0)

    def sample_aois(self, radius: float = 0.0) -> list[set[int]]:
        """AOIs hit by each valid sample: by the pixel holding the point, or any mask pixel centre within ``radius``."""
        frames, valid = self.nearest_frame(), self.valid()
        result: list[set[int]] = []
        for i in range(len(self.time_s)):
            if not valid[i]:
                result.append(set())
                continue
            label = self.labels[frames[i]]
            hit = {int(label[int(self.y[i]), int(self.x[i])])} - {0}
            if radius > 0:
                rows, cols = np.nonzero(label)
                near = (rows + 0.5 - self.y[i]) ** 2 + (cols + 0.5 - self.x[i]) ** 2 <= radius**2
                hit |= {int(v) for v in label[rows[near], cols[near]]}
            result.append(hit)
        return result


def aoi_sets(column: Iterable[object]) -> list[set[int]]:
    """The ``aois`` column of ``gaze_samples`` (``"1;3"``, empty for none) as sets of AOI ids."""
    return [{int(v) for v in str(text).split(";")} if text else set() for text in column]


def make_truth(seed: int = 0) -> Truth:
    rng = np.random.default_rng(seed)
    frames, masks = render_clip(rng, NUM_FRAMES, SIZE)
    labels = np.zeros((NUM_FRAMES, SIZE, SIZE), dtype=np.uint8)
    for k in range(masks.shape[1]):
        labels[masks[:, k]] = k + 1
    frame_s = np.arange(NUM_FRAMES) / 30 + rng.uniform(-0.006, 0.006, NUM_FRAMES)
    frame_s = np.round(frame_s - frame_s[0], 3)  # whole milliseconds: exact as video timestamps
    time_s = np.arange(-0.04, frame_s[-1] + 0.06, 1 / GAZE_HZ) + rng.uniform(0, 1e-4)
    x, y = np.empty(len(time_s)), np.empty(len(time_s))
    fixations, i = [], 0
    while i < len(time_s):
        hold = int(rng.integers(30, 70))  # 150..350 ms
        frame = int(np.clip(np.searchsorted(frame_s, time_s[i]), 0, NUM_FRAMES - 1))
        ids = [v for v in np.unique(labels[frame]) if v]
        if ids and rng.random() < 0.8:  # look at a shape
            rows, cols = np.nonzero(labels[frame] == rng.choice(ids))
            cx, cy = cols.mean() + 0.5, rows.mean() + 0.5
        else:
            cx, cy = rng.uniform(5, SIZE - 5, 2)
        end = min(i + hold, len(time_s))
        x[i:end] = cx + rng.normal(0, 0.7, end - i)
        y[i:end] = cy + rng.normal(0, 0.7, end - i)
        fixations.append((float(time_s[i]), float(time_s[end - 1])))
        saccade = min(end + 6, len(time_s))  # 30 ms to the next place
        if saccade > end:
            tx, ty = rng.uniform(5, SIZE - 5, 2)
            x[end:saccade] = np.linspace(cx, tx, saccade - end)
            y[end:saccade] = np.linspace(cy, ty, saccade - end)
        i = saccade
    blink = np.zeros(len(time_s), bool)
    blink[150:180] = True
    worn = np.ones(len(time_s), bool)
    worn[300:330] = False
    x[250:253] = -7.0  # off the frame
    x[400:402] = SIZE + 3.0
    return Truth(frames, labels, frame_s, time_s, x, y, blink, worn, fixations)


def write_masks(truth: Truth, folder: Path, names: dict[int, str] | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for t, label in enumerate(truth.labels):
        save_palette_png(folder / f"{t:05d}.png", label)
    if names:
        (folder.parent / "names.json").write_text(json.dumps({str(k): v for k, v in names.items()}))
    return folder


def write_video(path: Path, frames: np.ndarray, times_s: np.ndarray | None = None) -> Path:
    """An H.264 / MPEG-4 file; with ``times_s`` (whole ms) each frame gets that presentation time."""
    import av

    from sam2kit.io.video_writer import VideoWriter

    if times_s is None:
        with VideoWriter(path, fps=30) as writer:
            for frame in frames:
                writer.write(frame)
        return path
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=30)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        stream.time_base = stream.codec_context.time_base = Fraction(1, 1000)
        for frame, t in zip(frames, times_s, strict=True):
            video_frame = av.VideoFrame.from_ndarray(frame, format="rgb24")
            video_frame.pts, video_frame.time_base = int(round(t * 1000)), Fraction(1, 1000)
            for packet in stream.encode(video_frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def _csv(path: Path, header: list[str], rows: list[list[object]]) -> None:
    lines = [",".join(header)] + [",".join("" if v is None else str(v) for v in row) for row in rows]
    path.write_text("\n".join(lines) + "\n")


def write_pupil_cloud(truth: Truth, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    write_video(folder / "2024-05-01_12-00-00-abcdef.mp4", truth.frames)
    frame_ns = T0_NS + np.round(truth.frame_s * 1e9).astype(np.int64)
    _csv(folder / "world_timestamps.csv", ["section id", "recording id", "timestamp [ns]"],
         [["s", "r", int(t)] for t in frame_ns])
    sample_ns = T0_NS + np.round(truth.time_s * 1e9).astype(np.int64)
    fixation_of = np.full(len(sample_ns), -1)
    for k, (start, end) in enumerate(truth.fixations, 1):
        fixation_of[(truth.time_s >= start) & (truth.time_s <= end)] = k
    rows = []
    for i in range(len(sample_ns)):
        rows.append(["s", "r", int(sample_ns[i]), f"{truth.x[i]:.6f}", f"{truth.y[i]:.6f}",
                     1.0 if truth.worn[i] else 0.0, fixation_of[i] if fixation_of[i] > 0 else None,
                     1 if truth.blink[i] else None, 0.0, 0.0])
    _csv(folder / "gaze.csv", ["section id", "recording id", "timestamp [ns]", "gaze x [px]", "gaze y [px]", "worn",
                               "fixation id", "blink id", "azimuth [deg]", "elevation [deg]"], rows)
    fix_rows = []
    for k, (start, end) in enumerate(truth.fixations, 1):
        members = fixation_of == k
        fix_rows.append(["s", "r", k, T0_NS + round(start * 1e9), T0_NS + round(end * 1e9),
                         round((end - start) * 1000), truth.x[members].mean(), truth.y[members].mean(), 0, 0])
    _csv(folder / "fixations.csv", ["section id", "recording id", "fixation id", "start timestamp [ns]",
                                    "end timestamp [ns]", "duration [ms]", "fixation x [px]", "fixation y [px]",
                                    "azimuth [deg]", "elevation [deg]"], fix_rows)
    _csv(folder / "events.csv", ["recording id", "timestamp [ns]", "name", "type"],
         [["r", T0_NS, "recording.begin", "recording"]])
    camera = {"camera_matrix": [[100.0, 0, 64], [0, 100.0, 64], [0, 0, 1]], "distortion_coefficients": [0] * 8}
    (folder / "scene_camera.json").write_text(json.dumps(camera))
    return folder


def write_pupil_player(truth: Truth, folder: Path) -> Path:
    export = folder / "exports" / "000"
    export.mkdir(parents=True, exist_ok=True)
    write_video(folder / "world.mp4", truth.frames)
    epoch = 4321.25
    np.save(folder / "world_timestamps.npy", epoch + truth.frame_s)
    confidence = np.where(truth.blink | ~truth.worn, 0.1, 0.95)
    rows = [[f"{epoch + truth.time_s[i]:.9f}", 0, confidence[i], truth.x[i] / SIZE, 1 - truth.y[i] / SIZE]
            for i in range(len(truth.time_s))]
    _csv(export / "gaze_positions.csv", ["gaze_timestamp", "world_index", "confidence", "norm_pos_x", "norm_pos_y"],
         rows)
    return folder


def write_tobii(truth: Truth, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    start = 0.5  # the video starts 0.5 s into the recording
    write_video(folder / "scenevideo.mp4", truth.frames, start + truth.frame_s)
    meta = {"name": "synthetic", "scenecamera": {"file": "scenevideo.mp4", "camera-calibration": {
        "focal-length": [100.0, 100.0], "principal-point": [64.0, 64.0], "resolution": [SIZE, SIZE]}},
        "gaze": {"file": "gazedata.gz"}}
    (folder / "recording.g3").write_text(json.dumps(meta))
    with gzip.open(folder / "gazedata.gz", "wt") as lines:
        for i in range(len(truth.time_s)):
            data: dict[str, object] = {}
            if not (truth.blink[i] or not truth.worn[i]):
                data = {"gaze2d": [truth.x[i] / SIZE, truth.y[i] / SIZE], "gaze3d": [0, 0, 1]}
            lines.write(json.dumps({"type": "gaze", "timestamp": start + truth.time_s[i], "data": data}) + "\n")
    return folder


def write_generic(truth: Truth, folder: Path) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    video = write_video(folder / "scene.mp4", truth.frames, truth.frame_s)
    rows = [[f"{truth.time_s[i] * 1000:.4f}", truth.x[i] / SIZE, truth.y[i] / SIZE,
             0 if truth.blink[i] or not truth.worn[i] else 1] for i in range(len(truth.time_s))]
    _csv(folder / "gaze.csv", ["t_ms", "gx", "gy", "ok"], rows)
    return folder / "gaze.csv", video


def write_neon(truth: Truth, folder: Path) -> Path:
    """A native Neon recording folder as ``pupil-labs-neon-recording`` reads it (binary streams)."""
    folder.mkdir(parents=True, exist_ok=True)
    frame_ns = T0_NS + np.round(truth.frame_s * 1e9).astype(np.int64)
    sample_ns = T0_NS + np.round(truth.time_s * 1e9).astype(np.int64)
    (folder / "info.json").write_text(json.dumps({"start_time": int(sample_ns[0]), "app_version": "2.9.40",
                                                  "duration": int(sample_ns[-1] - sample_ns[0])}))
    write_video(folder / "Neon Scene Camera v1 ps1.mp4", truth.frames)
    frame_ns.astype("<i8").tofile(folder / "Neon Scene Camera v1 ps1.time")
    sample_ns.astype("<i8").tofile(folder / "gaze ps1.time")
    np.stack([truth.x, truth.y], axis=1).astype("<f4").tofile(folder / "gaze ps1.raw")
    truth.worn.astype(np.uint8).tofile(folder / "worn ps1.raw")
    blink = np.flatnonzero(truth.blink)
    np.array([sample_ns[blink[0]]], "<i8").tofile(folder / "blinks ps1.time")
    np.array([[sample_ns[blink[0]], sample_ns[blink[-1]]]], "<i8").tofile(folder / "blinks ps1.raw")
    record = np.dtype([("event_type", "<i4"), ("start", "<i8"), ("end", "<i8")] + [(f"f{k}", "<f4") for k in range(10)])
    events = np.zeros(len(truth.fixations), record)
    for k, (start, end) in enumerate(truth.fixations):
        events[k]["event_type"] = 1
        events[k]["start"] = T0_NS + round(start * 1e9)
        events[k]["end"] = T0_NS + round(end * 1e9)
        events[k]["f4"], events[k]["f5"] = np.nan, np.nan  # mean gaze: unknown here
    events.tofile(folder / "fixations ps1.raw")
    events["start"].astype("<i8").tofile(folder / "fixations ps1.time")
    return folder
