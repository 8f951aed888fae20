"""``sam2kit serve``: the HTTP service and the browser annotation UI (front end: :mod:`sam2kit.serve`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from . import common

__all__ = ["add_parser", "run"]

OPTION_NAMES = {"max_upload_mb": "--max-upload-mb", "idle_timeout_s": "--idle-timeout"}

_DESCRIPTION = """\
Serve the HTTP API and the browser annotation UI: open http://HOST:PORT/ in a browser.

The model is loaded once; inference is serialised (concurrent requests queue). The API
(OpenAPI schema at /openapi.json, docs at /docs) has image sessions (points, boxes, automatic
masks), video sessions (prompts on any frame, propagation forward/backward with progress as
server-sent events, cancel) and exports (COCO JSON, DAVIS PNG zip, YOLO labels, boxes, overlay).

Security: listens on 127.0.0.1 by default. With --token (or $SAM2KIT_SERVE_TOKEN) every route
but the UI shell needs 'Authorization: Bearer TOKEN'. A non-loopback --host is refused without
a token unless --insecure is given.
"""

_EXAMPLES = """\
examples:
  sam2kit serve                                   # http://127.0.0.1:8765/, SAM 2.1 tiny from the hub
  sam2kit serve --checkpoint sam2.1_hiera_small.pt --media-root ~/videos --port 9000
  SAM2KIT_SERVE_TOKEN=secret sam2kit serve --host 0.0.0.0
"""


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """``sam2kit serve [--host H] [--port P] [--token T] [limits] [model options]``."""
    parser = subparsers.add_parser(
        "serve", help="HTTP API and browser annotation UI for images and videos",
        description=_DESCRIPTION, epilog=_EXAMPLES, formatter_class=common.HelpFormatter,
    )
    net = parser.add_argument_group("server")
    net.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    net.add_argument("--port", type=common.int_at_least(0), default=8765, help="port (default 8765)")
    net.add_argument("--token", help="bearer token required on every route but the UI shell "
                     "(default: $SAM2KIT_SERVE_TOKEN, else none)")
    net.add_argument("--insecure", action="store_true", help="allow a non-loopback --host without a token")
    net.add_argument("--media-root", metavar="DIR", help="folder whose videos may be opened by path (default: none)")
    net.add_argument("--work-dir", metavar="DIR", help="where uploaded videos are kept (default: a temporary folder)")
    limits = parser.add_argument_group("limits")
    limits.add_argument("--max-upload-mb", type=common.positive_float, default=200.0, metavar="MB",
                        help="largest upload in MiB (default 200)")
    limits.add_argument("--max-frames", type=common.positive_int, default=3000, metavar="N",
                        help="longest video in frames (default 3000)")
    limits.add_argument("--max-image-pixels", type=common.positive_int, default=40_000_000, metavar="N",
                        help="largest image in pixels (default 40000000)")
    limits.add_argument("--max-sessions", type=common.positive_int, default=8, metavar="N",
                        help="sessions kept at once; the least recently used idle one is evicted (default 8)")
    limits.add_argument("--idle-timeout", type=common.positive_float, default=1800.0, metavar="S",
                        dest="idle_timeout_s", help="close sessions idle for S seconds (default 1800)")
    limits.add_argument("--max-objects", type=common.positive_int, default=64, metavar="N",
                        help="objects per session, at most 255 (default 64)")
    common.add_model_options(parser)
    common.add_output_options(parser)
    parser.set_defaults(handler=run, option_names=OPTION_NAMES)
    return parser


def run(args: argparse.Namespace) -> int:
    """Handler of ``sam2kit serve``: runs until interrupted."""
    from ..serve import ServeSettings, run_server

    settings = ServeSettings(
        host=args.host, port=args.port, token=args.token or ServeSettings.token_from_env(), insecure=args.insecure,
        media_root=Path(args.media_root).expanduser() if args.media_root else None,
        work_dir=Path(args.work_dir).expanduser() if args.work_dir else None,
        max_upload_mb=args.max_upload_mb, max_frames=args.max_frames, max_image_pixels=args.max_image_pixels,
        max_sessions=args.max_sessions, idle_timeout_s=args.idle_timeout_s, max_objects=args.max_objects,
    )
    run_server(settings, common.model_spec(args), log_level="warning" if getattr(args, "quiet", False) else "info")
    return common.EXIT_OK
