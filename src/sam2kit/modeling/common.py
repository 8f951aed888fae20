"""Small layers shared by several SAM 2 modules."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class MLP(nn.Module):
    """``num_layers`` linear layers with an activation between them.

    Parameter names (``layers.{i}.weight``) match the official checkpoints.
    """

    def __init__(
        self,
        input_dim: int,
        hidden_dim: int,
        output_dim: int,
        num_layers: int,
        activation: type[nn.Module] = nn.ReLU,
        sigmoid_output: bool = False,
    ) -> None:
        super().__init__()
        dims_in = [input_dim] + [hidden_dim] * (num_layers - 1)
        dims_out = [hidden_dim] * (num_layers - 1) + [output_dim]
        self.layers = nn.ModuleList(nn.Linear(i, o) for i, o in zip(dims_in, dims_out, strict=True))
        self.act = activation()
        self.sigmoid_output = sigmoid_output

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (..., input_dim) -> (..., output_dim)
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < last:
                x = self.act(x)
        return torch.sigmoid(x) if self.sigmoid_output else x


class DropPath(nn.Module):
    """Stochastic depth: in training, zero a residual branch for a random ``rate`` of the samples
    and scale the kept ones by ``1 / (1 - rate)``; in eval, the identity. No parameters."""

    def __init__(self, rate: float = 0.0) -> None:
        super().__init__()
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"drop path rate must be in [0, 1), got {rate}")
        self.rate = rate

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, ...) -> (B, ...)
        if self.rate == 0.0 or not self.training:
            return x
        keep = 1.0 - self.rate
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask.div_(keep)

    def extra_repr(self) -> str:
        return f"rate={self.rate:.3f}"


class LayerNorm2d(nn.Module):
    """LayerNorm over the channel axis of a ``(B, C, H, W)`` tensor."""

    def __init__(self, num_channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(num_channels))
        self.bias = nn.Parameter(torch.zeros(num_channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W)
        mean = x.mean(1, keepdim=True)
        var = (x - mean).pow(2).mean(1, keepdim=True)
        x = (x - mean) / torch.sqrt(var + self.eps)
        return self.weight[:, None, None] * x + self.bias[:, None, None]


#: Below this many query-key pairs per (batch, head), attention runs as two batched matmuls and a
#: softmax: the fused CPU kernel's per-block overhead dominates on short sequences (Hiera's 4x4 to
#: 14x14 windows), where the plain form runs 1.5-3x faster. Long sequences keep the fused kernel,
#: which never materialises the (Nq, Nk) score matrix.
SMALL_ATTENTION_PAIRS = 256 * 256
#: Queries per chunk of long bf16 attention on the CPU (see :func:`attention`).
BF16_QUERY_CHUNK = 512


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, dropout_p: float = 0.0) -> torch.Tensor:
    """Scaled dot-product attention: ``q`` ``(B, heads, Nq, D)``, ``k`` / ``v`` ``(B, heads, Nk, D)``
    -> ``(B, heads, Nq, D)``.

    ``dropout_p`` > 0 drops attention weights (a training option; callers pass 0 in eval mode).
    """
    if dropout_p > 0.0:
        # Always the library kernel: the CPU fast paths below have no dropout.
        return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p)
    if q.device.type == "cpu":
        if q.shape[-2] * k.shape[-2] <= SMALL_ATTENTION_PAIRS:
            return _plain_attention(q, k, v)
        if q.dtype == torch.bfloat16 and q.shape[-1] >= 128:
            # The fused CPU kernel runs bf16 no faster than fp32; with wide heads (the memory
            # attention's 256) chunks of queries through bf16 matmuls run 1.3-1.7x faster, and
            # each chunk's (chunk, Nk) scores stay small.
            out = torch.empty_like(q)
            for start in range(0, q.shape[-2], BF16_QUERY_CHUNK):
                out[..., start : start + BF16_QUERY_CHUNK, :] = _plain_attention(
                    q[..., start : start + BF16_QUERY_CHUNK, :], k, v
                )
            return out
    return F.scaled_dot_product_attention(q, k, v)


def _plain_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    scores = torch.matmul(q * q.shape[-1] ** -0.5, k.transpose(-2, -1))
    return torch.matmul(scores.softmax(dim=-1), v)
