"""The training forward of one sample, as SAM 2's recipe runs it: interactive rounds of prompts and
correction clicks, every round's candidate masks kept for :class:`~sam2kit.train.losses.SAM2Loss`.

- An image (:func:`image_sample_loss`): a first prompt (a point inside each object, or a jittered
  box) decoded with the model's multimask rule, then ``num_correction_points`` rounds, each adding
  one click per object drawn from the error region of the current mask and feeding the previous
  low-resolution logits back as the mask prompt. All objects of the image decode as one batch.
- A clip (:func:`clip_sample_loss`): :func:`~sam2kit.train.prompts.plan_prompts` picks the initial
  conditioning frames, the frames to correct and the prompt kind; the frames are then run in the
  plan's order by the tracking engine that inference uses
  (:class:`~sam2kit.predict.tracker.TrackingEngine`): prompts and corrections through
  ``add_points`` / ``add_mask`` and ``commit_prompts`` (a corrected frame becomes a conditioning
  frame), the other frames through ``track_frame``, the memory bank built by the engine.

Losses are scored at the model's input resolution S against ``(N, S, S)`` masks.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from ..modeling.sam2 import LOW_RES_CLAMP, FrameFeatures, PointPrompts, SAM2Model, TrackStepOutput
from ..predict.tracker import FrameStep, TrackingEngine
from ..predict.video_state import InferenceState
from .losses import LossTerms, SAM2Loss, StepOutput
from .prompts import Clicks, PromptOptions, correction_click, first_prompt, plan_prompts

__all__ = ["image_sample_loss", "clip_sample_loss", "training_engine"]


def _upsampled(low_res: torch.Tensor, size: int) -> torch.Tensor:
    """``(N, M, S/4, S/4)`` logits -> ``(N, M, S, S)``, as the model upsamples its own masks."""
    return F.interpolate(low_res.float(), size=(size, size), mode="bilinear", align_corners=False)


def _prompts(clicks: Clicks, device: torch.device) -> PointPrompts:
    return PointPrompts(clicks.coords.to(device), clicks.labels.to(device))


def _object_prompts(clicks: Clicks, index: int, device: torch.device) -> PointPrompts:
    """Object ``index``'s clicks (batch 1), as the engine takes one object at a time."""
    return PointPrompts(clicks.coords[index : index + 1].to(device), clicks.labels[index : index + 1].to(device))


def image_sample_loss(
    model: SAM2Model,
    features: FrameFeatures,
    masks: torch.Tensor,
    options: PromptOptions,
    generator: torch.Generator,
    loss_fn: SAM2Loss,
    num_objects: float,
) -> LossTerms:
    """Loss of one image with N objects: interactive rounds on ``features`` (batch 1).

    Args:
        masks: ``(N, S, S)`` bool ground truth at the model's input size.
        generator: the sample's prompt randomness.
        num_objects: the loss normaliser (objects of the whole step, see :class:`SAM2Loss`).
    """
    num = masks.shape[0]
    size = model.image_size
    plan = plan_prompts(1, options, generator)
    embedding = model.image_embedding_without_memory(features).expand(num, -1, -1, -1)  # (N, C, H, W)
    high_res = [level.expand(num, -1, -1, -1) for level in features.high_res_features()]
    steps: list[StepOutput] = []
    if plan.kind == "mask":
        heads = model.use_mask_as_output(embedding, high_res, masks[:, None].float())
        steps.append(StepOutput(_upsampled(heads.low_res_multimasks, size), heads.ious, heads.object_score_logits))
        return loss_fn([steps], masks[None], num_objects)
    clicks = first_prompt(masks, plan.kind, options, generator)
    assert isinstance(clicks, Clicks)
    rounds = 1 + (plan.num_correction_points if 0 in plan.frames_to_correct else 0)
    mask_input = None
    for round_index in range(rounds):
        if round_index > 0:
            clicks = clicks + correction_click(masks, heads.high_res_masks[:, 0] > 0, options, generator)
            # As the predictors do with a previous prediction: clamped, so new clicks can overrule it.
            mask_input = heads.low_res_masks.clamp(-LOW_RES_CLAMP, LOW_RES_CLAMP)
        points = _prompts(clicks, embedding.device)
        heads = model.forward_sam_heads(
            embedding,
            point_inputs=points,
            mask_inputs=mask_input,
            high_res_features=high_res,
            multimask_output=model.use_multimask(True, points),
        )
        steps.append(StepOutput(heads.high_res_multimasks, heads.ious, heads.object_score_logits))
    return loss_fn([steps], masks[None], num_objects)


def training_engine(model: SAM2Model, options: PromptOptions) -> TrackingEngine:
    """The inference engine set up as training runs it: no hole filling (not differentiable, and
    the recipe has none), memories kept in the model's dtype (gradients flow through them)."""
    return TrackingEngine(
        model,
        fill_hole_area=0,
        non_overlap_masks=False,
        clear_non_cond_mem_around_input=False,
        add_all_frames_to_correct_as_cond=options.add_all_frames_to_correct_as_cond,
        memory_dtype=None,
    )


class _FrameRecord:
    """Per object of a clip frame: each round's model output and the latest chosen mask."""

    def __init__(self, num_objects: int) -> None:
        self.num_objects = num_objects
        self.rounds: list[StepOutput] = []
        self.latest: list[torch.Tensor | None] = [None] * num_objects  # (1, 1, S, S) logits

    def add_round(self, outputs: list[TrackStepOutput | None], size: int) -> None:
        """One round: ``outputs[i]`` is object i's model output (batch 1)."""
        if any(out is None for out in outputs):
            raise RuntimeError("the tracking engine gave no output for an object of this frame")
        multimasks = [out.multimasks if out.multimasks is not None else out.pred_masks for out in outputs]  # type: ignore[union-attr]
        if len({tuple(m.shape) for m in multimasks}) > 1:
            raise RuntimeError("objects of one round decoded different numbers of candidate masks")
        self.rounds.append(
            StepOutput(
                _upsampled(torch.cat(multimasks, dim=0), size),
                torch.cat([out.ious for out in outputs], dim=0),  # type: ignore[union-attr]
                torch.cat([out.object_score_logits for out in outputs], dim=0),  # type: ignore[union-attr]
            )
        )
        for i, out in enumerate(outputs):
            self.latest[i] = out.pred_masks_high_res  # type: ignore[union-attr]

    def predicted(self) -> torch.Tensor:
        """``(N, S, S)`` bool: the latest chosen mask of each object."""
        return torch.cat(self.latest, dim=0)[:, 0] > 0  # type: ignore[arg-type]


def _row(out: TrackStepOutput, row: int) -> TrackStepOutput:
    """One object (batch row) of a batched model output."""
    rows = slice(row, row + 1)
    return TrackStepOutput(
        pred_masks=out.pred_masks[rows],
        pred_masks_high_res=out.pred_masks_high_res[rows],
        obj_ptr=out.obj_ptr[rows],
        object_score_logits=out.object_score_logits[rows],
        ious=out.ious[rows],
        multimasks=None if out.multimasks is None else out.multimasks[rows],
    )


def _per_object(step: FrameStep, num_objects: int) -> list[TrackStepOutput | None]:
    """The model outputs of an engine step over several objects, one per object id (0..N-1)."""
    outputs: list[TrackStepOutput | None] = [None] * num_objects
    for indices, out in step.model_outputs:
        for row, i in enumerate(indices):
            outputs[step.obj_ids[i]] = _row(out, row)
    return outputs


def _only(step: FrameStep) -> TrackStepOutput:
    """The model output of an engine step on one object (a prompt step)."""
    ((_, out),) = step.model_outputs
    return out


def clip_sample_loss(
    model: SAM2Model,
    engine: TrackingEngine,
    frame_features: Callable[[int], FrameFeatures],
    masks: torch.Tensor,
    options: PromptOptions,
    generator: torch.Generator,
    loss_fn: SAM2Loss,
    num_objects: float,
) -> LossTerms:
    """Loss of one clip of T frames with N objects, tracked by ``engine``.

    Args:
        frame_features: frame index -> its features (batch 1; with or without gradients).
        masks: ``(T, N, S, S)`` bool ground truth; every object is visible on frame 0.
    """
    num_frames, num = masks.shape[:2]
    size = model.image_size
    device = masks.device
    plan = plan_prompts(num_frames, options, generator)
    state = InferenceState(
        frames=None,
        num_frames=num_frames,
        video_height=size,
        video_width=size,
        device=device,
        storage_device=device,
        keep_all_memories=True,
    )
    records = [_FrameRecord(num) for _ in range(num_frames)]
    for t in plan.processing_order:
        engine.set_frame_features(state, t, frame_features(t))
        record, truth = records[t], masks[t]
        prompted = t in plan.init_cond_frames
        if prompted and plan.kind == "mask":
            steps = [engine.add_mask(state, i, t, truth[i][None, None].float()) for i in range(num)]
            record.add_round([_only(step) for step in steps], size)
        elif prompted:
            clicks = first_prompt(truth, plan.kind, options, generator)
            assert isinstance(clicks, Clicks)
            steps = [engine.add_points(state, i, t, _object_prompts(clicks, i, device)) for i in range(num)]
            record.add_round([_only(step) for step in steps], size)
        else:
            record.add_round(_per_object(engine.track_frame(state, t), num), size)
        if t in plan.frames_to_correct:
            for _ in range(plan.num_correction_points):
                clicks = correction_click(truth, record.predicted(), options, generator)
                steps = [engine.add_points(state, i, t, _object_prompts(clicks, i, device), append=True)
                         for i in range(num)]
                record.add_round([_only(step) for step in steps], size)
        if prompted or t in plan.frames_to_correct:
            engine.commit_prompts(state)  # now, while this frame's features are the engine's current ones
    return loss_fn([record.rounds for record in records], masks, num_objects)
