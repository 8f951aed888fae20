"""``export_onnx``: a model's four graphs as ONNX files plus ``manifest.json``, written atomically.

The graphs are traced with ``torch.onnx.export(..., dynamo=True)`` (``torch.export`` underneath).
The legacy TorchScript exporter (``dynamo=False``) also runs with torch 2.14, but its trace records
sizes as constants inside reshapes (the memory attention's RoPE split, the decoder's pointer
projection): its graphs fail as soon as the number of objects, points or memories differs from
the example, so the dynamic axes the tracking loop needs only work with the dynamo exporter.
"""

from __future__ import annotations

import contextlib
import copy
import io
import logging
import os
import shutil
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from ..modeling.sam2 import SAM2Model
from ..modeling.transformer import RoPEAttention
from .graphs import GRAPHS
from .manifest import MANIFEST_NAME, build_manifest, is_export_dir, write_manifest

__all__ = [
    "DEFAULT_OPSET",
    "MIN_OPSET",
    "MissingExportDependency",
    "check_export_target",
    "export_onnx",
    "require_onnx",
]

logger = logging.getLogger(__name__)

#: ONNX opset of the exported graphs (the dynamo exporter's own default; onnxruntime >= 1.16 runs it).
DEFAULT_OPSET = 18
#: The exporter writes nothing older (LayerNormalization needs 17; the translation tables start at 18).
MIN_OPSET = 18

_INSTALL_HINT = "pip install 'sam2kit[export]' (onnx, onnxscript and onnxruntime)"


class MissingExportDependency(ImportError):
    """An optional package of the ``export`` extra is not installed."""


def require_onnx(*modules: str) -> None:
    """Raise :class:`MissingExportDependency` naming the install command if any of ``modules``
    (default: what exporting needs, ``onnx`` and ``onnxscript``) cannot be imported."""
    import importlib.util

    missing = [name for name in modules or ("onnx", "onnxscript") if importlib.util.find_spec(name) is None]
    if missing:
        names = ", ".join(missing)
        raise MissingExportDependency(f"ONNX export needs {names}, which is not installed: {_INSTALL_HINT}")


def export_onnx(
    model: SAM2Model,
    out_dir: str | os.PathLike,
    *,
    opset: int = DEFAULT_OPSET,
    graphs: Sequence[str] | None = None,
) -> Path:
    """Export ``model`` (any precision or device; exported in float32 on the CPU) to ``out_dir``:
    ``image_encoder.onnx``, ``prompt_decoder.onnx``, ``memory_attention.onnx``,
    ``memory_encoder.onnx`` (see :mod:`sam2kit.export.graphs`) and ``manifest.json``.

    Everything is written into a hidden temporary folder beside ``out_dir`` and renamed into place
    at the end: ``out_dir`` is either left as it was or holds the complete export. A previous export
    in ``out_dir`` is replaced; a folder holding anything else is refused. ``graphs`` exports
    only the named ones (e.g. ``("image_encoder", "prompt_decoder")`` for still images).

    Returns the path of ``out_dir``.
    Raises:
        MissingExportDependency: onnx / onnxscript are not installed.
        ValueError: an opset below :data:`MIN_OPSET`, an unknown graph name, or a model without the high-resolution
            features (no official config).
        OSError: ``out_dir`` cannot be written (the message names it).
        RuntimeError: the exporter failed on a graph.
    """
    require_onnx()
    if opset < MIN_OPSET:
        raise ValueError(f"opset must be at least {MIN_OPSET}, got {opset}")
    names = [graph_type.name for graph_type in GRAPHS]
    unknown = sorted(set(graphs or ()) - set(names))
    if unknown:
        raise ValueError(f"unknown graph {', '.join(unknown)}; the graphs are {', '.join(names)}")
    if not model.config.use_high_res_features_in_sam:
        raise ValueError("only models with high-resolution features (use_high_res_features_in_sam) can be exported")
    target = check_export_target(out_dir)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    except OSError as err:
        raise OSError(f"cannot write the export to {target}: {err.strerror or err}") from None
    try:
        source = copy.deepcopy(model).float().cpu().eval()
        for module in source.modules():
            if isinstance(module, RoPEAttention):
                module.real_rope = True  # ONNX has no complex numbers
        files: dict[str, str] = {}
        for graph_type in GRAPHS:
            if graphs is None or graph_type.name in graphs:
                files[graph_type.name] = _export_graph(graph_type, source, staging, opset)
        write_manifest(staging, build_manifest(source, files, opset))
        _move_into_place(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def _export_graph(graph_type: Any, source: SAM2Model, staging: Path, opset: int) -> str:
    """Trace one graph into ``staging`` and return its file name."""
    from torch.export import Dim

    # A fresh copy for every trace: the modules cache tensors made during a trace (position
    # encodings), which must not reach the next one.
    graph = graph_type(copy.deepcopy(source)).eval()
    dims: dict[str, Any] = {}
    dynamic_shapes = {
        name: (
            {axis: dims.setdefault(dim, Dim(dim, min=1, max=4096)) for axis, dim in graph.dynamic_axes[name].items()}
            if name in graph.dynamic_axes else None
        )
        for name in graph.input_names
    }
    logger.info("exporting the %s graph", graph.name)
    progress = io.StringIO()
    try:
        # Grad mode stays on: the trunk keys its position-embedding cache on parameter storage,
        # which exists only outside a trace; with gradients recorded it skips the cache.
        with torch.enable_grad(), contextlib.redirect_stdout(progress), warnings.catch_warnings():
            # expected: the position-encoding caches filled during the trace (of a throwaway
            # copy), and shared dims named once in the graph
            warnings.filterwarnings("ignore", message=r".*assigned during export", category=UserWarning)
            warnings.filterwarnings("ignore", message=r".*axis name: \w+ will not be used", category=UserWarning)
            program = torch.onnx.export(
                graph,
                graph.example_inputs(),
                input_names=list(graph.input_names),
                output_names=list(graph.output_names),
                dynamic_shapes=dynamic_shapes,
                opset_version=opset,
                dynamo=True,
            )
    except Exception as err:
        logger.debug("%s", progress.getvalue())
        first_line = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise RuntimeError(f"the ONNX exporter failed on the {graph.name} graph: {first_line}") from err
    logger.debug("%s", progress.getvalue())
    file_name = f"{graph.name}.onnx"
    assert program is not None  # dynamo=True returns the program
    program.save(staging / file_name, external_data=False)
    return file_name


def check_export_target(out_dir: str | os.PathLike) -> Path:
    """Check that ``out_dir`` can receive an export (before any work): a new folder under a
    writable one, an empty folder or a previous export. Returns it as a Path.

    Raises:
        OSError: a file in the way, a folder holding other files, or no write permission.
    """
    target = Path(out_dir).expanduser()
    _check_target(target)
    existing = next(parent for parent in target.parents if parent.exists())
    if not existing.is_dir():
        raise OSError(f"cannot write the export to {target}: {existing} is not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise OSError(f"cannot write the export to {target}: no write permission in {existing}")
    return target


def _check_target(target: Path) -> None:
    """Refuse a target that is a file or a folder holding something other than an export."""
    if target.is_dir():
        if any(target.iterdir()) and not is_export_dir(target):
            raise OSError(
                f"{target} exists and holds other files; give a new or empty folder (a previous "
                f"export, with its {MANIFEST_NAME}, is replaced)"
            )
    elif target.exists():
        raise OSError(f"cannot write the export to {target}: it exists and is not a folder")


def _move_into_place(staging: Path, target: Path) -> None:
    """Rename ``staging`` to ``target``, replacing an empty folder or a previous export."""
    _check_target(target)
    if not target.exists():
        os.replace(staging, target)
        return
    if not any(target.iterdir()):
        target.rmdir()
        os.replace(staging, target)
        return
    previous = target.with_name(f".{target.name}.previous.{os.getpid()}")
    os.replace(target, previous)
    try:
        os.replace(staging, target)
    except BaseException:
        os.replace(previous, target)
        raise
    shutil.rmtree(previous, ignore_errors=True)
