"""How close to the hardware a model runs: the machine's large-GEMM rate, FLOP counts, and a
per-stage profile of one video frame.

FLOPs are counted with ``torch.utils.flop_counter`` (one multiply-add = 2 FLOPs). PyTorch's
counter knows the CUDA attention kernels but not the CPU one (``_scaled_dot_product_flash_attention
_for_cpu``), so :func:`count_flops` registers a formula for it: ``4 * B * heads * Nq * Nk * D``
(the two matmuls of attention; the softmax is not counted, as for the GPU kernels).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any

import torch
from torch import nn

#: Model stages timed by :class:`StageProfiler`: stage name -> the sub-modules that make it up.
#: The reference and sam2kit use the same module names (they are the checkpoint's key prefixes).
STAGES = {
    "image encoder": ("image_encoder",),
    "memory attention": ("memory_attention",),
    "memory encoder": ("memory_encoder",),
    "prompt encoder + mask decoder": ("sam_prompt_encoder", "sam_mask_decoder"),
}

_registered = False


def _register_cpu_attention_flops() -> None:
    global _registered
    if _registered:
        return
    from torch.utils.flop_counter import flop_registry, register_flop_formula

    op = getattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu", None)
    if op is not None and op not in flop_registry:

        @register_flop_formula(op)
        def _cpu_attention_flops(query_shape: Any, key_shape: Any, value_shape: Any, *args: Any, **kwargs: Any) -> int:
            batch, heads, num_q, dim = query_shape
            num_k, dim_v = key_shape[-2], value_shape[-1]
            return 2 * batch * heads * num_q * num_k * (dim + dim_v)

    _registered = True


def count_flops(fn: Callable[[], Any]) -> int:
    """FLOPs of one call of ``fn`` (matmuls, convolutions and attention)."""
    from torch.utils.flop_counter import FlopCounterMode

    _register_cpu_attention_flops()
    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


def synchronizer(device: str | torch.device) -> Callable[[], None] | None:
    """``torch.cuda.synchronize`` for a CUDA device, else None (CPU work is synchronous)."""
    return torch.cuda.synchronize if torch.device(device).type == "cuda" else None


def gemm_gflops(device: str = "cpu", dtype: torch.dtype = torch.float32, size: int = 4096,
                repeats: int = 7) -> dict[str, Any]:
    """The machine's large-GEMM rate: median GFLOP/s of ``size``-square matmuls (after 2 warm-ups),
    the yardstick the stages' rates are compared with."""
    sync = synchronizer(device)
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    seconds = []
    with torch.inference_mode():
        for index in range(repeats + 2):
            if sync:
                sync()
            started = time.perf_counter()
            torch.mm(a, b)
            if sync:
                sync()
            if index >= 2:
                seconds.append(time.perf_counter() - started)
    median = statistics.median(seconds)
    return {"size": size, "dtype": str(dtype).removeprefix("torch."), "median_s": median,
            "gflops": 2 * size**3 / median / 1e9, "runs_s": seconds}


class StageProfiler:
    """Times (and, with ``count=True``, counts the FLOPs of) model stages with forward hooks, for
    code that runs the whole model (e.g. one ``propagate_in_video`` step). ``stages`` maps a stage
    name to its modules (see :data:`STAGES`).

    Usage::

        with StageProfiler(side.stage_modules()) as profiler:
            run_one_frame()
        profiler.seconds  # {"image encoder": 2.1, "memory attention": 3.0, ...}
    """

    def __init__(self, stages: dict[str, list[nn.Module]], *, count: bool = False,
                 device: str | torch.device = "cpu") -> None:
        self.stages = stages
        self.count = count
        self.sync = synchronizer(device)
        self.seconds: dict[str, float] = {name: 0.0 for name in stages}
        self.flops: dict[str, int] = {name: 0 for name in stages}
        self.calls: dict[str, int] = {name: 0 for name in stages}
        self._stack = ExitStack()
        self._open: dict[str, Any] = {}
        self._depth: dict[str, int] = {name: 0 for name in stages}  # a stage's module called inside another of it

    def _modules(self) -> Iterator[tuple[str, nn.Module]]:
        for stage, modules in self.stages.items():
            for module in modules:
                yield stage, module

    def __enter__(self) -> StageProfiler:
        if self.count:
            _register_cpu_attention_flops()
        for stage, module in self._modules():
            self._stack.enter_context(_removing(module.register_forward_pre_hook(self._pre(stage))))
            self._stack.enter_context(_removing(module.register_forward_hook(self._post(stage))))
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stack.close()

    def _pre(self, stage: str) -> Callable[..., None]:
        def hook(module: nn.Module, inputs: Any) -> None:
            self._depth[stage] += 1
            if self._depth[stage] > 1:
                return  # already timed by the enclosing call
            if self.count:
                from torch.utils.flop_counter import FlopCounterMode

                counter = FlopCounterMode(display=False)
                counter.__enter__()
                self._open[stage] = counter
            if self.sync:
                self.sync()
            self._open[stage + "/t"] = time.perf_counter()

        return hook

    def _post(self, stage: str) -> Callable[..., None]:
        def hook(module: nn.Module, inputs: Any, output: Any) -> None:
            self._depth[stage] -= 1
            if self._depth[stage] > 0:
                return
            if self.sync:
                self.sync()
            self.seconds[stage] += time.perf_counter() - self._open.pop(stage + "/t")
            self.calls[stage] += 1
            counter = self._open.pop(stage, None)
            if counter is not None:
                counter.__exit__(None, None, None)
                self.flops[stage] += int(counter.get_total_flops())

        return hook


class _removing:
    """Context manager that removes a hook handle on exit."""

    def __init__(self, handle: Any) -> None:
        self.handle = handle

    def __enter__(self) -> Any:
        return self.handle

    def __exit__(self, *exc: Any) -> None:
        self.handle.remove()
