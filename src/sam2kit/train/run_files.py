"""The files of a run folder and how they are written: ``last.ckpt`` (resumable state, atomic),
``model.pt`` (official layout), ``log.csv`` (one row per step and per validation), and the
SIGINT / SIGTERM handling that lets a run stop between steps with a fresh ``last.ckpt``.

``last.ckpt`` is a plain ``torch.save`` dict readable with ``weights_only=True``: ``format``,
``run_config`` (see :meth:`TrainOptions.run_config`), ``step`` (optimizer steps done), ``model``
(the state dict, LoRA adapters unmerged), ``optimizer``, ``grad_scaler``, ``rng`` (torch's CPU and
CUDA generator states of every process), ``validation`` (the latest figures).
"""

from __future__ import annotations

import csv
import math
import signal
import threading
from collections.abc import Mapping
from pathlib import Path
from types import FrameType
from typing import Any

import torch

from ..io.atomic import atomic_path

__all__ = [
    "LAST_CHECKPOINT",
    "FINAL_MODEL",
    "LOG_FILE",
    "RUN_FILE",
    "CHECKPOINT_FORMAT",
    "RunConfigError",
    "save_torch",
    "load_last",
    "rng_state",
    "set_rng_state",
    "LogWriter",
    "StopSignals",
]

LAST_CHECKPOINT, FINAL_MODEL, LOG_FILE, RUN_FILE = "last.ckpt", "model.pt", "log.csv", "run.json"
CHECKPOINT_FORMAT = "sam2kit-train/1"

LOG_COLUMNS = (
    "kind", "step", "epoch", "loss", "mask", "dice", "iou", "object_score", "lr", "encoder_lr",
    "grad_norm", "objects", "samples_per_s", "val_miou_click", "val_miou_box", "val_j_and_f",
)


class RunConfigError(ValueError):
    """A run folder cannot be used as asked (resuming another run's configuration, an existing run
    without ``--resume``, ...); the message is one line naming the file."""


def save_torch(path: Path, payload: Any) -> None:
    """``torch.save`` to ``path`` atomically: a reader sees the old file or the new one, whole."""
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def _differences(saved: Mapping[str, Any], current: Mapping[str, Any], defaults: Mapping[str, Any]) -> list[str]:
    keys = sorted(set(saved) | set(current))
    return [f"{key}: {saved.get(key, defaults.get(key))!r} there, {current.get(key)!r} now" for key in keys
            if saved.get(key, defaults.get(key)) != current.get(key)]


def load_last(
    path: Path, run_config: Mapping[str, Any], map_location: torch.device, defaults: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Read ``last.ckpt`` and check that it belongs to a run with ``run_config``. An option the
    checkpoint does not record (written by an older sam2kit) counts as its value in ``defaults``.

    Raises:
        RunConfigError: no such file, not a training checkpoint, or another run configuration.
    """
    if not path.is_file():
        raise RunConfigError(f"{path}: not found; nothing to resume (start without --resume)")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # torch raises many types for unreadable files
        raise RunConfigError(
            f"{path}: unreadable ({type(error).__name__}); expected a sam2kit training checkpoint"
        ) from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise RunConfigError(f"{path}: not a sam2kit training checkpoint (expected format {CHECKPOINT_FORMAT})")
    differences = _differences(state.get("run_config", {}), run_config, defaults or {})
    if differences:
        shown = "; ".join(differences[:3]) + (f"; ... ({len(differences)} in all)" if len(differences) > 3 else "")
        raise RunConfigError(
            f"{path}: written by another run configuration ({shown}); expected the same options as that run "
            "to resume it, or another --out for a new run"
        )
    return state


def rng_state(device: torch.device) -> dict[str, torch.Tensor]:
    """This process's torch generator states (CPU, and its CUDA device)."""
    state = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: Mapping[str, torch.Tensor], device: torch.device) -> None:
    torch.set_rng_state(state["cpu"].cpu())
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"].cpu(), device)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.6g}"
    return str(value)


class LogWriter:
    """``log.csv``: a ``train`` row per optimizer step (losses, learning rates, gradient norm,
    throughput) and a ``val`` row per validation; flushed row by row. ``resume_at`` keeps the rows
    of steps up to a resumed checkpoint's and drops later ones (written after it, then lost)."""

    def __init__(self, path: Path, resume_at: int | None = None) -> None:
        self.path = path
        rows: list[dict[str, str]] = []
        if resume_at is not None and path.is_file():
            with open(path, newline="", encoding="utf-8") as f:
                rows = [row for row in csv.DictReader(f) if row.get("step") and int(row["step"]) <= resume_at]
        with atomic_path(path) as tmp:
            with open(tmp, "w", newline="", encoding="utf-8") as f:
                writer = csv.DictWriter(f, fieldnames=LOG_COLUMNS, extrasaction="ignore")
                writer.writeheader()
                writer.writerows(rows)
        self._file = open(path, "a", newline="", encoding="utf-8")  # noqa: SIM115 (closed by close())
        self._writer = csv.DictWriter(self._file, fieldnames=LOG_COLUMNS, extrasaction="ignore")

    def write(self, row: Mapping[str, Any]) -> None:
        self._writer.writerow({key: _cell(row.get(key)) for key in LOG_COLUMNS})
        self._file.flush()

    def close(self) -> None:
        self._file.close()


class StopSignals:
    """While active (a context manager), SIGINT and SIGTERM ask the run to stop after the current
    step (:attr:`requested` names the signal) instead of killing it; a second signal stops at
    once (KeyboardInterrupt; ``last.ckpt``, written atomically, stays valid). Outside the main
    thread it does nothing (Python delivers signals to the main thread only)."""

    def __init__(self) -> None:
        self.requested: str | None = None
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.requested is not None:
            raise KeyboardInterrupt
        self.requested = signal.Signals(signum).name

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: Any) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()
