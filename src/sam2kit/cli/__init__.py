"""The ``sam2kit`` command line: :func:`main`, and the parser assembled from the command modules.

One module per command (:mod:`~sam2kit.cli.image`, :mod:`~sam2kit.cli.auto`,
:mod:`~sam2kit.cli.stream`, :mod:`~sam2kit.cli.video`), each with ``add_parser(subparsers)``, which
declares its options and sets its handler ``run(args) -> int``; the handler imports its job from
:mod:`sam2kit.pipelines` only when the command runs, so ``sam2kit --help`` stays fast and does not
import torch. What the commands share (model and output options, prompt parsing, errors, exit codes,
logging) is in :mod:`~sam2kit.cli.common`. No command module imports another.

To add a command: write ``cli/<name>.py`` with ``add_parser`` and ``run``, and list it in
:data:`COMMANDS`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from . import auto, batch, common, demo, export, gaze, image, serve, stream, train, video
from . import eval as eval_command
from .common import (
    DEFAULT_CHECKPOINT,
    EXIT_USAGE,
    PROG,
    add_model_options,
    add_output_options,
    parse_box,
    parse_frame_box,
    parse_frame_point,
    parse_point,
)

__all__ = [
    "COMMANDS",
    "DEFAULT_CHECKPOINT",
    "add_model_options",
    "add_output_options",
    "build_parser",
    "main",
    "parse_box",
    "parse_frame_box",
    "parse_frame_point",
    "parse_point",
]

#: The command modules, in the order ``--help`` lists them.
COMMANDS = (demo, image, auto, stream, video, train, serve, batch, eval_command, gaze, export)

_DESCRIPTION = """\
SAM 2 (Segment Anything in Images and Videos) from the command line.

Models: --checkpoint takes a Hugging Face hub id (facebook/sam2.1-hiera-tiny, -small,
-base-plus, -large; facebook/sam2-hiera-* for SAM 2.0), downloaded once and cached, or a
local official checkpoint file such as sam2.1_hiera_large.pt, or sam2kit-mini: a small model
shipped in the package, trained here on synthetic shapes (offline; try `sam2kit demo --out demo/`).
"""

_EPILOG = """\
examples:
  sam2kit demo --out demo/
  sam2kit image photo.jpg --point 500,375 --out out/
  sam2kit image photo.jpg --box 100,80,620,540 --checkpoint sam2.1_hiera_large.pt --out out/
  sam2kit export onnx --checkpoint sam2.1_hiera_tiny.pt --out tiny_onnx/
  sam2kit image --help

exit status: 0 success, 1 runtime error (bad prompt, missing file, ...), 2 usage error.
"""


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("sam2kit")
    except PackageNotFoundError:  # running from a source tree that is not installed
        return "0+unknown"


def build_parser() -> argparse.ArgumentParser:
    """The ``sam2kit`` parser with every command of :data:`COMMANDS`."""
    parser = argparse.ArgumentParser(
        prog=PROG, description=_DESCRIPTION, epilog=_EPILOG, formatter_class=common.HelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    add_output_options(parser, subcommand=False)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    subparsers.required = True
    for command in COMMANDS:
        command.add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``sam2kit`` with ``argv`` (default ``sys.argv[1:]``); returns the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        check = getattr(args, "check", None)
        if check is not None:  # checks across options; they call the subcommand parser's error()
            check(args)
    except SystemExit as exit_:  # --help, --version, usage errors
        return exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else EXIT_USAGE)
    return common.run_handler(args.handler, args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
