"""ImagePredictor input validation: every bad input raises a precise exception type whose message
says what was wrong and what is accepted."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from sam2kit.build import build_model
from sam2kit.config import get_config
from sam2kit.predict.image import ImagePredictor

H, W = 60, 80  # the test image; the model runs at 256 (random weights: only validation matters)


@pytest.fixture(scope="module")
def model() -> Any:
    torch.manual_seed(0)
    return build_model(get_config("sam2.1_hiera_tiny").replace(image_size=256), device="cpu")


@pytest.fixture(scope="module")
def predictor(model: Any) -> ImagePredictor:
    predictor = ImagePredictor(model)
    predictor.set_image(np.random.default_rng(0).integers(0, 256, (H, W, 3), dtype=np.uint8))
    return predictor


@pytest.fixture
def fresh(model: Any) -> ImagePredictor:
    return ImagePredictor(model)


POINT = np.array([[40.0, 30.0]])
LABEL = np.array([1])


# ----------------------------------------------------------------------------- images
@pytest.mark.parametrize(
    "image, error, match",
    [
        (np.zeros((H, W, 3), dtype=np.float32), TypeError, r"uint8 array with values 0\.\.255, got dtype float32"),
        (np.zeros((H, W, 3), dtype=np.float64), TypeError, r"astype\(np\.uint8\)"),
        (np.zeros((H, W, 4), dtype=np.uint8), ValueError, r"shape \(H, W, 3\), got shape \(60, 80, 4\).*alpha"),
        (np.zeros((H, W), dtype=np.uint8), ValueError, r"shape \(H, W, 3\), got shape \(60, 80\).*grayscale"),
        (np.zeros((H, W, 1), dtype=np.uint8), ValueError, r"shape \(H, W, 3\)"),
        (np.zeros((3, H, W), dtype=np.uint8), ValueError, r"shape \(H, W, 3\), got shape \(3, 60, 80\)"),
        (np.zeros((0, W, 3), dtype=np.uint8), ValueError, r"empty \(0x80 pixels\)"),
        (np.zeros((H, 0, 3), dtype=np.uint8), ValueError, r"empty \(60x0 pixels\)"),
        (torch.zeros(H, W, 3, dtype=torch.uint8), ValueError, r"tensor must have shape \(3, H, W\)"),
        (torch.zeros(3, H, W, dtype=torch.int64), TypeError, r"uint8 \(0\.\.255\) or float \(0\.\.1\)"),
        ([[0, 1, 2]], TypeError, r"numpy array \(H, W, 3\) uint8, a PIL image or a torch tensor"),
        ("image.png", TypeError, r"got str"),
    ],
    ids=[
        "float32", "float64", "rgba", "grayscale-2d", "one-channel", "channels-first-array", "empty-height",
        "empty-width", "channels-last-tensor", "int64-tensor", "list", "path-string",
    ],
)
def test_bad_image(fresh: ImagePredictor, image: Any, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        fresh.set_image(image)
    assert not fresh.is_image_set


def test_set_image_batch_needs_a_list(fresh: ImagePredictor) -> None:
    with pytest.raises(TypeError, match="non-empty list of images"):
        fresh.set_image_batch(np.zeros((2, H, W, 3), dtype=np.uint8))
    with pytest.raises(TypeError, match="non-empty list of images"):
        fresh.set_image_batch([])
    with pytest.raises(ValueError, match=r"images\[1\] must be an RGB array"):
        fresh.set_image_batch([np.zeros((H, W, 3), np.uint8), np.zeros((H, W, 4), np.uint8)])


# ----------------------------------------------------------------------------- state
def test_predict_before_set_image(fresh: ImagePredictor) -> None:
    with pytest.raises(RuntimeError, match=r"no image is set: call set_image"):
        fresh.predict(point_coords=POINT, point_labels=LABEL)
    with pytest.raises(RuntimeError, match=r"no image is set"):
        fresh.get_image_embedding()
    with pytest.raises(RuntimeError, match=r"no image is set"):
        fresh.predict_batch([POINT], [LABEL])


def test_predict_batch_without_set_image_batch(predictor: ImagePredictor) -> None:
    with pytest.raises(RuntimeError, match=r"predict_batch needs images set with set_image_batch"):
        predictor.predict_batch([POINT], [LABEL])


def test_reset_forgets_the_image(model: Any) -> None:
    predictor = ImagePredictor(model)
    predictor.set_image(np.zeros((H, W, 3), dtype=np.uint8))
    predictor.reset_predictor()
    with pytest.raises(RuntimeError, match="no image is set"):
        predictor.predict(point_coords=POINT, point_labels=LABEL)


# ----------------------------------------------------------------------------- prompts
@pytest.mark.parametrize(
    "prompt, error, match",
    [
        (dict(), ValueError, r"no prompt given: pass point_coords/point_labels, a box, or a mask_input"),
        (dict(point_coords=POINT), ValueError, r"point_coords and point_labels must be given together"),
        (dict(point_labels=LABEL), ValueError, r"point_coords and point_labels must be given together"),
        (
            dict(point_coords=[[-1.0, 10.0]], point_labels=[1]),
            ValueError,
            r"point \(x=-1, y=10\) lies outside the image: .*x in \[0, 80\], y in \[0, 60\]",
        ),
        (dict(point_coords=[[10.0, -0.5]], point_labels=[1]), ValueError, r"point \(x=10, y=-0\.5\) lies outside"),
        (
            dict(point_coords=[[81.0, 10.0]], point_labels=[1]),
            ValueError,
            r"point \(x=81, y=10\) lies outside the image.*80x60 \(width x height\)",
        ),
        (dict(point_coords=[[10.0, 61.0]], point_labels=[1]), ValueError, r"lies outside the image"),
        (
            dict(point_coords=[[0.5, 1.5]], point_labels=[1], normalize_coords=False),
            ValueError,
            r"outside the image.*normalised \[0, 1\] coordinates",
        ),
        (
            dict(point_coords=[[10.0, 10.0], [20.0, 20.0]], point_labels=[1]),
            ValueError,
            r"one label per point: shape \(2,\) expected for point_coords of shape \(2, 2\), got \(1,\)",
        ),
        (dict(point_coords=[[10.0, 10.0]], point_labels=[1, 0]), ValueError, r"one label per point"),
        (
            dict(point_coords=[[10.0, 10.0]], point_labels=[5]),
            ValueError,
            r"point_labels must be 1 \(foreground\), 0 \(background\), or 2/3 \(box corners\); got \[5\]",
        ),
        (dict(point_coords=[[10.0, 10.0]], point_labels=[-1]), ValueError, r"point_labels must be 1.*got \[-1\]"),
        (dict(point_coords=[[10.0, 10.0]], point_labels=[0.5]), ValueError, r"point_labels must be integers"),
        (dict(point_coords=[[np.nan, 10.0]], point_labels=[1]), ValueError, r"point_coords contain NaN"),
        (dict(point_coords=[[np.inf, 10.0]], point_labels=[1]), ValueError, r"NaN or infinite"),
        (
            dict(point_coords=[[10.0, 10.0, 1.0]], point_labels=[1]),
            ValueError,
            r"point_coords must have shape \(N, 2\) or \(B, N, 2\), got \(1, 3\)",
        ),
        (dict(point_coords=np.zeros((0, 2)), point_labels=np.zeros(0)), ValueError, r"point_coords is empty"),
        (dict(point_coords=[["a", "b"]], point_labels=[1]), TypeError, r"point_coords must be numeric"),
        (
            dict(box=[50.0, 10.0, 20.0, 40.0]),
            ValueError,
            r"x0 <= x1 and y0 <= y1; got \[\[50\.0, 10\.0, 20\.0, 40\.0\]\]",
        ),
        (dict(box=[10.0, 40.0, 20.0, 30.0]), ValueError, r"x0 <= x1 and y0 <= y1"),
        (
            dict(box=[10.0, 10.0, 20.0]),
            ValueError,
            r"box must have shape \(4,\) or \(B, 4\) as x0, y0, x1, y1; got \(3,\)",
        ),
        (dict(box=np.zeros((2, 2, 4))), ValueError, r"box must have shape \(4,\) or \(B, 4\).*got \(2, 2, 4\)"),
        (dict(box=np.zeros((0, 4))), ValueError, r"box is empty"),
        (dict(box=[10.0, 10.0, 90.0, 40.0]), ValueError, r"box corner \(x=90, y=40\) lies outside the image"),
        (dict(box=[np.nan, 10.0, 20.0, 40.0]), ValueError, r"box contains NaN"),
        (
            dict(mask_input=np.zeros((1, 128, 128))),
            ValueError,
            r"mask_input must be low-res logits of shape \(1, 64, 64\) or \(B, 1, 64, 64\).*got \(1, 128, 128\)",
        ),
        (dict(mask_input=np.zeros((64, 64))), ValueError, r"mask_input must be low-res logits.*got \(64, 64\)"),
        (dict(mask_input=np.zeros((1, 3, 64, 64))), ValueError, r"mask_input must be.*got \(1, 3, 64, 64\)"),
        (
            dict(point_coords=np.zeros((2, 1, 2)), point_labels=np.ones((2, 1)), mask_input=np.zeros((3, 1, 64, 64))),
            ValueError,
            r"mask_input has 3 masks for 2 prompts",
        ),
        (
            dict(
                box=np.array([[1.0, 1.0, 5.0, 5.0]] * 3), point_coords=np.zeros((2, 1, 2)), point_labels=np.ones((2, 1))
            ),
            ValueError,
            r"3 boxes and 2 point sets: give one point set per box",
        ),
    ],
    ids=[
        "no-prompt",
        "coords-without-labels",
        "labels-without-coords",
        "negative-x",
        "negative-y",
        "x-beyond-width",
        "y-beyond-height",
        "normalised-beyond-1",
        "too-few-labels",
        "too-many-labels",
        "label-5",
        "label-minus-1",
        "fractional-label",
        "nan-coords",
        "inf-coords",
        "three-coords",
        "empty-points",
        "non-numeric-coords",
        "box-x1-before-x0",
        "box-y1-before-y0",
        "box-three-values",
        "box-3d",
        "box-empty",
        "box-outside",
        "box-nan",
        "mask-wrong-size",
        "mask-2d",
        "mask-three-channels",
        "mask-count-mismatch",
        "boxes-vs-point-sets",
    ],
)
def test_bad_prompt(predictor: ImagePredictor, prompt: dict[str, Any], error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        predictor.predict(**prompt)


def test_valid_prompts_after_errors(predictor: ImagePredictor) -> None:
    """Errors leave the predictor usable; points on the border are inside."""
    with pytest.raises(ValueError):
        predictor.predict(point_coords=[[-1.0, 0.0]], point_labels=[1])
    masks, ious, low_res = predictor.predict(point_coords=[[0.0, 0.0], [W, H]], point_labels=[1, 0])
    assert masks.shape == (3, H, W) and masks.dtype == bool
    assert ious.shape == (3,) and low_res.shape == (3, 64, 64)
    masks, _, _ = predictor.predict(box=[0.0, 0.0, W, H], multimask_output=False)
    assert masks.shape == (1, H, W)


def test_predict_batch_length_mismatch(model: Any) -> None:
    predictor = ImagePredictor(model)
    image = np.zeros((H, W, 3), dtype=np.uint8)
    predictor.set_image_batch([image, image])
    with pytest.raises(ValueError, match=r"point_coords_batch has 1 entries but 2 images are set"):
        predictor.predict_batch([POINT], [LABEL, LABEL])
    with pytest.raises(ValueError, match=r"point_labels_batch has 1 entries but 2 images are set"):
        predictor.predict_batch([POINT, POINT], [LABEL])
    with pytest.raises(ValueError, match=r"no prompt given"):
        predictor.predict_batch([POINT, None], [LABEL, None])
    with pytest.raises(IndexError, match=r"img_idx 2 out of range for 2 image\(s\)"):
        predictor.predict_torch(POINT, LABEL, img_idx=2)
