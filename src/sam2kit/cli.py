"""The ``sam2kit`` command line: argument parsing only.

Each subcommand is registered by one ``add_<name>_parser(subparsers)`` function that declares its
arguments and names its handler as ``"module:function"``; the handler (``function(args) -> int``)
lives in its own module (``sam2kit.cli_image`` for ``image``) and is imported only when that command
runs, so ``sam2kit --help`` stays fast and does not import torch.

Conventions: exit code 0 on success, 2 on usage errors (argparse), 1 on runtime errors with a
``sam2kit: error: ...`` message on stderr (the traceback only with ``--verbose``); logs and
progress go to stderr, data (the JSON summary) to stdout.

To add a subcommand: write ``add_video_parser(subparsers)`` (call :func:`add_model_options` for the
model options) and list it in :data:`SUBCOMMANDS`.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import logging
import os
import sys
import textwrap
from typing import Callable, Sequence

__all__ = [
    "DEFAULT_CHECKPOINT",
    "SUBCOMMANDS",
    "add_auto_parser",
    "add_image_parser",
    "add_model_options",
    "add_output_options",
    "add_stream_parser",
    "add_video_parser",
    "build_parser",
    "main",
    "parse_box",
    "parse_frame_box",
    "parse_frame_point",
    "parse_point",
]

PROG = "sam2kit"
DEFAULT_CHECKPOINT = "facebook/sam2.1-hiera-tiny"
LOGGER_NAME = "sam2kit"


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the hand-wrapped descriptions and example blocks as written."""

    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=32)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("sam2kit")
    except PackageNotFoundError:  # running from a source tree that is not installed
        return "0+unknown"


# ---------------------------------------------------------------------------- value parsers
def _numbers(text: str, what: str, counts: tuple[int, ...], form: str) -> list[float]:
    parts = [p.strip() for p in text.replace(" ", ",").split(",") if p.strip()]
    if len(parts) not in counts:
        raise argparse.ArgumentTypeError(f"{what} must be {form}, got {text!r}")
    try:
        values = [float(p) for p in parts]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{what} must be {form} (numbers), got {text!r}") from None
    if not all(v == v and abs(v) != float("inf") for v in values):
        raise argparse.ArgumentTypeError(f"{what} must be finite numbers, got {text!r}")
    return values


def parse_point(text: str) -> tuple[float, float, int]:
    """``"X,Y"`` or ``"X,Y,LABEL"`` (pixels; label 1 foreground (default), 0 background)."""
    values = _numbers(text, "a point", (2, 3), "X,Y or X,Y,LABEL")
    label = 1 if len(values) == 2 else values[2]
    if label not in (0, 1):
        raise argparse.ArgumentTypeError(
            f"a point's label must be 1 (foreground) or 0 (background), got {text!r}"
        )
    return values[0], values[1], int(label)


def parse_box(text: str) -> tuple[float, float, float, float]:
    """``"X0,Y0,X1,Y1"``: top-left and bottom-right corners in pixels."""
    x0, y0, x1, y1 = _numbers(text, "a box", (4,), "X0,Y0,X1,Y1")
    if x1 < x0 or y1 < y0:
        raise argparse.ArgumentTypeError(
            f"a box must be X0,Y0,X1,Y1 with X0 <= X1 and Y0 <= Y1 (top-left, bottom-right), got {text!r}"
        )
    return x0, y0, x1, y1


def _non_negative(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}")
    return value


def _int_at_least(minimum: int) -> Callable[[str], int]:
    """An argparse type: an integer >= ``minimum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {text!r}")
        return value

    return parse


_positive_int = _int_at_least(1)
_non_negative_int = _int_at_least(0)


def _image_size(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value <= 0 or value % 32:
        raise argparse.ArgumentTypeError(f"the image size must be a positive multiple of 32, got {value}")
    return value


# ---------------------------------------------------------------------------- option groups
def add_model_options(parser: argparse.ArgumentParser) -> None:
    """``--checkpoint``, ``--config``, ``--device``, ``--precision`` and the advanced ``--image-size``."""
    group = parser.add_argument_group("model")
    group.add_argument(
        "--checkpoint",
        metavar="PATH|HUB_ID",
        default=DEFAULT_CHECKPOINT,
        help=(
            "a local checkpoint file (official .pt or .safetensors) or a Hugging Face hub id such as "
            f"facebook/sam2.1-hiera-large (downloaded once, then cached). Default: {DEFAULT_CHECKPOINT}"
        ),
    )
    group.add_argument(
        "--config",
        metavar="NAME|YAML",
        help=(
            "model config: a preset name (sam2.1_hiera_tiny, sam2.1_hiera_small, sam2.1_hiera_base_plus, "
            "sam2.1_hiera_large, and sam2_hiera_* for SAM 2.0) or an official YAML file. Needed only when "
            "the checkpoint's file name does not reveal it (official names such as sam2.1_hiera_tiny.pt "
            "do)"
        ),
    )
    group.add_argument(
        "--device",
        metavar="DEVICE",
        help="torch device: cpu, cuda, cuda:1, mps, ... Default: the best available",
    )
    group.add_argument(
        "--precision",
        choices=("fp32", "bf16", "fp16"),
        default="fp32",
        metavar="NAME",
        help=(
            "fp32 (default, exact), or the faster reduced precision bf16 (CPUs with AVX-512 BF16 / AMX, "
            "GPUs) or fp16 (GPUs) for the image encoder and memory attention; masks agree with fp32 "
            "at IoU >= 0.98. The first image in bf16 is slower (kernels are prepared once)"
        ),
    )
    group.add_argument(
        "--image-size",
        metavar="N",
        type=_image_size,
        help=(
            "(advanced, for custom models) the model's input resolution, a multiple of 32. Official "
            "checkpoints use their config's (1024); a checkpoint file does not record it"
        ),
    )


def add_output_options(parser: argparse.ArgumentParser, *, subcommand: bool = True) -> None:
    """``-v/--verbose`` and ``-q/--quiet``, accepted before or after the subcommand."""
    group = parser.add_argument_group("output")
    # SUPPRESS keeps a subcommand's unset flag from overwriting one given before the subcommand.
    default = argparse.SUPPRESS if subcommand else False
    group.add_argument(
        "-v", "--verbose", action="store_true", default=default,
        help="debug logging, and the full traceback of an error",
    )
    group.add_argument(
        "-q", "--quiet", action="store_true", default=default,
        help="no progress messages on stderr (errors are still reported)",
    )


# ---------------------------------------------------------------------------- subcommands
_IMAGE_DESCRIPTION = """\
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

_IMAGE_EXAMPLES = """\
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


def add_image_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """``sam2kit image IMAGE --point/--box ... --out DIR``."""
    parser = subparsers.add_parser(
        "image",
        help="segment objects in an image from points and boxes",
        description=_IMAGE_DESCRIPTION,
        epilog=_IMAGE_EXAMPLES,
        formatter_class=_HelpFormatter,
    )
    parser.add_argument("image", metavar="IMAGE", help="an image file (JPEG, PNG, ...; EXIF rotation is applied)")
    prompts = parser.add_argument_group("prompts (at least one)")
    prompts.add_argument(
        "--point", metavar="X,Y[,LABEL]", type=parse_point, action="append", default=[],
        dest="points", help="a point prompt in pixels; LABEL 1 foreground (default) or 0 background",
    )
    prompts.add_argument(
        "--box", metavar="X0,Y0,X1,Y1", type=parse_box, action="append", default=[],
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
        "--max-hole-area", metavar="N", type=_non_negative, default=0.0,
        help="fill holes up to N pixels of the 256x256 low-resolution mask (default 0: off)",
    )
    masks.add_argument(
        "--max-sprinkle-area", metavar="N", type=_non_negative, default=0.0,
        help="remove specks up to N pixels of the 256x256 low-resolution mask (default 0: off)",
    )
    parser.add_argument("--out", "-o", metavar="DIR", required=True, help="output folder (created if missing)")
    add_model_options(parser)
    add_output_options(parser)
    parser.set_defaults(handler="sam2kit.cli_image:run", check=functools.partial(_check_image_args, parser))
    return parser


def _check_image_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if not args.points and not args.boxes:
        parser.error("give at least one prompt: --point X,Y[,LABEL] and/or --box X0,Y0,X1,Y1")
    if args.points and len(args.boxes) > 1:
        parser.error(
            "points can be combined with at most one box (one object); for several objects give "
            "several --box without --point, or run the command once per object"
        )


_STREAM_DESCRIPTION = """\
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

_STREAM_EXAMPLES = """\
examples:
  # a video file, two objects, with an overlay video
  sam2kit stream --source clip.mp4 --box 100,80,300,260 --box 400,120,520,300 --overlay out.mp4

  # a webcam (V4L2), the first 300 frames, on the GPU
  sam2kit stream --source /dev/video0 --box 200,150,440,330 --max-frames 300 --device cuda

  # an RTSP camera, results appended to a file
  sam2kit stream --source rtsp://camera.local/stream1 --box 50,60,250,400 \\
      --checkpoint facebook/sam2.1-hiera-small >> tracks.jsonl
"""


def add_stream_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """``sam2kit stream --source FILE|URL|/dev/videoN --box ... [--overlay OUT.mp4]``."""
    parser = subparsers.add_parser(
        "stream",
        help="track boxed objects through a camera, network stream or video, frame by frame",
        description=_STREAM_DESCRIPTION,
        epilog=_STREAM_EXAMPLES,
        formatter_class=_HelpFormatter,
    )
    parser.add_argument(
        "--source", metavar="FILE|URL|/dev/videoN", required=True,
        help="a video file, a stream URL (rtsp://, http(s)://, rtmp://, udp://, ...) or a V4L2 camera",
    )
    parser.add_argument(
        "--box", metavar="X0,Y0,X1,Y1", type=parse_box, action="append", default=[], required=True,
        dest="boxes", help="an object's box on the first frame, in pixels; repeat for more objects",
    )
    parser.add_argument("--overlay", metavar="OUT.mp4", help="also write the frames with the masks drawn to a video")
    parser.add_argument(
        "--max-frames", metavar="N", type=_positive_int, help="stop after N frames (default: until the stream ends)",
    )
    parser.add_argument(
        "--max-cond-frames", metavar="N", type=_positive_int, default=8,
        help="prompted frames remembered per object: the first plus the most recent (default 8)",
    )
    add_model_options(parser)
    add_output_options(parser)
    parser.set_defaults(handler="sam2kit.cli_stream:run")
    return parser


_AUTO_DESCRIPTION = """\
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

_AUTO_EXAMPLES = """\
examples:
  # every image of a folder, official SAM 2.1 tiny from the Hugging Face hub
  sam2kit auto photos/ --out masks/

  # denser grid plus one layer of crops (finds smaller objects; slower)
  sam2kit auto photo.jpg --points-per-side 64 --crop-n-layers 1 --checkpoint sam2.1_hiera_large.pt --out masks/
"""


def _fraction(text: str) -> float:
    value = _non_negative(text)
    if value > 1:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1], got {text!r}")
    return value


def add_auto_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """``sam2kit auto IMAGE [IMAGE|FOLDER ...] --out DIR``."""
    parser = subparsers.add_parser(
        "auto",
        help="segment everything in images (automatic masks) into a COCO JSON and overlays",
        description=_AUTO_DESCRIPTION,
        epilog=_AUTO_EXAMPLES,
        formatter_class=_HelpFormatter,
    )
    parser.add_argument("images", metavar="IMAGE", nargs="+", help="image files and/or folders of images")
    parser.add_argument("--out", "-o", metavar="DIR", required=True, help="output folder (created if missing)")
    generator = parser.add_argument_group("mask generator")
    generator.add_argument(
        "--points-per-side", metavar="N", type=_positive_int, default=32,
        help="prompt grid of N x N points (default 32)",
    )
    generator.add_argument(
        "--points-per-batch", metavar="N", type=_positive_int, default=64,
        help="prompts decoded at once; lower it to save memory (default 64)",
    )
    generator.add_argument(
        "--pred-iou-thresh", metavar="F", type=_fraction, default=0.8,
        help="keep masks whose predicted IoU is above F (default 0.8)",
    )
    generator.add_argument(
        "--stability-score-thresh", metavar="F", type=_fraction, default=0.95,
        help="keep masks whose stability score is at least F (default 0.95)",
    )
    generator.add_argument(
        "--crop-n-layers", metavar="N", type=_non_negative_int, default=0,
        help="also run on N layers of image crops (layer i: 4**i crops) to find small objects (default 0)",
    )
    generator.add_argument(
        "--min-mask-region-area", metavar="N", type=_non_negative_int, default=0,
        help="fill holes / remove specks up to N pixels of the low-resolution masks (default 0: off)",
    )
    add_model_options(parser)
    add_output_options(parser)
    parser.set_defaults(handler="sam2kit.cli_auto:run")
    return parser


_VIDEO_DESCRIPTION = """\
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

_VIDEO_EXAMPLES = """\
examples:
  # one click on object 1 in the first frame
  sam2kit video clip.mp4 --prompt 0:1:320,240 --out tracks/

  # two objects boxed on frame 0, a correction click on frame 30, DAVIS-style palette PNGs
  sam2kit video frames/ --box 0:1:100,80,300,260 --box 0:2:400,120,520,300 --prompt 30:1:210,170 \\
      --palette --checkpoint facebook/sam2.1-hiera-large --device cuda --out tracks/

  # an object prompted mid-video, tracked both ways, with an overlay video
  sam2kit video clip.mp4 --prompt 120:1:500,300 --reverse --overlay overlay.mp4 --out tracks/
"""


def _frame_object(text: str, form: str) -> tuple[int, int, str]:
    parts = text.split(":")
    if len(parts) != 3:
        raise argparse.ArgumentTypeError(f"expected {form}, got {text!r}")
    try:
        frame, obj_id = int(parts[0]), int(parts[1])
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {form} with integers FRAME and OBJ, got {text!r}") from None
    if frame < 0 or obj_id < 0:
        raise argparse.ArgumentTypeError(f"FRAME and OBJ must be integers >= 0, got {text!r}")
    return frame, obj_id, parts[2]


def parse_frame_point(text: str) -> tuple[int, int, tuple[float, float, int]]:
    """``"FRAME:OBJ:X,Y[,LABEL]"`` -> ``(frame, obj_id, (x, y, label))`` (pixels)."""
    frame, obj_id, rest = _frame_object(text, "FRAME:OBJ:X,Y[,LABEL]")
    try:
        return frame, obj_id, parse_point(rest)
    except argparse.ArgumentTypeError as error:
        raise argparse.ArgumentTypeError(f"{error} (in {text!r})") from None


def parse_frame_box(text: str) -> tuple[int, int, tuple[float, float, float, float]]:
    """``"FRAME:OBJ:X0,Y0,X1,Y1"`` -> ``(frame, obj_id, (x0, y0, x1, y1))`` (pixels)."""
    frame, obj_id, rest = _frame_object(text, "FRAME:OBJ:X0,Y0,X1,Y1")
    try:
        return frame, obj_id, parse_box(rest)
    except argparse.ArgumentTypeError as error:
        raise argparse.ArgumentTypeError(f"{error} (in {text!r})") from None


def add_video_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """``sam2kit video VIDEO --prompt/--box FRAME:OBJ:... --out DIR``."""
    parser = subparsers.add_parser(
        "video",
        help="track objects prompted on any frames through a video file or frame folder",
        description=_VIDEO_DESCRIPTION,
        epilog=_VIDEO_EXAMPLES,
        formatter_class=_HelpFormatter,
    )
    parser.add_argument("video", metavar="VIDEO", help="a video file (mp4, mov, mkv, webm, avi) or a folder of frames")
    prompts = parser.add_argument_group("prompts (at least one)")
    prompts.add_argument(
        "--prompt", metavar="FRAME:OBJ:X,Y[,LABEL]", type=parse_frame_point, action="append", default=[],
        dest="points", help="a click on object OBJ in frame FRAME; LABEL 1 foreground (default) or 0 background",
    )
    prompts.add_argument(
        "--box", metavar="FRAME:OBJ:X0,Y0,X1,Y1", type=parse_frame_box, action="append", default=[],
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
        "--max-frames", metavar="N", type=_positive_int,
        help="use only the first N frames of the video (frames 0..N-1)",
    )
    tracking.add_argument(
        "--fill-hole-area", metavar="N", type=_non_negative_int, default=8,
        help="fill holes up to N pixels of the low-resolution masks (default 8; 0: off)",
    )
    tracking.add_argument(
        "--non-overlap", action="store_true",
        help="give every pixel to at most one object (the one with the highest logit)",
    )
    add_model_options(parser)
    add_output_options(parser)
    parser.set_defaults(handler="sam2kit.cli_video:run", check=functools.partial(_check_video_args, parser))
    return parser


def _check_video_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
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


#: Registration functions of the subcommands, in the order ``--help`` lists them.
SUBCOMMANDS: list[Callable[[argparse._SubParsersAction], argparse.ArgumentParser]] = [
    add_image_parser,
    add_auto_parser,
    add_stream_parser,
    add_video_parser,
]


def build_parser() -> argparse.ArgumentParser:
    """The ``sam2kit`` parser with every subcommand of :data:`SUBCOMMANDS`."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=textwrap.dedent(
            """\
            SAM 2 (Segment Anything in Images and Videos) from the command line.

            Models: --checkpoint takes a Hugging Face hub id (facebook/sam2.1-hiera-tiny, -small,
            -base-plus, -large; facebook/sam2-hiera-* for SAM 2.0), downloaded once and cached, or a
            local official checkpoint file such as sam2.1_hiera_large.pt.
            """
        ),
        epilog=textwrap.dedent(
            """\
            examples:
              sam2kit image photo.jpg --point 500,375 --out out/
              sam2kit image photo.jpg --box 100,80,620,540 --checkpoint sam2.1_hiera_large.pt --out out/
              sam2kit image --help

            exit status: 0 success, 1 runtime error (bad prompt, missing file, ...), 2 usage error.
            """
        ),
        formatter_class=_HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    add_output_options(parser, subcommand=False)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    subparsers.required = True
    for register in SUBCOMMANDS:
        register(subparsers)
    return parser


# ---------------------------------------------------------------------------- entry point
def _resolve_handler(spec: str) -> Callable[[argparse.Namespace], int]:
    module_name, _, function_name = spec.partition(":")
    return getattr(importlib.import_module(module_name), function_name)


def _error_message(error: BaseException) -> str:
    if isinstance(error, KeyError) and error.args and isinstance(error.args[0], str):
        return error.args[0]  # str(KeyError) would wrap the message in quotes
    message = str(error).strip()
    return message or type(error).__name__


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush does not fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``sam2kit`` with ``argv`` (default ``sys.argv[1:]``); returns the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        check = getattr(args, "check", None)
        if check is not None:  # checks across options; they call the subcommand parser's error()
            check(args)
    except SystemExit as exit_:  # --help, --version, usage errors
        return exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 2)

    verbose, quiet = bool(getattr(args, "verbose", False)), bool(getattr(args, "quiet", False))
    logger = logging.getLogger(LOGGER_NAME)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(f"{PROG}: %(message)s"))
    previous = (logger.level, logger.propagate)
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO)
    logger.propagate = False
    try:
        return int(_resolve_handler(args.handler)(args) or 0)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # stdout closed early (e.g. piped into head): stop quietly
        _silence_stdout()
        return 1
    except Exception as error:  # a runtime error: one message, no traceback unless asked
        if verbose:
            import traceback

            traceback.print_exc(file=sys.stderr)
        print(f"{PROG}: error: {_error_message(error)}", file=sys.stderr)
        return 1
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous[0])
        logger.propagate = previous[1]


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
