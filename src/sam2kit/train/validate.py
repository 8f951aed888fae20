"""Validation figures of a run, on the held-out split, with the model in eval mode:

- images: mIoU over every object of mask from one click (a point drawn inside the object from a
  fixed seed, so every validation clicks the same pixel; the best of the three candidates by
  predicted IoU) and from its tight box;
- videos: J&F (:mod:`sam2kit.metrics`, the code ``sam2kit eval`` uses) of tracking every object
  visible on frame 0 from one click there, through the inference tracking engine, the first and
  last frames left out as the benchmarks do, each pixel given to at most one object (the
  highest-scoring), as in a DAVIS label map. At most :data:`VAL_MAX_FRAMES` frames per video.

Scored at the model's input resolution (the samples' masks are resized to it).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

from ..metrics import image_miou, mean_j_and_f, sequence_j_and_f
from ..modeling.sam2 import PointPrompts, SAM2Model
from ..predict.postprocess import apply_non_overlapping_constraints
from ..predict.tracker import TrackingEngine
from ..predict.video_state import InferenceState
from .prompts import sample_box_prompts, sample_points_inside

__all__ = ["VAL_MAX_FRAMES", "validate_images", "validate_videos"]

#: Longest stretch of a validation video that is tracked (from its first frame).
VAL_MAX_FRAMES = 48


@contextlib.contextmanager
def _eval_mode(model: nn.Module) -> Iterator[None]:
    """Eval mode inside; every module's own mode back afterwards (a frozen encoder stays in eval)."""
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for module, training in modes:
            module.training = training


def _click_generator(seed: int, index: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed * 7919 + index)


def _best_masks(model: SAM2Model, embedding: torch.Tensor, high_res: list[torch.Tensor], points: PointPrompts
                ) -> torch.Tensor:
    """``(N, S, S)`` bool: the decoder's best candidate (by predicted IoU) for each object."""
    heads = model.forward_sam_heads(
        embedding, point_inputs=points, high_res_features=high_res, multimask_output=model.use_multimask(True, points)
    )
    best = heads.ious.argmax(dim=1)
    rows = torch.arange(embedding.shape[0], device=embedding.device)
    return heads.high_res_multimasks[rows, best] > 0


@torch.no_grad()
def validate_images(model: SAM2Model, dataset: Any, *, max_items: int, seed: int = 0) -> dict[str, float]:
    """``{"val_miou_click", "val_miou_box"}`` over the first ``max_items`` items of ``dataset``
    (image samples; items without objects are skipped). Empty dict when there is nothing to score."""
    clicked: list[torch.Tensor] = []
    boxed: list[torch.Tensor] = []
    truths: list[torch.Tensor] = []
    with _eval_mode(model):
        for index in range(min(len(dataset), max_items)):
            sample = dataset[index]
            masks = sample.masks.to(model.device)
            if masks.shape[0] == 0:
                continue
            features = model.forward_image(sample.image[None].to(model.device))
            num = masks.shape[0]
            embedding = model.image_embedding_without_memory(features).expand(num, -1, -1, -1)
            high_res = [level.expand(num, -1, -1, -1) for level in features.high_res_features()]
            click = sample_points_inside(masks, _click_generator(seed, index))
            box = sample_box_prompts(masks, _click_generator(seed, index), noise=0.0)
            for prompts, out in ((click, clicked), (box, boxed)):
                points = PointPrompts(prompts.coords.to(model.device), prompts.labels.to(model.device))
                out.extend(_best_masks(model, embedding, high_res, points).cpu())
            truths.extend(masks.cpu())
    if not truths:
        return {}
    return {"val_miou_click": image_miou(clicked, truths), "val_miou_box": image_miou(boxed, truths)}


@torch.no_grad()
def validate_videos(model: SAM2Model, dataset: Any, *, max_items: int, seed: int = 0) -> dict[str, float]:
    """``{"val_j_and_f", "val_j", "val_f"}`` over the first ``max_items`` videos of ``dataset`` (a
    :class:`~sam2kit.train.data.VideoFolderDataset`). Empty dict when there is nothing to score."""
    engine = TrackingEngine(model)
    sequences = []
    with _eval_mode(model):
        for index, name in enumerate(dataset.names[:max_items]):
            video = dataset.full_video(name)
            frames = video.frames[:VAL_MAX_FRAMES]
            truth = video.masks[:VAL_MAX_FRAMES].to(model.device)
            objects = truth[0].flatten(1).any(dim=1).nonzero().flatten().tolist()
            if not objects or frames.shape[0] < 3:
                continue
            truth = truth[:, objects]
            size = model.image_size
            state = InferenceState(None, frames.shape[0], size, size, model.device, model.device)
            engine.set_frame_features(state, 0, model.forward_image(frames[:1].to(model.device)))
            click = sample_points_inside(truth[0], _click_generator(seed, index))
            first = []
            for obj in range(len(objects)):
                coords, labels = click.coords[obj : obj + 1], click.labels[obj : obj + 1]
                points = PointPrompts(coords.to(model.device), labels.to(model.device))
                first.append(engine.add_points(state, obj, 0, points).low_res_masks)
            engine.commit_prompts(state)
            predicted = [torch.cat(first, dim=0)]
            for t in range(1, frames.shape[0]):
                engine.set_frame_features(state, t, model.forward_image(frames[t : t + 1].to(model.device)))
                predicted.append(engine.track_frame(state, t).low_res_masks)
            low_res = torch.stack(predicted)[:, :, 0]  # (T, N, S/4, S/4)
            masks = torch.nn.functional.interpolate(low_res, size=(size, size), mode="bilinear", align_corners=False)
            # Scored as one label map per frame, as evaluate_synthetic and DAVIS / SA-V results are.
            masks = torch.stack([apply_non_overlapping_constraints(frame[:, None])[:, 0] for frame in masks])
            sequences.append(sequence_j_and_f(masks > 0, truth))
    if not sequences:
        return {}
    scores = mean_j_and_f(sequences)
    return {"val_j_and_f": scores["J&F"], "val_j": scores["J"], "val_f": scores["F"]}
