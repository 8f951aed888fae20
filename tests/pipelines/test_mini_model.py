"""The shipped sam2kit-mini model: it loads offline by name, and on synthetic scenes it never saw
(seed 2; it trained on seed 1) it segments and tracks far better than the same preset with random
weights. Its bar (issue "sam2kit train", item 6: one-click mIoU >= 0.85, J&F >= 0.75) is met for
J&F (scored as DAVIS label maps) but not yet for the one-click mIoU: that test is a strict xfail, so
reaching it changes this file."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from sam2kit import from_pretrained
from sam2kit.build import build_model
from sam2kit.checkpoints import bundled_checkpoint, infer_config_from_file
from sam2kit.cli import main
from sam2kit.model_spec import ModelSpec, ModelSpecError, load_model
from sam2kit.pipelines.synthetic_eval import SyntheticScores, evaluate_synthetic

pytestmark = pytest.mark.usefixtures("one_torch_thread")

# 60 still scenes, 8 clips of 24 frames with occlusions and shapes leaving the frame.
HELD_OUT = dict(images=60, clips=8, frames=24, seed=2)
# What the shipped weights reach on HELD_OUT (models/sam2kit-mini/README.md), less a margin.
SHIPPED_FLOOR = {"image_miou": 0.78, "video_j_and_f": 0.74}
BAR = {"image_miou": 0.85, "video_j_and_f": 0.75}


@pytest.fixture(scope="module")
def shipped_scores() -> SyntheticScores:
    return evaluate_synthetic(from_pretrained("sam2kit-mini", device="cpu").eval(), **HELD_OUT)


def test_bundled_weights_load_by_name_offline(monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    path = bundled_checkpoint("sam2kit-mini")
    assert path.is_file() and path.stat().st_size < 10 * 2**20  # the size limit
    assert infer_config_from_file(path).name == "sam2kit-mini"
    assert bundled_checkpoint("sam2kit_mini") == path
    loaded = load_model(ModelSpec(checkpoint="sam2kit-mini", device="cpu"))
    assert loaded.config.name == "sam2kit-mini" and loaded.config.image_size == 256
    same = build_model(checkpoint=path, device="cpu")
    for (name, a), (_, b) in zip(loaded.model.state_dict().items(), same.state_dict().items(), strict=True):
        assert torch.equal(a, b), name


def test_unknown_bundled_name_lists_the_bundled_models() -> None:
    with pytest.raises(KeyError, match="sam2kit-mini"):
        bundled_checkpoint("sam2kit-huge")
    with pytest.raises(ModelSpecError, match="bundled model"):
        load_model(ModelSpec(checkpoint="sam2kit-huge"))


def test_cli_takes_the_bundled_model(tmp_path: Path, capsys) -> None:
    import numpy as np
    from PIL import Image

    from sam2kit.synthetic import render_image

    image, masks = render_image(np.random.default_rng([2, 5]), 256)
    Image.fromarray(image).save(tmp_path / "scene.png")
    ys, xs = np.nonzero(masks[0])
    point = f"{int(xs[len(xs) // 2])},{int(ys[len(ys) // 2])}"
    code = main(["image", str(tmp_path / "scene.png"), "--point", point, "--checkpoint", "sam2kit-mini",
                 "--device", "cpu", "--out", str(tmp_path / "out"), "-q"])
    assert code == 0
    assert any((tmp_path / "out").iterdir())


def test_shipped_model_segments_and_tracks_held_out_scenes(shipped_scores: SyntheticScores) -> None:
    assert shipped_scores.image_objects > 100 and shipped_scores.clip_objects >= 16
    for name, floor in SHIPPED_FLOOR.items():
        assert getattr(shipped_scores, name) >= floor, shipped_scores


def test_random_weights_score_far_lower() -> None:
    torch.manual_seed(0)
    random_model = build_model("sam2kit-mini", device="cpu").eval()
    scores = evaluate_synthetic(random_model, images=10, clips=1, frames=24, seed=2)
    assert scores.image_miou < 0.3 and scores.video_j_and_f < 0.3, scores


def test_shipped_model_meets_its_video_bar(shipped_scores: SyntheticScores) -> None:
    assert shipped_scores.video_j_and_f >= BAR["video_j_and_f"], shipped_scores


@pytest.mark.xfail(strict=True, reason="sam2kit-mini is still below its image bar: see models/sam2kit-mini/README.md")
def test_shipped_model_meets_its_image_bar(shipped_scores: SyntheticScores) -> None:
    assert shipped_scores.image_miou >= BAR["image_miou"], shipped_scores
