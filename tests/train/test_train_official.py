"""A decoder fine-tune of a seeded official-format SAM 2.1 tiny checkpoint: the result loads strictly
in Meta's ``build_sam2`` and predicts the same logits there as in sam2kit; the image encoder is
untouched."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from train_helpers import max_weight_difference, single_thread, synthetic_data, train_cli, weights  # noqa: F401

from conftest import (
    assert_logits_close,
    assert_scores_close,
    make_model_pair,
    make_test_image,
    reference_yaml,
    require_reference,
)
from sam2kit.build import build_model
from sam2kit.predict.image import ImagePredictor

pytestmark = pytest.mark.usefixtures("single_thread")

TINY, SIZE = "sam2.1_hiera_tiny", 256  # the reference takes image_size as a Hydra override


def test_decoder_finetune_of_official_tiny_loads_in_the_reference(tmp_path: Path) -> None:
    require_reference()
    from sam2.build_sam import build_sam2
    from sam2.sam2_image_predictor import SAM2ImagePredictor

    pair = make_model_pair(TINY, SIZE)
    code = train_cli("--checkpoint", pair.checkpoint, "--config", TINY, "--image-size", SIZE, "--train", "decoder",
                     "--data", synthetic_data(), "--steps", "3", "--lr", "1e-4", "--val-max", "0", "--out", tmp_path,
                     "--max-objects", "1", "--corrections", "1")  # 2 decoder rounds of 1 object per sample: fast
    assert code == 0
    base, tuned = weights(pair.checkpoint), weights(tmp_path / "model.pt")
    assert set(tuned) == set(base)  # exactly the official keys
    encoder = [key for key in base if key.startswith("image_encoder.")]
    assert max_weight_difference({k: base[k] for k in encoder}, {k: tuned[k] for k in encoder}) == 0.0
    decoder = [key for key in base if key.startswith("sam_mask_decoder.transformer.")]
    assert max_weight_difference({k: base[k] for k in decoder}, {k: tuned[k] for k in decoder}) > 0

    torch.manual_seed(0)
    reference = build_sam2(reference_yaml(TINY), str(tmp_path / "model.pt"), device="cpu",
                           hydra_overrides_extra=[f"++model.image_size={SIZE}"])  # loads strictly
    ours = build_model(pair.config, checkpoint=tmp_path / "model.pt", device="cpu")
    ref_pred: Any = SAM2ImagePredictor(reference)
    ref_pred._bb_feat_sizes = [(SIZE // 4, SIZE // 4), (SIZE // 8, SIZE // 8), (SIZE // 16, SIZE // 16)]
    our_pred = ImagePredictor(ours)
    image = make_test_image(240, 320)
    prompt = dict(point_coords=np.array([[150.0, 100.0]]), point_labels=np.array([1]), multimask_output=True,
                  return_logits=True)
    with torch.inference_mode():
        ref_pred.set_image(image)
        ref_masks, ref_ious, ref_low = ref_pred.predict(**prompt)
    our_pred.set_image(image)
    masks, ious, low = our_pred.predict(**prompt)
    assert_logits_close(ref_low, low, "fine-tuned low-res logits")
    assert_logits_close(ref_masks, masks, "fine-tuned mask logits")
    assert_scores_close(ref_ious, ious, "fine-tuned IoU predictions")
