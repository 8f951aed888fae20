"""LoRA adapters: the merged model computes what the adapted one does, and saves exactly the official
keys; a ``--lora`` run trains only the adapters and the heads, and ships merged weights."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from train_helpers import MINI, single_thread, synthetic_data, train_cli, weights  # noqa: F401 (a fixture)

from sam2kit.build import build_model
from sam2kit.modeling.sam2 import SAM2Model
from sam2kit.train.lora import LoRALinear, add_lora, merge_lora, merged_state_dict
from sam2kit.train.mini import mini_config
from sam2kit.train.parts import trainable_names

pytestmark = pytest.mark.usefixtures("single_thread")

CONFIG = mini_config().replace(image_size=128)


def adapted_model() -> tuple[SAM2Model, SAM2Model]:
    """A plain mini model and a copy with rank-4 adapters whose update is not zero."""
    torch.manual_seed(0)
    plain = SAM2Model(CONFIG).eval()
    adapted = copy.deepcopy(plain)
    names = add_lora(adapted, rank=4, alpha=8)
    assert len(names) == 2 * len(plain.image_encoder.trunk.blocks)
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for module in adapted.modules():
            if isinstance(module, LoRALinear):
                module.lora_B.copy_(0.05 * torch.randn(module.lora_B.shape, generator=generator))
    return plain, adapted


def test_adapters_start_as_the_plain_model() -> None:
    torch.manual_seed(0)
    plain = SAM2Model(CONFIG).eval()
    adapted = copy.deepcopy(plain)
    add_lora(adapted, rank=2)
    image = torch.randn(1, 3, 128, 128)
    with torch.no_grad():
        expected, got = plain.forward_image(image), adapted.forward_image(image)
    assert torch.equal(expected.vision_feats[-1], got.vision_feats[-1])  # B = 0: no update


def test_merged_model_equals_the_adapter_model() -> None:
    plain, adapted = adapted_model()
    image = torch.randn(2, 3, 128, 128, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        reference = adapted.forward_image(image).vision_feats
        before = plain.forward_image(image).vision_feats
        state = merged_state_dict(adapted)
        assert set(state) == set(plain.state_dict())  # the official keys, no adapter keys
        plain.load_state_dict(state)  # strict
        from_state = plain.forward_image(image).vision_feats
        merged = copy.deepcopy(adapted)
        assert merge_lora(merged) == len(adapted.image_encoder.trunk.blocks) * 2
        in_place = merged.forward_image(image).vision_feats
    assert not any(isinstance(m, LoRALinear) for m in merged.modules())
    assert set(merged.state_dict()) == set(state)
    for expected, level_a, level_b in zip(reference, from_state, in_place, strict=True):
        torch.testing.assert_close(level_a, expected, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(level_b, expected, atol=1e-5, rtol=1e-5)
    assert (reference[-1] - before[-1]).abs().max() > 1e-3  # the adapters did change the features


def test_trainable_parameters_with_adapters() -> None:
    _, adapted = adapted_model()
    names = trainable_names(adapted, "decoder")
    assert any(name.endswith(".lora_A") for name in names)
    assert not any(name.endswith(("qkv.weight", "qkv.bias")) for name in names)
    assert all(name.startswith(("sam_", "image_encoder.")) for name in names)
    assert not any(name.startswith("sam_mask_decoder.conv_s") for name in names)
    with pytest.raises(ValueError, match="lora"):
        from sam2kit.train.options import TrainOptions

        TrainOptions(data="d", out="o", config="sam2kit-mini", train="all", lora=4)


def test_lora_run_ships_merged_official_weights(tmp_path: Path) -> None:
    assert train_cli(*MINI, "--data", synthetic_data(), "--lora", "4", "--steps", "2", "--lr", "1e-2",
                     "--val-max", "0", "--corrections", "1", "--out", tmp_path) == 0
    state = weights(tmp_path / "model.pt")
    torch.manual_seed(0)  # the run's seed: the same random start
    start = build_model(CONFIG, device="cpu").state_dict()
    assert set(state) == set(start)
    qkv = "image_encoder.trunk.blocks.3.attn.qkv.weight"
    assert not torch.equal(state[qkv], start[qkv])  # the trained adapters are merged in
    norm = "image_encoder.trunk.blocks.3.norm1.weight"
    assert torch.equal(state[norm], start[norm])  # the rest of the encoder is frozen
    resumable = weights(tmp_path / "last.ckpt")
    assert f"{qkv[: -len('weight')]}lora_A" in resumable  # last.ckpt keeps the adapters unmerged
