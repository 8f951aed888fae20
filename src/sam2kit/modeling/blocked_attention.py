"""Attention over narrow values, block by block of queries (inference on the CPU).

The memory attention's cross-attention has 256-wide queries and keys but its values are the
64-channel memories projected to 256 by ``v_proj``. Since every row of softmax(QKᵀ) sums to 1,

    softmax(QKᵀ) (M Wᵀ + b) = (softmax(QKᵀ) M) Wᵀ + b,

so the attention-weighted sum can run over the raw memory ``M`` and be projected afterwards: the
A·V product shrinks by head_dim / C_mem (4x), exactly in real arithmetic. The library's fused CPU
kernel takes a slow path when the value is narrower than the keys, so this module computes it
itself: per block of queries one QKᵀ GEMM into a preallocated score buffer, the softmax in place,
one GEMM with ``M``. Each block's scores stay small (``block x Nk``), the full ``(Nq, Nk)`` matrix
is never made.
"""

from __future__ import annotations

import threading

import torch

#: Queries per block: large enough for efficient GEMMs, small enough that a block's scores
#: (``QUERY_BLOCK x Nk`` floats, 59 MB with 7 memories at 1024 px) are not the whole matrix.
#: Measured on 2-core AVX-512 and AVX2 CPUs, 1024 px, 7 memories: 512 ran the stage's attention
#: 1.1-1.2x faster than 256 (the QKᵀ GEMM's short K of 256 needs a tall block), 2048 slower again.
QUERY_BLOCK = 512

#: Score rows are padded to a multiple of this many elements: with 7 memories + 4k pointer tokens
#: the row length is 4 (mod 16) on every other frame, and unaligned rows made the QKᵀ GEMM and the
#: softmax ~20% slower (measured on an AVX2 CPU). Padded columns score -inf, so weigh exactly 0.
ROW_ALIGN = 16

_workspace = threading.local()


def _scratch(name: str, shape: tuple[int, int], like: torch.Tensor) -> torch.Tensor:
    """A per-thread buffer reused from call to call (allocating the ~60 MB score buffer afresh
    faults its pages in again on every layer of every frame)."""
    numel = shape[0] * shape[1]
    buffer: torch.Tensor | None = getattr(_workspace, name, None)
    if (
        buffer is None
        or buffer.numel() < numel
        or buffer.dtype != like.dtype
        or buffer.device != like.device
        # a buffer made under inference_mode cannot be written outside it (under no_grad)
        or (buffer.is_inference() and not torch.is_inference_mode_enabled())
    ):
        buffer = like.new_empty(numel)
        setattr(_workspace, name, buffer)
    return buffer[:numel].view(shape)


def release_workspace() -> None:
    """Free this thread's reusable buffers (they are otherwise kept for the next call)."""
    _workspace.__dict__.clear()


def blocked_attention(
    q: torch.Tensor,
    k: torch.Tensor | tuple[torch.Tensor, ...],
    v: torch.Tensor,
    block: int | None = None,
) -> torch.Tensor:
    """Scaled dot-product attention without autograd, dropout or mask, computed block by block.

    Args:
        q: ``(Bq, heads, Nq, D)`` queries; ``Bq`` is B or 1 (one query shared by every batch entry).
        k: ``(B, heads, Nk, D)`` keys, or a tuple of parts ``(B, heads, Nk_i, D)`` that together
            make them (in order along Nk): each part is copied straight into the kernel's
            transposed key buffer, so the caller needs no concatenation of the whole key set.
        v: ``(B, heads or 1, Nk, Dv)`` values; one head is shared by every query head.
        block: queries per block (default :data:`QUERY_BLOCK`).
    Returns:
        ``(B, heads, Nq, Dv)``, in ``q``'s dtype.
    """
    block = block or QUERY_BLOCK
    parts = k if isinstance(k, tuple) else (k,)
    batch, heads, _, dim = parts[0].shape
    num_k = sum(part.shape[-2] for part in parts)
    num_q = q.shape[-2]
    padded = -(-num_k // ROW_ALIGN) * ROW_ALIGN
    out = q.new_empty((batch, heads, num_q, v.shape[-1]))
    q = q * dim**-0.5
    scores = _scratch("scores", (min(block, num_q), padded), q)
    keys_t = _scratch("keys_t", (dim, padded), q)  # Kᵀ, contiguous: MKL's GEMM runs ~5-10% faster on it
    keys_t[:, num_k:] = 0.0
    for b in range(batch):
        for h in range(heads):
            queries = q[b if q.shape[0] > 1 else 0, h]
            offset = 0
            for part in parts:
                keys_t[:, offset : offset + part.shape[-2]] = part[b, h].transpose(0, 1)
                offset += part.shape[-2]
            values = v[b, h if v.shape[1] > 1 else 0]
            for start in range(0, num_q, block):
                stop = min(start + block, num_q)
                block_scores = scores[: stop - start]
                torch.matmul(queries[start:stop], keys_t, out=block_scores)
                block_scores[:, num_k:] = float("-inf")
                torch.softmax(block_scores, dim=-1, out=block_scores)
                torch.matmul(block_scores[:, :num_k], values, out=out[b, h, start:stop])
    return out


def project_heads(attended: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """Apply each head's rows of a value projection after the attention.

    ``attended`` ``(B, heads, Nq, C)`` raw-value sums, ``weight`` ``(heads * D, C)``, ``bias``
    ``(heads * D,)`` -> ``(B, heads, Nq, D)``: head h gets ``attended[:, h] @ W_hᵀ + b_h``.
    """
    heads = attended.shape[1]
    weight_t = weight.unflatten(0, (heads, -1)).transpose(1, 2)  # (heads, C, D)
    return torch.matmul(attended, weight_t).add_(bias.view(heads, 1, -1))
