"""``sam2kit train`` end to end on the mini model: the loss falls, the run files, exact resume, two
processes equal one with twice the batch, and SIGTERM leaves a usable ``last.ckpt``."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from train_helpers import (  # noqa: F401 (single_thread: a fixture)
    MINI,
    child,
    child_env,
    free_port,
    log_rows,
    max_weight_difference,
    single_thread,
    synthetic_data,
    train_cli,
    weights,
)

from sam2kit.build import build_model
from sam2kit.train.mini import mini_config

pytestmark = pytest.mark.usefixtures("single_thread")

#: A 40-step decoder-only run from scratch (batch 2, validation on 2 held-out images, 4 times).
DECODER_RUN = [*MINI, "--train", "decoder", "--steps", "40", "--batch-size", "2", "--lr", "1e-3", "--seed", "0",
               "--eval-every", "10"]


@pytest.fixture(scope="module")
def straight_run(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Path:
    request.getfixturevalue("single_thread")  # before the run: every run of this module on one thread
    out = tmp_path_factory.mktemp("straight")
    assert train_cli(*DECODER_RUN, "--data", synthetic_data(), "--out", out) == 0
    return out


def test_decoder_loss_falls(straight_run: Path) -> None:
    losses = [float(row["loss"]) for row in log_rows(straight_run)]
    assert len(losses) == 40
    first, last = sum(losses[:10]) / 10, sum(losses[-10:]) / 10
    assert last < 0.7 * first, f"mean loss {first:.3f} over the first 10 steps, {last:.3f} over the last 10"
    # Not only the first step (a random object-score head calls every object absent at first).
    assert last < 0.7 * sum(losses[1:10]) / 9


def test_run_files(straight_run: Path) -> None:
    rows = log_rows(straight_run)
    assert [int(row["step"]) for row in rows] == list(range(1, 41))
    for name in ("mask", "dice", "iou", "object_score", "lr", "grad_norm", "samples_per_s"):
        assert all(row[name] for row in rows), name
    assert float(rows[0]["lr"]) < float(rows[1]["lr"])  # warm-up
    assert float(rows[-1]["lr"]) == pytest.approx(1e-4)  # cosine down to a tenth
    validations = log_rows(straight_run, "val")
    assert [int(row["step"]) for row in validations] == [10, 20, 30, 40]
    assert all(0 <= float(row["val_miou_click"]) <= 1 and row["val_miou_box"] for row in validations)

    run = json.loads((straight_run / "run.json").read_text())
    assert run["status"] == "finished" and run["step"] == 40 and run["seed"] == 0
    assert run["options"]["train"] == "decoder" and run["model"]["config"]["image_size"] == 128
    assert run["data"]["format"] == "images" and run["data"]["train_items"] + run["data"]["val_items"] == 16
    assert set(run["versions"]) >= {"sam2kit", "torch", "python"}

    state = weights(straight_run / "model.pt")
    model = build_model(mini_config().replace(image_size=128), checkpoint=straight_run / "model.pt", device="cpu")
    assert set(state) == set(model.state_dict())  # the official keys, loaded strictly
    last = torch.load(straight_run / "last.ckpt", weights_only=True)
    assert last["step"] == 40 and max_weight_difference(last["model"], state) == 0.0


def test_resume_after_20_steps_equals_40_straight(straight_run: Path, tmp_path: Path) -> None:
    data = synthetic_data()
    assert train_cli(*DECODER_RUN, "--data", data, "--out", tmp_path, "--stop-after", "20") == 0
    assert torch.load(tmp_path / "last.ckpt", weights_only=True)["step"] == 20
    assert not (tmp_path / "model.pt").exists()
    assert train_cli(*DECODER_RUN, "--data", data, "--out", tmp_path, "--resume") == 0
    assert max_weight_difference(weights(tmp_path / "model.pt"), weights(straight_run / "model.pt")) <= 1e-6
    assert [row["loss"] for row in log_rows(tmp_path)] == [row["loss"] for row in log_rows(straight_run)]


def test_two_processes_equal_one_with_twice_the_batch(tmp_path: Path) -> None:
    common = [*MINI, "--data", synthetic_data(), "--steps", "4", "--lr", "1e-3", "--val-max", "0", "-q"]
    torchrun = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
        "--master_port", str(free_port()), "-m", "sam2kit", "train", *map(str, common),
        "--batch-size", "1", "--out", str(tmp_path / "two"),
    ]
    two = subprocess.run(torchrun, env=child_env(), capture_output=True, text=True, timeout=300)
    assert two.returncode == 0, two.stderr[-3000:]
    assert train_cli(*common, "--batch-size", "2", "--out", tmp_path / "one") == 0
    difference = max_weight_difference(weights(tmp_path / "two" / "model.pt"), weights(tmp_path / "one" / "model.pt"))
    assert difference <= 1e-5
    objects = [[row["objects"] for row in log_rows(tmp_path / run)] for run in ("two", "one")]
    assert objects[0] == objects[1]


def test_sigterm_leaves_a_loadable_checkpoint(tmp_path: Path) -> None:
    run = child([*MINI, "--data", synthetic_data(), "--steps", "10000", "--batch-size", "1", "--val-max", "0",
                 "--save-every", "10000", "--out", tmp_path])
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and run.poll() is None:
            if (tmp_path / "log.csv").exists() and len(log_rows(tmp_path)) >= 2:
                break
            time.sleep(0.2)
        run.send_signal(signal.SIGTERM)
        _, stderr = run.communicate(timeout=120)
    finally:
        if run.poll() is None:
            run.kill()
    assert run.returncode == 130, stderr
    assert "continue with --resume" in stderr
    state = torch.load(tmp_path / "last.ckpt", weights_only=True)
    assert state["step"] == len(log_rows(tmp_path)) >= 2
    model = build_model(mini_config().replace(image_size=128), device="cpu")
    model.load_state_dict(state["model"])  # strict: the official keys
    assert json.loads((tmp_path / "run.json").read_text())["status"] == "interrupted"
