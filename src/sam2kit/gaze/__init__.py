"""Gaze on moving objects: hit tests of eye-tracking gaze against AOIs (masks drawn elsewhere or
tracked from prompts), fixations, and the AOI metrics.

Python API::

    from sam2kit.gaze import MaskFolderAOIs, analyse_gaze
    from sam2kit.io.eyetracking import read_recording

    recording = read_recording("export_folder/")          # typed: frames, samples, fixations, ...
    tables = analyse_gaze(recording, MaskFolderAOIs("aoi_masks/"), tolerance="1.5deg")
    tables.samples, tables.fixations, tables.aoi_metrics   # pandas DataFrames
    tables.write("out/")                                   # the three CSV files, atomically
"""

from __future__ import annotations

from .aoi_metrics import METRIC_COLUMNS
from .aois import AOISource, MaskFolderAOIs, load_names
from .fixations import FixationOptions
from .from_fixations import FixationAOIs
from .hits import Tolerance, hit_test, parse_tolerance
from .job import FILES, GazeTables, analyse_gaze
from .tracked import AOIPrompt, PromptAOIs, group_aoi_prompts

__all__ = [
    "FILES",
    "METRIC_COLUMNS",
    "AOIPrompt",
    "AOISource",
    "FixationAOIs",
    "FixationOptions",
    "GazeTables",
    "MaskFolderAOIs",
    "PromptAOIs",
    "Tolerance",
    "analyse_gaze",
    "group_aoi_prompts",
    "hit_test",
    "load_names",
    "parse_tolerance",
]
