"""The speed paths of the model compute what the plain paths compute.

Hiera blocks run window group by window group where they can, short attention runs as plain
matmuls on the CPU, the window position embedding is cached, and the memory attention's query
(first self-attention) is computed once per frame for every tracked object.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from sam2kit.build import build_model
from sam2kit.config import get_config
from sam2kit.modeling import common, hiera
from sam2kit.predict.video import VideoPredictor


@pytest.fixture(scope="module")
def tiny() -> torch.nn.Module:
    torch.manual_seed(0)
    model = build_model(get_config("sam2.1_hiera_tiny").replace(image_size=256), device="cpu")
    with torch.no_grad():
        for param in model.parameters():
            param.add_(0.02 * torch.randn_like(param))
    return model


def _plain_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hiera.MultiScaleBlock, "_can_run_by_windows", lambda self, x: False)


@pytest.mark.parametrize("size", [256, 320, 224])
def test_window_groups_match_the_plain_blocks(
    tiny: torch.nn.Module, size: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every stage (q-pooling blocks too), on maps that need padding (320, 224) and maps that don't."""
    trunk = tiny.image_encoder.trunk
    image = torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(size))
    used = [block._can_run_by_windows(torch.empty(1, size // 4, size // 4, 1)) for block in trunk.blocks[:2]]
    assert used[0], "the first block should take the window-group path"
    with torch.inference_mode():
        fast = trunk(image)
        _plain_blocks(monkeypatch)
        plain = trunk(image)
    for a, b in zip(fast, plain, strict=True):
        torch.testing.assert_close(a, b, atol=2e-5, rtol=1e-4)


def test_window_groups_smaller_than_the_map(monkeypatch: pytest.MonkeyPatch) -> None:
    """Several groups, the last one partial."""
    monkeypatch.setattr(hiera, "WINDOW_GROUP_TOKENS", 3 * 64)
    block = hiera.MultiScaleBlock(32, 64, num_heads=2, q_stride=(2, 2), window_size=8).eval()
    x = torch.randn(2, 40, 24, 32)
    with torch.inference_mode():
        fast = block(x)
        _plain_blocks(monkeypatch)
        plain = block(x)
    assert fast.shape == (2, 20, 12, 64)
    torch.testing.assert_close(fast, plain, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("shape", [(5, 2, 16, 16, 48), (3, 4, 49, 196, 32), (1, 1, 7, 4096, 64)])
def test_short_attention_matches_the_fused_kernel(shape: tuple[int, ...]) -> None:
    batch, heads, num_q, num_k, dim = shape
    assert num_q * num_k <= common.SMALL_ATTENTION_PAIRS
    generator = torch.Generator().manual_seed(1)
    q = torch.randn(batch, heads, num_q, dim, generator=generator)
    k = torch.randn(batch, heads, num_k, dim, generator=generator)
    v = torch.randn(batch, heads, num_k, dim, generator=generator)
    torch.testing.assert_close(common.attention(q, k, v), F.scaled_dot_product_attention(q, k, v), atol=1e-5, rtol=1e-5)


def test_position_embedding_cache_follows_the_weights(tiny: torch.nn.Module) -> None:
    trunk = tiny.image_encoder.trunk
    with torch.inference_mode():
        first = trunk._position_embedding(64, 64)
        assert trunk._position_embedding(64, 64) is first
        assert trunk._position_embedding(32, 32).shape == (1, 32, 32, trunk.pos_embed.shape[1])
    state = {k: v.clone() for k, v in tiny.state_dict().items()}
    state["image_encoder.trunk.pos_embed"] += 1.0
    tiny.load_state_dict(state)
    try:
        with torch.inference_mode():
            moved = trunk._position_embedding(64, 64)
        torch.testing.assert_close(moved, first + 1.0)
    finally:
        state["image_encoder.trunk.pos_embed"] -= 1.0
        tiny.load_state_dict(state)


def test_memory_query_runs_once_per_frame_for_all_objects(
    tiny: torch.nn.Module, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Three objects, one prompted on a later frame (so the objects run in two batches): one query
    per frame, and objects 1 and 2 get the masks they get when tracked alone."""
    frames = np.random.default_rng(0).integers(0, 255, size=(6, 96, 128, 3), dtype=np.uint8)
    prompts = {1: (0, [[40, 30]]), 2: (0, [[90, 60]]), 3: (2, [[64, 48]])}
    predictor = VideoPredictor(tiny, fill_hole_area=0, show_progress=False)

    def track(obj_ids: list[int]) -> list[torch.Tensor]:
        state = predictor.init_state(frames)
        for obj_id in obj_ids:
            frame_idx, points = prompts[obj_id]
            predictor.add_new_points_or_box(state, frame_idx, obj_id, points=points, labels=[1])
        return [masks for _, _, masks in predictor.propagate_in_video(state)]

    calls = []
    original = tiny.memory_attention.encode_query

    def counting(curr: torch.Tensor, curr_pos: torch.Tensor) -> torch.Tensor:
        calls.append(curr.shape[1])
        return original(curr, curr_pos)

    monkeypatch.setattr(tiny.memory_attention, "encode_query", counting)
    together = track([1, 2, 3])
    # Object 3 is tracked on memories alone up to its prompt on frame 2, so every frame runs the
    # memory attention for at least one batch.
    assert calls == [1] * len(frames), f"expected one batch-1 query per frame, got {calls}"
    for index, obj_id in enumerate((1, 2)):
        for frame_all, frame_alone in zip(together, track([obj_id]), strict=True):
            torch.testing.assert_close(frame_all[index], frame_alone[0], atol=1e-4, rtol=1e-4)


def test_chunked_bf16_attention_matches_the_fused_kernel(monkeypatch: pytest.MonkeyPatch) -> None:
    """Long bf16 attention with wide heads runs in query chunks (the last one partial)."""
    monkeypatch.setattr(common, "BF16_QUERY_CHUNK", 96)
    generator = torch.Generator().manual_seed(2)
    q, k, v = (torch.randn(2, 1, n, 128, generator=generator) for n in (300, 700, 700))
    chunked = common.attention(q.bfloat16(), k.bfloat16(), v.bfloat16())
    assert chunked.dtype == torch.bfloat16 and chunked.shape == q.shape
    torch.testing.assert_close(chunked.float(), F.scaled_dot_product_attention(q, k, v), atol=2e-2, rtol=2e-2)
