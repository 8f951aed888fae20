"""``manifest.json`` of an ONNX export: which model, which graphs, their inputs and outputs.

The manifest is what a runtime needs besides the graphs: the preset and the input size, the
preprocessing constants, the no-memory embedding (added to a frame's ``image_embed`` where the
tracking loop runs no memory attention), the model config (the tracking loop's options), and for
every graph its file and its inputs and outputs (name, element type, shape; dynamic axes by name).
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import torch

from ..io.atomic import save_json
from ..modeling.sam2 import SAM2Model
from ..predict.transforms import PIXEL_MEAN, PIXEL_STD

__all__ = ["FORMAT", "MANIFEST_NAME", "build_manifest", "is_export_dir", "read_manifest", "write_manifest"]

MANIFEST_NAME = "manifest.json"
#: ``format`` field of the manifest; ``version`` changes when a graph's interface does.
FORMAT = "sam2kit-onnx"
VERSION = 1


def build_manifest(model: SAM2Model, files: dict[str, str], opset: int) -> dict[str, Any]:
    """The manifest of ``model``'s graphs, already written into one folder as ``files``
    (graph name -> file name, next to which the manifest goes); reads their signatures."""
    return {
        "format": FORMAT,
        "version": VERSION,
        "preset": model.config.name,
        "image_size": model.image_size,
        "opset": opset,
        "exporter": f"torch.onnx.export(dynamo=True), torch {torch.__version__.split('+')[0]}",
        "pixel_mean": list(PIXEL_MEAN),
        "pixel_std": list(PIXEL_STD),
        "mask_threshold": 0.0,
        "no_mem_embed": model.no_mem_embed.detach().float().reshape(-1).tolist(),
        "graphs": {name: {"file": file} for name, file in files.items()},  # signatures: write_manifest
        "config": dataclasses.asdict(model.config),
    }


def _describe(values: Any) -> list[dict[str, Any]]:
    import onnx

    described = []
    for value in values:
        tensor = value.type.tensor_type
        shape = [dim.dim_param or dim.dim_value for dim in tensor.shape.dim]
        described.append({"name": value.name, "dtype": onnx.helper.tensor_dtype_to_np_dtype(tensor.elem_type).name,
                          "shape": shape})
    return described


def write_manifest(folder: str | os.PathLike, manifest: dict[str, Any]) -> Path:
    """Complete ``manifest`` with each graph's inputs and outputs, read from its file in ``folder``,
    and write it there (atomically)."""
    import onnx

    folder = Path(folder)
    for entry in manifest["graphs"].values():
        graph = onnx.load(str(folder / entry["file"]), load_external_data=False).graph
        entry["inputs"] = _describe(graph.input)
        entry["outputs"] = _describe(graph.output)
    return save_json(folder / MANIFEST_NAME, manifest)


def read_manifest(folder: str | os.PathLike) -> dict[str, Any]:
    """The manifest of the export in ``folder``.

    Raises:
        FileNotFoundError: no ``manifest.json`` there, or a graph file it names is missing.
        ValueError: not a sam2kit ONNX manifest, or one of another version.
    """
    folder = Path(folder).expanduser()
    path = folder / MANIFEST_NAME
    if not path.is_file():
        raise FileNotFoundError(f"{folder} holds no {MANIFEST_NAME}: not an export of `sam2kit export onnx`")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ValueError(f"{path} is not a readable JSON manifest: {err}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ValueError(f"{path} is not a sam2kit ONNX manifest (format {FORMAT!r} expected)")
    if manifest.get("version") != VERSION:
        raise ValueError(f"{path} has manifest version {manifest.get('version')}; this sam2kit reads version {VERSION}")
    for name, entry in manifest["graphs"].items():
        if not (folder / entry["file"]).is_file():
            raise FileNotFoundError(f"the {name} graph {entry['file']} named by {path} is missing")
    return manifest


def is_export_dir(folder: str | os.PathLike) -> bool:
    """Whether ``folder`` holds a sam2kit ONNX export (its manifest, whatever its version)."""
    path = Path(folder) / MANIFEST_NAME
    try:
        return json.loads(path.read_text(encoding="utf-8")).get("format") == FORMAT
    except (OSError, ValueError, AttributeError):
        return False
