"""One batch item, start to finish: run its job into a private folder, move the folder into place,
then write the item's record. Also what a run reads back: which items are done.

Layout of the output folder ``OUT``:

- ``OUT/<id>/``: the item's files (see :func:`run_item_job`); it appears whole or not at all (it is
  written under ``OUT/_tmp/`` and renamed into place);
- ``OUT/_status/<id>.json`` (written after the folder is in place): ``status`` ``"ok"`` or
  ``"error"`` (with ``error``, the message), ``seconds``, ``started`` / ``finished`` (UTC),
  ``sam2kit_version``, ``model``, ``files``, ``fingerprint`` (of the manifest entry), ``run``;
- ``OUT/_tmp/``: folders of items in progress; left over by a killed run, removed by the next.

An item counts as done when its record says ``ok`` for the same manifest entry and its folder
exists; an output folder without a record (a run killed between the two) is redone.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..model_spec import LoadedModel
from .manifest import BatchItem

__all__ = ["ItemOptions", "item_state", "process_item", "read_record", "run_item_job", "sam2kit_version"]

STATUS_DIR, TMP_DIR = "_status", "_tmp"


@dataclass(frozen=True)
class ItemOptions:
    """What every item writes besides ``masks.json``: DAVIS palette PNGs, an overlay; and for videos,
    ``non_overlap``: each pixel to at most one object, the highest-scoring (SAM 2's
    ``non_overlap_masks``; otherwise the objects' masks may overlap and a palette PNG gives such a
    pixel to the higher id)."""

    palette: bool = False
    overlay: bool = False
    non_overlap: bool = False


def sam2kit_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("sam2kit")
    except PackageNotFoundError:
        return "0+unknown"


def _utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def record_path(out: Path, item_id: str) -> Path:
    return out / STATUS_DIR / f"{item_id}.json"


def read_record(out: Path, item_id: str) -> dict[str, Any] | None:
    """The item's record, or ``None`` when there is none (or it is unreadable)."""
    try:
        record = json.loads(record_path(out, item_id).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def item_state(out: Path, item: BatchItem) -> str:
    """``"ok"`` (done), ``"error"`` (failed before) or ``"todo"`` (never run, changed since, or
    interrupted)."""
    record = read_record(out, item.id)
    if record is None or record.get("fingerprint") != item.fingerprint():
        return "todo"
    if record.get("status") == "ok":
        return "ok" if (out / item.id).is_dir() else "todo"
    return "error" if record.get("status") == "error" else "todo"


def run_item_job(item: BatchItem, loaded: LoadedModel, folder: Path, options: ItemOptions) -> list[str]:
    """Run the item's pipeline into ``folder``; returns the files written (relative, sorted).

    Images with prompts: :func:`~sam2kit.pipelines.objects.segment_objects` (``masks.json``,
    ``palette/00000.png``, ``overlay.png``); ``"auto"`` images:
    :func:`~sam2kit.pipelines.auto.segment_everything` (``annotations.json``, an overlay); videos:
    :func:`~sam2kit.pipelines.video.track_video` (``tracks.json``, ``masks/<obj>/<frame>.png`` or
    ``palette/<frame>.png``, ``overlay.mp4``) plus ``masks.json``.
    """
    if item.kind == "image" and item.mode == "auto":
        from ..pipelines.auto import segment_everything

        segment_everything([item.path], folder, model=loaded, show_progress=False, **dict(item.options))
    elif item.kind == "image":
        from ..pipelines.image import Prompt
        from ..pipelines.objects import segment_objects

        per_object = {p.obj_id: Prompt(list(p.points), list(p.labels), p.box, p.mask) for p in item.prompts}
        segment_objects(item.path, per_object, folder, model=loaded, palette=options.palette, overlay=options.overlay)
    else:
        from ..pipelines.objects import video_masks_to_coco
        from ..pipelines.video import FramePrompt, track_video

        per_frame = [FramePrompt(p.frame, p.obj_id, p.points, p.labels, p.box, p.mask) for p in item.prompts]
        track_video(item.path, per_frame, folder, model=loaded, palette=options.palette,
                    overlay=folder / "overlay.mp4" if options.overlay else None, non_overlap=options.non_overlap,
                    show_progress=False)
        video_masks_to_coco(folder)
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def _move_into_place(folder: Path, target: Path, tmp: Path) -> None:
    """Rename ``folder`` to ``target``; an old ``target`` (a stale or previous output) is moved aside
    first and deleted after."""
    old = None
    if target.exists():
        old = tmp / f"{target.name}.{uuid.uuid4().hex[:8]}.old"
        os.replace(target, old)
    os.replace(folder, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def process_item(item: BatchItem, loaded: LoadedModel, out: Path, options: ItemOptions, run_id: str) -> dict[str, Any]:
    """Run one item and record it (never raises for a broken item: the error goes in the record).

    Returns:
        the record written to ``OUT/_status/<id>.json``.
    """
    from ..io.atomic import save_json

    started, clock = _utc_now(), time.perf_counter()
    tmp = out / TMP_DIR
    folder = tmp / f"{item.id}.{uuid.uuid4().hex[:8]}"
    record: dict[str, Any] = {"id": item.id, "kind": item.kind, "mode": item.mode, "source": str(item.path)}
    try:
        folder.mkdir(parents=True)
        files = run_item_job(item, loaded, folder, options)
        _move_into_place(folder, out / item.id, tmp)
        record.update(status="ok", error=None, files=files)
    except Exception as error:  # a broken item is recorded, the run goes on
        shutil.rmtree(folder, ignore_errors=True)
        message = str(error).strip() or type(error).__name__
        record.update(status="error", error=f"{type(error).__name__}: {message}", files=[])
    record.update(
        seconds=round(time.perf_counter() - clock, 3), started=started, finished=_utc_now(),
        sam2kit_version=sam2kit_version(), model=loaded.to_json(), fingerprint=item.fingerprint(), run=run_id,
        worker={"host": os.uname().nodename, "pid": os.getpid()},
    )
    save_json(record_path(out, item.id), record)
    return record


def error_record(item: BatchItem, message: str, run_id: str, model: dict[str, Any] | None) -> dict[str, Any]:
    """The record of an item whose worker died (written by the driver)."""
    return {"id": item.id, "kind": item.kind, "mode": item.mode, "source": str(item.path), "status": "error",
            "error": message, "files": [], "seconds": None, "started": None, "finished": _utc_now(),
            "sam2kit_version": sam2kit_version(), "model": model, "fingerprint": item.fingerprint(), "run": run_id}
