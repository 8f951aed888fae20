"""Score a model on held-out synthetic scenes, the way a user would drive it.

Images: one click per object, at the object's most interior pixel (where a person clicks), through
:class:`~sam2kit.predict.image.ImagePredictor` with three candidates, the one with the best predicted
IoU kept; the figure is the mIoU over every object. Clips: one click per object on frame 0, tracked
through the whole clip by :class:`~sam2kit.predict.video.VideoPredictor`; the figure is the J&F of
:mod:`sam2kit.metrics`, without the clicked first frame and the last one, as DAVIS and SA-V score.
Like theirs (and ``sam2kit eval``'s palette PNGs), the scored result gives each pixel to at most one
object: where tracked masks overlap, the highest-scoring object keeps the pixel (the predictor's
``non_overlap_masks``); ``non_overlap=False`` scores the overlapping per-object masks instead.

Scenes come from :mod:`sam2kit.synthetic` with their own seed, so a model trained on another seed
is scored on scenes it never saw.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..metrics import image_miou, mean_j_and_f, sequence_j_and_f
from ..modeling.sam2 import SAM2Model
from ..predict.interior import interior_points
from ..synthetic import SceneOptions, render_clip, render_image

__all__ = ["SyntheticScores", "evaluate_synthetic", "interior_point"]

#: Random streams of the evaluation scenes, apart from those of :func:`write_synthetic_dataset`.
_EVAL_IMAGES, _EVAL_CLIPS = 11, 12


@dataclass
class SyntheticScores:
    """Held-out figures of one model.

    Attributes:
        image_miou: mean IoU of the one-click masks over ``image_objects`` objects in ``images`` scenes.
        video_j_and_f / video_j / video_f: over ``clip_objects`` objects of ``clips`` clips of
            ``frames`` frames, each clicked once on frame 0.
    """

    image_miou: float
    video_j_and_f: float
    video_j: float
    video_f: float
    images: int
    image_objects: int
    clips: int
    clip_objects: int
    frames: int
    seed: int


def interior_point(mask: np.ndarray) -> tuple[float, float]:
    """``(x, y)`` pixel centre of the pixel farthest inside ``mask`` ``(H, W)`` bool (see
    :func:`~sam2kit.predict.interior.interior_points`).

    Raises:
        ValueError: the mask is empty.
    """
    x, y = interior_points(torch.from_numpy(np.ascontiguousarray(mask))[None])[0].tolist()
    return x, y


def _image_masks(model: SAM2Model, images: list[np.ndarray], targets: list[np.ndarray]) -> list[np.ndarray]:
    from ..predict.image import ImagePredictor

    predictor = ImagePredictor(model)
    predicted = []
    for image, masks in zip(images, targets, strict=True):
        predictor.set_image(image)
        for mask in masks:
            masks_out, scores, _ = predictor.predict(
                point_coords=[interior_point(mask)], point_labels=[1], multimask_output=True
            )
            predicted.append(masks_out[int(np.argmax(scores))])
    return predicted


def _track_clip(model: SAM2Model, frames: np.ndarray, masks: np.ndarray, non_overlap: bool) -> np.ndarray:
    """``(T, N, H, W)`` bool masks of the N objects tracked from one click each on frame 0."""
    from ..predict.video import VideoPredictor

    predictor = VideoPredictor(model, show_progress=False, non_overlap_masks=non_overlap)
    state = predictor.init_state(frames)
    for index, mask in enumerate(masks[0]):
        predictor.add_new_points_or_box(state, frame_idx=0, obj_id=index + 1, points=[interior_point(mask)], labels=[1])
    tracked = np.zeros(masks.shape, dtype=bool)
    for frame_idx, obj_ids, logits in predictor.propagate_in_video(state):
        for row, obj_id in enumerate(obj_ids):
            tracked[frame_idx, obj_id - 1] = (logits[row, 0] > 0).cpu().numpy()
    return tracked


def evaluate_synthetic(
    model: SAM2Model,
    *,
    images: int = 100,
    clips: int = 10,
    frames: int = 24,
    size: int = 256,
    seed: int = 2,
    options: SceneOptions | None = None,
    non_overlap: bool = True,
) -> SyntheticScores:
    """Score ``model`` on ``images`` still scenes and ``clips`` clips of ``frames`` frames (``size``
    pixels square) drawn with ``seed``. The model's mode is left as it is (predictors run it under
    ``torch.inference_mode``); pass a model in eval mode. ``options``: the scenes' (default
    :class:`~sam2kit.synthetic.SceneOptions`, as the mini model trained on). ``non_overlap``: score
    the tracked masks as one label map per frame (each pixel to the highest-scoring object, as a
    DAVIS / SA-V result is); False scores each object's own mask, overlaps and all.
    """
    options = SceneOptions() if options is None else options
    stills = [render_image(np.random.default_rng([seed, _EVAL_IMAGES, i]), size, options) for i in range(images)]
    image_targets = [masks for _, masks in stills]
    predicted = _image_masks(model, [image for image, _ in stills], image_targets)
    all_targets = [mask for masks in image_targets for mask in masks]
    miou = image_miou(np.stack(predicted), np.stack(all_targets)) if all_targets else float("nan")
    sequences = []
    clip_objects = 0
    for index in range(clips):
        clip, masks = render_clip(np.random.default_rng([seed, _EVAL_CLIPS, index]), frames, size, options)
        tracked = _track_clip(model, clip, masks, non_overlap)
        sequences.append(sequence_j_and_f(tracked, masks))
        clip_objects += masks.shape[1]
    nan = float("nan")
    video = mean_j_and_f(sequences) if sequences else {"J&F": nan, "J": nan, "F": nan}
    return SyntheticScores(
        image_miou=float(miou),
        video_j_and_f=video["J&F"],
        video_j=video["J"],
        video_f=video["F"],
        images=images,
        image_objects=len(all_targets),
        clips=clips,
        clip_objects=clip_objects,
        frames=frames,
        seed=seed,
    )
