"""The training run's parts: what trains, optimizer groups and schedule, data sharding and layouts,
gradient accumulation and the feature cache."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from train_helpers import (  # noqa: F401 (single_thread: a fixture)
    MINI,
    log_rows,
    max_weight_difference,
    single_thread,
    synthetic_data,
    train_cli,
    weights,
)

from sam2kit.modeling.sam2 import SAM2Model
from sam2kit.train.data import DataError
from sam2kit.train.loader import DataOrder, ShardedSteps
from sam2kit.train.mini import mini_config
from sam2kit.train.optim import lr_factor, parameter_groups
from sam2kit.train.parts import trainable_names
from sam2kit.train.sources import detect_format

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture(scope="module")
def model() -> SAM2Model:
    torch.manual_seed(0)
    return SAM2Model(mini_config().replace(image_size=128))


def test_what_each_part_trains(model: SAM2Model) -> None:
    decoder, memory, everything = (set(trainable_names(model, part)) for part in ("decoder", "memory", "all"))
    assert decoder < memory < everything == {name for name, _ in model.named_parameters()}
    assert all(name.startswith(("sam_prompt_encoder.", "sam_mask_decoder.")) for name in decoder)
    assert not any("conv_s0" in name or "conv_s1" in name for name in decoder | memory)  # image-feature side
    assert {"no_mem_embed", "maskmem_tpos_enc", "no_obj_ptr"} <= memory
    assert any(name.startswith("memory_attention.") for name in memory)
    assert not any(name.startswith("image_encoder.") for name in memory)


def test_parameter_groups(model: SAM2Model) -> None:
    for param in model.parameters():
        param.requires_grad_(True)
    groups = parameter_groups(model, lr=1e-3, encoder_lr=1e-4, layer_decay=0.5, weight_decay=0.1)
    by_name = {name: group for group in groups for name in group["names"]}
    assert len(by_name) == sum(1 for _ in model.parameters())
    blocks = len(model.image_encoder.trunk.blocks)
    assert by_name["image_encoder.trunk.blocks.0.attn.qkv.weight"]["base_lr"] == pytest.approx(1e-4 * 0.5**blocks)
    last = f"image_encoder.trunk.blocks.{blocks - 1}.attn.qkv.weight"
    assert by_name[last]["base_lr"] == pytest.approx(1e-4 * 0.5)
    assert by_name["image_encoder.trunk.pos_embed"]["base_lr"] == pytest.approx(1e-4)
    assert by_name["image_encoder.neck.convs.0.conv.weight"]["base_lr"] == pytest.approx(1e-4)
    assert by_name["sam_mask_decoder.iou_token.weight"]["base_lr"] == 1e-3
    assert by_name["sam_mask_decoder.iou_token.weight"]["weight_decay"] == 0.1
    assert by_name["image_encoder.trunk.blocks.0.norm1.weight"]["weight_decay"] == 0.0  # LayerNorm
    assert by_name["sam_mask_decoder.iou_prediction_head.layers.0.bias"]["weight_decay"] == 0.0


def test_schedule() -> None:
    factors = [lr_factor(step, 100, 10, 0.1) for step in range(100)]
    assert factors[0] == pytest.approx(0.1) and factors[9] == 1.0 and factors[10] == 1.0
    assert factors[-1] == pytest.approx(0.1)
    assert all(a >= b for a, b in zip(factors[10:], factors[11:], strict=False))  # cosine decay


def test_sharding_matches_a_bigger_batch() -> None:
    def covered(batch: int, world: int, accumulate: int) -> list[list[int]]:
        per_step = []
        for step in range(3):
            positions = []
            for rank in range(world):
                sampler = ShardedSteps(batch_size=batch, accumulate=accumulate, rank=rank, world_size=world,
                                       start_step=0, steps=3)
                positions += [p for micro in range(accumulate) for p in sampler.positions(step, micro)]
            per_step.append(sorted(positions))
        return per_step

    assert covered(2, 2, 1) == covered(4, 1, 1) == covered(1, 2, 2) == covered(1, 1, 4)
    order = DataOrder(5, seed=3)
    epochs = [sorted(order.item(p)[1] for p in range(e * 5, e * 5 + 5)) for e in range(3)]
    assert epochs == [list(range(5))] * 3  # each epoch is a permutation
    assert [order.item(p) for p in range(5)] != [order.item(p) for p in range(5, 10)]


def test_layouts(tmp_path: Path) -> None:
    data = synthetic_data()  # images and videos side by side
    assert detect_format(data, "decoder") == "images"
    assert detect_format(data, "memory") == "video"
    (tmp_path / "instances.json").write_text("{}")
    assert detect_format(tmp_path, "decoder") == "coco"
    assert detect_format(tmp_path / "instances.json", "decoder") == "coco"
    with pytest.raises(DataError, match="no such file"):
        detect_format(tmp_path / "missing", "decoder")


def test_accumulation_and_disk_cache_match(tmp_path: Path) -> None:
    common = [*MINI, "--data", synthetic_data(), "--steps", "3", "--lr", "1e-3", "--corrections", "2",
              "--val-max", "0"]
    assert train_cli(*common, "--batch-size", "2", "--out", tmp_path / "batch") == 0
    assert train_cli(*common, "--batch-size", "1", "--accumulate", "2", "--cache", "disk",
                     "--out", tmp_path / "accumulated") == 0
    assert len(list((tmp_path / "accumulated" / "cache").glob("*.pt"))) > 0
    difference = max_weight_difference(weights(tmp_path / "batch" / "model.pt"),
                                       weights(tmp_path / "accumulated" / "model.pt"))
    assert difference <= 1e-5
    objects = [[row["objects"] for row in log_rows(tmp_path / run)] for run in ("batch", "accumulated")]
    assert objects[0] == objects[1]
