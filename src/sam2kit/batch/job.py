"""The batch run on Ray: a pool of actors, each loading the model once, fed one item at a time.

:func:`run_batch` reads the manifest, leaves out the items already done (and, unless
``retry_failed``, those that failed before), and hands the rest to ``workers`` Ray actors. Without
``address`` (and with no Ray already running in this process) Ray starts in-process on this
machine and stops at the end; with ``address`` (``"auto"``, ``"ray://head:10001"``) the run joins
that cluster, whose workers must see the same files (manifest folder and ``OUT``).

SIGTERM or Ctrl-C stops the run: no new item starts, the actors are killed, items in progress
leave only folders under ``OUT/_tmp/`` (removed by the next run), and the summary says
``"interrupted"``. Every output folder is complete: see :mod:`sam2kit.batch.item`.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import signal
import sys
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ArgumentError
from ..model_spec import ModelSpec
from .item import TMP_DIR, ItemOptions, error_record, item_state, record_path
from .manifest import BatchItem, load_manifest
from .worker import ItemWorker

__all__ = ["SUMMARY_FILE", "BatchSummary", "run_batch"]

logger = logging.getLogger(__name__)

SUMMARY_FILE = "_summary.json"
RAY_MISSING = "sam2kit batch needs Ray: pip install 'sam2kit[batch]'  (or pip install 'ray>=2.40')"


@dataclass
class BatchSummary:
    """The outcome of :func:`run_batch` (also written to ``OUT/_summary.json``).

    ``ok`` / ``failed`` count every item of the manifest by its state at the end (done in this run
    or before); ``processed`` the items run now, ``skipped`` those left as they were.
    """

    manifest: str
    out: str
    items: int
    ok: int = 0
    failed: int = 0
    processed: int = 0
    skipped: int = 0
    seconds: float = 0.0
    workers: int = 0
    interrupted: str | None = None  # the signal that stopped the run ("SIGTERM", "SIGINT")
    errors: list[dict[str, str]] = field(default_factory=list)

    @property
    def items_per_minute(self) -> float:
        return 60.0 * self.processed / self.seconds if self.seconds > 0 else 0.0

    def to_json(self) -> dict[str, Any]:
        return {"manifest": self.manifest, "out": self.out, "items": self.items, "ok": self.ok,
                "failed": self.failed, "processed": self.processed, "skipped": self.skipped,
                "not_done": self.items - self.ok - self.failed, "workers": self.workers,
                "seconds": round(self.seconds, 3), "items_per_minute": round(self.items_per_minute, 2),
                "interrupted": self.interrupted, "errors": self.errors}


class _StopSignal:
    """SIGTERM / SIGINT set a flag that the dispatch loop checks (the main thread only)."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> _StopSignal:
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGTERM, signal.SIGINT):
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        self.signum = signum

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ImportError(RAY_MISSING) from None
    return ray


def _start_ray(ray: Any, address: str | None, num_cpus: int) -> bool:
    """Connect to (or start) Ray; True when this call started it (and must stop it)."""
    if ray.is_initialized():
        return False
    quiet = {"include_dashboard": False, "log_to_driver": False, "logging_level": logging.WARNING}
    if address is None:
        ray.init(num_cpus=num_cpus, **quiet)
    else:
        ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING)
    return True


def _check_checkpoint(spec: ModelSpec) -> None:
    """On this machine a missing checkpoint file is told before Ray starts (on a cluster the
    workers' files may differ from the driver's, so they check)."""
    from ..model_spec import checkpoint_kind

    checkpoint_kind(spec.checkpoint)


def _gpus_per_worker(ray: Any, spec: ModelSpec, given: float | None) -> float:
    """Ray hides GPUs from actors that do not reserve one, so a CUDA model needs a reservation."""
    if given is not None:
        return given
    device = None if spec.device is None else str(spec.device)
    if device is None:
        return 1.0 if ray.cluster_resources().get("GPU", 0) > 0 else 0.0
    return 1.0 if device.startswith("cuda") else 0.0


def _plan(items: list[BatchItem], out: Path, retry_failed: bool) -> tuple[list[BatchItem], dict[str, str]]:
    """The items to run now, and every item's state before the run."""
    states = {item.id: item_state(out, item) for item in items}
    pending = [item for item in items if states[item.id] == "todo" or (retry_failed and states[item.id] == "error")]
    return pending, states


def run_batch(
    manifest: str | Path,
    out_dir: str | Path,
    *,
    model: ModelSpec | None = None,
    workers: int = 1,
    address: str | None = None,
    retry_failed: bool = False,
    options: ItemOptions | None = None,
    cpus_per_worker: float = 1.0,
    gpus_per_worker: float | None = None,
    show_progress: bool = True,
) -> BatchSummary:
    """Run every item of ``manifest`` that is not done yet; write ``OUT/<id>/``, the records and
    ``OUT/_summary.json``.

    Args:
        manifest: a JSONL (or ``.csv``) manifest; see :mod:`sam2kit.batch.manifest`.
        out_dir: output folder (created).
        model: the model each worker loads once (default ``ModelSpec()``).
        workers: Ray actors, each with ``cpus_per_worker`` CPUs and ``gpus_per_worker`` GPUs.
        address: a Ray cluster to join (``"auto"``, ``"ray://host:10001"``); ``None``: start Ray here.
        retry_failed: also rerun the items that failed before.
        gpus_per_worker: ``None``: 1 when the model's device is CUDA (named, or the default while the
            cluster has GPUs), else 0.
        options: extra outputs per item (palette PNGs, overlays).
        show_progress: a progress bar on stderr (items done / failed / items per minute).
    Returns:
        a :class:`BatchSummary`; a broken item is counted in it, not raised.
    Raises:
        FileNotFoundError / ManifestError: the manifest. ArgumentError: bad numbers, an output path
        that is a file. ModelSpecError: a checkpoint that is neither a file nor a hub id (local runs).
        ImportError: Ray is not installed. RuntimeError: the workers cannot load the model.
    """
    from ..io.atomic import save_json
    from ..pipelines.common import check_out_dir

    if workers < 1:
        raise ArgumentError(f"workers must be >= 1, got {workers}", argument="workers")
    if cpus_per_worker <= 0 or (gpus_per_worker is not None and gpus_per_worker < 0):
        raise ArgumentError(f"cpus_per_worker must be > 0 and gpus_per_worker >= 0, got {cpus_per_worker}, "
                            f"{gpus_per_worker}", argument="cpus_per_worker")
    items = load_manifest(manifest)
    out = check_out_dir(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(out / TMP_DIR, ignore_errors=True)  # folders of items a killed run left unfinished
    pending, states = _plan(items, out, retry_failed)
    summary = BatchSummary(manifest=str(manifest), out=str(out), items=len(items), skipped=len(items) - len(pending))
    started = time.perf_counter()
    if pending:
        ray = _import_ray()
        run_id = uuid.uuid4().hex[:12]
        workers = min(workers, len(pending))
        summary.workers = workers
        logger.info("%d item(s) to run (%d done or skipped) on %d worker(s)", len(pending), summary.skipped, workers)
        spec = model or ModelSpec()
        if address is None:
            _check_checkpoint(spec)
        owns_ray = _start_ray(ray, address, max(1, int(round(workers * cpus_per_worker))))
        try:
            gpus = _gpus_per_worker(ray, spec, gpus_per_worker)
            with _StopSignal() as stop:
                _dispatch(ray, pending, out, spec, options or ItemOptions(), run_id, summary,
                          stop, workers, cpus_per_worker, gpus, show_progress)
        finally:
            if owns_ray:
                ray.shutdown()
        with contextlib.suppress(OSError):
            (out / TMP_DIR).rmdir()  # left only when not empty (a worker died mid-item)
    summary.seconds = time.perf_counter() - started
    _count(items, out, summary)
    save_json(out / SUMMARY_FILE, summary.to_json())
    return summary


def _count(items: list[BatchItem], out: Path, summary: BatchSummary) -> None:
    from .item import read_record

    summary.ok = summary.failed = 0
    summary.errors = []
    for item in items:
        state = item_state(out, item)
        if state == "ok":
            summary.ok += 1
        elif state == "error":
            summary.failed += 1
            record = read_record(out, item.id) or {}
            summary.errors.append({"id": item.id, "error": str(record.get("error"))})


def _dispatch(ray: Any, pending: list[BatchItem], out: Path, spec: ModelSpec, options: ItemOptions, run_id: str,
              summary: BatchSummary, stop: _StopSignal, workers: int, cpus: float, gpus: float,
              show_progress: bool) -> None:
    """Feed ``pending`` to the actors one item each, until done or stopped."""
    from tqdm.auto import tqdm

    from ..io.atomic import save_json

    actor_class = ray.remote(num_cpus=cpus, num_gpus=gpus)(ItemWorker)
    threads = max(1, int(cpus))

    def new_actor() -> Any:
        return actor_class.remote(spec, str(out), options, threads)

    actors = [new_actor() for _ in range(workers)]
    queue = deque(pending)
    running: dict[Any, tuple[Any, BatchItem]] = {}
    done = failed = 0
    bar = tqdm(total=len(pending), desc="batch", unit="item", file=sys.stderr, disable=not show_progress)
    clock = time.perf_counter()
    try:
        problem = _first_error(ray, actors, stop)
        if problem:
            raise RuntimeError(f"a batch worker could not load the model: {problem}")
        for actor in actors:
            if queue and stop.signum is None:
                item = queue.popleft()
                running[actor.run.remote(item, run_id)] = (actor, item)
        while running and stop.signum is None:
            finished, _ = ray.wait(list(running), num_returns=1, timeout=0.5)
            for ref in finished:
                actor, item = running.pop(ref)
                try:
                    record = ray.get(ref)
                except ray.exceptions.RayError as error:  # the worker failed outside the item's own job
                    died = isinstance(error, ray.exceptions.RayActorError)
                    message = f"{'worker died' if died else 'worker error'}: {str(error).strip().splitlines()[0]}"
                    logger.warning("item %s: %s", item.id, message)
                    record = error_record(item, message, run_id, None)
                    save_json(record_path(out, item.id), record)
                    if died:  # the process is gone (crash, out of memory): carry on with a new one
                        actor = new_actor()
                        actors.append(actor)
                summary.processed += 1
                done, failed = done + (record["status"] == "ok"), failed + (record["status"] != "ok")
                if record["status"] != "ok":
                    logger.warning("item %s failed: %s", item.id, record["error"])
                minutes = (time.perf_counter() - clock) / 60
                bar.set_postfix(ok=done, failed=failed, per_min=f"{summary.processed / max(minutes, 1e-9):.1f}")
                bar.update(1)
                if queue and stop.signum is None:
                    next_item = queue.popleft()
                    running[actor.run.remote(next_item, run_id)] = (actor, next_item)
    finally:
        bar.close()
        if stop.signum is not None:
            summary.interrupted = signal.Signals(stop.signum).name
            logger.warning("stopped by signal %d: %d item(s) in progress abandoned, %d not started", stop.signum,
                           len(running), len(queue))
        for actor in actors:
            ray.kill(actor)


def _first_error(ray: Any, actors: list[Any], stop: _StopSignal) -> str | None:
    """Wait for the actors to load the model; the first load error, if any."""
    refs = [actor.ready.remote() for actor in actors]
    while refs and stop.signum is None:
        finished, refs = ray.wait(refs, num_returns=1, timeout=0.5)
        for ref in finished:
            problem = ray.get(ref)
            if problem:
                return str(problem)
    return None
