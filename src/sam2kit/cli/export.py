"""``sam2kit export onnx``: a model's graphs as ONNX files plus a JSON manifest (job:
:func:`sam2kit.export.export_onnx`)."""

from __future__ import annotations

import argparse

from . import common

__all__ = ["add_parser", "run"]

#: Library argument -> option, where the option is not ``--`` + the argument with dashes.
OPTION_NAMES = {"out_dir": "--out"}

_DESCRIPTION = """\
Export a model to ONNX, for onnxruntime and other ONNX runtimes. Needs the optional
dependencies: pip install 'sam2kit[export]'.

Written into --out DIR, atomically (a temporary folder renamed at the end; a previous export
there is replaced, a folder holding other files is refused):
  image_encoder.onnx      image (1, 3, S, S), normalised -> high_res_feat0, high_res_feat1,
                          image_embed (raw: the no-memory embedding is in the manifest)
  prompt_decoder.onnx     image features + points / box corners (dynamic number of objects and
                          points) + optional mask -> masks, IoU, object score, object pointer
  memory_attention.onnx   frame features + memories (dynamic number of memories, pointers and
                          objects) -> memory-conditioned features
  memory_encoder.onnx     frame features + predicted masks (dynamic objects) -> memories
  manifest.json           preset, image size, opset, every graph's inputs and outputs, the
                          constants and the model config
A JSON summary goes to stdout. The export runs on the CPU in float32 (--device and --precision
only choose how the checkpoint is loaded).
"""

_EXAMPLES = """\
examples:
  sam2kit export onnx --checkpoint sam2.1_hiera_tiny.pt --out sam2.1_tiny_onnx/
  sam2kit export onnx --checkpoint facebook/sam2.1-hiera-large --out large_onnx/ --check
"""


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """``sam2kit export onnx --checkpoint ... --out DIR``."""
    parser = subparsers.add_parser(
        "export",
        help="export a model for other runtimes (ONNX)",
        description="Export a model for other runtimes.",
        formatter_class=common.HelpFormatter,
    )
    formats = parser.add_subparsers(dest="format", metavar="FORMAT", title="formats")
    formats.required = True
    onnx = formats.add_parser(
        "onnx",
        help="four ONNX graphs and a JSON manifest",
        description=_DESCRIPTION,
        epilog=_EXAMPLES,
        formatter_class=common.HelpFormatter,
    )
    onnx.add_argument("--out", "-o", metavar="DIR", required=True, help="output folder (created if missing)")
    onnx.add_argument(
        "--opset", metavar="N", type=common.int_at_least(18), default=18,
        help="ONNX opset of the graphs, at least 18 (default 18)",
    )
    onnx.add_argument(
        "--check", action="store_true", dest="check_graphs",
        help="run each graph with onnxruntime against the torch model and report the largest difference",
    )
    common.add_model_options(onnx)
    common.add_output_options(onnx)
    onnx.set_defaults(handler=run, option_names=OPTION_NAMES)
    return parser


def run(args: argparse.Namespace) -> int:
    """Handler of ``sam2kit export onnx``: export, print a JSON summary on stdout."""
    from ..export import check_export_target, export_onnx, read_manifest, require_onnx
    from ..model_spec import load_model

    require_onnx()  # before the model is loaded
    if args.check_graphs:
        require_onnx("onnxruntime")
    check_export_target(args.out)
    loaded = load_model(common.model_spec(args))
    out_dir = export_onnx(loaded.model, args.out, opset=args.opset)
    manifest = read_manifest(out_dir)
    summary = {
        "out": str(out_dir),
        "model": loaded.to_json(),
        "opset": manifest["opset"],
        "files": sorted(entry["file"] for entry in manifest["graphs"].values()) + ["manifest.json"],
    }
    if args.check_graphs:
        from ..export.check import check_export

        summary["max_abs_difference"] = check_export(loaded.model, out_dir)
    common.write_json(summary)
    return common.EXIT_OK
