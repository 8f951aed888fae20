"""What every ``sam2kit`` command shares: value parsers for prompts and numbers, the model and output
options, and how a command runs (logging on stderr, errors as one line, exit codes).

Exit codes: 0 success (:data:`EXIT_OK`), 1 runtime error with a ``sam2kit: error: ...`` line on
stderr (:data:`EXIT_ERROR`; the traceback only with ``--verbose``), 2 usage error from argparse
(:data:`EXIT_USAGE`), 130 after Ctrl-C (:data:`EXIT_INTERRUPTED`). Logs and progress go to stderr,
data (JSON) to stdout.

Importing this module imports no torch: the commands import their pipeline when they run.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import sys
from collections.abc import Callable, Mapping
from typing import Any

from ..model_spec import DEFAULT_CHECKPOINT, ModelSpec

__all__ = [
    "DEFAULT_CHECKPOINT",
    "EXIT_ERROR",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_USAGE",
    "PROG",
    "HelpFormatter",
    "add_model_options",
    "add_output_options",
    "model_spec",
    "parse_box",
    "parse_frame_box",
    "parse_frame_point",
    "parse_point",
    "run_handler",
    "write_json",
]

PROG = "sam2kit"
LOGGER_NAME = "sam2kit"
EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the hand-wrapped descriptions and example blocks as written."""

    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=32)


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


def non_negative(text: str) -> float:
    """An argparse type: a number >= 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}")
    return value


def fraction(text: str) -> float:
    """An argparse type: a number in [0, 1]."""
    value = non_negative(text)
    if value > 1:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1], got {text!r}")
    return value


def int_at_least(minimum: int) -> Callable[[str], int]:
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


positive_int = int_at_least(1)
non_negative_int = int_at_least(0)


def positive_float(text: str) -> float:
    """An argparse type: a finite number > 0."""
    value = non_negative(text)
    if value == 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}")
    return value


def _image_size(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value <= 0 or value % 32:
        raise argparse.ArgumentTypeError(f"the image size must be a positive multiple of 32, got {value}")
    return value


# ---------------------------------------------------------------------------- option groups
def add_model_options(parser: argparse.ArgumentParser, default_checkpoint: str = DEFAULT_CHECKPOINT) -> None:
    """``--checkpoint``, ``--config``, ``--device``, ``--precision`` and the advanced ``--image-size``
    (read back with :func:`model_spec`)."""
    group = parser.add_argument_group("model")
    group.add_argument(
        "--checkpoint",
        metavar="PATH|HUB_ID",
        default=default_checkpoint,
        help=(
            "a local checkpoint file (official .pt or .safetensors), a Hugging Face hub id such as "
            "facebook/sam2.1-hiera-large (downloaded once, then cached), or sam2kit-mini (the small "
            f"model shipped in the package, offline). Default: {default_checkpoint}"
        ),
    )
    group.add_argument(
        "--config",
        metavar="NAME|YAML",
        help=(
            "model config: a preset name (sam2.1_hiera_tiny, sam2.1_hiera_small, sam2.1_hiera_base_plus, "
            "sam2.1_hiera_large, and sam2_hiera_* for SAM 2.0) or an official YAML file. Default: the "
            "preset the checkpoint's weights reveal, whatever the file's name"
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


def model_spec(args: argparse.Namespace) -> ModelSpec:
    """The :class:`~sam2kit.model_spec.ModelSpec` of the options of :func:`add_model_options`."""
    return ModelSpec(checkpoint=args.checkpoint, config=args.config, device=args.device,
                     precision=args.precision, image_size=args.image_size)


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


# ---------------------------------------------------------------------------- running a command
def write_json(data: Any) -> None:
    """Print ``data`` as indented JSON on stdout (the data channel; logs go to stderr)."""
    sys.stdout.write(json.dumps(data, indent=2) + "\n")
    sys.stdout.flush()


def option_name(argument: str, option_names: Mapping[str, str]) -> str:
    """The command-line spelling of a library argument: ``max_frames`` -> ``--max-frames``, unless
    the command maps it otherwise (``out_dir`` -> ``--out``)."""
    return option_names.get(argument) or "--" + argument.replace("_", "-")


def error_message(error: BaseException, option_names: Mapping[str, str] | None = None) -> str:
    """The one-line report of a runtime error. A library error that names the argument at fault
    (:class:`~sam2kit.errors.ArgumentError`) gets the command's option for it: in place of the
    argument's first mention (``max_frames must be >= 1`` -> ``--max-frames must be >= 1``), or
    appended; a hub download error says which option takes a local file instead."""
    from ..errors import ArgumentError

    if isinstance(error, KeyError) and error.args and isinstance(error.args[0], str):
        return error.args[0]  # str(KeyError) would wrap the message in quotes
    message = str(error).strip() or type(error).__name__
    if isinstance(error, ArgumentError):
        option = option_name(error.argument, option_names or {})
        pattern = re.compile(rf"(?<![\w-]){re.escape(error.argument)}(?!\w)")
        if pattern.search(message):
            return pattern.sub(lambda _: option, message, count=1)
        return f"{message} (see {option})"
    # a download error comes from sam2kit.checkpoints, already imported then; importing it here
    # for an unrelated error would import torch just to print a line
    checkpoint = sys.modules.get("sam2kit.checkpoints")
    if checkpoint is not None and isinstance(error, checkpoint.CheckpointDownloadError) and error.filename:
        return f"{message}\n  On the command line: --checkpoint /path/to/{error.filename}"
    return message


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush does not fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass


def run_handler(handler: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    """Run a command's handler with logging set up (``-v`` debug, ``-q`` warnings only, else info; on
    stderr as ``sam2kit: message``) and turn what it raises into an exit code and one error line."""
    verbose, quiet = bool(getattr(args, "verbose", False)), bool(getattr(args, "quiet", False))
    logger = logging.getLogger(LOGGER_NAME)
    log_handler = logging.StreamHandler(sys.stderr)
    log_handler.setFormatter(logging.Formatter(f"{PROG}: %(message)s"))
    previous = (logger.level, logger.propagate)
    logger.addHandler(log_handler)
    logger.setLevel(logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO)
    logger.propagate = False
    try:
        return int(handler(args) or EXIT_OK)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # stdout closed early (e.g. piped into head): stop quietly
        _silence_stdout()
        return EXIT_ERROR
    except Exception as error:  # a runtime error: one message, no traceback unless asked
        if verbose:
            import traceback

            traceback.print_exc(file=sys.stderr)
        print(f"{PROG}: error: {error_message(error, getattr(args, 'option_names', None))}", file=sys.stderr)
        return EXIT_ERROR
    finally:
        logger.removeHandler(log_handler)
        logger.setLevel(previous[0])
        logger.propagate = previous[1]
