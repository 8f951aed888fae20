"""``sam2kit gaze``: map eye-tracking gaze onto AOIs (masks drawn elsewhere, or objects tracked from
prompts) and report the AOI metrics (job: :mod:`sam2kit.gaze`)."""

from __future__ import annotations

import argparse
import functools

from . import common

__all__ = ["add_parser", "run"]

#: Library argument -> option, where the option is not ``--`` + the argument with dashes.
OPTION_NAMES = {"out_dir": "--out", "points": "--prompt", "boxes": "--box", "aoi_names": "--aoi-names",
                "aoi_masks": "--aoi-masks"}

_DESCRIPTION = """\
Map gaze onto areas of interest (AOIs) that move with the scene, and report the AOI metrics.

RECORDING is a recording folder as the device exports it, told by its content:
  Pupil Cloud "Timeseries Data + Scene Video" export (gaze.csv, world_timestamps.csv, the .mp4, ...),
  Pupil Player recording (world.mp4, world_timestamps.npy, exports/<n>/gaze_positions.csv),
  Tobii Pro Glasses 3 recording (recording.g3, scenevideo.mp4, gazedata.gz),
  Tobii Pro Glasses 2 recording or segment (segments/<n>/livedata.json.gz, fullstream.mp4),
  native Neon recording (needs pip install pupil-labs-neon-recording);
or any tracker's gaze CSV with --video and the column options (generic CSV).

AOIs (one of):
  --aoi-masks DIR          a palette PNG per scene frame (00000.png, ...; pixel value = AOI id)
  --prompt/--box ...       AOIs clicked or boxed on any frame (the `sam2kit video` syntax; OBJ = AOI id
                           1..255), tracked through the video with the model
  --aoi-from-fixations     no clicks: each long fixation prompts a point, segments are tracked and
                           merged by object
Each gaze sample goes to the scene frame nearest in time; invalid samples (not worn, blink, no gaze,
low confidence, off the frame, outside the video) are kept with valid=0 and no AOI.

Written into --out DIR, each file atomically: gaze_samples.csv, fixations.csv, aoi_metrics.csv;
with --overlay also overlay.mp4, with --summary also summary.png.
"""

_EXAMPLES = """\
examples:
  sam2kit gaze pupil_cloud_export/ --aoi-masks masks/ --aoi-names names.json --out results/
  sam2kit gaze tobii_recording/ --prompt 0:1:320,240 --prompt 0:2:500,100 --tolerance 1.5deg --out results/
  sam2kit gaze gaze.csv --video scene.mp4 --time-column t --time-unit ms --x-column gx --y-column gy \\
      --coordinates norm --aoi-masks masks/ --out results/
"""


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """``sam2kit gaze RECORDING (--aoi-masks DIR | --prompt ...) --out DIR``."""
    parser = subparsers.add_parser(
        "gaze", help="map eye-tracking gaze onto moving AOIs and report AOI metrics",
        description=_DESCRIPTION, epilog=_EXAMPLES, formatter_class=common.HelpFormatter,
    )
    parser.add_argument("recording", metavar="RECORDING", help="a recording folder, or a gaze CSV with --video")
    parser.add_argument("--out", "-o", metavar="DIR", required=True, help="output folder (created if missing)")
    aois = parser.add_argument_group("AOIs")
    aois.add_argument("--aoi-masks", metavar="DIR", help="palette PNGs named by frame index; nothing is tracked")
    aois.add_argument("--aoi-names", metavar="JSON", help='AOI names: {"1": "cup", "2": "face"}')
    aois.add_argument(
        "--prompt", metavar="FRAME:AOI:X,Y[,LABEL]", type=common.parse_frame_point, action="append", default=[],
        dest="points", help="a click on AOI AOI in frame FRAME (tracked); LABEL 1 foreground (default), 0 background",
    )
    aois.add_argument(
        "--aoi-from-fixations", action="store_true",
        help="no clicks: every long fixation prompts a point, the segments are tracked, and segments of "
             "the same object (mask IoU on a shared frame) merge into one AOI",
    )
    aois.add_argument("--aoi-min-fixation-ms", metavar="MS", type=common.positive_float, default=300.0,
                      help="with --aoi-from-fixations: fixations at least this long prompt (default 300)")
    aois.add_argument("--aoi-merge-iou", metavar="IOU", type=common.fraction, default=0.5,
                      help="with --aoi-from-fixations: IoU at which two segments are one AOI (default 0.5)")
    aois.add_argument("--aoi-max-segments", metavar="N", type=common.int_at_least(1), default=32,
                      help="with --aoi-from-fixations: at most N (longest) fixations prompt, N <= 255 (default 32)")
    aois.add_argument(
        "--box", metavar="FRAME:AOI:X0,Y0,X1,Y1", type=common.parse_frame_box, action="append", default=[],
        dest="boxes", help="a box around AOI AOI in frame FRAME (tracked)",
    )
    hits = parser.add_argument_group("hit test and fixations")
    hits.add_argument("--tolerance", metavar="N[px|deg]", default="0",
                      help="also hit an AOI within this distance: 20px, or 1.5deg (needs the camera intrinsics). "
                           "Default 0")
    hits.add_argument("--stride", metavar="K", type=common.positive_int, default=1,
                      help="use every K-th scene frame only (faster; samples go to the nearest used frame). Default 1")
    hits.add_argument("--fixation-method", choices=("idt", "ivt"), default="idt",
                      help="pymovements detector when the recording has no fixations (default idt)")
    hits.add_argument("--min-fixation-ms", metavar="MS", type=common.positive_float, default=100.0,
                      help="shortest detected fixation (default 100)")
    hits.add_argument("--dispersion", metavar="N", type=common.positive_float,
                      help="I-DT threshold: degrees with intrinsics (default 1.0), else pixels (default 25)")
    hits.add_argument("--velocity", metavar="N", type=common.positive_float,
                      help="I-VT threshold: deg/s with intrinsics (default 20), else px/s (default 500)")
    pictures = parser.add_argument_group("pictures")
    pictures.add_argument("--overlay", action="store_true",
                          help="also write overlay.mp4: masks (yellow while looked at), gaze point with its "
                               "tolerance circle, current fixation")
    pictures.add_argument("--summary", action="store_true",
                          help="also write summary.png: when each AOI was visible and fixated, dwell per AOI")
    generic = parser.add_argument_group("generic CSV (RECORDING is a .csv file)")
    generic.add_argument("--video", metavar="FILE", help="the scene video of the CSV")
    generic.add_argument("--time-column", default="timestamp", help="default: timestamp")
    generic.add_argument("--time-unit", choices=("s", "ms", "us", "ns"), default="s", help="default: s")
    generic.add_argument("--x-column", default="x", help="default: x")
    generic.add_argument("--y-column", default="y", help="default: y")
    generic.add_argument("--coordinates", choices=("px", "norm", "norm-bottom-left"), default="px",
                         help="pixels (origin top left), normalised top-left or bottom-left origin. Default px")
    generic.add_argument("--valid-column", help="a column that is 0/false for invalid samples")
    generic.add_argument("--frame-times", metavar="CSV",
                         help="scene frame times (one row per frame, same unit); default: the video's timestamps")
    generic.add_argument("--time-offset", metavar="S", type=float, default=0.0,
                         help="video time of gaze time 0, in s (without --frame-times). Default 0")
    common.add_model_options(parser)
    common.add_output_options(parser)
    parser.set_defaults(handler=run, option_names=OPTION_NAMES, check=functools.partial(_check_args, parser))
    return parser


def _check_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    ways = bool(args.aoi_masks) + bool(args.points or args.boxes) + bool(args.aoi_from_fixations)
    if ways != 1:
        parser.error("give the AOIs one way: --aoi-masks DIR, --prompt/--box FRAME:AOI:... (tracked), "
                     "or --aoi-from-fixations")
    if args.aoi_max_segments > 255:
        parser.error(f"--aoi-max-segments must be 1..255, got {args.aoi_max_segments}")
    if args.recording.lower().endswith(".csv") and not args.video:
        parser.error("a gaze CSV needs its scene video: --video FILE")


def run(args: argparse.Namespace) -> int:
    """Handler of ``sam2kit gaze``: read, analyse, write the three tables, print a summary."""
    from ..gaze import (
        FixationAOIs,
        FixationOptions,
        MaskFolderAOIs,
        PromptAOIs,
        analyse_gaze,
        group_aoi_prompts,
        load_names,
    )
    from ..io.eyetracking import read_generic_csv, read_recording

    if args.recording.lower().endswith(".csv"):
        recording = read_generic_csv(
            args.recording, args.video, time_column=args.time_column, x_column=args.x_column, y_column=args.y_column,
            time_unit=args.time_unit, coordinates=args.coordinates, valid_column=args.valid_column,
            frame_times=args.frame_times, time_offset_s=args.time_offset,
        )
    else:
        recording = read_recording(args.recording)
    names = load_names(args.aoi_names)
    aois: MaskFolderAOIs | PromptAOIs | FixationAOIs
    if args.aoi_masks:
        aois = MaskFolderAOIs(args.aoi_masks, names)
    elif args.aoi_from_fixations:
        aois = FixationAOIs(min_duration_ms=args.aoi_min_fixation_ms, merge_iou=args.aoi_merge_iou,
                            max_segments=args.aoi_max_segments, model=common.model_spec(args),
                            show_progress=not getattr(args, "quiet", False))
    else:
        aois = PromptAOIs(group_aoi_prompts(args.points, args.boxes), model=common.model_spec(args), names=names,
                          show_progress=not getattr(args, "quiet", False))
    defaults = FixationOptions()
    options = FixationOptions(
        method=args.fixation_method, minimum_duration_ms=args.min_fixation_ms,
        dispersion_deg=args.dispersion or defaults.dispersion_deg,
        dispersion_px=args.dispersion or defaults.dispersion_px,
        velocity_deg_s=args.velocity or defaults.velocity_deg_s,
        velocity_px_s=args.velocity or defaults.velocity_px_s,
    )
    from pathlib import Path

    overlay = Path(args.out) / "overlay.mp4" if args.overlay else None
    tables = analyse_gaze(recording, aois, tolerance=args.tolerance, stride=args.stride, fixation_options=options,
                          overlay=overlay)
    paths = tables.write(args.out)
    if overlay is not None:
        paths["overlay"] = overlay
    if args.summary:
        paths["summary"] = tables.write_summary(Path(args.out) / "summary.png")
    samples = tables.samples
    common.write_json({
        "recording": str(recording.path), "format": recording.format, "frames": recording.num_frames,
        "samples": len(samples), "valid_samples": int(samples["valid"].sum()),
        "fixations": len(tables.fixations), "fixations_from": tables.fixations_source,
        "aois": [int(a) for a in tables.aoi_metrics["aoi"]], "tolerance_px": round(tables.tolerance_px, 3),
        "stride": tables.stride, "files": {name: str(path) for name, path in paths.items()},
    })
    return common.EXIT_OK
