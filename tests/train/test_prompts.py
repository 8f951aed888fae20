"""Prompt simulation: recipe defaults, determinism, where points and boxes land, plans."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
import yaml

from conftest import require_reference
from sam2kit.predict.interior import interior_points
from sam2kit.train.prompts import (
    Clicks,
    PromptOptions,
    correction_click,
    first_prompt,
    plan_prompts,
    sample_box_prompts,
    sample_correction_clicks,
    sample_points_inside,
)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def square_masks() -> torch.Tensor:
    masks = torch.zeros(3, 40, 50, dtype=torch.bool)
    masks[0, 10:20, 5:25] = True
    masks[1, 0:40, 45:50] = True
    return masks  # masks[2] is empty


def test_defaults_equal_the_official_recipe() -> None:
    sam2 = require_reference()
    recipe_file = Path(sam2.__file__).parent / "configs/sam2.1_training/sam2.1_hiera_b+_MOSE_finetune.yaml"
    recipe = yaml.safe_load(recipe_file.read_text())["trainer"]["model"]
    options = PromptOptions()
    expected = {
        "prob_point_input": recipe["prob_to_use_pt_input_for_train"],
        "prob_box_input": recipe["prob_to_use_box_input_for_train"],
        "prob_sample_from_gt": recipe["prob_to_sample_from_gt_for_train"],
        "num_frames_to_correct": recipe["num_frames_to_correct_for_train"],
        "rand_frames_to_correct": recipe["rand_frames_to_correct_for_train"],
        "add_all_frames_to_correct_as_cond": recipe["add_all_frames_to_correct_as_cond"],
        "num_init_cond_frames": recipe["num_init_cond_frames_for_train"],
        "rand_init_cond_frames": recipe["rand_init_cond_frames_for_train"],
        "num_correction_points": recipe["num_correction_pt_per_frame"],
    }
    for name, value in expected.items():
        assert getattr(options, name) == value, name


def test_points_inside_and_deterministic() -> None:
    masks = square_masks()
    clicks = sample_points_inside(masks, gen(1), num_points=50)
    again = sample_points_inside(masks, gen(1), num_points=50)
    assert torch.equal(clicks.coords, again.coords) and torch.equal(clicks.labels, again.labels)
    assert clicks.coords.shape == (3, 50, 2) and clicks.labels.dtype == torch.int32
    x, y = clicks.coords[..., 0].long(), clicks.coords[..., 1].long()
    for b in range(2):
        assert masks[b, y[b], x[b]].all() and (clicks.labels[b] == 1).all()
    assert (~masks[2, y[2], x[2]]).all() and (clicks.labels[2] == 0).all()  # empty: negative click
    assert not torch.equal(clicks.coords, sample_points_inside(masks, gen(2), num_points=50).coords)


def test_points_are_uniform() -> None:
    mask = torch.zeros(1, 4, 4, dtype=torch.bool)
    mask[0, 1, 1] = mask[0, 2, 3] = True
    clicks = sample_points_inside(mask, gen(0), num_points=4000)
    share = (clicks.coords[0, :, 0] == 1).float().mean().item()
    assert share == pytest.approx(0.5, abs=0.05)


def test_correction_clicks_follow_the_errors() -> None:
    gt = torch.zeros(2, 30, 30, dtype=torch.bool)
    gt[:, 5:15, 5:15] = True  # 100 px
    pred = torch.zeros_like(gt)
    pred[0, 5:15, 5:10] = True  # object 0: 50 px missed, nothing extra
    pred[1, 5:15, 5:15] = True
    pred[1, 20:30, 0:30] = True  # object 1: 300 px extra, none missed
    clicks = sample_correction_clicks(gt, pred, gen(3), num_points=200)
    x, y = clicks.coords[..., 0].long(), clicks.coords[..., 1].long()
    assert (clicks.labels[0] == 1).all() and (gt[0, y[0], x[0]] & ~pred[0, y[0], x[0]]).all()
    assert (clicks.labels[1] == 0).all() and (~gt[1, y[1], x[1]] & pred[1, y[1], x[1]]).all()

    # Both kinds of error: clicks split in proportion to the areas (100 FN px vs 300 FP px).
    mixed = torch.zeros(1, 30, 30, dtype=torch.bool)
    mixed[0, 20:30, :] = True
    both = sample_correction_clicks(gt[:1], mixed, gen(4), num_points=4000)
    assert (both.labels == 1).float().mean().item() == pytest.approx(0.25, abs=0.03)

    perfect = sample_correction_clicks(gt, gt, gen(5), num_points=20)
    px, py = perfect.coords[..., 0].long(), perfect.coords[..., 1].long()
    assert (perfect.labels == 0).all() and (~gt[0, py[0], px[0]]).all()  # background click


def test_boxes() -> None:
    masks = square_masks()
    exact = sample_box_prompts(masks, gen(0), noise=0.0)
    assert exact.coords[0].tolist() == [[5.0, 10.0], [24.0, 19.0]]
    assert exact.coords[2].tolist() == [[0.0, 0.0], [0.0, 0.0]]
    assert exact.labels.tolist() == [[2, 3]] * 3
    jittered = sample_box_prompts(masks, gen(0), noise=0.1, noise_bound=1.5)
    delta = (jittered.coords - exact.coords).abs()
    assert delta[0, :, 0].max() <= 1.5 + 1e-6 and delta[0, :, 1].max() <= 0.9 + 1e-6  # 0.1 x 9 px high
    assert delta[0].max() > 0
    assert jittered.coords[..., 0].max() <= 49 and jittered.coords[..., 1].max() <= 39
    assert jittered.coords.min() >= 0  # object 1 touches the right border: clipped


def test_first_prompt_and_correction() -> None:
    masks = square_masks()
    options = PromptOptions()
    mask_prompt = first_prompt(masks, "mask", options, gen())
    assert isinstance(mask_prompt, torch.Tensor) and mask_prompt.shape == (3, 1, 40, 50)
    assert isinstance(first_prompt(masks, "box", options, gen()), Clicks)
    clicks = first_prompt(masks, "point", options, gen())
    assert isinstance(clicks, Clicks)
    more = clicks + correction_click(masks, torch.zeros_like(masks), options, gen())
    assert more.coords.shape == (3, 2, 2) and more.labels.shape == (3, 2)
    with pytest.raises(ValueError, match="kind"):
        first_prompt(masks, "scribble", options, gen())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"\(B, H, W\)"):
        sample_points_inside(masks[0], gen())


def test_interior_clicks() -> None:
    """With prob_interior_click, first clicks land on each object's deepest pixel (per object, by
    chance); at 0 the recipe's uniform draws, and its random stream, are unchanged."""
    masks = square_masks()
    uniform = first_prompt(masks, "point", PromptOptions(), gen(3))
    assert isinstance(uniform, Clicks)
    assert torch.equal(uniform.coords, sample_points_inside(masks, gen(3)).coords)
    always = first_prompt(masks, "point", PromptOptions(prob_interior_click=1.0), gen(3))
    assert isinstance(always, Clicks)
    assert always.coords[0, 0].tolist() == [14.0, 14.0] and always.coords[1, 0].tolist() == [47.0, 19.0]
    assert always.labels[:2].eq(1).all()
    # the empty mask keeps its negative click in the background
    assert torch.equal(always.coords[2], uniform.coords[2]) and always.labels[2, 0] == 0
    half = PromptOptions(prob_interior_click=0.5)
    deepest = interior_points(masks[:1])
    hits = [
        torch.equal(clicks.coords[0], deepest)
        for clicks in (first_prompt(masks, "point", half, gen(seed)) for seed in range(200))
        if isinstance(clicks, Clicks)
    ]
    assert len(hits) == 200 and sum(hits) / 200 == pytest.approx(0.5, abs=0.1)
    box = first_prompt(masks, "box", PromptOptions(prob_interior_click=1.0), gen(3))
    assert isinstance(box, Clicks) and box.labels[0].tolist() == [2, 3]  # boxes unaffected
    with pytest.raises(ValueError, match="prob_interior_click"):
        PromptOptions(prob_interior_click=2.0)


def test_interior_points() -> None:
    masks = torch.zeros(3, 40, 60, dtype=torch.bool)
    masks[0, 5:15, 5:55] = True  # a thin bar ...
    masks[0, 5:35, 40:55] = True  # ... with a thick block at its right end
    masks[1, 3, 7] = True  # one pixel
    masks[2, 10:21, 10:21] = True  # a square: its centre
    points = interior_points(masks)
    x, y = points[0].tolist()
    assert masks[0, int(y), int(x)] and 40 + 4 <= x <= 55 - 5 and 5 + 4 <= y <= 35 - 5
    assert points[1].tolist() == [7.0, 3.0] and points[2].tolist() == [15.0, 15.0]
    with pytest.raises(ValueError, match="empty mask"):
        interior_points(torch.zeros(2, 9, 9, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"\(B, H, W\)"):
        interior_points(masks[0])


def test_plans() -> None:
    options = PromptOptions()
    plans = [plan_prompts(8, options, gen(seed)) for seed in range(400)]
    again = plan_prompts(8, options, gen(7))
    assert dataclasses.asdict(again) == dataclasses.asdict(plans[7])
    kinds = [p.kind for p in plans]
    assert kinds.count("mask") / 400 == pytest.approx(0.5, abs=0.08)
    assert kinds.count("box") / 400 == pytest.approx(0.25, abs=0.08)
    for plan in plans:
        assert plan.init_cond_frames[0] == 0 and 1 <= len(plan.init_cond_frames) <= 2
        assert len(set(plan.init_cond_frames)) == len(plan.init_cond_frames)
        assert plan.processing_order[: len(plan.init_cond_frames)] == plan.init_cond_frames
        assert sorted(plan.processing_order) == list(range(8))
        if plan.kind == "mask":
            assert plan.frames_to_correct == [] and plan.num_correction_points == 0
        else:
            assert plan.frames_to_correct[: len(plan.init_cond_frames)] == plan.init_cond_frames
            assert len(plan.init_cond_frames) <= len(plan.frames_to_correct) <= 2
            assert plan.num_correction_points == 7
            assert set(plan.cond_frames) == set(plan.frames_to_correct)
    assert {len(p.init_cond_frames) for p in plans} == {1, 2}
    image_plans = [plan_prompts(1, options, gen(seed)) for seed in range(50)]
    assert all(p.kind != "mask" and p.frames_to_correct == [0] for p in image_plans)
    fixed = PromptOptions(num_init_cond_frames=1, rand_init_cond_frames=False, num_frames_to_correct=3,
                          rand_frames_to_correct=False, prob_point_input=1.0, prob_box_input=0.0)
    plan = plan_prompts(5, fixed, gen(0))
    assert plan.kind == "point" and plan.init_cond_frames == [0] and len(plan.frames_to_correct) == 3


def test_bad_options() -> None:
    with pytest.raises(ValueError, match="prob_box_input"):
        PromptOptions(prob_box_input=1.5)
    with pytest.raises(ValueError, match="num_init_cond_frames"):
        PromptOptions(num_init_cond_frames=0)
    with pytest.raises(ValueError, match="num_frames"):
        plan_prompts(0, PromptOptions(), gen())
