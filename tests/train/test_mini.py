"""The sam2kit-mini configuration: its size, and that the predictors run on it."""

from __future__ import annotations

import numpy as np
import torch

from sam2kit.build import build_model
from sam2kit.predict.image import ImagePredictor
from sam2kit.predict.video import VideoPredictor
from sam2kit.synthetic import render_clip
from sam2kit.train.mini import MINI_NAME, mini_config


def test_size() -> None:
    config = mini_config()
    assert config.name == MINI_NAME and config.image_size == 256
    torch.manual_seed(0)
    model = build_model(config, device="cpu")
    floats = sum(t.numel() for t in model.state_dict().values())
    assert 1.9e6 < floats < 2.1e6  # 7.9 MiB of float32 weights
    assert mini_config(drop_path_rate=0.1).trunk.drop_path_rate == 0.1


def test_predictors_run() -> None:
    torch.manual_seed(0)
    model = build_model(mini_config(), device="cpu")
    frames, masks = render_clip(np.random.default_rng(0), 3, 96)
    ys, xs = np.nonzero(masks[0, 0])
    point = np.array([[xs[len(xs) // 2], ys[len(ys) // 2]]], dtype=np.float32)

    predictor = ImagePredictor(model)
    predictor.set_image(frames[0])
    mask, scores, low_res = predictor.predict(point_coords=point, point_labels=np.array([1]), multimask_output=True)
    assert mask.shape == (3, 96, 96) and scores.shape == (3,) and low_res.shape == (3, 64, 64)

    video = VideoPredictor(model, show_progress=False)
    state = video.init_state(frames)
    video.add_new_points_or_box(state, 0, 1, points=point, labels=np.array([1]))
    tracked = [(index, logits.shape) for index, _, logits in video.propagate_in_video(state)]
    assert tracked == [(t, torch.Size([1, 1, 96, 96])) for t in range(3)]
