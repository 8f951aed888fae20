"""The recipe's prompt odds and counts and the loss weights as ``sam2kit train`` options: they reach
the prompt simulation and the loss, are checked, and are part of what ``--resume`` compares."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from train_helpers import MINI, log_rows, single_thread, synthetic_data, train_cli  # noqa: F401 (a fixture)

from sam2kit.train.options import TrainOptions
from sam2kit.train.prompts import PromptOptions, plan_prompts
from sam2kit.train.trainer import prompt_options

pytestmark = pytest.mark.usefixtures("single_thread")

VIDEO = [*MINI, "--train", "memory", "--num-frames", "3", "--lr", "1e-3", "--val-max", "0", "--corrections", "1"]


def test_defaults_are_the_official_recipe() -> None:
    options = TrainOptions(data="d", out="o", config="sam2kit-mini")
    assert prompt_options(options) == PromptOptions()
    assert options.loss_weights == (20.0, 1.0, 1.0, 1.0)


def test_prompt_options_shape_the_plans() -> None:
    options = TrainOptions(
        data="d", out="o", config="sam2kit-mini", point_prob=1.0, box_prob=0.0, init_frames=1, correct_frames=1,
        corrections=3, center_click_prob=0.25,
    )
    prompts = prompt_options(options)
    assert prompts.prob_interior_click == 0.25
    generator = torch.Generator().manual_seed(0)
    plans = [plan_prompts(8, prompts, generator) for _ in range(50)]
    assert {plan.kind for plan in plans} == {"point"}  # never a box, never the mask
    assert all(plan.init_cond_frames == [0] and plan.frames_to_correct == [0] for plan in plans)
    assert all(plan.num_correction_points == 3 for plan in plans)
    masks_only = prompt_options(options.replace(point_prob=0.0))
    assert {plan_prompts(8, masks_only, generator).kind for _ in range(20)} == {"mask"}


def test_loss_weights_scale_the_logged_loss(tmp_path: Path) -> None:
    """The same first step (same seed, data and prompts) with every weight doubled logs twice the loss."""
    common = [*VIDEO, "--data", synthetic_data(), "--steps", "1"]
    assert train_cli(*common, "--out", tmp_path / "a") == 0
    assert train_cli(*common, "--loss-weights", "40,2,2,2", "--out", tmp_path / "b") == 0
    (first,), (doubled,) = log_rows(tmp_path / "a"), log_rows(tmp_path / "b")
    assert float(doubled["loss"]) == pytest.approx(2 * float(first["loss"]), rel=1e-5)
    for term in ("mask", "dice", "iou", "object_score"):  # the logged terms are unweighted
        assert float(doubled[term]) == pytest.approx(float(first[term]), rel=1e-5)


@pytest.mark.parametrize(
    ("flag", "value", "expected"),
    [
        ("--point-prob", "1.5", "[0, 1]"),
        ("--box-prob", "-0.1", ">= 0"),
        ("--center-click-prob", "1.01", "[0, 1]"),
        ("--init-frames", "0", ">= 1"),
        ("--correct-frames", "-1", ">= 0"),
        ("--loss-weights", "20,1,1", "4 comma-separated weights"),
        ("--loss-weights", "20,1,x,1", "a number"),
        ("--loss-weights", "0,0,0,0", "not all 0"),
    ],
)
def test_bad_values_are_usage_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flag: str, value: str, expected: str
) -> None:
    assert train_cli(*VIDEO, "--data", tmp_path, "--out", tmp_path / "o", flag, value) == 2
    err = capsys.readouterr().err
    assert flag in err and expected in err and "Traceback" not in err


def test_yaml_names_and_resume(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_file = tmp_path / "run.yaml"
    run_file.write_text("point_prob: 0.9\ninit_frames: 1\nloss_weights: [20, 1, 1, 3]\nsteps: 3\nstop_after: 1\n")
    first = [*VIDEO, "--data", synthetic_data(), "--out", tmp_path / "o", "--config-file", run_file]
    assert train_cli(*first) == 0
    state = torch.load(tmp_path / "o" / "last.ckpt", weights_only=True)
    assert state["run_config"]["loss_weights"] == (20.0, 1.0, 1.0, 3.0)
    assert state["run_config"]["point_prob"] == 0.9 and state["run_config"]["init_frames"] == 1
    capsys.readouterr()

    assert train_cli(*first, "--resume", "--loss-weights", "20,1,1,1") == 1  # another loss: another run
    err = capsys.readouterr().err
    assert "another run configuration" in err and "loss_weights" in err

    # A checkpoint of an older sam2kit, without these options, resumes as a run with their defaults.
    older = [*VIDEO, "--data", synthetic_data(), "--out", tmp_path / "older", "--steps", "3", "--stop-after", "1"]
    assert train_cli(*older) == 0
    path = tmp_path / "older" / "last.ckpt"
    state = torch.load(path, weights_only=True)
    for name in ("point_prob", "box_prob", "center_click_prob", "init_frames", "correct_frames", "loss_weights"):
        del state["run_config"][name]
    torch.save(state, path)
    assert train_cli(*older, "--resume") == 0
    assert [int(row["step"]) for row in log_rows(tmp_path / "older")] == [1, 2]
