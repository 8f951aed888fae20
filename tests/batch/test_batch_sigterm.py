"""`sam2kit batch` stopped by SIGTERM halfway, then run again: every item is done exactly once and no
output folder is ever partial. The stopped run is a separate process that joins this process's Ray
with ``--address`` (so the test starts Ray once, and the cluster path is exercised too)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sam2kit.cli import main

ray = pytest.importorskip("ray", reason="sam2kit batch needs Ray: pip install 'sam2kit[batch]'")


def _records(out: Path) -> dict[str, str]:
    """The items' status records. A record is written as a hidden temporary file and renamed into
    place, so the hidden ones are not records and may vanish between listing and reading."""
    folder = out / "_status"
    if not folder.is_dir():
        return {}
    return {p.stem: p.read_text() for p in folder.glob("*.json") if not p.name.startswith(".")}


def _assert_no_partial_output(out: Path) -> None:
    for folder in out.iterdir():
        if folder.is_dir() and not folder.name.startswith("_"):
            names = {p.name for p in folder.iterdir()}
            assert "masks.json" in names or "annotations.json" in names, folder
            assert not any(name.startswith(".") for name in names), folder  # no temporary file


def test_sigterm_halfway_then_rerun_does_each_item_once(batch_data, local_ray, tmp_path, capsys) -> None:
    out = tmp_path / "labels"
    argv = ["batch", str(batch_data.manifest), "--out", str(out), "--workers", "1", "--palette", "-q",
            *batch_data.model_args()]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).parents[2] / "src")}
    address = ray.get_runtime_context().gcs_address
    process = subprocess.Popen([sys.executable, "-m", "sam2kit", *argv, "--address", address], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 180
        while len(_records(out)) < 4 and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert process.poll() is None, "the run ended before it could be stopped"
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 128 + signal.SIGTERM, stderr
    summary = json.loads(stdout)
    assert summary["interrupted"] == "SIGTERM" and summary["processed"] < 20
    _assert_no_partial_output(out)
    before = _records(out)
    assert 4 <= len(before) < 20

    assert ray.is_initialized()  # the other driver left the cluster running
    capsys.readouterr()
    assert main(argv) == 1
    summary = json.loads(capsys.readouterr().out)
    after = _records(out)
    assert (summary["ok"], summary["failed"], summary["interrupted"]) == (18, 2, None)
    assert summary["processed"] == 20 - len(before) and summary["skipped"] == len(before)
    assert all(after[item_id] == text for item_id, text in before.items())  # not run again
    assert len({json.loads(text)["run"] for text in after.values()}) == 2
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith("_")) == sorted(batch_data.ok_ids)
    assert not (out / "_tmp").exists()
    _assert_no_partial_output(out)
