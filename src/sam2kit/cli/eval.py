"""``sam2kit eval``: J, F and J&F of predicted masks against ground truth (job:
:mod:`sam2kit.pipelines.evaluate`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import common

__all__ = ["add_parser", "run"]

#: Library argument -> option, where the option is not ``--`` + the argument with dashes.
OPTION_NAMES = {"pred_dir": "PRED_DIR", "gt_dir": "GT_DIR", "skip_first_and_last": "--all-frames",
                "sequences": "--sequence"}

_DESCRIPTION = """\
Score predicted masks against ground truth with the DAVIS measures: region similarity J (IoU),
contour accuracy F (boundary F-measure, tolerance 0.008 of the image diagonal) and their mean J&F,
per object, per sequence and overall (the mean over every object of every sequence).

GT_DIR holds DAVIS-layout palette PNGs: GT_DIR/<sequence>/<frame>.png, pixel = object id
(0 background, 255 void: not scored). PRED_DIR has the same file names in PRED_DIR/<sequence>/ or
PRED_DIR/<sequence>/palette/ (what `sam2kit batch --palette` writes, so a batch output folder can
be scored as it is). As the DAVIS evaluator, the first and last frame of each sequence are left
out (--all-frames scores them too, e.g. for single images).

A table goes to stdout; the full results as JSON to --json FILE.
"""

_EXAMPLES = """\
examples:
  sam2kit eval labels/ DAVIS/Annotations/480p/ --json scores.json
  sam2kit eval labels/ gt/ --all-frames --sequence cat --sequence dog
"""


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """``sam2kit eval PRED_DIR GT_DIR``."""
    parser = subparsers.add_parser(
        "eval",
        help="J, F and J&F of predicted masks against DAVIS-layout ground truth",
        description=_DESCRIPTION,
        epilog=_EXAMPLES,
        formatter_class=common.HelpFormatter,
    )
    parser.add_argument("pred_dir", metavar="PRED_DIR", help="predicted palette PNGs, <sequence>/<frame>.png")
    parser.add_argument("gt_dir", metavar="GT_DIR", help="ground-truth palette PNGs, <sequence>/<frame>.png")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON to FILE")
    parser.add_argument("--all-frames", action="store_true",
                        help="score every frame (default: leave out each sequence's first and last, as DAVIS)")
    parser.add_argument("--sequence", metavar="NAME", action="append",
                        help="score only this sequence (repeatable)")
    parser.add_argument(
        "--tolerance", metavar="T", type=common.positive_float, default=0.008,
        help="boundary match distance of F: a fraction of the image diagonal (< 1) or pixels (>= 1); default 0.008",
    )
    common.add_output_options(parser)
    parser.set_defaults(handler=run, option_names=OPTION_NAMES)
    return parser


def run(args: argparse.Namespace) -> int:
    """Handler of ``sam2kit eval``: score, print the table, write the JSON."""
    from ..io.atomic import save_json
    from ..pipelines.evaluate import evaluate_folders

    report = evaluate_folders(args.pred_dir, args.gt_dir, skip_first_and_last=not args.all_frames,
                              tolerance=args.tolerance, sequences=args.sequence)
    sys.stdout.write(report.table() + "\n")
    sys.stdout.flush()
    if args.json:
        save_json(Path(args.json), report.to_json())
    return common.EXIT_OK
