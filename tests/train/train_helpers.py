"""What the ``sam2kit train`` tests share: a small synthetic data set, the mini model at 128 px, and
runs of the command in this process (fast) or in a child process (signals, torchrun)."""

from __future__ import annotations

import atexit
import csv
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest
import torch

from sam2kit.cli import main

#: The mini preset at a test-sized input: about 25 ms per decoder round trip on one CPU core.
MINI = ["--config", "sam2kit-mini", "--image-size", "128"]
SRC = Path(__file__).resolve().parents[2] / "src"


@pytest.fixture(scope="module")
def single_thread() -> Iterator[None]:
    """Torch on one thread during a test module. These models are small: a second thread gains
    little, and on a machine whose cores are busy, threads that wait for each other slow a step
    50-100x. Module-scoped, so that module-scoped runs use it too (and every run of a module has
    the same thread count: results that are compared exactly must come from the same kernels)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@cache
def synthetic_data() -> Path:
    """16 still scenes and 4 clips of 6 frames, 128 px (written once per session)."""
    from sam2kit.synthetic import write_synthetic_dataset

    root = Path(tempfile.mkdtemp(prefix="sam2kit-train-data-"))
    atexit.register(shutil.rmtree, root, True)
    write_synthetic_dataset(root, num_images=16, num_clips=4, frames=6, size=128, seed=0)
    return root


def train_cli(*args: str | Path) -> int:
    """``sam2kit train ARGS -q`` in this process; returns the exit code."""
    return main(["train", *map(str, args), "-q"])


def child_env() -> dict[str, str]:
    """Environment of a child ``sam2kit`` process: this source tree first, one thread per process."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(SRC), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["OMP_NUM_THREADS"] = "1"
    return env


def child(args: list[str | Path], **kwargs: object) -> subprocess.Popen:
    """``python -m sam2kit train ARGS -q`` in a child process (stdout / stderr piped)."""
    command = [sys.executable, "-m", "sam2kit", "train", *map(str, args), "-q"]
    return subprocess.Popen(command, env=child_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            **kwargs)  # type: ignore[call-overload]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def log_rows(out: Path, kind: str = "train") -> list[dict[str, str]]:
    with open(out / "log.csv", newline="", encoding="utf-8") as f:
        return [row for row in csv.DictReader(f) if row["kind"] == kind]


def weights(path: Path) -> dict[str, torch.Tensor]:
    """The state dict of an official-layout file (``{"model": ...}``) or of a ``last.ckpt``."""
    return torch.load(path, map_location="cpu", weights_only=True)["model"]


def max_weight_difference(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert set(a) == set(b), f"different keys: {sorted(set(a) ^ set(b))[:5]}"
    return max(float((a[k].double() - b[k].double()).abs().max()) for k in a)
