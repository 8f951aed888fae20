"""SAM2Loss against the reference's ``training.loss_fns.MultiStepMultiMasksAndIous`` (a black box) on
the same random tensors, plus behaviour the comparison cannot show."""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Any

import pytest
import torch

from conftest import require_reference
from sam2kit.train.losses import LossWeights, SAM2Loss, StepOutput, dice_loss, mask_iou, sigmoid_focal_loss

ATOL = 1e-5
TERMS = {"mask": "loss_mask", "dice": "loss_dice", "iou": "loss_iou", "object_score": "loss_class"}


def reference_loss_class() -> Any:
    """``MultiStepMultiMasksAndIous`` from the reference's ``training`` package; fails under CI and
    skips elsewhere when it cannot be imported (it also needs tensordict and tensorboard)."""
    require_reference()
    try:
        return importlib.import_module("training.loss_fns").MultiStepMultiMasksAndIous
    except ImportError as error:
        reason = f"the reference's training.loss_fns does not import ({error}); pip install tensordict tensorboard"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)


def random_case(
    seed: int, num_frames: int, num_objects: int, steps_per_frame: list[int], size: int = 24
) -> tuple[list[list[StepOutput]], torch.Tensor]:
    """Random predictions (the first step of each frame multimask, later steps single-mask) and
    targets where object 0 is absent on frame 0 and object 1 on every frame (when there are two)."""
    gen = torch.Generator().manual_seed(seed)
    targets = torch.rand(num_frames, num_objects, size, size, generator=gen) > 0.6
    targets[0, 0] = False
    if num_objects > 2:
        targets[:, 1] = False
    frames = []
    for frame in range(num_frames):
        steps = []
        for step in range(steps_per_frame[frame]):
            candidates = 3 if step == 0 else 1
            steps.append(
                StepOutput(
                    mask_logits=3 * torch.randn(num_objects, candidates, size, size, generator=gen),
                    ious=torch.rand(num_objects, candidates, generator=gen),
                    object_score_logits=2 * torch.randn(num_objects, 1, generator=gen),
                )
            )
        frames.append(steps)
    return frames, targets


def as_reference_inputs(frames: list[list[StepOutput]]) -> list[dict[str, list[torch.Tensor]]]:
    return [
        {
            "multistep_pred_multimasks_high_res": [s.mask_logits for s in steps],
            "multistep_pred_ious": [s.ious for s in steps],
            "multistep_object_score_logits": [s.object_score_logits for s in steps],
        }
        for steps in frames
    ]


def with_grad(frames: list[list[StepOutput]]) -> list[list[StepOutput]]:
    return [
        [
            StepOutput(
                s.mask_logits.clone().requires_grad_(),
                s.ious.clone().requires_grad_(),
                s.object_score_logits.clone().requires_grad_(),
            )
            for s in steps
        ]
        for steps in frames
    ]


def grads(frames: list[list[StepOutput]]) -> list[torch.Tensor]:
    return [t.grad for steps in frames for s in steps for t in (s.mask_logits, s.ious, s.object_score_logits)]


@pytest.mark.parametrize(
    "num_frames, num_objects, steps, supervise_all_iou, iou_loss, object_score, weights",
    [
        (1, 3, [8], True, "l1", True, (20, 1, 1, 1)),  # an image: first click + 7 corrections
        (4, 3, [3, 1, 2, 1], True, "l1", True, (20, 1, 1, 1)),  # a clip, the recipe's options
        (3, 2, [1, 2, 1], False, "mse", True, (20, 1, 1, 1)),
        (2, 3, [2, 1], True, "l1", False, (20, 1, 1, 1)),  # no object scores: nothing is masked
        (2, 4, [1, 3], False, "l1", True, (5, 2, 0.5, 3)),  # other weights change the selection
    ],
)
def test_matches_reference(
    num_frames: int,
    num_objects: int,
    steps: list[int],
    supervise_all_iou: bool,
    iou_loss: str,
    object_score: bool,
    weights: tuple[float, float, float, float],
) -> None:
    reference_cls = reference_loss_class()
    frames, targets = random_case(num_frames + num_objects, num_frames, num_objects, steps)
    weight_dict = dict(zip(("loss_mask", "loss_dice", "loss_iou", "loss_class"), weights, strict=True))
    reference = reference_cls(
        weight_dict=weight_dict,
        supervise_all_iou=supervise_all_iou,
        iou_use_l1_loss=iou_loss == "l1",
        pred_obj_scores=object_score,
        focal_gamma_obj_score=0.0,
        focal_alpha_obj_score=-1.0,
    )
    ours = SAM2Loss(
        LossWeights(*weights), iou_loss=iou_loss, supervise_all_iou=supervise_all_iou, object_score=object_score
    )
    ref_frames, our_frames = with_grad(frames), with_grad(frames)
    expected = reference(as_reference_inputs(ref_frames), targets)
    got = ours(our_frames, targets)
    assert abs(got.total.item() - expected["core_loss"].item()) <= ATOL
    for ours_name, ref_name in TERMS.items():
        assert abs(getattr(got, ours_name).detach() - torch.as_tensor(expected[ref_name]).detach()) <= ATOL, ours_name
    expected["core_loss"].backward()
    got.total.backward()
    for ref_grad, our_grad in zip(grads(ref_frames), grads(our_frames), strict=True):
        if ref_grad is None or our_grad is None:  # object scores unused without pred_obj_scores
            assert ref_grad is None or not ref_grad.any()
            assert our_grad is None or not our_grad.any()
            continue
        assert torch.allclose(ref_grad, our_grad, atol=1e-6, rtol=1e-5)


def test_only_best_candidate_gets_mask_gradient() -> None:
    target = torch.zeros(1, 1, 8, 8, dtype=torch.bool)
    target[..., 2:6, 2:6] = True
    logits = torch.full((1, 3, 8, 8), -5.0)
    logits[0, 1, 2:6, 2:6] = 5.0  # candidate 1 is right
    logits.requires_grad_()
    step = StepOutput(logits, torch.full((1, 3), 0.5), torch.ones(1, 1))
    SAM2Loss(LossWeights(iou=0.0, object_score=0.0))([[step]], target).total.backward()
    touched = logits.grad[0].flatten(1).abs().sum(-1)  # per candidate
    assert touched[1] > 0 and touched[0] == 0 and touched[2] == 0


def test_absent_object_only_trains_object_score() -> None:
    frames, targets = random_case(0, 1, 2, [2])
    targets[0, 1] = False
    frames = with_grad(frames)
    terms = SAM2Loss()(frames, targets)
    terms.total.backward()
    for step in frames[0]:
        assert step.mask_logits.grad[1].abs().sum() == 0
        assert step.ious.grad[1].abs().sum() == 0
        assert step.object_score_logits.grad[1].abs().sum() > 0


def test_components_by_hand() -> None:
    logits = torch.tensor([[0.0, 2.0], [-2.0, 0.0]])
    truth = torch.tensor([[1.0, 1.0], [0.0, 0.0]])
    p = torch.sigmoid(logits)
    bce = -(truth * p.log() + (1 - truth) * (1 - p).log())
    assert torch.allclose(sigmoid_focal_loss(logits, truth, alpha=-1, gamma=0), bce)
    perfect = torch.tensor([[20.0, 20.0], [-20.0, -20.0]])
    assert float(dice_loss(perfect, truth)) == pytest.approx(0.0, abs=1e-6)
    assert float(mask_iou(logits, truth)) == pytest.approx(1 / 2)  # pred {(0,1)} vs truth {(0,0), (0,1)}
    assert float(mask_iou(torch.full((2, 2), -1.0), torch.zeros(2, 2))) == 0.0


def test_bad_input() -> None:
    with pytest.raises(ValueError, match="iou_loss"):
        SAM2Loss(iou_loss="l2")  # type: ignore[arg-type]
    frames, targets = random_case(1, 2, 2, [1, 1])
    with pytest.raises(ValueError, match="2 frames of predictions for 1 target frames"):
        SAM2Loss()(frames, targets[:1])
    with pytest.raises(ValueError, match="do not match targets"):
        SAM2Loss()(frames, targets[:, :1])


def test_defaults_equal_the_official_recipe() -> None:
    sam2 = require_reference()
    yaml = pytest.importorskip("yaml")
    recipe_file = Path(sam2.__file__).parent / "configs/sam2.1_training/sam2.1_hiera_b+_MOSE_finetune.yaml"
    recipe = yaml.safe_load(recipe_file.read_text())["trainer"]["loss"]["all"]
    loss = SAM2Loss()
    weights = recipe["weight_dict"]
    assert (loss.weights.mask, loss.weights.dice, loss.weights.iou, loss.weights.object_score) == (
        weights["loss_mask"], weights["loss_dice"], weights["loss_iou"], weights["loss_class"]
    )
    assert loss.supervise_all_iou == recipe["supervise_all_iou"]
    assert (loss.iou_loss == "l1") == recipe["iou_use_l1_loss"]
    assert loss.object_score == recipe["pred_obj_scores"]
    # gamma 0 and no alpha: the object-score focal loss is the plain BCE that SAM2Loss uses.
    assert (recipe["focal_gamma_obj_score"], recipe["focal_alpha_obj_score"]) == (0.0, -1.0)
