"""ONNX export: a model's four graphs (image encoder, prompt decoder, memory attention, memory
encoder) with a JSON manifest, and :class:`OnnxImagePredictor`, which runs an export with
onnxruntime alone.

Needs the optional ``export`` extra (``pip install 'sam2kit[export]'``: onnx, onnxscript,
onnxruntime); without it the functions raise :class:`MissingExportDependency` saying so.
"""

from __future__ import annotations

from .graphs import GRAPHS, ImageEncoderGraph, MemoryAttentionGraph, MemoryEncoderGraph, PromptDecoderGraph
from .manifest import MANIFEST_NAME, read_manifest
from .onnx_export import DEFAULT_OPSET, MissingExportDependency, check_export_target, export_onnx, require_onnx
from .runtime import OnnxImagePredictor, OnnxModel, load_sessions

__all__ = [
    "DEFAULT_OPSET",
    "GRAPHS",
    "MANIFEST_NAME",
    "ImageEncoderGraph",
    "MemoryAttentionGraph",
    "MemoryEncoderGraph",
    "MissingExportDependency",
    "OnnxImagePredictor",
    "OnnxModel",
    "PromptDecoderGraph",
    "check_export_target",
    "export_onnx",
    "load_sessions",
    "read_manifest",
    "require_onnx",
]
