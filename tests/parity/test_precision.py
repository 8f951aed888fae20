"""The opt-in reduced precision (bf16) against fp32, on the parity scenarios.

fp32 is proven equal to the reference elsewhere in this folder; here the same seeded weights run in
bf16 (image encoder and memory attention) and every scenario's masks must agree with fp32 at mean
IoU >= 0.98 (the precision mode's promise), with no single mask below 0.9.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from test_image_parity import IMAGE_HW, SCENARIOS
from test_video_parity import IMAGE_SIZE as VIDEO_SIZE
from test_video_parity import panned_clip

from conftest import make_model_pair
from sam2kit.build import build_model
from sam2kit.predict.image import ImagePredictor
from sam2kit.predict.video import VideoPredictor

MEAN_IOU = 0.98
MIN_IOU = 0.9
SIZE = 512


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a) > 0, np.asarray(b) > 0
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)


def _mask_ious(fp32: Any, bf16: Any) -> list[float]:
    """IoU of every (H, W) mask of two equally shaped mask stacks."""
    fp32, bf16 = np.asarray(fp32), np.asarray(bf16)
    assert fp32.shape == bf16.shape
    return [
        _iou(a, b) for a, b in zip(fp32.reshape(-1, *fp32.shape[-2:]), bf16.reshape(-1, *bf16.shape[-2:]), strict=True)
    ]


def _bf16_twin(model: Any, tmp_path: Path) -> Any:
    """The same weights in a model built with precision="bf16"."""
    path = tmp_path / "weights.pt"
    torch.save({"model": model.state_dict()}, path)
    return build_model(model.config, checkpoint=path, device="cpu", precision="bf16")


def _check(ious: list[float], what: str) -> None:
    assert np.mean(ious) >= MEAN_IOU, f"{what}: mean IoU {np.mean(ious):.4f} < {MEAN_IOU}"
    assert min(ious) >= MIN_IOU, f"{what}: a mask at IoU {min(ious):.4f} < {MIN_IOU}"


def test_bf16_model_layout(tmp_path: Path) -> None:
    model = build_model("sam2.1_hiera_tiny", device="cpu", precision="bf16")
    assert model.compute_dtype == torch.bfloat16
    assert all(p.dtype == torch.bfloat16 for p in model.image_encoder.parameters())
    assert all(p.dtype == torch.bfloat16 for p in model.memory_attention.parameters())
    for head in (model.sam_mask_decoder, model.sam_prompt_encoder, model.memory_encoder, model.obj_ptr_proj):
        assert all(p.dtype == torch.float32 for p in head.parameters())
    features = model.forward_image(torch.zeros(1, 3, 256, 256))
    assert all(f.dtype == torch.float32 for f in features.vision_feats + features.vision_pos)


def test_image_scenarios_agree_with_fp32(sam2_reference: Any, tmp_path: Path) -> None:
    from conftest import make_test_image

    pair = make_model_pair("sam2.1_hiera_tiny", SIZE)
    fp32 = ImagePredictor(pair.ours)
    bf16 = ImagePredictor(_bf16_twin(pair.ours, tmp_path))
    image = make_test_image(*IMAGE_HW)
    fp32.set_image(image)
    bf16.set_image(image)
    ious = []
    for name, make_kwargs in SCENARIOS.items():
        kwargs = make_kwargs(*IMAGE_HW)
        scenario_ious = _mask_ious(fp32.predict(**kwargs)[0], bf16.predict(**kwargs)[0])
        assert min(scenario_ious) >= MIN_IOU, f"{name}: IoU {scenario_ious}"
        ious += scenario_ious
    _check(ious, "image scenarios")


def test_video_session_agrees_with_fp32(sam2_reference: Any, tmp_path: Path) -> None:
    """Three objects (click, box, mask) with a second click on a later frame, forward then reverse."""
    pair = make_model_pair("sam2.1_hiera_tiny", VIDEO_SIZE, obj_score_bias=2.0, video=True)
    video = panned_clip(12)
    mask = np.zeros(video.shape[1:3], dtype=bool)
    mask[80:160, 200:290] = True
    masks: dict[str, list[np.ndarray]] = {}
    for name, model in (("fp32", pair.ours), ("bf16", _bf16_twin(pair.ours, tmp_path))):
        predictor = VideoPredictor(model, fill_hole_area=0, show_progress=False)
        state = predictor.init_state(video)
        predictor.add_new_points_or_box(state, 0, 1, points=[[150, 110]], labels=[1])
        predictor.add_new_points_or_box(state, 0, 2, box=[40, 40, 120, 180])
        predictor.add_new_mask(state, 0, 3, mask)
        predictor.add_new_points_or_box(state, 6, 1, points=[[160, 120], [60, 60]], labels=[1, 0])
        frames = [logits.numpy() for _, _, logits in predictor.propagate_in_video(state)]
        frames += [
            logits.numpy() for _, _, logits in predictor.propagate_in_video(state, start_frame_idx=11, reverse=True)
        ]
        masks[name] = frames
    ious = [iou for a, b in zip(masks["fp32"], masks["bf16"], strict=True) for iou in _mask_ious(a, b)]
    assert len(ious) == 3 * 24
    _check(ious, "video session")


def test_fp16_is_refused_on_the_cpu() -> None:
    with pytest.raises(ValueError, match="fp16 is not supported on the CPU"):
        build_model("sam2.1_hiera_tiny", device="cpu", precision="fp16")
    with pytest.raises(ValueError, match="unknown precision"):
        build_model("sam2.1_hiera_tiny", device="cpu", precision="int8")
