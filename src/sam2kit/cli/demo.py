"""``sam2kit demo``: track two clicked shapes through a synthetic clip, offline (job:
:mod:`sam2kit.pipelines.demo`)."""

from __future__ import annotations

import argparse

from . import common

__all__ = ["add_parser", "run"]

#: Library argument -> option, where the option is not ``--`` + the argument with dashes.
OPTION_NAMES = {"out_dir": "--out"}

_DESCRIPTION = """\
The first thing to run, with no download: makes a synthetic clip of moving, turning, overlapping
shapes, clicks the two largest once each on the first frame, tracks them through the clip with
sam2kit-mini (the small model shipped in the package) and writes the result as a video.

Written into --out DIR (created if needed; files written atomically):
  demo.mp4    the clip, each tracked shape in its colour, the clicks marked on the first frame
  demo.json   the clicks, and how well the shapes were tracked against the clip's true masks (J&F)
The same JSON goes to stdout.
"""

_EXAMPLES = """\
examples:
  sam2kit demo --out demo/
  # a longer, larger clip from another seed, tracked by an official model
  sam2kit demo --frames 120 --size 512 --seed 3 --checkpoint facebook/sam2.1-hiera-tiny --out demo/
"""


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """``sam2kit demo --out DIR``."""
    parser = subparsers.add_parser(
        "demo",
        help="track two clicked shapes through a synthetic clip, offline (writes an overlay video)",
        description=_DESCRIPTION,
        epilog=_EXAMPLES,
        formatter_class=common.HelpFormatter,
    )
    parser.add_argument("--out", "-o", metavar="DIR", required=True, help="output folder (created if missing)")
    clip = parser.add_argument_group("clip")
    clip.add_argument("--frames", metavar="N", type=common.int_at_least(3), default=48,
                      help="frames in the clip (default 48)")
    clip.add_argument("--size", metavar="PX", type=common.int_at_least(64), default=256,
                      help="side of the square frames in pixels, 64 .. 2048 (default 256)")
    clip.add_argument("--seed", metavar="N", type=common.non_negative_int, default=0,
                      help="which clip (default 0)")
    clip.add_argument("--fps", metavar="FPS", type=common.positive_float, default=12.0,
                      help="frame rate of demo.mp4 (default 12)")
    common.add_model_options(parser, default_checkpoint="sam2kit-mini")
    common.add_output_options(parser)
    parser.set_defaults(handler=run, option_names=OPTION_NAMES)
    return parser


def run(args: argparse.Namespace) -> int:
    """Handler of ``sam2kit demo``: run the demo, print its summary on stdout."""
    from ..pipelines.demo import run_demo

    result = run_demo(
        args.out,
        model=common.model_spec(args),
        frames=args.frames,
        size=args.size,
        seed=args.seed,
        fps=args.fps,
        show_progress=not getattr(args, "quiet", False),
    )
    common.write_json(result.to_json())
    return common.EXIT_OK
