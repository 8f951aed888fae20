"""``sam2kit video``: track prompted objects through a video file or a folder of frames (job:
:mod:`sam2kit.pipelines.video`)."""

from __future__ import annotations

import argparse
import functools

from . import common

__all__ = ["add_parser", "run"]

#: Library argument -> option, where the option is not ``--`` + the argument with dashes.
OPTION_NAMES = {"out_dir": "--out", "points": "--prompt", "boxes": "--box", "prompts": "--prompt/--box"}

_DESCRIPTION = """\
Track objects through a video: prompt them on any frames, get a mask for every object on every
tracked frame.

VIDEO is a video file (mp4, mov, mkv, webm, avi) or a folder of .jpg/.png frames (in numeric order).

Prompts (pixel coordinates of the frame, x to the right, y down; FRAME counts from 0, OBJ is any
object id >= 0 of your choice):
  --prompt FRAME:OBJ:X,Y[,LABEL]     a click on object OBJ in frame FRAME; LABEL 1 = foreground
                                     (default), 0 = background. Repeatable.
  --box FRAME:OBJ:X0,Y0,X1,Y1        a box around object OBJ in frame FRAME (at most one per object
                                     and frame). Repeatable.
  Clicks and a box given for the same FRAME:OBJ form one prompt. An object may be prompted on
  several frames.

Tracking runs forwards from the earliest prompted frame to the end. With --reverse it then also
runs backwards from that frame to frame 0, so objects prompted mid-video get masks on the earlier
frames too; without it the frames before the earliest prompt are not tracked (no files for them).

Written into --out DIR (created if needed; files of these names are replaced), each file
atomically and as soon as its frame is done:
  masks/<OBJ>/<FRAME>.png   one 8-bit PNG (0 / 255) per object and frame, FRAME as 5 digits
  palette/<FRAME>.png       instead, with --palette: one indexed PNG per frame (DAVIS palette),
                            pixel value = object id (0 = background, so ids must be 1..255;
                            where masks overlap the higher id wins)
  tracks.json               written last: video, model, prompts and, for every tracked frame and
                            object, bbox_xywh [x, y, w, h] and area (pixels) of the written mask,
                            present (area > 0) and score = the mean foreground probability (mean
                            sigmoid of the mask logits over the mask's pixels; 0 when empty)
With --overlay FILE.mp4, a video of the tracked frames with the masks in colour.
A progress bar goes to stderr (not with --quiet), a JSON summary to stdout.
"""

_EXAMPLES = """\
examples:
  # one click on object 1 in the first frame
  sam2kit video clip.mp4 --prompt 0:1:320,240 --out tracks/

  # two objects boxed on frame 0, a correction click on frame 30, DAVIS-style palette PNGs
  sam2kit video frames/ --box 0:1:100,80,300,260 --box 0:2:400,120,520,300 --prompt 30:1:210,170 \\
      --palette --checkpoint facebook/sam2.1-hiera-large --device cuda --out tracks/

  # an object prompted mid-video, tracked both ways, with an overlay video
  sam2kit video clip.mp4 --prompt 120:1:500,300 --reverse --overlay overlay.mp4 --out tracks/
"""


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """``sam2kit video VIDEO --prompt/--box FRAME:OBJ:... --out DIR``."""
    parser = subparsers.add_parser(
        "video",
        help="track objects prompted on any frames through a video file or frame folder",
        description=_DESCRIPTION,
        epilog=_EXAMPLES,
        formatter_class=common.HelpFormatter,
    )
    parser.add_argument("video", metavar="VIDEO", help="a video file (mp4, mov, mkv, webm, avi) or a folder of frames")
    prompts = parser.add_argument_group("prompts (at least one)")
    prompts.add_argument(
        "--prompt", metavar="FRAME:OBJ:X,Y[,LABEL]", type=common.parse_frame_point, action="append", default=[],
        dest="points", help="a click on object OBJ in frame FRAME; LABEL 1 foreground (default) or 0 background",
    )
    prompts.add_argument(
        "--box", metavar="FRAME:OBJ:X0,Y0,X1,Y1", type=common.parse_frame_box, action="append", default=[],
        dest="boxes", help="a box around object OBJ in frame FRAME",
    )
    parser.add_argument("--out", "-o", metavar="DIR", required=True, help="output folder (created if missing)")
    output = parser.add_argument_group("what is written")
    output.add_argument(
        "--palette", action="store_true",
        help="one DAVIS palette PNG per frame (pixel = object id, ids 1..255) instead of one PNG per object",
    )
    output.add_argument(
        "--overlay", metavar="OUT.mp4", help="also write the tracked frames with the masks drawn to a video",
    )
    tracking = parser.add_argument_group("tracking")
    tracking.add_argument(
        "--reverse", action="store_true",
        help="after the forward pass, also track backwards from the earliest prompted frame to frame 0",
    )
    tracking.add_argument(
        "--max-frames", metavar="N", type=common.positive_int,
        help="use only the first N frames of the video (frames 0..N-1)",
    )
    tracking.add_argument(
        "--fill-hole-area", metavar="N", type=common.non_negative_int, default=8,
        help="fill holes up to N pixels of the low-resolution masks (default 8; 0: off)",
    )
    tracking.add_argument(
        "--non-overlap", action="store_true",
        help="give every pixel to at most one object (the one with the highest logit)",
    )
    common.add_model_options(parser)
    common.add_output_options(parser)
    parser.set_defaults(handler=run, option_names=OPTION_NAMES, check=functools.partial(_check_args, parser))
    return parser


def _check_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if not args.points and not args.boxes:
        parser.error("give at least one prompt: --prompt FRAME:OBJ:X,Y[,LABEL] and/or --box FRAME:OBJ:X0,Y0,X1,Y1")
    boxed = [(frame, obj_id) for frame, obj_id, _ in args.boxes]
    twice = sorted({key for key in boxed if boxed.count(key) > 1})
    if twice:
        frame, obj_id = twice[0]
        parser.error(f"object {obj_id} has two --box on frame {frame}; give at most one box per object and frame")
    if args.palette:
        bad = sorted({obj_id for _, obj_id, _ in args.points + args.boxes if not 1 <= obj_id <= 255})
        if bad:
            parser.error(f"with --palette, object ids must be 1..255 (pixel value 0 is the background), got {bad}")


def run(args: argparse.Namespace) -> int:
    """Handler of ``sam2kit video``: track, write the files, print the summary on stdout."""
    from ..pipelines.video import group_prompts, track_video

    summary = track_video(
        args.video,
        group_prompts(args.points, args.boxes),
        args.out,
        model=common.model_spec(args),
        palette=args.palette,
        overlay=args.overlay,
        reverse=args.reverse,
        max_frames=args.max_frames,
        fill_hole_area=args.fill_hole_area,
        non_overlap=args.non_overlap,
        show_progress=not getattr(args, "quiet", False),
    )
    common.write_json(summary.to_json())
    return common.EXIT_OK
