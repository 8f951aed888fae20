"""Video training (``--train memory``): clips run through the inference tracking engine with
gradients, the memory weights learn, and a run validates J&F."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from train_helpers import (  # noqa: F401 (a fixture)
    MINI,
    log_rows,
    max_weight_difference,
    single_thread,
    synthetic_data,
    train_cli,
    weights,
)

from sam2kit.modeling.sam2 import SAM2Model
from sam2kit.predict.tracker import TrackingEngine
from sam2kit.synthetic import render_clip
from sam2kit.train.data import resize_sample
from sam2kit.train.features import FeatureCache
from sam2kit.train.losses import SAM2Loss
from sam2kit.train.mini import mini_config
from sam2kit.train.parts import enable_activation_checkpointing, set_train_mode, set_trainable
from sam2kit.train.prompts import PromptOptions
from sam2kit.train.step import clip_sample_loss, training_engine

pytestmark = pytest.mark.usefixtures("single_thread")

#: One click on frame 0, one correction there and on one other frame (which becomes conditioning).
PROMPTS = PromptOptions(prob_point_input=1.0, prob_box_input=0.0, num_correction_points=1, num_init_cond_frames=1,
                        rand_init_cond_frames=False, num_frames_to_correct=2, rand_frames_to_correct=False)


def clip(num_frames: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    """``(T, 3, 128, 128)`` normalised frames and ``(T, 2, 128, 128)`` masks of a synthetic clip."""
    frames, masks = render_clip(np.random.default_rng(3), num_frames, 128)
    images = torch.from_numpy(frames).permute(0, 3, 1, 2)
    return resize_sample(images, torch.from_numpy(masks[:, :2]), 128)


def memory_model() -> tuple[SAM2Model, list[torch.nn.Parameter]]:
    torch.manual_seed(0)
    model = SAM2Model(mini_config().replace(image_size=128))
    trainable = set_trainable(model, "memory")
    set_train_mode(model, encoder_trains=False)
    return model, trainable


def clip_loss(model: SAM2Model, engine: TrackingEngine, cache: FeatureCache, frames: torch.Tensor,
              masks: torch.Tensor) -> torch.Tensor:
    return clip_sample_loss(
        model, engine, lambda t: cache.get(f"clip/{t}", frames[t]), masks, PROMPTS,
        torch.Generator().manual_seed(5), SAM2Loss(), float(masks.shape[1]),
    ).total


def test_memory_step_runs_through_the_engine_and_learns(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: Counter[str] = Counter()
    for name in ("add_points", "track_frame", "commit_prompts"):
        original = getattr(TrackingEngine, name)

        def counted(self: TrackingEngine, *args: object, _name: str = name, _original: object = original,
                    **kwargs: object) -> object:
            calls[_name] += 1
            return _original(self, *args, **kwargs)  # type: ignore[operator]

        monkeypatch.setattr(TrackingEngine, name, counted)
    model, trainable = memory_model()
    engine = training_engine(model, PROMPTS)
    cache = FeatureCache(model, "memory")
    frames, masks = clip()
    optimizer = torch.optim.Adam(trainable, lr=2e-3)
    losses = []
    for _ in range(12):
        optimizer.zero_grad()
        loss = clip_loss(model, engine, cache, frames, masks)
        loss.backward()
        if not losses:
            attention = model.memory_attention.layers[0].cross_attn_image.q_proj.weight
            assert attention.grad is not None and attention.grad.abs().sum() > 0  # learnt through the memory
            assert model.image_encoder.trunk.patch_embed.proj.weight.grad is None  # frozen
        optimizer.step()
        losses.append(loss.item())
    # 2 objects: a click and a correction on frame 0 and on one other frame, 2 tracked frames.
    assert calls["add_points"] == 12 * 2 * 3 and calls["track_frame"] == 12 * 3 and calls["commit_prompts"] == 12 * 2
    assert cache.misses == 4 and cache.hits == 11 * 4
    assert sum(losses[-3:]) / 3 < 0.7 * sum(losses[:3]) / 3, losses


def test_activation_checkpointing_gives_the_same_gradients() -> None:
    frames, masks = clip(3)
    grads = []
    for checkpointed in (False, True):
        model, trainable = memory_model()
        if checkpointed:
            assert enable_activation_checkpointing(model, encoder=False, memory_attention=True) == 4
        clip_loss(model, training_engine(model, PROMPTS), FeatureCache(model, "memory"), frames, masks).backward()
        grads.append([param.grad.clone() for param in trainable if param.grad is not None])
    assert len(grads[0]) == len(grads[1])
    for plain, recomputed in zip(*grads, strict=True):
        torch.testing.assert_close(recomputed, plain, atol=1e-6, rtol=1e-5)


def test_memory_run_validates_j_and_f(tmp_path: Path) -> None:
    code = train_cli(*MINI, "--data", synthetic_data(), "--train", "memory", "--num-frames", "4", "--steps", "2",
                     "--lr", "1e-3", "--corrections", "1", "--val-fraction", "0.25", "--act-ckpt", "--out", tmp_path)
    assert code == 0
    assert len(log_rows(tmp_path)) == 2
    (validation,) = log_rows(tmp_path, "val")
    assert 0 <= float(validation["val_j_and_f"]) <= 1


def test_mixed_run_alternates_image_and_video_steps_and_resumes_exactly(tmp_path: Path) -> None:
    data = synthetic_data()  # holds both layouts: clips for --data, stills for --image-data
    args = [*MINI, "--data", data, "--image-data", data, "--image-share", "0.5", "--image-batch-size", "3",
            "--train", "memory", "--num-frames", "3", "--steps", "4", "--lr", "1e-3", "--corrections", "1",
            "--val-fraction", "0.25", "--val-max", "2", "--seed", "3"]
    assert train_cli(*args, "--out", tmp_path / "straight") == 0
    rows = log_rows(tmp_path / "straight")
    # Steps 2 and 4 (1-based) are image steps: 3 images of up to 3 objects; video steps: 1 clip.
    assert [int(row["step"]) for row in rows] == [1, 2, 3, 4]
    objects = [int(row["objects"]) for row in rows]
    assert objects[1] > 3 and objects[3] > 3 and objects[0] <= 3 and objects[2] <= 3, objects
    validation = log_rows(tmp_path / "straight", "val")[-1]  # after the epoch (3 clips) and at the end
    assert 0 <= float(validation["val_j_and_f"]) <= 1 and 0 <= float(validation["val_miou_click"]) <= 1
    assert train_cli(*args, "--stop-after", "3", "--out", tmp_path / "resumed") == 0
    assert train_cli(*args, "--resume", "--out", tmp_path / "resumed") == 0
    straight, resumed = weights(tmp_path / "straight" / "model.pt"), weights(tmp_path / "resumed" / "model.pt")
    assert max_weight_difference(straight, resumed) <= 1e-6


def test_image_data_needs_a_video_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = synthetic_data()
    code = train_cli(*MINI, "--data", data, "--image-data", data, "--train", "decoder", "--out", tmp_path / "a")
    assert code == 2 and "--image-data" in capsys.readouterr().err
    code = train_cli(*MINI, "--data", data, "--data-format", "images", "--image-data", data, "--train", "all",
                     "--steps", "1", "--out", tmp_path / "b")
    assert code == 1 and "--data must be videos" in capsys.readouterr().err
