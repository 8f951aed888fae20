"""Stochastic depth in the Hiera trunk: a training-only option that adds no weights and leaves
inference unchanged."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from sam2kit.config import HieraConfig, SAM2Config
from sam2kit.modeling.common import DropPath
from sam2kit.modeling.hiera import Hiera, MultiScaleBlock
from sam2kit.modeling.sam2 import SAM2Model

SMALL_TRUNK = dict(embed_dim=16, num_heads=1, stages=(1, 2, 2, 1), global_att_blocks=(3,),
                   window_pos_embed_bkg_spatial_size=(4, 4), window_spec=(4, 4, 4, 2))


def _pair(rate: float) -> tuple[Hiera, Hiera]:
    """A trunk with ``rate`` and one without, on the same weights."""
    torch.manual_seed(0)
    plain = Hiera(**SMALL_TRUNK)
    dropping = Hiera(**SMALL_TRUNK, drop_path_rate=rate)
    dropping.load_state_dict(plain.state_dict())
    return plain, dropping


def test_rates_rise_linearly_to_the_last_block() -> None:
    _, trunk = _pair(0.3)
    rates = [block.drop_path.rate if isinstance(block.drop_path, DropPath) else 0.0 for block in trunk.blocks]
    assert rates[0] == 0.0 and rates[-1] == pytest.approx(0.3)
    assert rates == pytest.approx(torch.linspace(0, 0.3, len(trunk.blocks)).tolist())


def test_no_new_state_dict_keys() -> None:
    plain, dropping = _pair(0.2)
    assert list(plain.state_dict()) == list(dropping.state_dict())
    config = SAM2Config(image_size=256)
    with_rate = config.replace(trunk=dataclasses.replace(config.trunk, drop_path_rate=0.1))
    assert list(SAM2Model(config).state_dict()) == list(SAM2Model(with_rate).state_dict())


def test_eval_is_deterministic_and_equals_rate_zero() -> None:
    plain, dropping = _pair(0.5)
    image = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    plain.eval()
    dropping.eval()
    with torch.no_grad():
        want = plain(image)
        first, second = dropping(image), dropping(image)
    for a, b, c in zip(want, first, second, strict=True):
        assert torch.equal(a, b) and torch.equal(b, c)


def test_train_mode_is_stochastic() -> None:
    plain, dropping = _pair(0.5)
    image = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    plain.train()
    dropping.train()
    with torch.no_grad():
        torch.manual_seed(1)
        first = dropping(image)[-1]
        torch.manual_seed(2)
        second = dropping(image)[-1]
        reference = plain(image)[-1]
    assert not torch.equal(first, second)
    assert not torch.equal(first, reference)
    # Without a rate, train mode has nothing random: it equals eval.
    plain.eval()
    with torch.no_grad():
        assert torch.equal(plain(image)[-1], reference)


def test_residuals_are_dropped_per_sample() -> None:
    """With both residual branches dropped a sample passes through unchanged; the others don't."""
    torch.manual_seed(0)
    block = MultiScaleBlock(16, 16, num_heads=2, window_size=4, drop_path=0.5).train()
    assert not block._can_run_by_windows(torch.empty(1, 8, 8, 16)), "windows of two samples may share a group"
    x = torch.randn(64, 8, 8, 16)
    torch.manual_seed(3)
    with torch.no_grad():
        out = block(x)
    unchanged = [torch.equal(out[i], x[i]) for i in range(len(x))]
    assert 4 <= sum(unchanged) <= 32  # about a quarter of the samples (0.5 * 0.5)
    block.eval()
    assert block._can_run_by_windows(torch.empty(1, 8, 8, 16))


def test_drop_path_module() -> None:
    layer = DropPath(0.25).train()
    torch.manual_seed(0)
    out = layer(torch.ones(4000, 3, 5))
    per_sample = out.flatten(1)
    assert ((per_sample == 0).all(1) | (per_sample == 1 / 0.75).all(1)).all()
    assert 0.2 < (per_sample[:, 0] == 0).float().mean() < 0.3
    assert torch.equal(layer.eval()(torch.ones(3, 2)), torch.ones(3, 2))
    with pytest.raises(ValueError, match="drop path"):
        DropPath(1.0)
    with pytest.raises(ValueError, match="drop_path_rate"):
        HieraConfig(drop_path_rate=-0.1)
