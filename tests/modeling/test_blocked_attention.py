"""The raw-value attention path (:mod:`sam2kit.modeling.blocked_attention`) computes what the
projected-value path computes: the blocked kernel against the library's attention, and the
memory attention with the path on and off."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from sam2kit.modeling import blocked_attention as blocked
from sam2kit.modeling import transformer
from sam2kit.modeling.memory_attention import MemoryAttention
from sam2kit.modeling.transformer import RoPEAttention


@pytest.mark.parametrize(("q_batch", "heads", "block"), [(2, 1, 64), (1, 1, 100), (2, 2, 7), (1, 2, 1000)])
def test_blocked_attention_matches_sdpa(q_batch: int, heads: int, block: int) -> None:
    """Whole and partial blocks, a query shared by the batch, one value head shared by all heads."""
    g = torch.Generator().manual_seed(heads * 10 + block)
    q = torch.randn(q_batch, heads, 150, 32, generator=g)
    k = torch.randn(2, heads, 90, 32, generator=g)
    v = torch.randn(2, 1, 90, 8, generator=g)
    with torch.inference_mode():
        got = blocked.blocked_attention(q, k, v, block=block)
        want = F.scaled_dot_product_attention(q.expand(2, -1, -1, -1), k, v.expand(-1, heads, -1, -1))
    assert got.shape == (2, heads, 150, 8)
    torch.testing.assert_close(got, want, atol=1e-6, rtol=1e-5)


def test_keys_in_parts_equal_the_concatenated_keys() -> None:
    """Keys given as parts along Nk (rotated memories, then pointer tokens) are the same keys as
    their concatenation; a part may be strided across the batch."""
    g = torch.Generator().manual_seed(5)
    q = torch.randn(3, 1, 40, 16, generator=g)
    whole = torch.randn(3, 1, 70, 16, generator=g)
    v = torch.randn(3, 1, 70, 4, generator=g)
    parts = (whole[:, :, :50], torch.randn(1, 1, 20, 16, generator=g).expand(3, -1, -1, -1))
    with torch.inference_mode():
        got = blocked.blocked_attention(q, parts, v, block=16)
        want = blocked.blocked_attention(q, torch.cat(parts, dim=2), v, block=16)
    torch.testing.assert_close(got, want, atol=0, rtol=0)
    torch.testing.assert_close(got, F.scaled_dot_product_attention(q, torch.cat(parts, dim=2), v), atol=1e-6, rtol=1e-5)


def test_reused_buffers_across_sizes_and_grad_modes() -> None:
    """The per-thread score / key buffers are reused: growing and shrinking key counts (padded
    rows), and a buffer made under inference_mode, then needed under no_grad, all stay exact."""
    g = torch.Generator().manual_seed(3)
    blocked.release_workspace()
    for num_k, mode in [(300, torch.inference_mode), (90, torch.no_grad), (17, torch.inference_mode),
                        (400, torch.no_grad)]:
        q = torch.randn(1, 1, 40, 16, generator=g)
        k = torch.randn(1, 1, num_k, 16, generator=g)
        v = torch.randn(1, 1, num_k, 4, generator=g)
        with mode():
            got = blocked.blocked_attention(q, k, v, block=16)
        torch.testing.assert_close(got, F.scaled_dot_product_attention(q, k, v), atol=1e-6, rtol=1e-5)


def test_project_heads_applies_each_heads_rows() -> None:
    g = torch.Generator().manual_seed(1)
    attended = torch.randn(2, 3, 5, 4, generator=g)
    weight, bias = torch.randn(3 * 6, 4, generator=g), torch.randn(3 * 6, generator=g)
    got = blocked.project_heads(attended, weight, bias)
    for h in range(3):
        rows = slice(6 * h, 6 * h + 6)
        torch.testing.assert_close(got[:, h], F.linear(attended[:, h], weight[rows], bias[rows]))


def _attention_pair(heads: int) -> tuple[RoPEAttention, torch.Tensor, torch.Tensor, torch.Tensor]:
    torch.manual_seed(heads)
    attn = RoPEAttention(64, heads, kv_in_dim=16, rope_k_repeat=True).eval()
    query = torch.randn(1, 64, 64)  # an 8x8 grid, shared by both batch entries
    memory = torch.randn(2, 3 * 64 + 4, 16)
    return attn, query, memory + torch.randn_like(memory), memory


@pytest.mark.parametrize("heads", [1, 2])
def test_rope_attention_raw_values_equal_projected(heads: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Three memory grids and four unrotated pointer tokens, in blocks smaller than the grid."""
    monkeypatch.setattr(blocked, "QUERY_BLOCK", 24)
    calls: list[int] = []
    kernel = blocked.blocked_attention
    monkeypatch.setattr(transformer, "blocked_attention", lambda *a, **kw: calls.append(1) or kernel(*a, **kw))
    attn, query, keys, memory = _attention_pair(heads)
    with torch.inference_mode():
        raw = attn(query, keys, memory, num_k_exclude_rope=4)
        attn.raw_value_attention = False
        projected = attn(query, keys, memory, num_k_exclude_rope=4)
    assert calls == [1]
    assert raw.shape == projected.shape == (2, 64, 64)
    torch.testing.assert_close(raw, projected, atol=2e-6, rtol=1e-5)


def test_autograd_and_train_mode_keep_the_projected_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(transformer, "blocked_attention", lambda *a, **kw: pytest.fail("raw-value path taken"))
    attn, query, keys, memory = _attention_pair(1)
    out = attn(query.requires_grad_(), keys, memory, num_k_exclude_rope=4)  # grad enabled
    out.sum().backward()
    assert query.grad is not None
    attn.dropout_p = 0.1
    attn.train()
    with torch.no_grad():
        attn(query, keys, memory, num_k_exclude_rope=4)


def test_memory_attention_stack_raw_values_equal_projected() -> None:
    """The whole stack with batched memories (3 objects) and a shared query."""
    torch.manual_seed(0)
    stack = MemoryAttention(d_model=64, num_layers=2, dim_feedforward=128, kv_in_dim=16).eval()
    curr, curr_pos = torch.randn(64, 1, 64), torch.randn(64, 1, 64)
    memory, memory_pos = torch.randn(2 * 64 + 8, 3, 16), torch.randn(2 * 64 + 8, 3, 16)
    with torch.inference_mode():
        query = stack.encode_query(curr, curr_pos)
        raw = stack(None, None, memory, memory_pos, num_obj_ptr_tokens=8, query=query)
        for layer in stack.layers:
            layer.cross_attn_image.raw_value_attention = False
        projected = stack(None, None, memory, memory_pos, num_obj_ptr_tokens=8, query=query)
    assert raw.shape == (64, 3, 64)
    torch.testing.assert_close(raw, projected, atol=5e-6, rtol=1e-5)
