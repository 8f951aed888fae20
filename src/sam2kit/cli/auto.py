"""``sam2kit auto``: segment everything in images into a COCO JSON and overlays (job:
:mod:`sam2kit.pipelines.auto`)."""

from __future__ import annotations

import argparse

from . import common

__all__ = ["add_parser", "run"]

#: Library argument -> option, where the option is not ``--`` + the argument with dashes.
OPTION_NAMES = {"out_dir": "--out"}

_DESCRIPTION = """\
Segment everything in images (the automatic mask generator): a grid of point prompts, masks kept
by predicted quality and stability, duplicates removed by box NMS.

IMAGE may be image files and folders (the image files directly inside a folder are used).

Written into --out DIR (created if needed; every file is written atomically):
  annotations.json        COCO instance format (loads with pycocotools): images, annotations with
                          RLE segmentation, bbox [x, y, w, h], area, score (= predicted IoU),
                          predicted_iou, stability_score; written last
  <name>_overlay.png      each image with every mask in its own colour
A JSON summary goes to stdout; a progress bar over the images to stderr (not with --quiet).
"""

_EXAMPLES = """\
examples:
  # every image of a folder, official SAM 2.1 tiny from the Hugging Face hub
  sam2kit auto photos/ --out masks/

  # denser grid plus one layer of crops (finds smaller objects; slower)
  sam2kit auto photo.jpg --points-per-side 64 --crop-n-layers 1 --checkpoint sam2.1_hiera_large.pt --out masks/
"""


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """``sam2kit auto IMAGE [IMAGE|FOLDER ...] --out DIR``."""
    parser = subparsers.add_parser(
        "auto",
        help="segment everything in images (automatic masks) into a COCO JSON and overlays",
        description=_DESCRIPTION,
        epilog=_EXAMPLES,
        formatter_class=common.HelpFormatter,
    )
    parser.add_argument("images", metavar="IMAGE", nargs="+", help="image files and/or folders of images")
    parser.add_argument("--out", "-o", metavar="DIR", required=True, help="output folder (created if missing)")
    generator = parser.add_argument_group("mask generator")
    generator.add_argument(
        "--points-per-side", metavar="N", type=common.positive_int, default=32,
        help="prompt grid of N x N points (default 32)",
    )
    generator.add_argument(
        "--points-per-batch", metavar="N", type=common.positive_int, default=64,
        help="prompts decoded at once; lower it to save memory (default 64)",
    )
    generator.add_argument(
        "--pred-iou-thresh", metavar="F", type=common.fraction, default=0.8,
        help="keep masks whose predicted IoU is above F (default 0.8)",
    )
    generator.add_argument(
        "--stability-score-thresh", metavar="F", type=common.fraction, default=0.95,
        help="keep masks whose stability score is at least F (default 0.95)",
    )
    generator.add_argument(
        "--crop-n-layers", metavar="N", type=common.non_negative_int, default=0,
        help="also run on N layers of image crops (layer i: 4**i crops) to find small objects (default 0)",
    )
    generator.add_argument(
        "--min-mask-region-area", metavar="N", type=common.non_negative_int, default=0,
        help="fill holes / remove specks up to N pixels of the low-resolution masks (default 0: off)",
    )
    common.add_model_options(parser)
    common.add_output_options(parser)
    parser.set_defaults(handler=run, option_names=OPTION_NAMES)
    return parser


def run(args: argparse.Namespace) -> int:
    """Handler of ``sam2kit auto``: segment every image, write the files, print the summary on stdout."""
    from ..pipelines.auto import segment_everything

    summary = segment_everything(
        args.images,
        args.out,
        model=common.model_spec(args),
        show_progress=not getattr(args, "quiet", False),
        points_per_side=args.points_per_side,
        points_per_batch=args.points_per_batch,
        pred_iou_thresh=args.pred_iou_thresh,
        stability_score_thresh=args.stability_score_thresh,
        crop_n_layers=args.crop_n_layers,
        min_mask_region_area=args.min_mask_region_area,
    )
    common.write_json(summary.to_json())
    return common.EXIT_OK
