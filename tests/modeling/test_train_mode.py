"""The base model's train-mode behaviour (what SAM 2's training does differently from inference):
memory-attention dropout, object pointers of conditioning frames ahead of the current frame, the
recent-frame memories without the evaluation stride, and the decoder / memory-encoder branches.
Each acts only in ``model.train()`` mode; eval mode is what the parity suite pins.

The last tests compare train mode with the reference package's (same weights, same seed).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from sam2kit.config import SAM2Config, config_from_yaml, get_config
from sam2kit.modeling.memory_attention import MemoryAttention
from sam2kit.modeling.sam2 import FrameFeatures, PointPrompts, SAM2Model, TrackStepOutput
from sam2kit.modeling.tracking import memory_query, object_pointer_frames
from sam2kit.modeling.transformer import RoPEAttention

NUM_FRAMES = 8


# ----------------------------------------------------------------------------- helpers
def _config(**changes: object) -> SAM2Config:
    """The narrow ``sam2kit-mini`` preset (256 px, 2 memory-attention layers), fast on a CPU, with
    the official memory-attention dropout (0.1) unless told otherwise."""
    return get_config("sam2kit-mini").replace(**{"memory_attention_dropout": 0.1, **changes})


def _model(config: SAM2Config, state: dict[str, torch.Tensor] | None = None) -> SAM2Model:
    torch.manual_seed(0)
    model = SAM2Model(config)
    if state is not None:
        model.load_state_dict(state)
    return model


@pytest.fixture(scope="module")
def models() -> dict[str, SAM2Model]:
    """The mini model with the official dropout (0.1), and the same weights without dropout."""
    torch.manual_seed(0)
    dropping = SAM2Model(_config())
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():  # seeded noise: no output on a knife edge, objects reliably present
        for param in dropping.parameters():
            param.add_(0.02 * torch.randn(param.shape, generator=generator))
        dropping.sam_mask_decoder.pred_obj_score_head.layers[2].bias.add_(5.0)
    plain = _model(_config(memory_attention_dropout=0.0), dropping.state_dict())
    return {"dropout": dropping.eval(), "plain": plain.eval()}


@pytest.fixture(scope="module")
def frames(models: dict[str, SAM2Model]) -> list[FrameFeatures]:
    images = torch.randn(NUM_FRAMES, 3, 256, 256, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        return [models["plain"].forward_image(images[t : t + 1]) for t in range(NUM_FRAMES)]


def _click(t: int) -> PointPrompts:
    return PointPrompts(torch.tensor([[[90.0 + 8 * t, 120.0]]]), torch.tensor([[1]], dtype=torch.int32))


@dataclass
class Memory:
    cond: dict[int, TrackStepOutput]
    non_cond: dict[int, TrackStepOutput]


def _memory(model: SAM2Model, frames: list[FrameFeatures], cond: list[int], non_cond: list[int]) -> Memory:
    """Prompted frames ``cond`` (the first one initial), then ``non_cond`` tracked, in eval mode."""
    memory = Memory({}, {})
    with torch.no_grad():
        for i, t in enumerate(cond):
            memory.cond[t] = model.track_step(
                t, i == 0, frames[t], _click(t), None, memory.cond, memory.non_cond, NUM_FRAMES
            )
        for t in non_cond:
            memory.non_cond[t] = model.track_step(t, False, frames[t], None, None, memory.cond, memory.non_cond,
                                                  NUM_FRAMES)
    return memory


def _track(model: SAM2Model, frames: list[FrameFeatures], t: int, memory: Memory, **kwargs: object) -> torch.Tensor:
    """Frame ``t`` tracked on ``memory``: its low-res mask logits and object pointer, flattened."""
    with torch.no_grad():
        out = model.track_step(t, False, frames[t], None, None, memory.cond, memory.non_cond, NUM_FRAMES,
                               **kwargs)  # type: ignore[arg-type]
    return torch.cat([out.pred_masks.flatten(), out.obj_ptr.flatten()])


# ----------------------------------------------------------------------------- configuration
def test_dropout_is_a_config_field_with_the_official_default_and_no_weights() -> None:
    assert SAM2Config().memory_attention_dropout == 0.1
    assert get_config("sam2.1_hiera_large").memory_attention_dropout == 0.1
    with pytest.raises(ValueError, match="memory_attention_dropout"):
        SAM2Config(memory_attention_dropout=1.0)
    with_dropout, without = _model(_config()), _model(_config(memory_attention_dropout=0.0))
    assert list(with_dropout.state_dict()) == list(without.state_dict())
    layer = with_dropout.memory_attention.layers[0]
    assert layer.self_attn.dropout_p == layer.cross_attn_image.dropout_p == 0.1


def test_yaml_reader_takes_the_dropout(tmp_path: Path) -> None:
    def read(layer: dict[str, object]) -> SAM2Config:
        path = tmp_path / "model.yaml"
        path.write_text(__import__("yaml").safe_dump({"model": {"memory_attention": {"layer": layer}}}))
        return config_from_yaml(path)

    assert read({"dropout": 0.2, "self_attention": {"dropout": 0.2}}).memory_attention_dropout == 0.2
    assert read({}).memory_attention_dropout == 0.1
    with pytest.raises(ValueError, match="dropouts differ"):
        read({"dropout": 0.1, "cross_attention": {"dropout": 0.0}})


# ----------------------------------------------------------------------------- dropout
def _attention_pair(rate: float) -> tuple[MemoryAttention, MemoryAttention]:
    """Memory attention with ``rate`` and without, on the same weights."""
    torch.manual_seed(0)
    plain = MemoryAttention(d_model=64, num_layers=2, dim_feedforward=128, kv_in_dim=32, dropout=0.0)
    dropping = MemoryAttention(d_model=64, num_layers=2, dim_feedforward=128, kv_in_dim=32, dropout=rate)
    dropping.load_state_dict(plain.state_dict())
    return plain, dropping


def _attention_inputs() -> tuple[torch.Tensor, ...]:
    generator = torch.Generator().manual_seed(3)
    curr, curr_pos = torch.randn(2, 64, 2, 64, generator=generator)  # (HW, B, C): an 8x8 grid
    memory, memory_pos = torch.randn(2, 2 * 64 + 4, 2, 32, generator=generator)  # 2 frames + 4 pointer tokens
    return curr, curr_pos, memory, memory_pos


def _attend(module: MemoryAttention, seed: int) -> torch.Tensor:
    curr, curr_pos, memory, memory_pos = _attention_inputs()
    torch.manual_seed(seed)
    with torch.no_grad():
        return module(curr, curr_pos, memory, memory_pos, num_obj_ptr_tokens=4)


def test_eval_mode_ignores_dropout() -> None:
    plain, dropping = _attention_pair(0.5)
    plain.eval()
    dropping.eval()
    assert not dropping.is_stochastic
    assert torch.equal(_attend(dropping, 1), _attend(plain, 2))


def test_train_mode_is_stochastic_with_dropout_and_deterministic_without() -> None:
    plain, dropping = _attention_pair(0.1)
    dropping.train()
    assert dropping.is_stochastic
    first, again, other = _attend(dropping, 1), _attend(dropping, 1), _attend(dropping, 2)
    assert torch.equal(first, again), "dropout follows the torch seed"
    assert not torch.equal(first, other)
    plain.train()
    assert not plain.is_stochastic
    in_train = _attend(plain, 1)
    assert torch.equal(in_train, _attend(plain, 2))
    assert torch.equal(in_train, _attend(plain.eval(), 3))


def test_attention_weights_are_dropped_in_train_mode_only() -> None:
    torch.manual_seed(0)
    attn = RoPEAttention(32, 1, dropout=0.5)
    tokens = torch.randn(1, 16, 32)  # a 4x4 grid
    with torch.no_grad():
        want = attn.eval()(tokens, tokens, tokens)
        assert torch.equal(attn(tokens, tokens, tokens), want)
        attn.train()
        torch.manual_seed(1)
        first = attn(tokens, tokens, tokens)
        torch.manual_seed(2)
        assert not torch.equal(first, attn(tokens, tokens, tokens))
        attn.dropout_p = 0.0
        torch.testing.assert_close(attn(tokens, tokens, tokens), want, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="dropout"):
        RoPEAttention(32, 1, dropout=1.0)


def test_stochastic_query_is_drawn_per_object_and_not_cached(
    models: dict[str, SAM2Model], frames: list[FrameFeatures]
) -> None:
    model = copy.deepcopy(models["dropout"])
    features = FrameFeatures(frames[1].vision_feats, frames[1].vision_pos, frames[1].feat_sizes).expand(2)
    with torch.no_grad():
        assert memory_query(model, features).shape[0] == 1, "eval: one query per frame, shared"
        assert "memory_query" in features.shared
        features.shared.clear()
        model.train()
        query = memory_query(model, features)
    assert query.shape[0] == 2 and not torch.equal(query[0], query[1])
    assert "memory_query" not in features.shared


def test_track_step_eval_equals_the_model_without_dropout(
    models: dict[str, SAM2Model], frames: list[FrameFeatures]
) -> None:
    memory = _memory(models["plain"], frames, [0, 4], [1, 2])
    assert torch.equal(_track(models["dropout"], frames, 3, memory), _track(models["plain"], frames, 3, memory))


def test_track_step_train_mode_is_stochastic_only_with_dropout(
    models: dict[str, SAM2Model], frames: list[FrameFeatures]
) -> None:
    memory = _memory(models["plain"], frames, [0], [1, 2])  # no conditioning frame ahead of frame 3
    dropping, plain = copy.deepcopy(models["dropout"]).train(), copy.deepcopy(models["plain"]).train()
    torch.manual_seed(1)
    first = _track(dropping, frames, 3, memory)
    torch.manual_seed(2)
    assert not torch.equal(first, _track(dropping, frames, 3, memory))
    torch.manual_seed(1)
    in_train = _track(plain, frames, 3, memory)
    torch.manual_seed(2)
    assert torch.equal(in_train, _track(plain, frames, 3, memory))
    assert torch.equal(in_train, _track(models["plain"], frames, 3, memory))


# ----------------------------------------------------------------------------- frame selection
@dataclass
class _Entry:
    obj_ptr: torch.Tensor
    maskmem_features: torch.Tensor | None = None
    maskmem_pos_enc: torch.Tensor | None = None


def _pointer_positions(training: bool, frame_idx: int, reverse: bool = False) -> list[int]:
    entries = {t: _Entry(torch.full((1, 4), float(t))) for t in range(10)}
    cond = {0: entries[0], 6: entries[6]}
    non_cond = {t: entries[t] for t in range(1, 10) if t != 6}
    positions, pointers, _ = object_pointer_frames(
        SAM2Config(), frame_idx, cond, {}, non_cond, 10, reverse, training=training
    )
    assert len(positions) == len(pointers)
    return positions


def test_conditioning_frames_ahead_give_pointers_in_train_mode_only() -> None:
    # Frame 4: conditioning frames 0 (4 frames back) and 6 (2 frames ahead), then frames 3, 2, 1.
    assert _pointer_positions(False, 4) == [4, 1, 2, 3]
    assert _pointer_positions(True, 4) == [4, -2, 1, 2, 3]
    # Tracking in reverse, "ahead" is an earlier frame: 0; then frames 5, 7, 8, 9.
    assert _pointer_positions(False, 4, reverse=True) == [2, 1, 3, 4, 5]
    assert _pointer_positions(True, 4, reverse=True) == [-4, 2, 1, 3, 4, 5]


def test_track_step_uses_future_conditioning_frames_in_train_mode_only(
    models: dict[str, SAM2Model], frames: list[FrameFeatures]
) -> None:
    plain = models["plain"]
    with_future = _memory(plain, frames, [0, 5], [1, 2])
    without_future = Memory({0: with_future.cond[0]}, with_future.non_cond)
    past_and_future = _memory(plain, frames, [0, 2], [1])  # frame 3: both conditioning frames behind it
    in_train = copy.deepcopy(plain).train()
    # Eval: the pointer of frame 5 is left out; its spatial memory is used in both modes.
    eval_future, train_future = _track(plain, frames, 3, with_future), _track(in_train, frames, 3, with_future)
    assert not torch.equal(eval_future, train_future)
    assert torch.equal(_track(plain, frames, 3, past_and_future), _track(in_train, frames, 3, past_and_future))
    assert not torch.equal(eval_future, _track(plain, frames, 3, without_future))
    everything = _model(plain.config.replace(only_obj_ptrs_in_the_past_for_eval=False), plain.state_dict()).eval()
    assert torch.equal(train_future, _track(everything, frames, 3, with_future))


def test_train_mode_remembers_the_frames_just_before_whatever_the_eval_stride(
    models: dict[str, SAM2Model], frames: list[FrameFeatures]
) -> None:
    plain = models["plain"]
    strided = _model(plain.config.replace(memory_temporal_stride_for_eval=3), plain.state_dict()).eval()
    memory = _memory(plain, frames, [0], list(range(1, 7)))
    assert not torch.equal(_track(strided, frames, 7, memory), _track(plain, frames, 7, memory))
    assert torch.equal(_track(strided.train(), frames, 7, memory), _track(plain, frames, 7, memory))


# ----------------------------------------------------------------------------- decoder and memory encoder
def test_decoder_and_memory_encoder_train_branches(models: dict[str, SAM2Model], frames: list[FrameFeatures]) -> None:
    """Train mode: the single-mask output is always the first token's (no fallback to the most
    stable multimask), and masks from clicks enter the memory encoder as soft masks."""
    plain = models["plain"]
    two_clicks = PointPrompts(torch.tensor([[[90.0, 120.0], [40.0, 40.0]]]), torch.tensor([[1, 1]], dtype=torch.int32))
    in_train = copy.deepcopy(plain).train()
    with torch.no_grad():
        eval_out = plain.track_step(0, True, frames[0], two_clicks, None, {}, {}, NUM_FRAMES)
        train_out = in_train.track_step(0, True, frames[0], two_clicks, None, {}, {}, NUM_FRAMES)
        decoded = in_train.forward_sam_heads(
            plain.image_embedding_without_memory(frames[0]),
            point_inputs=two_clicks,
            high_res_features=frames[0].high_res_features(),
            multimask_output=False,
        )
        soft = in_train.encode_new_memory(
            frames[0], train_out.pred_masks_high_res, train_out.object_score_logits, False
        )
    first_token = copy.deepcopy(plain)
    first_token.sam_mask_decoder.dynamic_multimask_via_stability = False
    with torch.no_grad():
        want = first_token.track_step(0, True, frames[0], two_clicks, None, {}, {}, NUM_FRAMES)
    assert torch.equal(train_out.pred_masks, decoded.low_res_masks)
    assert torch.equal(train_out.pred_masks, want.pred_masks)
    assert train_out.multimasks is not None and train_out.multimasks.shape[1] == 1
    assert torch.equal(train_out.maskmem_features, soft[0])
    assert eval_out.maskmem_features is not None
    assert not torch.equal(eval_out.maskmem_features, train_out.maskmem_features)


# ----------------------------------------------------------------------------- against the reference
def test_train_mode_matches_the_reference() -> None:
    """Same weights, same seed: the reference's train-mode tracking step and ours agree, dropout
    included (its masks are drawn in the same order), with a conditioning frame ahead."""
    from conftest import LOGIT_ATOL, make_model_pair, max_abs_diff, require_reference

    require_reference()
    pair = make_model_pair("sam2.1_hiera_tiny", 256, obj_score_bias=5.0, video=True)
    ref, ours = copy.deepcopy(pair.ref), copy.deepcopy(pair.ours)
    images = torch.randn(5, 3, 256, 256, generator=torch.Generator().manual_seed(4))
    ref_feats, our_feats = [], []
    with torch.no_grad():
        for t in range(5):
            _, vision_feats, vision_pos, sizes = ref._prepare_backbone_features(ref.forward_image(images[t : t + 1]))
            ref_feats.append((vision_feats, vision_pos, sizes))
            our_feats.append(ours.forward_image(images[t : t + 1]))
    ref_memory: dict[str, dict[int, dict]] = {"cond_frame_outputs": {}, "non_cond_frame_outputs": {}}
    ours_cond: dict[int, TrackStepOutput] = {}
    ours_non_cond: dict[int, TrackStepOutput] = {}
    plan = [(0, True, True), (4, True, False), (1, False, False)]  # (frame, prompted, initial)
    with torch.no_grad():
        for t, prompted, initial in plan:
            click = _click(t) if prompted else None
            ref_click = None if click is None else {"point_coords": click.coords, "point_labels": click.labels}
            key = "cond_frame_outputs" if prompted else "non_cond_frame_outputs"
            ref_memory[key][t] = ref.track_step(t, initial, *ref_feats[t], ref_click, None, ref_memory, 5)
            target = ours_cond if prompted else ours_non_cond
            target[t] = ours.track_step(t, initial, our_feats[t], click, None, ours_cond, ours_non_cond, 5)
        ref.train()
        ours.train()
        for seed in (7, 8):
            torch.manual_seed(seed)
            want = ref.track_step(2, False, *ref_feats[2], None, None, ref_memory, 5)
            torch.manual_seed(seed)
            got = ours.track_step(2, False, our_feats[2], None, None, ours_cond, ours_non_cond, 5)
            assert max_abs_diff(want["pred_masks"], got.pred_masks) < LOGIT_ATOL
            assert max_abs_diff(want["obj_ptr"], got.obj_ptr) < LOGIT_ATOL
