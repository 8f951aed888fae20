"""Eye-tracking recordings, one reader module per device family, the format told by the content.

:func:`read_recording` opens a folder as the device exported it and returns a typed
:class:`Recording` (scene video and frame times, gaze samples, fixations, events, scene camera):

- Pupil Cloud "Timeseries Data + Scene Video" export (:mod:`.pupil_cloud`),
- Pupil Player export of a Pupil Core recording (:mod:`.pupil_player`),
- Tobii Pro Glasses 3 recording (:mod:`.tobii`),
- Tobii Pro Glasses 2 recording or one of its segments (:mod:`.tobii_g2`),
- native Neon recording through ``pupil-labs-neon-recording`` (:mod:`.neon`),
- any tracker's CSV with the columns named by the caller (:func:`read_generic_csv`).

pandas (and for native Neon recordings ``pupil-labs-neon-recording``) are imported when used.
"""

from __future__ import annotations

from pathlib import Path

from . import neon, pupil_cloud, pupil_player, tobii, tobii_g2
from .generic_csv import COORDINATES, TIME_UNITS, read_generic_csv
from .recording import (
    REASONS,
    Fixations,
    GazeSamples,
    Recording,
    RecordingFormatError,
    SceneCamera,
    nearest_frames,
)

__all__ = [
    "COORDINATES",
    "FORMATS",
    "REASONS",
    "TIME_UNITS",
    "Fixations",
    "GazeSamples",
    "Recording",
    "RecordingFormatError",
    "SceneCamera",
    "detect_format",
    "nearest_frames",
    "read_generic_csv",
    "read_recording",
]

#: format name -> what its folder must hold
FORMATS = {
    "pupil_cloud": pupil_cloud.NEEDS,
    "pupil_player": pupil_player.NEEDS,
    "tobii_g3": tobii.NEEDS,
    "tobii_g2": tobii_g2.NEEDS,
    "neon": neon.NEEDS,
}


def detect_format(folder: str | Path) -> str:
    """The format of a recording folder, told by the files it holds.

    Raises:
        FileNotFoundError: no such folder.
        RecordingFormatError: a folder of no known format (the message lists what each format needs).
    """
    folder = Path(folder)
    if not folder.exists():
        raise FileNotFoundError(f"recording folder not found: {folder}")
    if folder.is_dir():
        if pupil_cloud.is_pupil_cloud(folder):
            return "pupil_cloud"
        if pupil_player.find_export(folder) is not None:
            return "pupil_player"
        if tobii.is_tobii_g3(folder):
            return "tobii_g3"
        if tobii_g2.is_tobii_g2(folder):
            return "tobii_g2"
        if neon.is_neon(folder):
            return "neon"
    needs = "; ".join(f"{name}: {files}" for name, files in FORMATS.items())
    raise RecordingFormatError(
        f"{folder} is not a recording of a known format. Expected a folder with {needs}; "
        "or a gaze CSV of any tracker with its scene video and column options (generic CSV)"
    )


def read_recording(folder: str | Path) -> Recording:
    """Read the recording in ``folder``, whatever its format (see :func:`detect_format`).

    Raises:
        FileNotFoundError, RecordingFormatError: see :func:`detect_format` and the format's reader;
        sam2kit.io.VideoReadError: an unreadable scene video.
    """
    kind = detect_format(folder)
    if kind == "pupil_cloud":
        return pupil_cloud.read_pupil_cloud(folder)
    if kind == "pupil_player":
        return pupil_player.read_pupil_player(folder)
    if kind == "tobii_g3":
        return tobii.read_tobii_g3(folder)
    if kind == "tobii_g2":
        return tobii_g2.read_tobii_g2(folder)
    return neon.read_neon(folder)
