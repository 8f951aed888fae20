"""Numerical parity with the reference ``sam2==1.1.0`` for still images (fp32, CPU).

Both sides load the same seeded random weights (see ``make_model_pair`` in ``tests/conftest.py``).
Tolerances: logits max |Δ| <= 1e-3, IoU predictions max |Δ| <= 1e-4, binarised masks differ in at
most 0.01% of pixels. Most cases run at ``image_size=512`` (fast); one runs at the official 1024.
The default run covers SAM 2.1 tiny and SAM 2.0 small end to end; ``pytest -m slow`` adds all eight
presets.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import pytest
import torch

from conftest import (
    ModelPair,
    assert_features_close,
    assert_logits_close,
    assert_masks_match,
    assert_scores_close,
    make_model_pair,
    make_test_image,
    reference_yaml,
)

TINY = "sam2.1_hiera_tiny"
SIZE = 512
ALL_PRESETS = [
    f"{version}_hiera_{size}" for version in ("sam2.1", "sam2") for size in ("tiny", "small", "base_plus", "large")
]


# ----------------------------------------------------------------------------- helpers
def make_predictors(pair: ModelPair, **kwargs: Any) -> tuple[Any, Any]:
    """(reference SAM2ImagePredictor, our ImagePredictor) on the pair's models."""
    from sam2.sam2_image_predictor import SAM2ImagePredictor

    from sam2kit.predict.image import ImagePredictor

    ref_pred = SAM2ImagePredictor(pair.ref, **kwargs)
    size = pair.config.image_size
    # The reference hard-codes the feature sizes of a 1024 input.
    ref_pred._bb_feat_sizes = [(size // 4, size // 4), (size // 8, size // 8), (size // 16, size // 16)]
    return ref_pred, ImagePredictor(pair.ours, **kwargs)


def compare_outputs(ref_out: tuple, our_out: tuple, return_logits: bool, what: str) -> None:
    """Compare (masks, ious, low_res_logits) of one predict call."""
    ref_masks, ref_ious, ref_low = ref_out
    masks, ious, low = our_out
    assert np.shape(masks) == np.shape(ref_masks), f"{what}: masks {np.shape(masks)} vs {np.shape(ref_masks)}"
    if return_logits:
        assert masks.dtype == np.float32
        assert_logits_close(ref_masks, masks, f"{what}: mask logits")
    else:
        assert masks.dtype == bool
    assert_masks_match(ref_masks, masks, f"{what}: masks")
    assert_scores_close(ref_ious, ious, f"{what}: IoU predictions")
    assert_logits_close(ref_low, low, f"{what}: low-res logits")


def predict_both(ref_pred: Any, our_pred: Any, what: str = "predict", **kwargs: Any) -> tuple[tuple, tuple]:
    with torch.inference_mode():
        ref_out = ref_pred.predict(**kwargs)
    our_out = our_pred.predict(**kwargs)
    compare_outputs(ref_out, our_out, kwargs.get("return_logits", False), what)
    return ref_out, our_out


def _xy(h: int, w: int, fx: float, fy: float) -> list[float]:
    return [fx * w, fy * h]


#: name -> builder of predict() keyword arguments for an (h, w) image.
SCENARIOS: dict[str, Callable[[int, int], dict[str, Any]]] = {
    "point-multimask": lambda h, w: dict(
        point_coords=np.array([_xy(h, w, 0.45, 0.4)]), point_labels=np.array([1]), multimask_output=True
    ),
    "point-single": lambda h, w: dict(
        point_coords=np.array([_xy(h, w, 0.45, 0.4)]), point_labels=np.array([1]), multimask_output=False
    ),
    "points-with-negatives": lambda h, w: dict(
        point_coords=np.array([_xy(h, w, 0.45, 0.4), _xy(h, w, 0.6, 0.55), _xy(h, w, 0.1, 0.9), _xy(h, w, 0.9, 0.1)]),
        point_labels=np.array([1, 1, 0, 0]),
        multimask_output=False,
    ),
    "points-with-negatives-multimask-logits": lambda h, w: dict(
        point_coords=np.array([_xy(h, w, 0.3, 0.3), _xy(h, w, 0.8, 0.7)]),
        point_labels=np.array([1, 0]),
        multimask_output=True,
        return_logits=True,
    ),
    "box": lambda h, w: dict(box=np.array([0.2 * w, 0.15 * h, 0.75 * w, 0.9 * h]), multimask_output=False),
    "box-logits": lambda h, w: dict(
        box=np.array([0.2 * w, 0.15 * h, 0.75 * w, 0.9 * h]), multimask_output=True, return_logits=True
    ),
    "box-and-points": lambda h, w: dict(
        box=np.array([0.2 * w, 0.15 * h, 0.75 * w, 0.9 * h]),
        point_coords=np.array([_xy(h, w, 0.5, 0.5), _xy(h, w, 0.25, 0.85)]),
        point_labels=np.array([1, 0]),
        multimask_output=False,
    ),
    "boxes-batched": lambda h, w: dict(
        box=np.array(
            [[0.1 * w, 0.1 * h, 0.5 * w, 0.6 * h], [0.4 * w, 0.3 * h, 0.95 * w, 0.95 * h], [0.0, 0.0, w - 1.0, h - 1.0]]
        ),
        multimask_output=False,
    ),
    "boxes-and-points-batched": lambda h, w: dict(
        box=np.array([[0.1 * w, 0.1 * h, 0.5 * w, 0.6 * h], [0.4 * w, 0.3 * h, 0.95 * w, 0.95 * h]]),
        point_coords=np.array([[_xy(h, w, 0.3, 0.3)], [_xy(h, w, 0.7, 0.6)]]),
        point_labels=np.array([[1], [0]]),
        multimask_output=True,
        return_logits=True,
    ),
    "points-batched": lambda h, w: dict(
        point_coords=np.array(
            [[_xy(h, w, 0.3, 0.3), _xy(h, w, 0.35, 0.4)], [_xy(h, w, 0.7, 0.6), _xy(h, w, 0.1, 0.1)]]
        ),
        point_labels=np.array([[1, 1], [1, 0]]),
        multimask_output=True,
    ),
    "normalized-coords": lambda h, w: dict(
        point_coords=np.array([[0.45, 0.4], [0.6, 0.7]]),
        point_labels=np.array([1, 0]),
        box=np.array([0.1, 0.1, 0.9, 0.95]),
        normalize_coords=False,
        multimask_output=False,
    ),
}

IMAGE_HW = (450, 600)
NON_SQUARE = [(480, 640), (1200, 500)]


# ----------------------------------------------------------------------------- components (tiny, 512)
@pytest.fixture(scope="module")
def tiny(sam2_reference: Any) -> ModelPair:
    return make_model_pair(TINY, SIZE)


@pytest.fixture(scope="module")
def model_input(tiny: ModelPair) -> torch.Tensor:
    """A real photograph preprocessed by the reference: (1, 3, 512, 512)."""
    from sam2.utils.transforms import SAM2Transforms

    transforms = SAM2Transforms(resolution=SIZE, mask_threshold=0.0)
    return transforms(make_test_image(*IMAGE_HW))[None]


@pytest.fixture(scope="module")
def ref_features(tiny: ModelPair, model_input: torch.Tensor) -> dict[str, Any]:
    """The reference's decoder inputs for ``model_input``: image embedding (no-memory embed added)
    and high-resolution features, as its image predictor computes them."""
    with torch.inference_mode():
        backbone_out = tiny.ref.forward_image(model_input)
        _, vision_feats, vision_pos, feat_sizes = tiny.ref._prepare_backbone_features(backbone_out)
    maps = [feat.permute(1, 2, 0).reshape(1, -1, *size) for feat, size in zip(vision_feats, feat_sizes, strict=True)]
    return {
        "vision_feats": vision_feats,
        "vision_pos": vision_pos,
        "feat_sizes": feat_sizes,
        "image_embed": (vision_feats[-1] + tiny.ref.no_mem_embed).permute(1, 2, 0).reshape(1, -1, *feat_sizes[-1]),
        "high_res_feats": maps[:-1],
    }


def test_image_encoder_outputs(tiny: ModelPair, model_input: torch.Tensor) -> None:
    with torch.inference_mode():
        ref_out = tiny.ref.image_encoder(model_input)
        ours = tiny.ours.image_encoder(model_input)
    assert len(ours.backbone_fpn) == len(ref_out["backbone_fpn"]) == 3
    assert len(ours.vision_pos_enc) == len(ref_out["vision_pos_enc"]) == 3
    for level, (ref_feat, feat) in enumerate(zip(ref_out["backbone_fpn"], ours.backbone_fpn, strict=True)):
        assert_features_close(ref_feat, feat, f"backbone_fpn[{level}]")
    for level, (ref_pos, pos) in enumerate(zip(ref_out["vision_pos_enc"], ours.vision_pos_enc, strict=True)):
        assert_features_close(ref_pos, pos, f"vision_pos_enc[{level}]")
    assert_features_close(ref_out["vision_features"], ours.vision_features, "vision_features")


def test_forward_image_features(tiny: ModelPair, model_input: torch.Tensor, ref_features: dict[str, Any]) -> None:
    with torch.inference_mode():
        ours = tiny.ours.forward_image(model_input)
        embed = tiny.ours.image_embedding_without_memory(ours)
    assert [tuple(s) for s in ours.feat_sizes] == [tuple(s) for s in ref_features["feat_sizes"]]
    for level in range(3):
        assert_features_close(ref_features["vision_feats"][level], ours.vision_feats[level], f"vision_feats[{level}]")
        assert_features_close(ref_features["vision_pos"][level], ours.vision_pos[level], f"vision_pos[{level}]")
    assert_features_close(ref_features["image_embed"], embed, "image embedding")
    for level, (ref_map, our_map) in enumerate(
        zip(ref_features["high_res_feats"], ours.high_res_features(), strict=True)
    ):
        assert_features_close(ref_map, our_map, f"high_res_feats[{level}]")


def _prompt_cases() -> dict[str, dict[str, Any]]:
    generator = torch.Generator().manual_seed(7)
    coords = torch.rand(2, 3, 2, generator=generator) * SIZE
    labels = torch.tensor([[1, 0, 1], [1, 1, -1]], dtype=torch.int32)
    boxes = torch.tensor([[40.0, 60.0, 300.0, 400.0], [10.0, 20.0, 500.0, 480.0]])
    masks = torch.randn(2, 1, SIZE // 4, SIZE // 4, generator=generator) * 8
    return {
        "points-padded": dict(points=(coords, labels), boxes=None, masks=None),
        "points-and-boxes": dict(points=(coords, labels), boxes=boxes, masks=None),
        "boxes": dict(points=None, boxes=boxes, masks=None),
        "mask": dict(points=None, boxes=None, masks=masks),
        "points-and-mask": dict(points=(coords, labels), boxes=None, masks=masks),
        "nothing": dict(points=None, boxes=None, masks=None),
    }


@pytest.mark.parametrize("case", list(_prompt_cases()))
def test_prompt_encoder(tiny: ModelPair, case: str) -> None:
    prompts = _prompt_cases()[case]
    with torch.inference_mode():
        ref_sparse, ref_dense = tiny.ref.sam_prompt_encoder(**prompts)
        sparse, dense = tiny.ours.sam_prompt_encoder(**prompts)
    assert sparse.shape == ref_sparse.shape and dense.shape == ref_dense.shape
    assert_features_close(ref_sparse, sparse, f"{case}: sparse embeddings")
    assert_features_close(ref_dense, dense, f"{case}: dense embeddings")


def test_prompt_encoder_dense_pe(tiny: ModelPair) -> None:
    with torch.inference_mode():
        assert_features_close(
            tiny.ref.sam_prompt_encoder.get_dense_pe(), tiny.ours.sam_prompt_encoder.get_dense_pe(), "dense PE"
        )


@pytest.mark.parametrize("multimask", [True, False], ids=["multimask", "single"])
@pytest.mark.parametrize("prompt_batch", [1, 3])
def test_mask_decoder(tiny: ModelPair, ref_features: dict[str, Any], multimask: bool, prompt_batch: int) -> None:
    """Same inputs (the reference's features and prompt embeddings) into both decoders, with the
    high-resolution skip features; a batch of 3 prompts repeats the image embedding."""
    generator = torch.Generator().manual_seed(prompt_batch)
    coords = torch.rand(prompt_batch, 2, 2, generator=generator) * SIZE
    labels = torch.tensor([[1, 0]], dtype=torch.int32).repeat(prompt_batch, 1)
    with torch.inference_mode():
        sparse, dense = tiny.ref.sam_prompt_encoder(points=(coords, labels), boxes=None, masks=None)
        inputs = dict(
            image_embeddings=ref_features["image_embed"],
            image_pe=tiny.ref.sam_prompt_encoder.get_dense_pe(),
            sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense,
            multimask_output=multimask,
            repeat_image=prompt_batch > 1,
            high_res_features=ref_features["high_res_feats"],
        )
        ref_masks, ref_iou, ref_tokens, ref_obj = tiny.ref.sam_mask_decoder(**inputs)
        ours = tiny.ours.sam_mask_decoder(**inputs)
    num_masks = 3 if multimask else 1
    assert ours.masks.shape == ref_masks.shape == (prompt_batch, num_masks, SIZE // 4, SIZE // 4)
    assert_logits_close(ref_masks, ours.masks, "decoder masks")
    assert_masks_match(ref_masks, ours.masks, "decoder masks")
    assert_scores_close(ref_iou, ours.iou_pred, "decoder IoU")
    assert_features_close(ref_tokens, ours.sam_tokens, "decoder sam tokens")
    assert_logits_close(ref_obj, ours.object_score_logits, "object score logits")


# ----------------------------------------------------------------------------- ImagePredictor end to end
@pytest.fixture(scope="module", params=[TINY, "sam2_hiera_small"])
def e2e_pair(request: pytest.FixtureRequest, sam2_reference: Any) -> ModelPair:
    return make_model_pair(request.param, SIZE)


@pytest.fixture(scope="module")
def e2e_predictors(e2e_pair: ModelPair) -> tuple[Any, Any]:
    ref_pred, our_pred = make_predictors(e2e_pair)
    image = make_test_image(*IMAGE_HW)
    with torch.inference_mode():
        ref_pred.set_image(image)
    our_pred.set_image(image)
    return ref_pred, our_pred


def test_image_embedding(e2e_predictors: tuple[Any, Any]) -> None:
    ref_pred, our_pred = e2e_predictors
    assert_features_close(ref_pred.get_image_embedding(), our_pred.get_image_embedding(), "image embedding")
    for level, (ref_feat, feat) in enumerate(
        zip(ref_pred._features["high_res_feats"], our_pred._high_res_feats, strict=True)
    ):
        assert_features_close(ref_feat, feat, f"high_res_feats[{level}]")


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_predict(e2e_predictors: tuple[Any, Any], scenario: str) -> None:
    ref_pred, our_pred = e2e_predictors
    predict_both(ref_pred, our_pred, scenario, **SCENARIOS[scenario](*IMAGE_HW))


@pytest.mark.parametrize("with_points", [True, False], ids=["mask+points", "mask-only"])
def test_predict_mask_prompt(e2e_predictors: tuple[Any, Any], with_points: bool) -> None:
    """Low-res logits of a previous call fed back as the mask prompt (the interactive loop)."""
    ref_pred, our_pred = e2e_predictors
    h, w = IMAGE_HW
    first = dict(point_coords=np.array([_xy(h, w, 0.45, 0.4)]), point_labels=np.array([1]), multimask_output=True)
    ref_out, our_out = predict_both(ref_pred, our_pred, "first click", **first)
    best = int(np.argmax(ref_out[1]))
    assert best == int(np.argmax(our_out[1]))
    second: dict[str, Any] = dict(multimask_output=False, return_logits=True)
    if with_points:
        second.update(point_coords=np.array([_xy(h, w, 0.45, 0.4), _xy(h, w, 0.8, 0.2)]), point_labels=np.array([1, 0]))
    with torch.inference_mode():
        ref_second = ref_pred.predict(mask_input=ref_out[2][best][None], **second)
    our_second = our_pred.predict(mask_input=our_out[2][best][None], **second)
    compare_outputs(ref_second, our_second, True, "second click with mask prompt")


@pytest.mark.parametrize("hw", NON_SQUARE, ids=lambda hw: f"{hw[0]}x{hw[1]}")
def test_predict_non_square(e2e_pair: ModelPair, hw: tuple[int, int]) -> None:
    ref_pred, our_pred = make_predictors(e2e_pair)
    image = make_test_image(*hw)
    with torch.inference_mode():
        ref_pred.set_image(image)
    our_pred.set_image(image)
    for scenario in ("point-multimask", "box-logits", "boxes-and-points-batched", "points-with-negatives"):
        kwargs = SCENARIOS[scenario](*hw)
        ref_out, our_out = predict_both(ref_pred, our_pred, f"{hw}: {scenario}", **kwargs)
        leading = our_out[0].shape[:-2]
        assert our_out[0].shape[-2:] == hw, f"masks are not at the image's resolution: {our_out[0].shape}"
        assert our_out[2].shape == (*leading, SIZE // 4, SIZE // 4)


def test_predict_batch(e2e_pair: ModelPair) -> None:
    ref_pred, our_pred = make_predictors(e2e_pair)
    images = [make_test_image(*NON_SQUARE[0]), make_test_image(*NON_SQUARE[1])]
    with torch.inference_mode():
        ref_pred.set_image_batch(images)
    our_pred.set_image_batch(images)
    assert_features_close(ref_pred.get_image_embedding(), our_pred.get_image_embedding(), "batched image embedding")
    prompts = [SCENARIOS["points-with-negatives"](*NON_SQUARE[0]), SCENARIOS["box"](*NON_SQUARE[1])]
    for return_logits in (False, True):
        kwargs = dict(
            point_coords_batch=[prompts[0]["point_coords"], None],
            point_labels_batch=[prompts[0]["point_labels"], None],
            box_batch=[None, prompts[1]["box"]],
            multimask_output=True,
            return_logits=return_logits,
        )
        with torch.inference_mode():
            ref_lists = ref_pred.predict_batch(**kwargs)
        our_lists = our_pred.predict_batch(**kwargs)
        assert all(len(items) == 2 for items in our_lists)
        for idx in range(2):
            compare_outputs(
                tuple(items[idx] for items in ref_lists),
                tuple(items[idx] for items in our_lists),
                return_logits,
                f"predict_batch image {idx}",
            )
            assert our_lists[0][idx].shape[-2:] == NON_SQUARE[idx]


def test_predict_official_image_size(sam2_reference: Any) -> None:
    """One case at the official image_size=1024 (the reference's default feature sizes)."""
    pair = make_model_pair(TINY, 1024)
    ref_pred, our_pred = make_predictors(pair)
    hw = (600, 800)
    image = make_test_image(*hw)
    with torch.inference_mode():
        ref_pred.set_image(image)
    our_pred.set_image(image)
    assert_features_close(ref_pred.get_image_embedding(), our_pred.get_image_embedding(), "1024 image embedding")
    for scenario in ("point-multimask", "box-and-points", "boxes-batched"):
        ref_out, our_out = predict_both(ref_pred, our_pred, f"1024: {scenario}", **SCENARIOS[scenario](*hw))
        assert our_out[2].shape[-2:] == (256, 256)


# ----------------------------------------------------------------------------- hole / sprinkle post-processing
def scipy_connected_components(mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Stand-in for the reference CUDA extension: 8-connected labels and per-pixel component areas
    of (N, 1, H, W) binary masks, both (N, 1, H, W) int32."""
    from scipy import ndimage

    binary = mask.to(torch.bool).cpu().numpy()
    labels = np.zeros(binary.shape, dtype=np.int32)
    areas = np.zeros(binary.shape, dtype=np.int32)
    for idx in range(binary.shape[0]):
        label_map, _ = ndimage.label(binary[idx, 0], structure=np.ones((3, 3), dtype=bool))
        counts = np.bincount(label_map.ravel())
        counts[0] = 0
        labels[idx, 0] = label_map
        areas[idx, 0] = counts[label_map]
    return torch.from_numpy(labels).to(mask.device), torch.from_numpy(areas).to(mask.device)


@contextmanager
def _no_warning() -> Iterator[None]:
    """Fail if the reference warns that it skipped post-processing (the patch did not take)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        yield


@pytest.fixture
def reference_components(monkeypatch: pytest.MonkeyPatch, sam2_reference: Any) -> None:
    """Give the reference a working ``get_connected_components`` (its CUDA extension is absent)."""
    import sam2.utils.misc

    monkeypatch.setattr(sam2.utils.misc, "get_connected_components", scipy_connected_components)


def _synthetic_logits() -> torch.Tensor:
    """(2, 3, 64, 64) logits with holes, specks and border-touching regions of many sizes."""
    generator = torch.Generator().manual_seed(3)
    noise = torch.randn(2, 3, 64, 64, generator=generator)
    smooth = torch.nn.functional.avg_pool2d(noise, 5, stride=1, padding=2)  # blobs of a few pixels
    return smooth * 20 + torch.linspace(-3, 3, 64)[None, None, None, :]


@pytest.mark.parametrize(
    "hole, sprinkle, threshold",
    [(10, 0, 0.0), (0, 10, 0.0), (25, 25, 0.0), (40, 8, 1.5), (1, 1, -2.0)],
)
def test_postprocess_low_res_masks_matches_reference(
    reference_components: None, hole: float, sprinkle: float, threshold: float
) -> None:
    from sam2.utils.transforms import SAM2Transforms

    from sam2kit.predict.postprocess import postprocess_low_res_masks

    logits = _synthetic_logits()
    transforms = SAM2Transforms(
        resolution=256, mask_threshold=threshold, max_hole_area=hole, max_sprinkle_area=sprinkle
    )
    with _no_warning():
        expected = transforms.postprocess_masks(logits, orig_hw=tuple(logits.shape[-2:]))
    ours = postprocess_low_res_masks(logits, hole, sprinkle, mask_threshold=threshold)
    changed = int((expected != logits).sum())
    assert changed > 0, "the case does not exercise the post-processing"
    assert torch.equal(ours, expected), f"{int((ours != expected).sum())} of {ours.numel()} values differ"


def test_predictor_hole_filling_matches_reference(reference_components: None, e2e_predictors: tuple[Any, Any]) -> None:
    """With max_hole_area / max_sprinkle_area on, our predictor (its own connected components)
    equals the reference predictor given a working connected-components function."""
    ref_pred, our_pred = e2e_predictors
    h, w = IMAGE_HW
    kwargs = dict(
        point_coords=np.array([[_xy(h, w, 0.45, 0.4)], [_xy(h, w, 0.2, 0.8)]]),
        point_labels=np.array([[1], [1]]),
        multimask_output=True,
    )
    raw = our_pred.predict(return_logits=True, **kwargs)[0]
    hole, sprinkle = 60.0, 40.0
    try:
        ref_pred._transforms.max_hole_area, ref_pred._transforms.max_sprinkle_area = hole, sprinkle
        our_pred.max_hole_area, our_pred.max_sprinkle_area = hole, sprinkle
        for return_logits in (True, False):
            with torch.inference_mode(), _no_warning():
                ref_out = ref_pred.predict(return_logits=return_logits, **kwargs)
            our_out = our_pred.predict(return_logits=return_logits, **kwargs)
            compare_outputs(ref_out, our_out, return_logits, f"hole filling (return_logits={return_logits})")
            if return_logits:
                # The clean-up must have changed something, or the comparison proves nothing.
                assert np.abs(our_out[0] - raw).max() > 1.0, "hole filling / sprinkle removal changed nothing"
    finally:
        ref_pred._transforms.max_hole_area = ref_pred._transforms.max_sprinkle_area = 0.0
        our_pred.max_hole_area = our_pred.max_sprinkle_area = 0.0


# ----------------------------------------------------------------------------- every preset
@pytest.mark.parametrize(
    "config_name",
    # large (224 M parameters, ~0.9 GB per checkpoint) costs ~15 s each: behind the slow marker
    [pytest.param(name, marks=pytest.mark.slow) if name.endswith("large") else name for name in ALL_PRESETS],
)
def test_every_preset_loads_strictly(sam2_reference: Any, config_name: str, tmp_path: Any) -> None:
    """The reference's state dict of every preset loads into ours with strict key and shape checks.

    Built at image_size 256 (no parameter depends on it) and without caching (large is 224 M params).
    """
    from sam2.build_sam import build_sam2

    from sam2kit.build import build_model
    from sam2kit.config import get_config

    torch.manual_seed(0)
    ref = build_sam2(reference_yaml(config_name), None, device="cpu", hydra_overrides_extra=["++model.image_size=256"])
    state = ref.state_dict()
    del ref
    path = tmp_path / f"{config_name}.pt"
    torch.save({"model": state}, path)
    ours = build_model(get_config(config_name).replace(image_size=256), checkpoint=path, device="cpu", strict=True)
    own = ours.state_dict()
    assert sorted(own) == sorted(state)
    for key, value in state.items():
        assert torch.equal(own[key], value), f"{key} was not loaded"


@pytest.mark.slow
@pytest.mark.parametrize("config_name", ALL_PRESETS)
def test_every_preset_end_to_end(sam2_reference: Any, config_name: str) -> None:
    pair = make_model_pair(config_name, SIZE)
    ref_pred, our_pred = make_predictors(pair)
    image = make_test_image(*IMAGE_HW)
    with torch.inference_mode():
        ref_pred.set_image(image)
    our_pred.set_image(image)
    assert_features_close(ref_pred.get_image_embedding(), our_pred.get_image_embedding(), "image embedding")
    for scenario in ("point-multimask", "points-with-negatives", "box-logits", "boxes-and-points-batched"):
        predict_both(ref_pred, our_pred, f"{config_name}: {scenario}", **SCENARIOS[scenario](*IMAGE_HW))
