"""``sam2kit batch``: label every image and video of a manifest on Ray, resumably (front end:
:mod:`sam2kit.batch`)."""

from __future__ import annotations

import argparse
import signal

from . import common

__all__ = ["add_parser", "run"]

#: Library argument -> option, where the option is not ``--`` + the argument with dashes.
OPTION_NAMES = {"out_dir": "--out"}

_DESCRIPTION = """\
Segment every item of a manifest (images with prompts, automatic masks of images, videos with
prompts) on Ray: each worker loads the model once, items run in parallel, a broken item is recorded
and skipped, and a rerun continues where the last one stopped.

MANIFEST is JSON Lines (one item a line; or a .csv with the same columns), paths relative to the
manifest's folder; obj_id 1..255, points/boxes in pixels, labels 1 foreground / 0 background:
  {"id": "a", "image": "imgs/a.jpg", "prompts": [{"obj_id": 1, "points": [[120, 80]], "labels": [1]},
                                                 {"obj_id": 2, "box": [10, 10, 200, 150]}]}
  {"id": "v", "video": "clips/v.mp4", "prompts": [{"frame": 0, "obj_id": 1, "points": [[50, 60]]}]}
  {"id": "c", "image": "imgs/c.jpg", "mode": "auto", "options": {"points_per_side": 16}}
(JSON Schema: sam2kit/batch/manifest.schema.json in the package.)

Written into --out DIR (each item's folder appears complete or not at all):
  <id>/masks.json         COCO instance JSON, RLE masks, one annotation per object (and frame)
  <id>/palette/NNNNN.png  with --palette: DAVIS palette PNGs (pixel = obj_id), what `sam2kit eval` reads
  <id>/overlay.png|.mp4   with --overlay; videos also get tracks.json and their per-frame masks
  <id>/annotations.json   "auto" items: COCO JSON of every mask found (instead of masks.json)
  _status/<id>.json       per item: status ok / error (with the message), seconds, version, model
  _summary.json           the run's summary (also printed on stdout)
Rerun the same command to finish an interrupted run; --retry-failed also redoes failed items.
Exit status: 0 every item done, 1 an item failed (or the run could not start), 130/143 interrupted.
"""

_EXAMPLES = """\
examples:
  pip install 'sam2kit[batch]'
  sam2kit batch items.jsonl --out labels/ --workers 2 --palette --non-overlap   # DAVIS label maps
  sam2kit batch items.jsonl --out labels/ --retry-failed          # redo the failed items only
  sam2kit batch items.jsonl --out /shared/labels --address auto --workers 8 --device cuda
"""


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """``sam2kit batch MANIFEST --out DIR``."""
    parser = subparsers.add_parser(
        "batch",
        help="segment every image / video of a manifest on Ray (resumable)",
        description=_DESCRIPTION,
        epilog=_EXAMPLES,
        formatter_class=common.HelpFormatter,
    )
    parser.add_argument("manifest", metavar="MANIFEST", help="JSONL (or .csv) manifest, one item a line")
    parser.add_argument("--out", "-o", metavar="DIR", required=True, help="output folder (created if missing)")
    run_group = parser.add_argument_group("run")
    run_group.add_argument(
        "--address", metavar="ADDRESS",
        help="join a running Ray cluster: auto, or ray://HEAD:10001 (default: start Ray on this machine)",
    )
    run_group.add_argument("--workers", metavar="N", type=common.positive_int, default=1,
                           help="model workers (Ray actors), each loading the model once (default 1)")
    run_group.add_argument("--cpus-per-worker", metavar="N", type=common.positive_float, default=1.0,
                           help="CPUs reserved per worker; also its torch threads (default 1)")
    run_group.add_argument(
        "--gpus-per-worker", metavar="N", type=common.non_negative,
        help="GPUs reserved per worker (fractions share a GPU); default 1 for a CUDA model, else 0",
    )
    run_group.add_argument("--retry-failed", action="store_true", help="also rerun the items that failed before")
    outputs = parser.add_argument_group("outputs")
    outputs.add_argument("--palette", action="store_true",
                         help="also write DAVIS palette PNGs (<id>/palette/NNNNN.png, pixel = obj_id)")
    outputs.add_argument("--overlay", action="store_true", help="also write an overlay (image: PNG, video: MP4)")
    outputs.add_argument("--non-overlap", action="store_true",
                         help="videos: give each pixel to at most one object, the highest-scoring "
                              "(default: masks may overlap; a palette PNG gives the pixel to the higher obj_id)")
    common.add_model_options(parser)
    common.add_output_options(parser)
    parser.set_defaults(handler=run, option_names=OPTION_NAMES)
    return parser


def run(args: argparse.Namespace) -> int:
    """Handler of ``sam2kit batch``: run the manifest, print the summary; exit 1 when an item failed."""
    from ..batch import ItemOptions, run_batch

    summary = run_batch(
        args.manifest,
        args.out,
        model=common.model_spec(args),
        workers=args.workers,
        address=args.address,
        retry_failed=args.retry_failed,
        options=ItemOptions(palette=args.palette, overlay=args.overlay, non_overlap=args.non_overlap),
        cpus_per_worker=args.cpus_per_worker,
        gpus_per_worker=args.gpus_per_worker,
        show_progress=not getattr(args, "quiet", False),
    )
    common.write_json(summary.to_json())
    if summary.interrupted:
        return 128 + int(signal.SIGTERM) if summary.interrupted == "SIGTERM" else common.EXIT_INTERRUPTED
    return common.EXIT_ERROR if summary.failed else common.EXIT_OK
