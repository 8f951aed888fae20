"""Models built under ``torch.inference_mode()`` or ``torch.no_grad()`` work in every predictor, and
give the results of a model built normally; caches keyed on parameters still follow weight changes.

The model is the ``sam2kit-mini`` preset (256 px) on seeded random weights; each mode builds it from
the same seed, so all three hold the same weights. The module runs in a few seconds on one thread.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from functools import cache
from typing import Any

import numpy as np
import pytest
import torch

from sam2kit.build import build_model
from sam2kit.modeling.sam2 import SAM2Model
from sam2kit.predict.automatic import MaskGenerator
from sam2kit.predict.image import ImagePredictor
from sam2kit.predict.stream import StreamPredictor
from sam2kit.predict.video import VideoPredictor

MODES: dict[str, Callable[[], Any]] = {
    "inference_mode": torch.inference_mode,
    "no_grad": torch.no_grad,
    "normal": contextlib.nullcontext,
}
HEIGHT, WIDTH, NUM_FRAMES = 48, 64, 3


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@cache
def mini_model(mode: str) -> SAM2Model:
    """``sam2kit-mini`` built (seed 0) inside the context ``mode`` names."""
    with MODES[mode]():
        torch.manual_seed(0)
        return build_model("sam2kit-mini", device="cpu")


@cache
def frames() -> np.ndarray:
    """``(T, H, W, 3)`` uint8: a smooth pattern drifting right, so frames differ a little."""
    ys, xs = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
    clips = []
    for t in range(NUM_FRAMES):
        red = 127 + 120 * np.sin((xs - 2 * t) / 7.0)
        green = 127 + 120 * np.cos(ys / 5.0)
        blue = 255.0 * ((xs - 2 * t - 20) ** 2 + (ys - 24) ** 2 < 150)
        clips.append(np.stack([red, green, blue], axis=-1).astype(np.uint8))
    return np.stack(clips)


def run_all_predictors(model: SAM2Model) -> dict[str, Any]:
    """Every predictor on ``model``: named numpy outputs."""
    out: dict[str, Any] = {}
    image = frames()[0]
    image_predictor = ImagePredictor(model)
    image_predictor.set_image(image)
    masks, ious, low_res = image_predictor.predict(point_coords=[[30, 24]], point_labels=[1])
    out["image"] = (low_res, ious)
    image_predictor.set_image_batch([image, frames()[1]])
    out["image batch"] = image_predictor.predict_batch(box_batch=[[10, 5, 50, 40], [0, 0, 30, 30]])[2]

    video = VideoPredictor(model, show_progress=False)
    state = video.init_state(frames())
    video.add_new_points_or_box(state, 0, 1, points=[[30, 24]], labels=[1])
    video.add_new_points_or_box(state, 1, 2, box=[5, 5, 40, 30])
    out["video"] = [logits.numpy() for _, _, logits in video.propagate_in_video(state)]

    stream = StreamPredictor(model)
    stream.load_first_frame(frames()[0])
    stream.add_new_prompt(0, obj_id=1, points=[[30, 24]], labels=[1])
    out["stream"] = [stream.track(frame)[1].numpy() for frame in frames()[1:]]

    generator = MaskGenerator(model, points_per_side=3, pred_iou_thresh=0.0, stability_score_thresh=0.0)
    records = generator.generate(image)
    assert records, "the generator kept no mask: the comparison would say nothing"
    out["automatic"] = [(r["segmentation"], r["predicted_iou"], r["stability_score"]) for r in records]
    return out


def assert_same(expected: Any, actual: Any, where: str) -> None:
    if isinstance(expected, (list, tuple)):
        assert len(expected) == len(actual), where
        for i, (left, right) in enumerate(zip(expected, actual, strict=True)):
            assert_same(left, right, f"{where}[{i}]")
    elif isinstance(expected, np.ndarray) and expected.dtype == bool:
        np.testing.assert_array_equal(actual, expected, err_msg=where)
    else:
        np.testing.assert_allclose(actual, expected, rtol=0, atol=1e-5, err_msg=where)


@pytest.mark.parametrize("mode", ["inference_mode", "no_grad"])
def test_predictors_run_on_model_built_in(mode: str) -> None:
    reference = run_all_predictors(mini_model("normal"))
    results = run_all_predictors(mini_model(mode))
    assert set(results) == set(reference)
    for name, expected in reference.items():
        assert_same(expected, results[name], f"{mode}: {name}")


def test_predictors_run_inside_inference_mode() -> None:
    """A model built in inference mode and used inside it (the whole script under the context)."""
    reference = run_all_predictors(mini_model("normal"))
    with torch.inference_mode():
        results = run_all_predictors(mini_model("inference_mode"))
    for name, expected in reference.items():
        assert_same(expected, results[name], f"inside inference_mode: {name}")


def _embedding(model: SAM2Model) -> torch.Tensor:
    predictor = ImagePredictor(model)
    predictor.set_image(frames()[0])
    return predictor.get_image_embedding().clone()


@pytest.mark.parametrize("mode", list(MODES))
def test_weight_changes_reach_the_position_embedding(mode: str) -> None:
    """Loading new weights (and editing the position embedding in place) changes the image
    embedding whichever mode built the model; the result equals a fresh model's on those weights."""
    with MODES[mode]():
        torch.manual_seed(0)
        model = build_model("sam2kit-mini", device="cpu")
    before = _embedding(model)
    torch.manual_seed(1)
    other = build_model("sam2kit-mini", device="cpu")
    # Inference tensors can only be written inside inference mode (torch's rule).
    with torch.inference_mode() if mode == "inference_mode" else torch.no_grad():
        model.load_state_dict(other.state_dict())
    loaded = _embedding(model)
    assert not torch.allclose(loaded, before)
    torch.testing.assert_close(loaded, _embedding(other), rtol=0, atol=1e-6)

    trunk = model.image_encoder.trunk
    with torch.inference_mode() if mode == "inference_mode" else torch.no_grad():
        trunk.pos_embed.add_(0.5)
    edited = _embedding(model)
    assert not torch.allclose(edited, loaded)


def test_training_forward_gets_position_embedding_gradients_after_a_cached_pass() -> None:
    """A no-grad pass caches the position embedding; a later forward that records gradients must
    not reuse it, or the embedding parameters would get no gradient."""
    torch.manual_seed(0)
    model = build_model("sam2kit-mini", device="cpu")
    trunk = model.image_encoder.trunk
    image = torch.rand(1, 3, 256, 256)
    with torch.no_grad():
        trunk(image)
    features = trunk(image)
    sum(f.sum() for f in features).backward()
    assert trunk.pos_embed.grad is not None and trunk.pos_embed.grad.abs().sum() > 0
    assert trunk.pos_embed_window.grad is not None and trunk.pos_embed_window.grad.abs().sum() > 0
