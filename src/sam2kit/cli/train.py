"""``sam2kit train``: fine-tune (or train from scratch) on image + mask folders, COCO or videos
(job: :func:`sam2kit.train.trainer.train`)."""

from __future__ import annotations

import argparse
import dataclasses
import functools
from pathlib import Path
from typing import Any

from . import common

__all__ = ["add_parser", "run"]

#: Library argument -> option where it is not "--" + the argument with dashes: none here.
OPTION_NAMES: dict[str, str] = {}

_DESCRIPTION = """\
Train SAM 2 on your own masks: the SAM heads only (fast, a CPU will do), the heads and the video
memory, or everything; on one GPU, a CPU, or several processes with torchrun.

Data (--data):
  DIR/images/NAME.jpg + DIR/masks/NAME.png   each non-zero mask value is one object
  FILE.json (COCO instances)                  polygons or RLE; images in images/ beside it (or --coco-images)
  DIR/JPEGImages/VIDEO/*.jpg + DIR/Annotations/VIDEO/*.png   DAVIS / SA-V videos (palette PNGs)
  Masks must have their image's size. A --val-fraction of the items is held out for validation.

What trains (--train):
  decoder   prompt encoder + mask decoder; the frozen image encoder's features are computed once
            per image (--cache memory|disk), so cached runs do not augment (--cache off does)
  memory    decoder + memory attention + memory encoder (videos): clips of --num-frames frames
            tracked by the same engine as inference, with simulated clicks and corrections
  all       every weight; the image encoder at --encoder-lr with --layer-decay per block
  --lora R  adds rank-R adapters to the image encoder's attention (with decoder or memory);
            they are merged into plain weights in model.pt

Written into --out DIR:
  model.pt   the trained weights, official layout ({"model": state_dict}): loads in sam2kit
             (--checkpoint model.pt --config ...) and in Meta's sam2.build_sam.build_sam2
  last.ckpt  weights + optimizer + schedule + random states (every --save-every steps, at Ctrl-C /
             SIGTERM, at the end): continue with --resume
  log.csv    per step: loss and its terms, learning rates, gradient norm, samples/s; per
             validation: image mIoU (one click, box) or video J&F (first-frame click)
  run.json   options, model, data, versions, seed

Options may also come from a YAML file (--config-file run.yaml) with the same names
(lr: 1.0e-4, train: memory, act_ckpt: true, ...); flags given on the command line win.
"""

_EXAMPLES = """\
examples:
  # fine-tune the SAM heads of SAM 2.1 tiny on your masks (CPU is fine)
  sam2kit train --checkpoint sam2.1_hiera_tiny.pt --data my_masks/ --train decoder --steps 2000 --lr 1e-4 --out run1/

  # video memory on DAVIS-layout data, bf16 on a GPU; the same command with --resume continues it
  sam2kit train --checkpoint facebook/sam2.1-hiera-small --data davis/ --train memory --steps 20000 \\
      --precision bf16 --out run2/

  # everything, with activation checkpointing, on 4 GPUs
  torchrun --nproc_per_node 4 -m sam2kit train --checkpoint sam2.1_hiera_base_plus.pt --data data/ \\
      --train all --act-ckpt --precision bf16 --steps 10000 --out run3/

  # the small sam2kit-mini model from scratch
  sam2kit train --config sam2kit-mini --data synthetic/ --train all --steps 20000 --batch-size 8 --out mini/
"""


def _drop_rate(text: str) -> float:
    value = common.non_negative(text)
    if value >= 1:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1), got {text!r}")
    return value


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """``sam2kit train --data PATH --out DIR [--checkpoint BASE] [--train PART] ...``."""
    parser = subparsers.add_parser(
        "train", help="fine-tune SAM 2 on your own masks, images and videos",
        description=_DESCRIPTION, epilog=_EXAMPLES, formatter_class=common.HelpFormatter,
        argument_default=argparse.SUPPRESS,  # unset flags stay absent: a --config-file fills them
    )
    model = parser.add_argument_group("model")
    model.add_argument("--checkpoint", metavar="PATH|HUB_ID",
                       help="weights to start from: an official .pt / .safetensors file or a hub id such as "
                            "facebook/sam2.1-hiera-tiny. Without it: random weights of --config (from scratch)")
    model.add_argument("--config", metavar="NAME|YAML",
                       help="sam2kit-mini (the small preset), an official preset (sam2.1_hiera_tiny, ...) or YAML. "
                            "Default: the preset the checkpoint's weights reveal")
    model.add_argument("--image-size", metavar="N", type=common._image_size,
                       help="the model's input size (a multiple of 32). Default: the config's")
    data = parser.add_argument_group("data")
    data.add_argument("--data", metavar="PATH", help="the training data (see above); required")
    data.add_argument("--data-format", choices=("auto", "images", "coco", "video"),
                      help="layout of --data (default: auto, told from the files)")
    data.add_argument("--coco-images", metavar="DIR", help="the images folder of a COCO JSON")
    data.add_argument("--image-data", metavar="PATH",
                      help="still images (image folder or COCO) mixed into a video run (--train memory / all), "
                           "as SAM 2 mixes SA-1B with SA-V")
    data.add_argument("--image-share", metavar="F", type=common.fraction,
                      help="share of the steps that are image steps with --image-data (default 0.5)")
    data.add_argument("--image-batch-size", metavar="B", type=common.positive_int,
                      help="images per micro-batch of an image step (default: --batch-size)")
    data.add_argument("--val-fraction", metavar="F", type=common.fraction,
                      help="share of the items (videos) held out for validation (default 0.1)")
    data.add_argument("--num-frames", metavar="N", type=common.positive_int,
                      help="frames per training clip (default 8)")
    data.add_argument("--max-objects", metavar="N", type=common.positive_int,
                      help="objects per sample, a random choice (default 3)")
    data.add_argument("--augment", action=argparse.BooleanOptionalAction,
                      help="flip / affine / colour augmentation (default on; off with cached features)")
    data.add_argument("--cache", choices=("memory", "disk", "off"),
                      help="keep a frozen encoder's features (default memory; disk: OUT/cache/; off: recompute "
                           "each step, with augmentation)")
    data.add_argument("--workers", metavar="N", type=common.non_negative_int, help="data-loading processes (default 0)")
    what = parser.add_argument_group("what trains")
    what.add_argument("--train", choices=("decoder", "memory", "all"), help="decoder (default), memory or all")
    what.add_argument("--lora", metavar="R", type=common.non_negative_int,
                      help="rank of LoRA adapters on the image encoder's attention (default 0: none)")
    what.add_argument("--lora-alpha", metavar="A", type=common.positive_float, help="LoRA scale numerator (default: R)")
    what.add_argument("--drop-path", metavar="P", type=_drop_rate,
                      help="stochastic depth of the trunk with --train all (default 0.1)")
    what.add_argument("--corrections", metavar="N", type=common.non_negative_int,
                      help="simulated correction clicks per corrected frame (default 7)")
    what.add_argument("--point-prob", metavar="P", type=common.fraction,
                      help="on clips, probability of a click or box first prompt, else the true mask (default 0.5)")
    what.add_argument("--box-prob", metavar="P", type=common.fraction,
                      help="probability of a box rather than a click as the first prompt (default 0.5)")
    what.add_argument("--center-click-prob", metavar="P", type=common.fraction,
                      help="probability that a first click is the object's most interior pixel, where people "
                           "click, rather than uniform inside it (default 0: the recipe)")
    what.add_argument("--init-frames", metavar="N", type=common.positive_int,
                      help="at most N frames of a clip get the first prompt, frame 0 and random others (default 2)")
    what.add_argument("--correct-frames", metavar="N", type=common.non_negative_int,
                      help="at most N frames of a clip get correction clicks, the prompted ones first (default 2)")
    what.add_argument("--loss-weights", metavar="F,D,I,O", type=_loss_weights,
                      help="weights of the focal, dice, IoU and object-score losses (default 20,1,1,1)")
    optim = parser.add_argument_group("optimisation")
    optim.add_argument("--steps", metavar="N", type=common.positive_int, help="optimizer steps (default 1000)")
    optim.add_argument("--batch-size", metavar="B", type=common.positive_int,
                       help="samples per process and micro-batch (default 1)")
    optim.add_argument("--accumulate", metavar="K", type=common.positive_int, help="micro-batches per step (default 1)")
    optim.add_argument("--lr", metavar="LR", type=common.positive_float,
                       help="peak learning rate (default 5e-6 from a checkpoint, 1e-3 from scratch)")
    optim.add_argument("--encoder-lr", metavar="LR", type=common.positive_float,
                       help="peak image-encoder learning rate (default 3e-6 from a checkpoint, 5e-4 from scratch)")
    optim.add_argument("--layer-decay", metavar="D", type=common.positive_float,
                       help="layer-wise lr decay (default 0.9)")
    optim.add_argument("--weight-decay", metavar="W", type=common.non_negative, help="AdamW weight decay (default 0.1)")
    optim.add_argument(
        "--warmup",
        metavar="N",
        type=common.non_negative_int,
        help="linear warm-up steps, then cosine to lr/10 (default: 5%% of --steps)",
    )
    optim.add_argument(
        "--clip", metavar="NORM", type=common.non_negative, help="gradient-norm clipping (default 0.1; 0 off)"
    )
    optim.add_argument("--precision", choices=("fp32", "bf16", "fp16"), help="fp32 (default) or bf16 / fp16 autocast")
    optim.add_argument(
        "--act-ckpt",
        action=argparse.BooleanOptionalAction,
        help="activation checkpointing of the Hiera blocks / memory-attention layers",
    )
    optim.add_argument("--seed", metavar="N", type=common.non_negative_int, help="random seed (default 0)")
    run_group = parser.add_argument_group("run")
    run_group.add_argument("--out", "-o", metavar="DIR", help="the run folder; required")
    run_group.add_argument("--resume", action=argparse.BooleanOptionalAction, help="continue the run in --out")
    run_group.add_argument(
        "--save-every", metavar="N", type=common.positive_int, help="write last.ckpt every N steps (default 100)"
    )
    run_group.add_argument(
        "--eval-every",
        metavar="N",
        type=common.non_negative_int,
        help="validate every N steps (default 0: every epoch)",
    )
    run_group.add_argument(
        "--val-max",
        metavar="N",
        type=common.non_negative_int,
        help="at most N validation items per validation (default 50; 0: none)",
    )
    run_group.add_argument(
        "--stop-after",
        metavar="N",
        type=common.positive_int,
        help="stop after N steps of this invocation (for time-limited jobs; then --resume)",
    )
    run_group.add_argument("--device", metavar="DEVICE", help="cpu, cuda, ... Default: the best available")
    run_group.add_argument("--config-file", metavar="YAML", help="options from a YAML file (the flags' names)")
    common.add_output_options(parser)
    parser.set_defaults(handler=run, option_names=OPTION_NAMES, check=functools.partial(_check_args, parser))
    return parser


def _loss_weights(text: str) -> tuple[float, float, float, float]:
    """An argparse type: four weights >= 0, comma-separated (a YAML list reads the same)."""
    parts = [part.strip() for part in text.strip().strip("[]()").split(",")]
    if len(parts) != 4:
        raise argparse.ArgumentTypeError(f"expected 4 comma-separated weights (focal,dice,iou,object), got {text!r}")
    first, second, third, fourth = (common.non_negative(part) for part in parts)
    return first, second, third, fourth


def _option_actions(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {action.dest: action for action in parser._actions if action.option_strings and action.dest != "help"}


def _yaml_argv(parser: argparse.ArgumentParser, path: str) -> list[str]:
    """The options of a YAML run file as command-line arguments (so they are checked the same way)."""
    import yaml

    try:
        with open(Path(path).expanduser(), encoding="utf-8") as f:
            doc = yaml.safe_load(f) or {}
    except (OSError, yaml.YAMLError) as error:
        parser.error(f"{path}: cannot read the YAML file ({type(error).__name__}); expected option: value lines")
    if not isinstance(doc, dict):
        parser.error(f"{path}: expected a mapping of option names to values (lr: 1.0e-4, train: memory, ...)")
    actions = _option_actions(parser)
    argv: list[str] = []
    for key, value in doc.items():
        dest = str(key).replace("-", "_")
        if dest in ("config_file", "verbose", "quiet") or dest not in actions:
            parser.error(f"{path}: unknown option {key!r}; expected the names of sam2kit train's flags")
        flag = actions[dest].option_strings[0]
        if isinstance(actions[dest], argparse.BooleanOptionalAction):
            argv.append(flag if value else "--no-" + flag[2:])
        elif value is not None:
            argv += [flag, str(value)]
    return argv


def _check_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Merge a --config-file under the flags, and check the options as a whole."""
    from ..train.options import TrainOptions

    given = vars(args)
    values: dict[str, Any] = {}
    if "config_file" in given:
        values = vars(parser.parse_args(_yaml_argv(parser, given["config_file"])))
    values.update(given)
    fields = {f.name for f in dataclasses.fields(TrainOptions)}
    options = {key: value for key, value in values.items() if key in fields}
    for required in ("data", "out"):
        if required not in options:
            parser.error(f"--{required} is required (on the command line or in --config-file)")
    options["progress"] = not values.get("quiet", False)
    try:
        args.options = TrainOptions(**options)
    except ValueError as error:  # an ArgumentError: the message gets the option's spelling
        parser.error(common.error_message(error, OPTION_NAMES))


def run(args: argparse.Namespace) -> int:
    """Handler of ``sam2kit train``: train, then print a summary JSON on stdout."""
    import logging
    import os

    from ..train.trainer import train

    logger = logging.getLogger(common.LOGGER_NAME)
    if int(os.environ.get("RANK", "0")) > 0:  # under torchrun, rank 0 alone reports
        logger.setLevel(logging.WARNING)
    result = train(args.options)
    if result.rank > 0:
        return common.EXIT_INTERRUPTED if result.status == "interrupted" else common.EXIT_OK
    summary = {
        "status": result.status,
        "step": result.step,
        "steps": result.steps,
        "out": str(result.out_dir),
        "model": None if result.model_path is None else str(result.model_path),
        "validation": result.validation,
    }
    common.write_json(summary)
    if result.status == "interrupted":
        logger.warning("stopped by %s at step %d (last.ckpt saved); continue with --resume", result.signal, result.step)
        return common.EXIT_INTERRUPTED
    if result.status == "stopped":
        logger.info("stopped after step %d of %d (--stop-after); continue with --resume", result.step, result.steps)
    return common.EXIT_OK
