"""``sam2kit image``: segment one image from point / box prompts (job: :mod:`sam2kit.pipelines.image`)."""

from __future__ import annotations

import argparse
import functools

from . import common

__all__ = ["add_parser", "run"]

#: Library argument -> option, where the option is not ``--`` + the argument with dashes.
OPTION_NAMES = {"out_dir": "--out", "points": "--point", "boxes": "--box", "prompts": "--point/--box"}

_DESCRIPTION = """\
Segment objects in one image from point and box prompts.

Prompts (pixel coordinates of the image, x to the right, y down):
  --point X,Y[,LABEL]   a click; LABEL 1 = foreground (default), 0 = background. Repeatable.
  --box X0,Y0,X1,Y1     a box (top-left and bottom-right corners). Repeatable.

  All points plus at most one box form ONE prompt (one object). Several boxes (without points)
  form a batch: one object per box, predicted together.

Masks: by default one mask per prompt (for a prompt of a single click, the best-scoring of the
model's three candidates); with --multimask, the three candidates of each prompt.

Written into --out DIR (created if needed; files of these names are replaced, each atomically):
  mask_0.png, mask_1.png, ...  one 8-bit PNG per mask (0 / 255), the size of the image
  overlay.png                  the image with the masks in colour and the prompts drawn
                               (with --multimask, the best candidate of each prompt)
  result.json                  image path and size, model, prompts, and per mask: file, prompt
                               index, candidate index, score, bbox [x, y, w, h], area in pixels
The JSON is printed to stdout too; progress messages go to stderr.
"""

_EXAMPLES = """\
examples:
  # one click, official SAM 2.1 tiny from the Hugging Face hub
  sam2kit image photo.jpg --point 500,375 --out out/

  # a box refined with a background click, local checkpoint
  sam2kit image photo.jpg --box 100,80,620,540 --point 300,300,0 \\
      --checkpoint checkpoints/sam2.1_hiera_large.pt --out out/

  # three objects at once, one per box, on the GPU
  sam2kit image photo.jpg --box 10,10,200,220 --box 250,40,480,300 --box 500,60,700,400 \\
      --checkpoint facebook/sam2.1-hiera-base-plus --device cuda --out out/

  # a renamed checkpoint file needs its config
  sam2kit image photo.jpg --point 50,60 --checkpoint my_finetune.pt --config sam2.1_hiera_small --out out/
"""


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """``sam2kit image IMAGE --point/--box ... --out DIR``."""
    parser = subparsers.add_parser(
        "image",
        help="segment objects in an image from points and boxes",
        description=_DESCRIPTION,
        epilog=_EXAMPLES,
        formatter_class=common.HelpFormatter,
    )
    parser.add_argument("image", metavar="IMAGE", help="an image file (JPEG, PNG, ...; EXIF rotation is applied)")
    prompts = parser.add_argument_group("prompts (at least one)")
    prompts.add_argument(
        "--point", metavar="X,Y[,LABEL]", type=common.parse_point, action="append", default=[],
        dest="points", help="a point prompt in pixels; LABEL 1 foreground (default) or 0 background",
    )
    prompts.add_argument(
        "--box", metavar="X0,Y0,X1,Y1", type=common.parse_box, action="append", default=[],
        dest="boxes", help="a box prompt in pixels; several boxes (without points) segment several objects",
    )
    masks = parser.add_argument_group("masks")
    multimask = masks.add_mutually_exclusive_group()
    multimask.add_argument(
        "--multimask", dest="multimask", action="store_true", default=False,
        help="write the 3 candidate masks of each prompt",
    )
    multimask.add_argument(
        "--single-mask", dest="multimask", action="store_false",
        help="write one mask per prompt (default)",
    )
    masks.add_argument(
        "--max-hole-area", metavar="N", type=common.non_negative, default=0.0,
        help="fill holes up to N pixels of the 256x256 low-resolution mask (default 0: off)",
    )
    masks.add_argument(
        "--max-sprinkle-area", metavar="N", type=common.non_negative, default=0.0,
        help="remove specks up to N pixels of the 256x256 low-resolution mask (default 0: off)",
    )
    parser.add_argument("--out", "-o", metavar="DIR", required=True, help="output folder (created if missing)")
    common.add_model_options(parser)
    common.add_output_options(parser)
    parser.set_defaults(handler=run, option_names=OPTION_NAMES, check=functools.partial(_check_args, parser))
    return parser


def _check_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if not args.points and not args.boxes:
        parser.error("give at least one prompt: --point X,Y[,LABEL] and/or --box X0,Y0,X1,Y1")
    if args.points and len(args.boxes) > 1:
        parser.error(
            "points can be combined with at most one box (one object); for several objects give "
            "several --box without --point, or run the command once per object"
        )


def run(args: argparse.Namespace) -> int:
    """Handler of ``sam2kit image``: segment, write the files, print ``result.json`` on stdout."""
    from ..pipelines.image import make_prompts, segment_image

    result = segment_image(
        args.image,
        make_prompts(args.points, args.boxes),
        args.out,
        model=common.model_spec(args),
        multimask=args.multimask,
        max_hole_area=args.max_hole_area,
        max_sprinkle_area=args.max_sprinkle_area,
    )
    common.write_json(result.to_json())
    return common.EXIT_OK
