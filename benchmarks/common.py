"""Shared helpers of the side-by-side benchmarks (sam2kit vs the reference ``sam2`` package).

Both sides load the same seeded random checkpoint, written once in the official layout
(``{"model": state_dict}``) by the reference's own builder, so they run the same computation.
Timings are medians after warm-up; peak memory is the process's peak RSS, so each side runs in
its own worker process (see ``worker.py``).
"""

from __future__ import annotations

import json
import os
import platform
import resource
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

#: Width x height of the benchmark image (the astronaut of scikit-image, resized).
BENCH_IMAGE_WH = (1024, 768)
_SIZE_LETTERS = {"tiny": "t", "small": "s", "base_plus": "b+", "large": "l"}


# ---------------------------------------------------------------------------- timing and memory
@dataclass
class Timing:
    """Wall-clock seconds of each measured run (warm-up runs excluded)."""

    runs: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.runs)

    @property
    def spread(self) -> tuple[float, float]:
        return min(self.runs), max(self.runs)

    def to_json(self) -> dict[str, Any]:
        return {"median_s": self.median, "min_s": self.spread[0], "max_s": self.spread[1], "runs_s": self.runs}


def time_call(
    fn: Callable[[], Any], *, repeats: int = 5, warmup: int = 1, sync: Callable[[], None] | None = None
) -> Timing:
    """Run ``fn`` ``warmup`` times untimed, then ``repeats`` times timed (median-of-N).

    ``sync`` (e.g. ``torch.cuda.synchronize``) is called before each clock read so that
    asynchronous GPU work is counted.
    """
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    for _ in range(warmup):
        fn()
    return Timing([time_once(fn, sync) for _ in range(repeats)])


# ---------------------------------------------------------------------------- worker processes
class Worker:
    """One benchmark side in its own process, driven by JSON lines over its stdin / stdout.

    Each side keeps its own peak RSS, thread pools and caches. The worker script calls
    :func:`open_channel` first, builds its model, then :func:`serve`; its stderr is inherited.
    """

    def __init__(self, name: str, command: Sequence[str], *, env: dict[str, str] | None = None,
                 cwd: str | Path | None = None) -> None:
        import subprocess

        self.name = name
        self.process = subprocess.Popen(list(command), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        env=env, cwd=cwd, text=True, bufsize=1)
        self.hello = self._read()

    def _read(self) -> dict[str, Any]:
        line = self.process.stdout.readline() if self.process.stdout else ""
        if not line:
            code = self.process.wait()
            raise RuntimeError(f"benchmark worker {self.name} exited with code {code} (see its stderr above)")
        reply = json.loads(line)
        if "error" in reply:
            raise RuntimeError(f"benchmark worker {self.name} failed: {reply['error']}")
        return reply

    def call(self, op: str, **arguments: Any) -> dict[str, Any]:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps({"op": op, **arguments}) + "\n")
        self.process.stdin.flush()
        return self._read()

    def close(self) -> None:
        if self.process.poll() is None:
            try:
                self.call("quit")
            except (RuntimeError, OSError, ValueError):
                pass
            try:
                self.process.wait(timeout=30)
            except Exception:
                self.process.kill()


def open_channel() -> Any:
    """Worker side: the protocol stream (the real stdout); library prints are sent to stderr."""
    channel = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    return channel


def serve(channel: Any, handlers: dict[str, Callable[..., dict[str, Any]]], hello: dict[str, Any]) -> None:
    """Worker side: send ``hello``, then answer ``{"op": name, ...}`` lines until ``quit``."""
    import traceback

    channel.write(json.dumps(hello) + "\n")
    for line in sys.stdin:
        request = json.loads(line)
        op = request.pop("op")
        if op == "quit":
            channel.write("{}\n")
            return
        try:
            reply = handlers[op](**request)
        except Exception as error:  # reported to the parent, which stops
            traceback.print_exc()
            reply = {"error": f"{op}: {type(error).__name__}: {error}"}
        channel.write(json.dumps(reply) + "\n")


def time_once(fn: Callable[[], Any], sync: Callable[[], None] | None = None) -> float:
    """Seconds of one call of ``fn`` (``sync`` before reading the clocks, for GPU work)."""
    if sync is not None:
        sync()
    started = time.perf_counter()
    fn()
    if sync is not None:
        sync()
    return time.perf_counter() - started


def time_interleaved(workers: Sequence[Worker], op: str, *, repeats: int, warmup: int = 1,
                     arguments: dict[str, Any] | None = None) -> dict[str, Timing]:
    """Time ``op`` (called with ``arguments``) on every worker, alternating the sides run by run
    (A B, B A, ...), so that a change of machine load during the benchmark hits every side alike.
    The op replies ``{"seconds"}``."""
    arguments = arguments or {}
    for _ in range(warmup):
        for worker in workers:
            worker.call(op, **arguments)
    timings = {worker.name: Timing() for worker in workers}
    for index in range(repeats):
        for worker in workers if index % 2 == 0 else list(reversed(workers)):
            timings[worker.name].runs.append(float(worker.call(op, **arguments)["seconds"]))
    return timings


def peak_rss_mib() -> float:
    """Peak resident set size of this process so far, in MiB (``ru_maxrss``: KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def current_rss_mib() -> float | None:
    """Current resident set size in MiB (psutil if installed, else /proc on Linux, else None)."""
    try:
        import psutil

        return psutil.Process().memory_info().rss / 2**20
    except ImportError:
        pass
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return None


# ---------------------------------------------------------------------------- machine
def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info(threads: int | None = None, device: str = "cpu") -> dict[str, Any]:
    """CPU model, cores, memory, versions and thread settings, for the results file."""
    import torch

    info: dict[str, Any] = {
        "cpu": cpu_model(),
        "logical_cores": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": threads if threads is not None else torch.get_num_threads(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),  # AVX2 / AVX512 ...: which kernels torch runs
        "device": device,
    }
    try:
        info["memory_gib"] = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        pass
    if device.startswith("cuda") and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(device)
    try:
        from importlib.metadata import version

        info["sam2_reference"] = version("sam2")
    except Exception:
        info["sam2_reference"] = None
    info["load_average"] = os.getloadavg() if hasattr(os, "getloadavg") else None
    return info


def set_threads(threads: int) -> None:
    """Intra-op threads of torch (and of the OpenMP / BLAS pools started after this call)."""
    import torch

    for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[variable] = str(threads)
    torch.set_num_threads(threads)


# ---------------------------------------------------------------------------- weights and models
def reference_config_file(config: str) -> str:
    """``sam2.1_hiera_tiny`` -> ``configs/sam2.1/sam2.1_hiera_t.yaml`` (the reference's config names)."""
    version, _, size = config.partition("_hiera_")
    if version not in ("sam2", "sam2.1") or size not in _SIZE_LETTERS:
        raise ValueError(f"unknown config {config!r}; expected sam2[.1]_hiera_{{{','.join(_SIZE_LETTERS)}}}")
    return f"configs/{version}/{version}_hiera_{_SIZE_LETTERS[size]}.yaml"


def seeded_checkpoint(config: str, folder: str | Path, seed: int = 0, noise: float = 0.01) -> Path:
    """The seeded random checkpoint of ``config`` (built by the reference, then ``noise`` * N(0, 1)
    added to every parameter so no mask decision sits on a knife edge), written once to ``folder``.

    Parameter shapes do not depend on the model's image size, so one file serves every size.
    """
    import torch

    path = Path(folder) / f"{config}_seed{seed}.pt"
    if path.is_file():
        return path
    from sam2.build_sam import build_sam2

    torch.manual_seed(seed)
    model = build_sam2(reference_config_file(config), ckpt_path=None, device="cpu")
    generator = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for param in model.parameters():
            param.add_(noise * torch.randn(param.shape, generator=generator, dtype=param.dtype))
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    torch.save({"model": model.state_dict()}, temporary)
    os.replace(temporary, path)
    return path


def build_reference_model(config: str, checkpoint: str | Path, image_size: int, device: str) -> Any:
    from sam2.build_sam import build_sam2

    overrides = [f"++model.image_size={image_size}"]
    return build_sam2(reference_config_file(config), ckpt_path=str(checkpoint), device=device,
                      hydra_overrides_extra=overrides)


def patch_reference_dtype(predictor: Any) -> None:
    """Cast the reference video predictor's stored bf16 memories to the query dtype before memory
    attention. It relies on CUDA autocast for that; in fp32 on the CPU a frame whose memories are all
    bf16 (no object pointer in the concat to promote them) fails otherwise (see shared/REFERENCE.md).
    Where its concat already promoted them to fp32, as on every frame with a pointer, it is a no-op."""
    original = predictor.memory_attention.forward

    def forward(curr, memory, curr_pos=None, memory_pos=None, num_obj_ptr_tokens=0):  # type: ignore[no-untyped-def]
        dtype = curr[0].dtype if isinstance(curr, list) else curr.dtype
        return original(curr=curr, memory=memory.to(dtype), curr_pos=curr_pos, memory_pos=memory_pos.to(dtype),
                        num_obj_ptr_tokens=num_obj_ptr_tokens)

    predictor.memory_attention.forward = forward


def build_sam2kit_model(config: str, checkpoint: str | Path, image_size: int, device: str) -> Any:
    from sam2kit.build import build_model
    from sam2kit.config import get_config

    return build_model(get_config(config).replace(image_size=image_size), checkpoint=checkpoint, device=device)


def bench_image(width_height: tuple[int, int] = BENCH_IMAGE_WH) -> np.ndarray:
    """scikit-image's astronaut resized (bilinear) to ``width_height``: ``(H, W, 3)`` uint8."""
    from PIL import Image
    from skimage import data

    return np.array(Image.fromarray(data.astronaut()).resize(width_height, Image.BILINEAR))


# ---------------------------------------------------------------------------- results
@dataclass
class Row:
    """One line of a side-by-side table: seconds (or MiB) for each side."""

    figure: str
    sam2kit: float
    reference: float
    unit: str = "s"

    @property
    def ratio(self) -> float:
        """reference / sam2kit: > 1 means sam2kit is faster (or smaller)."""
        return self.reference / self.sam2kit if self.sam2kit else float("nan")


def _format(value: float, unit: str) -> str:
    if unit == "s":
        return f"{value * 1000:.1f} ms" if value < 1 else f"{value:.2f} s"
    return f"{value:,.0f} {unit}"


def markdown_table(rows: Sequence[Row]) -> str:
    lines = ["| figure | sam2kit | reference | reference / sam2kit |", "|---|---:|---:|---:|"]
    for row in rows:
        lines.append(f"| {row.figure} | {_format(row.sam2kit, row.unit)} | {_format(row.reference, row.unit)} "
                     f"| {row.ratio:.2f}x |")
    return "\n".join(lines)


def write_results(out_dir: str | Path, name: str, rows: Sequence[Row], payload: dict[str, Any]) -> tuple[Path, Path]:
    """Write ``<name>.md`` (title, machine, table) and ``<name>.json`` (everything) into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    machine = payload.get("machine", {})
    header = (
        f"# {name}\n\n"
        f"{machine.get('cpu', '?')}, {machine.get('logical_cores', '?')} logical cores, "
        f"{machine.get('torch_threads', '?')} torch threads, device {machine.get('device', '?')}; "
        f"torch {machine.get('torch', '?')}, reference sam2 {machine.get('sam2_reference', '?')}."
    )
    if machine.get("load_average"):
        header += f" Load average at the end: {machine['load_average'][0]:.1f}."
    header += "\n\n"
    md_path, json_path = out / f"{name}.md", out / f"{name}.json"
    for path, text in (
        (md_path, header + markdown_table(rows) + "\n"),
        (json_path, json.dumps({**payload, "rows": [{**asdict(r), "ratio": r.ratio} for r in rows]}, indent=2) + "\n"),
    ):
        temporary = path.with_name(f".{path.name}.tmp")
        temporary.write_text(text)
        os.replace(temporary, path)
    return md_path, json_path
