"""Tobii Pro Glasses 2: a recording folder as the recording unit wrote it to its SD card.

Read: ``<recording>/segments/<n>/`` with ``livedata.json.gz`` (gzipped JSON lines, one packet a
line), ``fullstream.mp4`` (the scene video) and, if present, ``et.tslv.gz`` (scene camera
intrinsics). The recording folder (with ``recording.json`` and ``segments/``) or one segment
folder may be given. A recording the unit split into several segments is read from its first
segment only (each segment has its own video), with a warning that names the others; give a
segment folder to read another.

Gaze samples: one per gaze index ``gidx`` (the packets of one eye-tracker sample share it), in
time order: the file's order, except that samples the file has out of time order (GlassesViewer
reports such glitches) are moved into place with a warning, never dropped. A sample's time is its
``gp`` packet's ``ts`` (device clock, integer microseconds; kept unchanged as ``timestamp``) and
its position is ``gp`` (normalised to the scene image, origin top left, times the video's width /
height). A sample is kept as invalid (``no_gaze``, no position) when its ``gp`` packet has a
non-zero status ``s`` or when it has no ``gp`` packet. Packets without ``gidx`` (accelerometer,
gyroscope, sync port, API events, the live stream's ``pts`` / ``pv``) are skipped.

Scene frames: each frame's presentation time in the video's own timestamps, moved onto the
device clock with the ``vts`` packets ``{"ts": device µs, "s": 0, "vts": video µs}``: the
offset ``ts - vts`` (constant within a segment in the open tools' experience; interpolated
between packets if it is not, held beyond the first and last). No frame rate is assumed.

Sources (public):

- Tobii Pro FAQ "How can I synchronize the video and the gaze data from Tobii Pro Glasses 2?"
  (tobiipro.com): the sync packets ``{"ts", "s", "vts"}`` and ``{"ts", "s", "pts", "pv"}`` in
  ``livedata.json`` on the SD card; ``ts`` is the glasses' local timestamp, ``vts`` the
  presentation timestamp for synchronising a recording afterwards, ``pts`` the one for live
  synchronisation, ``pv`` a debugging value of the Glasses Controller.
- GlassesViewer (Niehorster, Hessels & Benjamins 2020, Behavior Research Methods; github
  dcnieho/GlassesViewer, ``readG2DataFiles.m``, ``readTSLV.m``): the folder layout
  (``recording.json``, ``participant.json``, ``segments/<n>/livedata.json.gz``,
  ``fullstream.mp4``, ``et.tslv.gz``); non-zero ``s`` marks a packet not to be used; ``gidx``
  groups ``pc``, ``pd``, ``gd`` (per eye), ``gp`` and ``gp3``; ``ts`` in microseconds; ``gp``
  times the video's width and height gives pixels, and may fall outside 0..1; the ``vts == 0``
  packet marks the segment video's first frame and ``ts - vts`` is constant within a segment;
  ``pts`` packets are not used for recordings; the TSLV header and the ``camera`` record (type
  300) layout.
- glassesTools (github dcnieho/glassesTools, ``importing/tobii_G2.py``): ``vts`` packets come at
  the first frame, the first key frame and about once a minute; the TSLV camera record as an
  OpenCV camera matrix and distortion ``[k1, k2, p1, p2, k3]``; reads ``segments/1``.
- ArGaze documentation (ENAC): a segment (``.../<recording>/segments/1``) is the unit played back;
  scene camera 1920x1080 at 25 fps, gaze 50 or 100 Hz.

Unconfirmed: the origin of ``gp`` (top left as the open tools draw it; no Tobii page found);
``vts`` in microseconds (follows from ``ts - vts`` being constant); ``vts`` on the video's
presentation clock rather than counted from its first frame (the same when the first frame's
timestamp is 0, as in the files the open tools describe); what each non-zero status value
means; the TSLV layout (two open readers by one author, not a Tobii page).
"""

from __future__ import annotations

import gzip
import logging
import math
import struct
from pathlib import Path
from typing import Any

import numpy as np

from .recording import Recording, RecordingFormatError, SceneCamera, make_recording
from .tobii import intrinsics, json_lines, scene_video

__all__ = ["NEEDS", "find_segment", "is_tobii_g2", "read_tobii_g2"]

logger = logging.getLogger(__name__)

LIVEDATA, VIDEO, TSLV = "livedata.json.gz", "fullstream.mp4", "et.tslv.gz"
NEEDS = f"recording.json + segments/<n>/{LIVEDATA} + segments/<n>/{VIDEO} (or one segment folder)"

_TSLV_END, _TSLV_CAMERA = 5, 300
_TSLV_SCAN_BYTES = 1 << 22  # the camera record comes early; never read a long stream to its end for it
_CAMERA_RECORD = struct.Struct("<2B2x3f9f2ff2f3f3f2h")  # id, location, position, rotation, f, skew, c, k, p, size


def _segment_folders(folder: Path) -> list[Path]:
    segments = folder / "segments"
    if not segments.is_dir():
        return []
    return sorted((p for p in segments.iterdir() if p.is_dir() and p.name.isdigit()), key=lambda p: int(p.name))


def _is_segment(folder: Path) -> bool:
    return (folder / LIVEDATA).is_file() or (folder / VIDEO).is_file()


def is_tobii_g2(folder: Path) -> bool:
    """A Glasses 2 recording folder (``recording.json`` + ``segments/``) or one of its segments."""
    if _is_segment(folder):
        return True
    if not (folder / "segments").is_dir():
        return False
    return (folder / "recording.json").is_file() or any(_is_segment(s) for s in _segment_folders(folder))


def find_segment(folder: Path) -> Path:
    """The segment folder to read: ``folder`` itself when it is one, else the first of ``segments/``.

    Raises:
        RecordingFormatError: a recording folder without segment folders.
    """
    if _is_segment(folder):
        return folder
    segments = _segment_folders(folder)
    if not segments:
        raise RecordingFormatError(
            f"{folder}: no numbered folders in segments/; a Tobii Glasses 2 recording needs {NEEDS}"
        )
    if len(segments) > 1:
        logger.warning("%s: the recording has %d segments (%s), each with its own video; reading segment %s only "
                       "(give %s to read another)", folder, len(segments), ", ".join(s.name for s in segments),
                       segments[0].name, folder / "segments" / "<n>")
    return segments[0]


def _int(record: dict[str, Any], key: str, path: Path, number: int) -> int:
    try:
        return int(record[key])
    except (KeyError, TypeError, ValueError):
        raise RecordingFormatError(f"{path}: line {number} has no integer {key!r} ({record.get(key)!r})") from None


def _read_livedata(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(ts, x, y, sync)``: per sample ``(N,)`` device µs (int64) and normalised gaze (NaN when
    invalid or missing); ``sync`` ``(K, 2)`` int64 ``[ts, vts]`` of the valid ``vts`` packets."""
    samples: dict[int, list[float]] = {}  # gidx -> [ts, x, y, has gp]
    sync: list[tuple[int, int]] = []
    repeated = 0
    for number, record in json_lines(path):
        ts = _int(record, "ts", path, number)
        valid = record.get("s", 0) == 0
        if "vts" in record:
            if valid:
                sync.append((ts, _int(record, "vts", path, number)))
            continue
        if "gidx" not in record:
            continue
        sample = samples.setdefault(_int(record, "gidx", path, number), [ts, math.nan, math.nan, 0])
        if "gp" not in record:
            continue
        if sample[3]:
            repeated += 1
            continue
        sample[0], sample[3] = ts, 1
        gaze = record["gp"]
        if valid:
            try:
                sample[1], sample[2] = float(gaze[0]), float(gaze[1])
            except (TypeError, ValueError, IndexError, KeyError):
                raise RecordingFormatError(f"{path}: line {number}: 'gp' is not [x, y] ({gaze!r})") from None
    if repeated:
        logger.warning("%s: %d gaze indices have more than one 'gp' packet; the first of each is used", path, repeated)
    table = np.asarray(list(samples.values()), dtype=np.float64).reshape(-1, 4)
    times = np.asarray([int(s[0]) for s in samples.values()], dtype=np.int64)  # exact, not through float64
    order = np.argsort(times, kind="stable")
    if (late := int((times[1:] < np.maximum.accumulate(times)[:-1]).sum())):
        logger.warning("%s: %d gaze samples come after later ones in the file; all kept, put in time order", path, late)
    return times[order], table[order, 1], table[order, 2], np.asarray(sync, dtype=np.int64).reshape(-1, 2)


def _frame_device_times(video_s: np.ndarray, sync: np.ndarray, path: Path) -> np.ndarray:
    """``(T,)`` int64 device µs of each frame from its presentation time ``video_s`` (s) and the sync packets."""
    if len(sync) == 0:
        raise RecordingFormatError(
            f"{path}: no valid 'vts' packets (video timestamps); without them the gaze cannot be placed on "
            f"{VIDEO}'s frames"
        )
    vts, first = np.unique(sync[:, 1], return_index=True)
    offset = sync[first, 0] - vts  # device µs minus video µs at each packet
    if offset.max() - offset.min() > 1000:
        logger.info("%s: the device and video clocks drift by %.1f ms over the vts packets; frame times interpolated",
                    path, (offset.max() - offset.min()) / 1000)
    video_us = video_s * 1e6
    return np.round(video_us + np.interp(video_us, vts.astype(np.float64), offset.astype(np.float64))).astype(np.int64)


def _tslv_camera(path: Path, width: int, height: int) -> SceneCamera:
    """The scene camera's intrinsics from the TSLV ``camera`` record, when present and of the video's size."""
    plain = SceneCamera(width, height)
    if not path.is_file():
        return plain
    try:
        with gzip.open(path, "rb") as stream:
            while stream.tell() < _TSLV_SCAN_BYTES and len(header := stream.read(8)) == 8:
                kind, _status, length = struct.unpack("<hhi", header)
                if kind == _TSLV_END or length < 0:
                    break
                payload = stream.read(-(-length // 4) * 4)  # payloads are padded to 4 bytes
                if kind == _TSLV_CAMERA and len(payload) >= _CAMERA_RECORD.size:
                    values = _CAMERA_RECORD.unpack_from(payload)
                    if tuple(values[25:27]) != (width, height):
                        logger.warning("%s: camera calibration for %dx%d but the video is %dx%d; not used", path,
                                       values[25], values[26], width, height)
                        return plain
                    k1, k2, k3, p1, p2 = (*values[19:22], *values[22:24])
                    return intrinsics(width, height, values[14:16], values[17:19], (k1, k2, p1, p2, k3), values[16])
    except (OSError, EOFError, struct.error) as error:
        logger.warning("%s: unreadable (%s); no camera intrinsics", path, error)
    return plain


def read_tobii_g2(folder: str | Path) -> Recording:
    """Read a Tobii Pro Glasses 2 recording or segment folder (see the module docstring).

    Raises:
        RecordingFormatError: no segment, a missing livedata.json.gz or fullstream.mp4, bad JSON, no
            ``vts`` packets, timestamps out of order or not overlapping the video.
        sam2kit.io.VideoReadError: an unreadable scene video.
    """
    folder = Path(folder)
    segment = find_segment(folder)
    livedata, video = segment / LIVEDATA, segment / VIDEO
    for needed in (livedata, video):
        if not needed.is_file():
            raise RecordingFormatError(f"{segment}: no {needed.name}; a Tobii Glasses 2 recording needs {NEEDS}")
    width, height, num_frames, video_s = scene_video(video)
    ts, x_norm, y_norm, sync = _read_livedata(livedata)
    return make_recording(
        "tobii_g2", folder, video, frame_timestamps=_frame_device_times(video_s, sync, livedata),
        sample_timestamps=ts, unit_s=1e-6, x_px=x_norm * width, y_px=y_norm * height,
        reason=np.full(len(ts), "", dtype=object), camera=_tslv_camera(segment / TSLV, width, height),
        num_video_frames=num_frames,
    )
