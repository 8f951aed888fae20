"""``sam2kit.compat``: a drop-in for code written against Meta's ``sam2`` package.

Parity: the call sequences of the official example notebooks (image predictor, video predictor,
automatic mask generator), written here as functions of an ``api`` namespace, run once with the
reference's imports and once with ``sam2kit.compat``'s, on the same seeded random checkpoint
(``make_model_pair`` in ``tests/conftest.py``), and must give the same masks. What differs from the
notebooks, on both sides alike: a tiny model input (``++model.image_size=256``, passed through
``hydra_overrides_extra``), small images and a 5-frame video with the notebooks' coordinates scaled
to them, fewer grid points and lower thresholds for the automatic generator (random weights give
weak masks). The reference needs adapting to run on CPU at that size (the ``reference_api``
fixture: feature sizes, a dtype cast, and scipy standing in for its CUDA connected components, so
that its hole filling and small-region removal run as sam2kit's do).

Signatures: every parameter of the reference's entry points and methods is accepted under its
official name, with the official default. Unit tests pin the builders' config handling and errors.
"""

from __future__ import annotations

import copy
import inspect
import math
import warnings
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch

from conftest import (
    assert_logits_close,
    assert_masks_match,
    assert_scores_close,
    make_model_pair,
    make_test_image,
    mask_mismatch_fraction,
    scipy_connected_components,
)
from sam2kit import compat
from sam2kit.config import get_config

TINY = "sam2.1_hiera_tiny"
MODEL_CFG = "configs/sam2.1/sam2.1_hiera_t.yaml"
IMAGE_SIZE = 128
OVERRIDES = [f"++model.image_size={IMAGE_SIZE}"]
DEVICE = torch.device("cpu")
VIDEO_HW, NUM_FRAMES = (72, 128), 4
VIDEO_MASK_MISMATCH = 5e-4
MIN_MASK_IOU = 0.99


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def checkpoint(sam2_reference: Any) -> Path:
    """The seeded random checkpoint (official layout) both sides load; objects biased to appear."""
    return make_model_pair(TINY, IMAGE_SIZE, obj_score_bias=2.0, video=True).checkpoint


# ----------------------------------------------------------------------------- the two APIs


@pytest.fixture
def reference_api(sam2_reference: Any, monkeypatch: pytest.MonkeyPatch) -> SimpleNamespace:
    """The reference's entry points, adapted to run on CPU at a small input size."""
    import sam2.automatic_mask_generator
    import sam2.utils.misc
    from sam2.build_sam import build_sam2, build_sam2_video_predictor
    from sam2.sam2_image_predictor import SAM2ImagePredictor

    class ImagePredictor(SAM2ImagePredictor):
        def __init__(self, sam_model: Any, **kwargs: Any) -> None:
            super().__init__(sam_model, **kwargs)
            size = sam_model.image_size  # it hard-codes the feature sizes of a 1024 input
            self._bb_feat_sizes = [(size // 4,) * 2, (size // 8,) * 2, (size // 16,) * 2]

    def video_predictor(*args: Any, **kwargs: Any) -> Any:
        predictor = build_sam2_video_predictor(*args, **kwargs)
        memory_attention = predictor.memory_attention.forward

        def forward(curr: Any, memory: Any, curr_pos: Any = None, memory_pos: Any = None, **rest: Any) -> Any:
            # In fp32 on CPU it fails where every memory token is a stored bf16 memory; cast as the
            # promoted concat does on every other frame (shared/REFERENCE.md).
            dtype = curr[0].dtype if isinstance(curr, list) else curr.dtype
            return memory_attention(curr=curr, memory=memory.to(dtype), curr_pos=curr_pos,
                                    memory_pos=memory_pos.to(dtype), **rest)

        predictor.memory_attention.forward = forward
        return predictor

    monkeypatch.setattr(sam2.automatic_mask_generator, "SAM2ImagePredictor", ImagePredictor)
    monkeypatch.setattr(sam2.utils.misc, "get_connected_components", scipy_connected_components)
    return SimpleNamespace(
        build_sam2=build_sam2,
        build_sam2_video_predictor=video_predictor,
        SAM2ImagePredictor=ImagePredictor,
        SAM2AutomaticMaskGenerator=sam2.automatic_mask_generator.SAM2AutomaticMaskGenerator,
    )


@pytest.fixture
def compat_api() -> SimpleNamespace:
    """``from sam2kit.compat import ...``: nothing else changes."""
    return SimpleNamespace(
        build_sam2=compat.build_sam2,
        build_sam2_video_predictor=compat.build_sam2_video_predictor,
        SAM2ImagePredictor=compat.SAM2ImagePredictor,
        SAM2AutomaticMaskGenerator=compat.SAM2AutomaticMaskGenerator,
    )


# ----------------------------------------------------------------------------- the notebooks
def image_notebook(api: SimpleNamespace, sam2_checkpoint: Path) -> list[tuple[str, Any]]:
    """image_predictor_example: clicks, refinement with the previous logits, boxes, box + click,
    batched boxes, then batched images with batched boxes and batched clicks."""
    out: list[tuple[str, Any]] = []
    sam2_model = api.build_sam2(MODEL_CFG, sam2_checkpoint, device=DEVICE, hydra_overrides_extra=OVERRIDES)
    predictor = api.SAM2ImagePredictor(sam2_model)
    image = make_test_image(120, 180)  # the truck photo is 1200 x 1800: coordinates scaled by 0.1
    predictor.set_image(image)

    input_point, input_label = np.array([[50, 37.5]]), np.array([1])
    masks, scores, logits = predictor.predict(point_coords=input_point, point_labels=input_label,
                                              multimask_output=True)
    sorted_ind = np.argsort(scores)[::-1]
    masks, scores, logits = masks[sorted_ind], scores[sorted_ind], logits[sorted_ind]
    out.append(("one click", (masks, scores, logits)))

    input_point, input_label = np.array([[50, 37.5], [112.5, 62.5]]), np.array([1, 1])
    mask_input = logits[np.argmax(scores), :, :]
    out.append(("two clicks + mask", predictor.predict(
        point_coords=input_point, point_labels=input_label, mask_input=mask_input[None, :, :],
        multimask_output=False)))
    input_label = np.array([1, 0])
    out.append(("click + background click", predictor.predict(
        point_coords=input_point, point_labels=input_label, mask_input=mask_input[None, :, :],
        multimask_output=False)))

    input_box = np.array([42.5, 60, 70, 87.5])
    out.append(("box", predictor.predict(point_coords=None, point_labels=None, box=input_box[None, :],
                                         multimask_output=False)))
    out.append(("box + background click", predictor.predict(
        point_coords=np.array([[57.5, 75]]), point_labels=np.array([0]), box=input_box, multimask_output=False)))
    input_boxes = np.array([[7.5, 27.5, 172.5, 85], [42.5, 60, 70, 87.5], [137.5, 55, 165, 80], [124, 67.5, 140, 75]])
    out.append(("four boxes", predictor.predict(point_coords=None, point_labels=None, box=input_boxes,
                                                multimask_output=False)))

    image1, image2 = image, make_test_image(100, 150)
    image1_boxes = input_boxes
    image2_boxes = np.array([[45, 17, 52, 35], [35, 19, 45, 35], [50, 17, 58, 35], [58, 17, 64, 35]]) * 1.5
    predictor.set_image_batch([image1, image2])
    out.append(("image batch, boxes", predictor.predict_batch(
        None, None, box_batch=[image1_boxes, image2_boxes], multimask_output=False)))
    image1_pts, image1_labels = np.array([[[50, 37.5]], [[65, 75]]]), np.array([[1], [1]])
    image2_pts, image2_labels = np.array([[[60, 45]], [[94.5, 45]]]), np.array([[1], [1]])
    out.append(("image batch, clicks", predictor.predict_batch(
        [image1_pts, image2_pts], [image1_labels, image2_labels], box_batch=None, multimask_output=True)))
    return out


def _scaled(points: list[list[float]]) -> np.ndarray:
    """The video notebook's coordinates (a 540 x 960 video) on our VIDEO_HW frames."""
    return np.array(points, dtype=np.float32) * np.array([VIDEO_HW[1] / 960, VIDEO_HW[0] / 540], dtype=np.float32)


def video_notebook(api: SimpleNamespace, sam2_checkpoint: Path, video_dir: Path) -> list[tuple[str, Any]]:
    """video_predictor_example: clicks on one object, a refinement on a later frame, a box, box +
    click, then several objects; propagation after each, its masks gathered per frame."""
    out: list[tuple[str, Any]] = []
    predictor = api.build_sam2_video_predictor(MODEL_CFG, sam2_checkpoint, device=DEVICE,
                                               hydra_overrides_extra=OVERRIDES)
    inference_state = predictor.init_state(video_path=str(video_dir))
    predictor.reset_state(inference_state)

    def prompt(what: str, **kwargs: Any) -> None:
        _, out_obj_ids, out_mask_logits = predictor.add_new_points_or_box(inference_state=inference_state, **kwargs)
        out.append((what, (list(out_obj_ids), out_mask_logits)))

    def propagate(what: str) -> None:
        video_segments = {}
        for out_frame_idx, out_obj_ids, out_mask_logits in predictor.propagate_in_video(inference_state):
            video_segments[out_frame_idx] = {
                out_obj_id: (out_mask_logits[i] > 0.0).cpu().numpy() for i, out_obj_id in enumerate(out_obj_ids)
            }
            out.append((f"{what}: frame {out_frame_idx} logits", out_mask_logits))
        out.append((f"{what}: segments", video_segments))

    labels = np.array([1], np.int32)
    prompt("one click", frame_idx=0, obj_id=1, points=_scaled([[210, 350]]), labels=labels)
    prompt("two clicks", frame_idx=0, obj_id=1, points=_scaled([[210, 350], [250, 220]]),
           labels=np.array([1, 1], np.int32))
    propagate("clicks")
    prompt("refinement", frame_idx=2, obj_id=1, points=_scaled([[82, 415]]), labels=np.array([0], np.int32))
    propagate("refined")

    predictor.reset_state(inference_state)
    box = _scaled([[300, 0], [500, 400]]).reshape(-1)
    prompt("box", frame_idx=0, obj_id=4, box=box)
    prompt("box + click", frame_idx=0, obj_id=4, points=_scaled([[460, 60]]), labels=labels, box=box)
    propagate("box")

    predictor.reset_state(inference_state)
    prompt("object 2", frame_idx=0, obj_id=2, points=_scaled([[200, 300]]), labels=labels)
    prompt("object 2 refined", frame_idx=0, obj_id=2, points=_scaled([[200, 300], [275, 175]]),
           labels=np.array([1, 0], np.int32))
    prompt("object 3", frame_idx=0, obj_id=3, points=_scaled([[400, 150]]), labels=labels)
    propagate("two objects")
    return out


#: The generators' settings: the notebook's structure (defaults, then a tuned one with a crop layer,
#: small-region removal and m2m) with fewer points and thresholds that keep masks on random weights.
FIRST_GENERATOR = dict(points_per_side=6, pred_iou_thresh=0.5, stability_score_thresh=0.5,
                       stability_score_offset=0.05, box_nms_thresh=1.0)
SECOND_GENERATOR = dict(points_per_side=4, points_per_batch=8, pred_iou_thresh=0.0, stability_score_thresh=0.2,
                        stability_score_offset=0.05, crop_n_layers=1, box_nms_thresh=0.7,
                        crop_n_points_downscale_factor=2, min_mask_region_area=25.0, use_m2m=True)


def automatic_notebook(api: SimpleNamespace, sam2_checkpoint: Path) -> list[tuple[str, Any]]:
    """automatic_mask_generator_example: a model without post-processing, a generator, a tuned one."""
    image = make_test_image(96, 128)
    sam2 = api.build_sam2(MODEL_CFG, sam2_checkpoint, device=DEVICE, apply_postprocessing=False,
                          hydra_overrides_extra=OVERRIDES)
    mask_generator = api.SAM2AutomaticMaskGenerator(sam2, **FIRST_GENERATOR)
    masks = mask_generator.generate(image)
    mask_generator_2 = api.SAM2AutomaticMaskGenerator(model=sam2, **SECOND_GENERATOR)
    masks2 = mask_generator_2.generate(image)
    return [("generator", masks), ("tuned generator", masks2)]


# ----------------------------------------------------------------------------- comparisons
def _run_reference(notebook: Any, *args: Any) -> list[tuple[str, Any]]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # It warns, and skips hole filling, where the connected-components stand-in did not take.
        warnings.filterwarnings("error", message="(?s).*post-processing")
        return notebook(*args)


def _compare_predictions(what: str, ref: tuple, ours: tuple) -> None:
    """(masks, scores, logits), possibly lists of them (predict_batch)."""
    if isinstance(ref[0], list):
        for index, parts in enumerate(zip(*ref, strict=True)):
            _compare_predictions(f"{what} image {index}", parts, tuple(o[index] for o in ours))
        return
    masks, scores, logits = ours
    assert masks.shape == ref[0].shape and masks.dtype == ref[0].dtype, what
    assert_masks_match(ref[0], masks, f"{what}: masks")
    assert_scores_close(ref[1], scores, f"{what}: scores")
    assert_logits_close(ref[2], logits, f"{what}: logits")


def _records_match(what: str, ref: list[dict[str, Any]], ours: list[dict[str, Any]]) -> None:
    assert ref, f"{what}: the reference keeps no mask; retune the settings"
    assert len(ours) == len(ref), f"{what}: {len(ours)} masks, reference {len(ref)}"
    for index, (record, expected) in enumerate(zip(ours, ref, strict=True)):
        assert record.keys() == expected.keys(), what
        mask, ref_mask = record["segmentation"], expected["segmentation"]
        union = np.logical_or(mask, ref_mask).sum()
        iou = 1.0 if union == 0 else np.logical_and(mask, ref_mask).sum() / union
        assert iou >= MIN_MASK_IOU, f"{what}: mask {index} IoU {iou:.4f} with the reference's"
        for key in ("bbox", "crop_box", "point_coords"):
            assert record[key] == expected[key], f"{what}: mask {index} {key} {record[key]} != {expected[key]}"
        for key, atol in (("predicted_iou", 1e-4), ("stability_score", 1e-3)):
            same = math.isclose(record[key], expected[key], abs_tol=atol) or (
                math.isnan(record[key]) and math.isnan(expected[key]))
            assert same, f"{what}: mask {index} {key} {record[key]} != {expected[key]}"


def test_image_notebook_matches_reference(checkpoint: Path, reference_api: SimpleNamespace,
                                          compat_api: SimpleNamespace) -> None:
    ref = _run_reference(image_notebook, reference_api, checkpoint)
    ours = image_notebook(compat_api, checkpoint)
    assert [name for name, _ in ours] == [name for name, _ in ref]
    for (what, ref_out), (_, our_out) in zip(ref, ours, strict=True):
        _compare_predictions(what, ref_out, our_out)


def test_video_notebook_matches_reference(checkpoint: Path, reference_api: SimpleNamespace,
                                          compat_api: SimpleNamespace, tmp_path: Path) -> None:
    from sam2kit.io.frames import write_frames_to_folder

    frames = [make_test_image(200, 260)[10 + 4 * t : 10 + 4 * t + VIDEO_HW[0], 6 * t : 6 * t + VIDEO_HW[1]]
              for t in range(NUM_FRAMES)]
    video_dir = write_frames_to_folder(frames, tmp_path / "frames")
    ref = _run_reference(video_notebook, reference_api, checkpoint, video_dir)
    ours = video_notebook(compat_api, checkpoint, video_dir)
    assert [name for name, _ in ours] == [name for name, _ in ref]
    for (what, ref_out), (_, our_out) in zip(ref, ours, strict=True):
        if what.endswith("segments"):
            assert sorted(our_out) == list(range(NUM_FRAMES)) == sorted(ref_out), what
            for frame_idx, masks in ref_out.items():
                assert list(our_out[frame_idx]) == list(masks), f"{what} frame {frame_idx}: object ids"
                for obj_id, mask in masks.items():
                    mismatch = mask_mismatch_fraction(mask, our_out[frame_idx][obj_id])
                    assert mismatch <= VIDEO_MASK_MISMATCH, f"{what} frame {frame_idx} object {obj_id}: {mismatch:.3%}"
                    assert mask.any(), f"{what} frame {frame_idx}: an empty mask says little; retune"
        elif isinstance(ref_out, tuple):
            assert our_out[0] == ref_out[0], f"{what}: object ids"
            assert_logits_close(ref_out[1], our_out[1], what)
        else:
            assert_logits_close(ref_out, our_out, what)


def test_automatic_notebook_matches_reference(checkpoint: Path, reference_api: SimpleNamespace,
                                              compat_api: SimpleNamespace) -> None:
    ref = _run_reference(automatic_notebook, reference_api, checkpoint)
    ours = automatic_notebook(compat_api, checkpoint)
    for (what, ref_records), (_, records) in zip(ref, ours, strict=True):
        _records_match(what, ref_records, records)


# ----------------------------------------------------------------------------- official signatures
def _reference_entry_points() -> list[tuple[str, Any, Any]]:
    """(what, reference callable, ours) for every official entry point and public method."""
    import sam2.build_sam as build_sam
    from sam2.automatic_mask_generator import SAM2AutomaticMaskGenerator
    from sam2.sam2_image_predictor import SAM2ImagePredictor
    from sam2.sam2_video_predictor import SAM2VideoPredictor

    pairs = [(name, getattr(build_sam, name), getattr(compat, name)) for name in
             ("build_sam2", "build_sam2_video_predictor", "build_sam2_hf", "build_sam2_video_predictor_hf")]
    #: Internal helpers of the reference's generator (its own MaskData type), not user API.
    internal = {"postprocess_small_regions", "refine_with_m2m"}
    for ref_cls in (SAM2ImagePredictor, SAM2VideoPredictor, SAM2AutomaticMaskGenerator):
        ours = getattr(compat, ref_cls.__name__)
        for name, member in vars(ref_cls).items():
            if (name.startswith("_") and name != "__init__") or name in internal or isinstance(member, property):
                continue
            pairs.append((f"{ref_cls.__name__}.{name}", getattr(ref_cls, name), getattr(ours, name)))
    return pairs


def test_official_parameter_names_and_defaults_are_accepted(sam2_reference: Any) -> None:
    empty, variadic = inspect.Parameter.empty, (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    checked = 0
    for what, ref_fn, our_fn in _reference_entry_points():
        ours = inspect.signature(our_fn).parameters
        for name, param in inspect.signature(ref_fn).parameters.items():
            if name == "self" or param.kind in variadic:
                continue
            assert name in ours, f"{what}: no parameter {name!r}"
            assert ours[name].kind != inspect.Parameter.POSITIONAL_ONLY, f"{what}: {name} is positional-only"
            if param.default is not empty:
                default = ours[name].default
                default = list(default) if isinstance(param.default, list) else default
                assert default == param.default, f"{what}: {name} defaults to {default!r}, officially {param.default!r}"
            checked += 1
    assert checked > 60


# ----------------------------------------------------------------------------- builders (no reference)
@pytest.mark.parametrize(
    ("config_file", "preset"),
    [
        ("configs/sam2.1/sam2.1_hiera_l.yaml", "sam2.1_hiera_large"),
        ("configs/sam2.1/sam2.1_hiera_b+.yaml", "sam2.1_hiera_base_plus"),
        ("sam2_hiera_t.yaml", "sam2_hiera_tiny"),
        ("configs/sam2/sam2_hiera_s.yaml", "sam2_hiera_small"),
        ("sam2.1_hiera_tiny", "sam2.1_hiera_tiny"),
    ],
)
def test_official_config_names(config_file: str, preset: str) -> None:
    config, options = compat.official_config(config_file)
    assert config == get_config(preset) and options == {}
    config, options = compat.official_config(config_file, video=True)
    assert config == get_config(preset)
    assert options == {"fill_hole_area": 8, "non_overlap_masks": False, "clear_non_cond_mem_around_input": False,
                       "add_all_frames_to_correct_as_cond": False}


def test_postprocessing_and_overrides_follow_the_official_builders() -> None:
    config, options = compat.official_config(MODEL_CFG, apply_postprocessing=False, video=True)
    assert not config.dynamic_multimask_via_stability and not config.binarize_mask_from_pts_for_mem_enc
    assert options["fill_hole_area"] == 0
    overrides = ["++model.fill_hole_area=3", "model.image_size=512", "+model.non_overlap_masks=true",
                 "++model.sam_mask_decoder_extra_args.dynamic_multimask_stability_thresh=0.9",
                 "++model.compile_image_encoder=true"]
    config, options = compat.official_config(MODEL_CFG, overrides, apply_postprocessing=False, video=True)
    assert config.image_size == 512 and config.dynamic_multimask_stability_thresh == 0.9
    assert options["fill_hole_area"] == 3 and options["non_overlap_masks"] is True
    # Post-processing is applied after the user's overrides, as in the official builders.
    config, options = compat.official_config(MODEL_CFG, overrides, video=True)
    assert options["fill_hole_area"] == 8 and config.dynamic_multimask_stability_thresh == 0.98


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        (dict(config_file="configs/sam2.1/sam2.1_hiera_x.yaml"), ValueError, "unknown config_file"),
        (dict(hydra_overrides_extra=["++model.image_size=abc"]), ValueError, "image_size takes a int"),
        (dict(hydra_overrides_extra=["++model.image_size=100"]), ValueError, "multiple of 32"),
        (dict(hydra_overrides_extra=["++model.no_such_option=1"]), ValueError, "unsupported option 'no_such_option'"),
        (dict(hydra_overrides_extra=["~model.image_size"]), ValueError, "++model.<option>=<value>"),
        (dict(hydra_overrides_extra=["++model.fill_hole_area=3"]), ValueError, "option of the video predictor"),
        (dict(hydra_overrides_extra="++model.image_size=512"), ValueError, "must be a list"),
        (dict(mode="test"), ValueError, "mode must be 'eval' or 'train'"),
        (dict(compile_model=True), TypeError, "unsupported option(s) compile_model"),
    ],
)
def test_build_errors(kwargs: dict[str, Any], error: type[Exception], message: str) -> None:
    arguments = {"config_file": MODEL_CFG, "device": "cpu", **kwargs}
    with pytest.raises(error) as caught:
        compat.build_sam2(**arguments)
    assert message in str(caught.value)


def test_build_sam2_and_video_predictor() -> None:
    small = ["++model.image_size=64"]
    model = compat.build_sam2(MODEL_CFG, None, "cpu", "train", small)
    assert model.training and model.config.image_size == 64
    predictor = compat.build_sam2_video_predictor(MODEL_CFG, device="cpu", hydra_overrides_extra=small,
                                                  vos_optimized=True)
    assert isinstance(predictor, compat.SAM2VideoPredictor) and not predictor.model.training
    assert predictor.fill_hole_area == 8 and predictor.model.config.binarize_mask_from_pts_for_mem_enc
    with pytest.raises(ValueError, match="eval mode only"):
        compat.build_sam2_video_predictor(MODEL_CFG, device="cpu", mode="train", hydra_overrides_extra=small)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA"):
            compat.build_sam2(MODEL_CFG, hydra_overrides_extra=small)  # the official default device


@pytest.fixture
def fake_hub(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """``sam2kit.build.from_pretrained`` without the network: a seeded random model of the preset."""
    from sam2kit import build

    requested: list[str] = []
    built: dict[str, Any] = {}

    def from_pretrained(model_id: str, device: Any = None, **_: Any) -> Any:
        requested.append(model_id)
        if model_id not in built:
            torch.manual_seed(0)
            built[model_id] = build.build_model(model_id, device="cpu")
        return copy.deepcopy(built[model_id]).to(device)

    monkeypatch.setattr(build, "from_pretrained", from_pretrained)
    return requested


def test_hub_builders_and_from_pretrained(fake_hub: list[str]) -> None:
    model_id = "facebook/sam2.1-hiera-tiny"
    model = compat.build_sam2_hf(model_id, device="cpu")
    assert model.config == get_config(model_id)
    resized = compat.build_sam2_hf(model_id, device="cpu", hydra_overrides_extra=["++model.image_size=128"])
    assert resized.config.image_size == 128
    torch.testing.assert_close(resized.state_dict(), model.state_dict(), rtol=0, atol=0)

    image = compat.SAM2ImagePredictor.from_pretrained(model_id, device="cpu", mask_threshold=0.5)
    assert isinstance(image, compat.SAM2ImagePredictor) and image.mask_threshold == 0.5
    video = compat.SAM2VideoPredictor.from_pretrained(model_id, device="cpu", apply_postprocessing=False)
    assert isinstance(video, compat.SAM2VideoPredictor) and video.fill_hole_area == 0
    generator = compat.SAM2AutomaticMaskGenerator.from_pretrained(model_id, device="cpu", points_per_side=4)
    assert isinstance(generator, compat.SAM2AutomaticMaskGenerator) and generator.points_per_side == 4
    assert fake_hub == [model_id] * 5
    with pytest.raises(TypeError, match="unsupported option"):
        compat.SAM2ImagePredictor.from_pretrained(model_id, device="cpu", points_per_side=4)
    with pytest.raises(ValueError, match="unknown model_id"):
        compat.build_sam2_hf("facebook/sam3", device="cpu")


# ----------------------------------------------------------------------------- official keyword names
@pytest.fixture(scope="module")
def mini() -> Any:
    from sam2kit.build import build_model

    torch.manual_seed(0)
    return build_model("sam2kit-mini", device="cpu")


def test_official_keyword_names_of_sam2kit_predictors(mini: Any) -> None:
    from sam2kit.predict.image import ImagePredictor
    from sam2kit.predict.stream import StreamPredictor
    from sam2kit.predict.video import VideoPredictor

    frames = np.stack([make_test_image(48, 64)] * 2)
    video = VideoPredictor(mini, show_progress=False)
    state = video.init_state(video_path=frames)
    assert state.num_frames == 2
    with pytest.raises(TypeError, match="video= or its official name video_path="):
        video.init_state(frames, video_path=frames)
    with pytest.raises(TypeError, match="got neither"):
        video.init_state()

    image = ImagePredictor(mini)
    image.set_image_batch(image_list=list(frames))
    assert image.get_image_embedding().shape[0] == 2
    with pytest.raises(TypeError, match="image_list"):
        image.set_image_batch(list(frames), image_list=list(frames))

    stream = StreamPredictor(mini)
    stream.load_first_frame(frames[0])
    stream.add_new_prompt(0, obj_id=1, box=[5, 5, 40, 30])
    logits = stream.add_new_prompt(0, obj_id=2, bbox=[5, 5, 40, 30])[2]  # the same box for another object
    torch.testing.assert_close(logits[1], logits[0])
    with pytest.raises(ValueError, match="box= or bbox="):
        stream.add_new_prompt(0, obj_id=1, box=[5, 5, 40, 30], bbox=[5, 5, 40, 30])
