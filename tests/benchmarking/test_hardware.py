"""The benchmark suite's measuring tools (FLOP counts, stage hooks): no timing is asserted."""

from __future__ import annotations

import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root: `benchmarks`

from benchmarks.hardware import STAGES, StageProfiler, count_flops  # noqa: E402
from sam2kit.build import build_model  # noqa: E402
from sam2kit.config import get_config  # noqa: E402


def test_cpu_attention_flops_are_counted() -> None:
    batch, heads, num_q, num_k, dim = 2, 3, 300, 500, 32
    q = torch.randn(batch, heads, num_q, dim)
    k, v = torch.randn(batch, heads, num_k, dim), torch.randn(batch, heads, num_k, dim)
    assert count_flops(lambda: F.scaled_dot_product_attention(q, k, v)) == 4 * batch * heads * num_q * num_k * dim
    a, b = torch.randn(64, 128), torch.randn(128, 32)
    assert count_flops(lambda: a @ b) == 2 * 64 * 128 * 32


def test_stage_profiler_times_and_counts_the_stages() -> None:
    model = build_model(get_config("sam2.1_hiera_tiny").replace(image_size=128), device="cpu")
    stages = {name: [getattr(model, m) for m in modules] for name, modules in STAGES.items()}
    hooks_before = sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for ms in stages.values() for m in ms)
    with torch.inference_mode(), StageProfiler(stages, count=True) as profiler:
        features = model.forward_image(torch.randn(1, 3, 128, 128))
        model.forward_sam_heads(
            model.image_embedding_without_memory(features), high_res_features=features.high_res_features()
        )
    assert profiler.calls["image encoder"] == 1 and profiler.calls["prompt encoder + mask decoder"] == 2
    assert profiler.calls["memory attention"] == 0 and profiler.seconds["memory attention"] == 0
    expected = count_flops(lambda: model.image_encoder(torch.randn(1, 3, 128, 128)))
    assert profiler.flops["image encoder"] == expected > 0
    assert profiler.seconds["image encoder"] > 0
    hooks_after = sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for ms in stages.values() for m in ms)
    assert hooks_after == hooks_before


def test_stage_profiler_times_a_nested_module_of_the_same_stage_once() -> None:
    inner = torch.nn.Linear(8, 8)
    outer = torch.nn.Sequential(inner, torch.nn.Linear(8, 8))
    x = torch.randn(4, 8)
    with torch.inference_mode(), StageProfiler({"stage": [outer, inner]}, count=True) as profiler:
        outer(x)  # inner runs inside outer: one timed call
        inner(x)  # on its own: a second one
    assert profiler.calls["stage"] == 2
    assert profiler.flops["stage"] == 2 * (2 * 4 * 8 * 8) + 2 * 4 * 8 * 8
