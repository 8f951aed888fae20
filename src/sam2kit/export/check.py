"""The onnxruntime check of an export: each graph against the torch modules it came from."""

from __future__ import annotations

import copy
import os

import numpy as np
import torch

from ..modeling.sam2 import SAM2Model
from .graphs import GRAPHS
from .runtime import load_sessions

__all__ = ["check_export"]


@torch.no_grad()
def check_export(model: SAM2Model, export_dir: str | os.PathLike, *, seed: int = 0,
                 num_threads: int | None = None) -> dict[str, float]:
    """Run every graph of the export in ``export_dir`` with onnxruntime and the same graph in
    torch (from ``model``, in float32 on the CPU) on seeded random inputs of the example sizes;
    returns graph name -> the largest absolute difference over its outputs.

    Raises:
        MissingExportDependency: onnxruntime is not installed.
    """
    _, sessions = load_sessions(export_dir, num_threads)
    source = copy.deepcopy(model).float().cpu().eval()
    differences: dict[str, float] = {}
    for graph_type in GRAPHS:
        graph = graph_type(source).eval()
        torch.manual_seed(seed)
        inputs = graph.example_inputs()
        expected = graph(*inputs)
        expected = (expected,) if isinstance(expected, torch.Tensor) else expected
        feeds = {name: value.numpy() for name, value in zip(graph.input_names, inputs, strict=True)}
        actual = sessions[graph.name].run(list(graph.output_names), feeds)
        differences[graph.name] = max(
            float(np.abs(want.numpy() - got).max()) for want, got in zip(expected, actual, strict=True)
        )
    return differences
