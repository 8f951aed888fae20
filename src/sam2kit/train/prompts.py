"""Interactive prompt simulation of SAM 2's training recipe.

A training sample is a clip of T frames (an image is a clip of one frame). :func:`plan_prompts`
draws, once per sample, how it is prompted:

- the first prompt, on each of 1-2 initial conditioning frames (frame 0 and maybe a random other):
  the ground-truth mask itself (probability ``1 - prob_point_input``), else a jittered box
  (``prob_box_input`` of the rest), else one point drawn uniformly inside the object (or, with
  ``prob_interior_click``, at its most interior pixel, where a person clicks);
- with a point or box prompt, a few frames (the initial ones and maybe random others) receive
  ``num_correction_points`` rounds of one correction click each, every click sampled from the error
  region of the current prediction (:func:`sample_correction_clicks`) or, with a small probability,
  from the ground truth alone. A corrected frame becomes a conditioning frame.

Defaults equal ``sam2.1_hiera_b+_MOSE_finetune.yaml``, the official fine-tuning recipe. Every draw
uses the ``torch.Generator`` passed in, so a seed reproduces a run (on any device: the few random
numbers are drawn on the generator's device and moved).

Coordinates are (x, y) pixel indices at the masks' resolution (the prompt encoder adds the
half-pixel offset); labels follow SAM: 1 positive, 0 negative, 2 / 3 box corners.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch

from ..predict.interior import interior_points

__all__ = [
    "PromptOptions",
    "PromptPlan",
    "Clicks",
    "plan_prompts",
    "first_prompt",
    "correction_click",
    "sample_points_inside",
    "sample_box_prompts",
    "sample_correction_clicks",
]

PromptKind = Literal["point", "box", "mask"]


@dataclass(frozen=True)
class PromptOptions:
    """How training samples are prompted (defaults: the official MOSE fine-tuning recipe; the
    recipe's option names are given in brackets).

    Attributes:
        prob_point_input: probability of a point or box first prompt on a clip, else the ground-truth
            mask is given (``prob_to_use_pt_input_for_train`` 0.5).
        prob_point_input_for_images: the same for a lone image; the recipe always clicks on images
            (1.0), a mask prompt there being the answer itself.
        prob_box_input: probability of a box rather than a point, given a point-or-box prompt
            (``prob_to_use_box_input_for_train`` 0.5: a box 25 % of the time on clips).
        prob_sample_from_gt: probability that a correction click is drawn from the ground truth
            alone instead of from the prediction's errors (``prob_to_sample_from_gt_for_train`` 0.1).
        prob_interior_click: probability that a first click (drawn per object) lands on the object's
            most interior pixel (:func:`~sam2kit.predict.interior.interior_points`, where a person
            clicks) instead of uniformly inside it. Not in the recipe (0: always uniform).
        num_correction_points: correction rounds (one click each) on every frame to correct
            (``num_correction_pt_per_frame`` 7).
        num_init_cond_frames: frames prompted first, frame 0 included (``num_init_cond_frames_for_train`` 2).
        rand_init_cond_frames: draw that number uniformly in 1..num_init_cond_frames
            (``rand_init_cond_frames_for_train`` True).
        num_frames_to_correct: frames receiving correction clicks, the initial ones included
            (``num_frames_to_correct_for_train`` 2).
        rand_frames_to_correct: draw that number uniformly between the number of initial frames and
            num_frames_to_correct (``rand_frames_to_correct_for_train`` True).
        add_all_frames_to_correct_as_cond: a corrected frame becomes a conditioning frame
            (``add_all_frames_to_correct_as_cond`` True).
        box_noise: box corner jitter as a fraction of the box's width / height (0.1).
        box_noise_bound: at most this many pixels of jitter (20, at the recipe's 1024 px input).
    """

    prob_point_input: float = 0.5
    prob_point_input_for_images: float = 1.0
    prob_box_input: float = 0.5
    prob_sample_from_gt: float = 0.1
    prob_interior_click: float = 0.0
    num_correction_points: int = 7
    num_init_cond_frames: int = 2
    rand_init_cond_frames: bool = True
    num_frames_to_correct: int = 2
    rand_frames_to_correct: bool = True
    add_all_frames_to_correct_as_cond: bool = True
    box_noise: float = 0.1
    box_noise_bound: float = 20.0

    def __post_init__(self) -> None:
        probabilities = ("prob_point_input", "prob_point_input_for_images", "prob_box_input", "prob_sample_from_gt",
                         "prob_interior_click")
        for name in probabilities:
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be a probability in [0, 1], got {value}")
        if self.num_correction_points < 0:
            raise ValueError(f"num_correction_points must be >= 0, got {self.num_correction_points}")
        if self.num_init_cond_frames < 1:
            raise ValueError(f"num_init_cond_frames must be >= 1, got {self.num_init_cond_frames}")
        if self.num_frames_to_correct < 0:
            raise ValueError(f"num_frames_to_correct must be >= 0, got {self.num_frames_to_correct}")
        if self.box_noise < 0 or self.box_noise_bound < 0:
            raise ValueError(
                f"box_noise and box_noise_bound must be >= 0, got {self.box_noise}, {self.box_noise_bound}"
            )


@dataclass
class PromptPlan:
    """How one sample of ``num_frames`` frames is prompted (see :func:`plan_prompts`).

    Attributes:
        kind: the first prompt: ``"point"``, ``"box"`` or ``"mask"`` (the ground truth).
        init_cond_frames: frames that get the first prompt, frame 0 first.
        frames_to_correct: frames that get ``num_correction_points`` correction clicks (none with a
            mask prompt); the initial frames come first.
        num_correction_points: correction rounds per frame to correct.
        cond_frames: the conditioning frames: the initial ones, plus the corrected ones when
            ``add_all_frames_to_correct_as_cond``.
        processing_order: the initial frames, then the others in time order.
    """

    num_frames: int
    kind: PromptKind
    init_cond_frames: list[int]
    frames_to_correct: list[int]
    num_correction_points: int
    cond_frames: list[int] = field(default_factory=list)

    @property
    def processing_order(self) -> list[int]:
        rest = [t for t in range(self.num_frames) if t not in self.init_cond_frames]
        return list(self.init_cond_frames) + rest


@dataclass
class Clicks:
    """Point prompts for B objects: ``coords`` ``(B, P, 2)`` float (x, y) pixels, ``labels`` ``(B, P)``
    int32 (1 positive, 0 negative, 2 / 3 box corners)."""

    coords: torch.Tensor
    labels: torch.Tensor

    def __add__(self, other: Clicks) -> Clicks:
        """These clicks followed by ``other``'s."""
        return Clicks(torch.cat([self.coords, other.coords], dim=1), torch.cat([self.labels, other.labels], dim=1))


def _uniform(generator: torch.Generator, *shape: int) -> torch.Tensor:
    return torch.rand(shape, generator=generator, device=generator.device).cpu()


def _randint(generator: torch.Generator, low: int, high: int) -> int:
    """Uniform integer in [low, high] (both included)."""
    return int(torch.randint(low, high + 1, (1,), generator=generator, device=generator.device).item())


def _choose(generator: torch.Generator, population: list[int], count: int) -> list[int]:
    """``count`` distinct items of ``population``, in random order."""
    order = torch.randperm(len(population), generator=generator, device=generator.device).tolist()
    return [population[i] for i in order[:count]]


def plan_prompts(num_frames: int, options: PromptOptions, generator: torch.Generator) -> PromptPlan:
    """Draw how a sample of ``num_frames`` frames (1 for an image) is prompted.

    Raises:
        ValueError: ``num_frames`` < 1.
    """
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    single = num_frames == 1
    prob_point = options.prob_point_input_for_images if single else options.prob_point_input
    use_point = bool(_uniform(generator, 1) < prob_point)
    num_init = min(options.num_init_cond_frames, num_frames)
    if options.rand_init_cond_frames and num_init > 1:
        num_init = _randint(generator, 1, num_init)
    num_correct = min(max(options.num_frames_to_correct, num_init), num_frames)
    if use_point and options.rand_frames_to_correct and num_correct > num_init:
        num_correct = _randint(generator, num_init, num_correct)
    init_frames = [0] + _choose(generator, list(range(1, num_frames)), num_init - 1)
    if not use_point:
        return PromptPlan(num_frames, "mask", init_frames, [], 0, cond_frames=list(init_frames))
    kind: PromptKind = "box" if bool(_uniform(generator, 1) < options.prob_box_input) else "point"
    others = [t for t in range(num_frames) if t not in init_frames]
    to_correct = init_frames + _choose(generator, others, num_correct - num_init)
    if options.num_correction_points == 0:
        to_correct = []
    cond = list(init_frames)
    if options.add_all_frames_to_correct_as_cond:
        cond += [t for t in to_correct if t not in cond]
    return PromptPlan(num_frames, kind, init_frames, to_correct, options.num_correction_points, cond_frames=cond)


def _check_masks(masks: torch.Tensor, name: str) -> torch.Tensor:
    if masks.ndim != 3:
        raise ValueError(f"{name} must have shape (B, H, W), got {tuple(masks.shape)}")
    return masks.bool()


def _pick_pixels(candidates: torch.Tensor, generator: torch.Generator, num_points: int) -> torch.Tensor:
    """Uniformly drawn flat indices of True pixels: ``(B, HW)`` bool -> ``(B, num_points)`` int64.
    A row without True pixels gives the last index."""
    counts = candidates.sum(dim=1, keepdim=True)  # (B, 1)
    draws = _uniform(generator, candidates.shape[0], num_points).to(candidates.device)
    rank = (draws * counts).long().clamp(max=(counts - 1).clamp(min=0))  # the rank-th True pixel
    cumulative = candidates.long().cumsum(dim=1)  # (B, HW)
    return torch.searchsorted(cumulative, rank + 1).clamp(max=candidates.shape[1] - 1)


def sample_correction_clicks(
    gt_masks: torch.Tensor,
    pred_masks: torch.Tensor | None,
    generator: torch.Generator,
    num_points: int = 1,
) -> Clicks:
    """Clicks drawn uniformly from the error region of each prediction, as the recipe does.

    A click lands uniformly on the union of the false negatives (then positive) and the false
    positives (then negative), so the larger error region gets proportionally more clicks. A
    prediction without error gets a negative click in the background; with ``pred_masks`` None,
    the whole object is the error: a positive click uniformly inside it.

    Args:
        gt_masks: ``(B, H, W)`` bool ground truth; pred_masks: ``(B, H, W)`` bool or None.
        num_points: independent clicks per object.
    Returns:
        :class:`Clicks` ``(B, num_points, 2)`` / ``(B, num_points)``.
    """
    gt = _check_masks(gt_masks, "gt_masks")
    pred = torch.zeros_like(gt) if pred_masks is None else _check_masks(pred_masks, "pred_masks")
    if pred.shape != gt.shape:
        raise ValueError(f"pred_masks {tuple(pred.shape)} and gt_masks {tuple(gt.shape)} differ in shape")
    batch, height, width = gt.shape
    gt_flat, pred_flat = gt.flatten(1), pred.flatten(1)
    errors = gt_flat ^ pred_flat
    no_error = ~errors.any(dim=1, keepdim=True)
    candidates = errors | (no_error & ~gt_flat)
    index = _pick_pixels(candidates, generator, num_points)  # (B, P)
    # Inside the error region the label is the ground truth; so it is in the background fallback.
    labels = gt_flat.gather(1, index).to(torch.int32)
    coords = torch.stack([index % width, index // width], dim=-1).float()
    return Clicks(coords, labels)


def sample_points_inside(gt_masks: torch.Tensor, generator: torch.Generator, num_points: int = 1) -> Clicks:
    """Positive clicks drawn uniformly inside each object (``(B, H, W)`` bool); an empty mask gets
    a negative click in the background."""
    return sample_correction_clicks(gt_masks, None, generator, num_points)


def sample_box_prompts(
    gt_masks: torch.Tensor, generator: torch.Generator, noise: float = 0.1, noise_bound: float = 20.0
) -> Clicks:
    """Jittered bounding boxes as two corner clicks (labels 2 top-left, 3 bottom-right).

    Each coordinate of the tight box (pixel indices of the outermost object pixels) moves by up to
    ``noise`` times the box's width (x) or height (y), at most ``noise_bound`` pixels, uniformly,
    then is clipped to the image. An empty mask gives the box (0, 0, 0, 0).

    Returns:
        :class:`Clicks` ``(B, 2, 2)`` / ``(B, 2)``.
    """
    gt = _check_masks(gt_masks, "gt_masks")
    batch, height, width = gt.shape
    device = gt.device
    rows, cols = gt.any(dim=2), gt.any(dim=1)  # (B, H), (B, W)
    ys = torch.arange(height, device=device)
    xs = torch.arange(width, device=device)
    present = rows.any(dim=1)
    y0 = torch.where(rows, ys, height).amin(dim=1)
    y1 = torch.where(rows, ys, -1).amax(dim=1)
    x0 = torch.where(cols, xs, width).amin(dim=1)
    x1 = torch.where(cols, xs, -1).amax(dim=1)
    box = torch.stack([x0, y0, x1, y1], dim=1).float() * present[:, None]  # (B, 4)
    max_dx = ((box[:, 2] - box[:, 0]) * noise).clamp(max=noise_bound)
    max_dy = ((box[:, 3] - box[:, 1]) * noise).clamp(max=noise_bound)
    jitter = (2 * _uniform(generator, batch, 4) - 1).to(device)
    box = box + jitter * torch.stack([max_dx, max_dy, max_dx, max_dy], dim=1)
    limits = torch.tensor([width - 1, height - 1, width - 1, height - 1], device=device, dtype=box.dtype)
    box = torch.minimum(box.clamp(min=0), limits)
    labels = torch.tensor([2, 3], dtype=torch.int32, device=device).expand(batch, 2)
    return Clicks(box.reshape(batch, 2, 2), labels.clone())


def first_prompt(
    gt_masks: torch.Tensor, kind: PromptKind, options: PromptOptions, generator: torch.Generator
) -> Clicks | torch.Tensor:
    """The first prompt of a plan on one frame: :class:`Clicks` for ``"point"`` / ``"box"``, the
    ground-truth masks ``(B, 1, H, W)`` float for ``"mask"``. ``gt_masks`` ``(B, H, W)`` bool; an
    empty one gets a negative click in the background (an object absent from that frame)."""
    gt = _check_masks(gt_masks, "gt_masks")
    if kind == "mask":
        return gt[:, None].float()
    if kind == "box":
        return sample_box_prompts(gt, generator, options.box_noise, options.box_noise_bound)
    if kind == "point":
        clicks = sample_points_inside(gt, generator)
        if options.prob_interior_click > 0:  # drawn only then, so the recipe's random stream is kept
            drawn = _uniform(generator, gt.shape[0]).to(gt.device) < options.prob_interior_click
            interior = drawn & gt.flatten(1).any(dim=1)  # an empty mask keeps its background click
            if bool(interior.any()):
                clicks.coords[interior, 0] = interior_points(gt[interior]).to(clicks.coords.dtype)
        return clicks
    raise ValueError(f"kind must be 'point', 'box' or 'mask', got {kind!r}")


def correction_click(
    gt_masks: torch.Tensor, pred_masks: torch.Tensor, options: PromptOptions, generator: torch.Generator
) -> Clicks:
    """One correction round: one click per object from the errors of ``pred_masks`` (``(B, H, W)``
    bool), or, with probability ``options.prob_sample_from_gt`` (one draw for the whole batch, as
    the recipe), from the ground truth alone."""
    from_gt = bool(_uniform(generator, 1) < options.prob_sample_from_gt)
    return sample_correction_clicks(gt_masks, None if from_gt else pred_masks, generator)
