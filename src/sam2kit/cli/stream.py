"""``sam2kit stream``: track boxed objects through a camera, network stream or video file, one JSON
line per frame on stdout as soon as it is tracked (job: :mod:`sam2kit.pipelines.stream`)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from . import common

__all__ = ["add_parser", "run"]

#: Library argument -> option, where the option is not ``--`` + the argument with dashes.
OPTION_NAMES = {"boxes": "--box"}

_DESCRIPTION = """\
Track objects through a live camera, a network stream or a video file, frame by frame, for as long
as the stream runs (memory and time per frame stay constant).

Objects: one --box X0,Y0,X1,Y1 per object, in pixels of the first frame (repeatable); object ids
are 0, 1, ... in the order of the boxes.

Output: one JSON line per frame on stdout, written as soon as the frame is tracked:
  {"frame": 12, "time_s": 0.4, "objects": [{"id": 0, "bbox_xywh": [x, y, w, h],
   "area": 5210, "score": 0.98}, ...]}
bbox_xywh is the tight box of the mask (zeros when empty), area its pixel count, score the
probability that the object is visible. With --overlay, a video of the frames with the masks in
colour. Frames per second are reported on stderr.

The run ends at the end of the stream, after --max-frames, or when the stream breaks (network or
decode error, a frame of another size): every line is flushed, the overlay is closed, the reason
goes to stderr and the exit status is 0 (130 after Ctrl-C). It is 1 when nothing could be tracked
(missing source, bad model, box outside the frame, a stream failing before its first frame).
"""

_EXAMPLES = """\
examples:
  # a video file, two objects, with an overlay video
  sam2kit stream --source clip.mp4 --box 100,80,300,260 --box 400,120,520,300 --overlay out.mp4

  # a webcam (V4L2), the first 300 frames, on the GPU
  sam2kit stream --source /dev/video0 --box 200,150,440,330 --max-frames 300 --device cuda

  # an RTSP camera, results appended to a file
  sam2kit stream --source rtsp://camera.local/stream1 --box 50,60,250,400 \\
      --checkpoint facebook/sam2.1-hiera-small >> tracks.jsonl
"""


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """``sam2kit stream --source FILE|URL|/dev/videoN --box ... [--overlay OUT.mp4]``."""
    parser = subparsers.add_parser(
        "stream",
        help="track boxed objects through a camera, network stream or video, frame by frame",
        description=_DESCRIPTION,
        epilog=_EXAMPLES,
        formatter_class=common.HelpFormatter,
    )
    parser.add_argument(
        "--source", metavar="FILE|URL|/dev/videoN", required=True,
        help="a video file, a stream URL (rtsp://, http(s)://, rtmp://, udp://, ...) or a V4L2 camera",
    )
    parser.add_argument(
        "--box", metavar="X0,Y0,X1,Y1", type=common.parse_box, action="append", default=[], required=True,
        dest="boxes", help="an object's box on the first frame, in pixels; repeat for more objects",
    )
    parser.add_argument("--overlay", metavar="OUT.mp4", help="also write the frames with the masks drawn to a video")
    parser.add_argument(
        "--max-frames", metavar="N", type=common.positive_int,
        help="stop after N frames (default: until the stream ends)",
    )
    parser.add_argument(
        "--max-cond-frames", metavar="N", type=common.positive_int, default=8,
        help="prompted frames remembered per object: the first plus the most recent (default 8)",
    )
    common.add_model_options(parser)
    common.add_output_options(parser)
    parser.set_defaults(handler=run, option_names=OPTION_NAMES)
    return parser


def _print_line(record: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(record) + "\n")
    sys.stdout.flush()  # a line per frame, as it comes: readers follow the stream live


def run(args: argparse.Namespace) -> int:
    """Handler of ``sam2kit stream``: 0 when the stream ended, hit --max-frames or broke after its first
    frame; 130 after Ctrl-C."""
    from ..pipelines.stream import track_stream

    summary = track_stream(
        args.source,
        args.boxes,
        model=common.model_spec(args),
        overlay=args.overlay,
        max_frames=args.max_frames,
        max_cond_frames=args.max_cond_frames,
        on_frame=_print_line,
    )
    return common.EXIT_INTERRUPTED if summary.ended == "interrupted" else common.EXIT_OK
