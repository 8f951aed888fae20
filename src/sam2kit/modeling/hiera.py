"""Hiera: the hierarchical vision transformer trunk of the SAM 2 image encoder.

Four stages at strides 4, 8, 16, 32. Blocks attend within local windows except a few global blocks;
the first block of stages 2-4 max-pools its queries (q-pooling) to halve the resolution. For
training, the blocks' residual branches take stochastic depth (``drop_path_rate``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .common import MLP, DropPath, attention

#: Tokens per group of windows in :meth:`MultiScaleBlock._forward_by_windows` (e.g. 64 windows
#: of 8x8): large enough for efficient matmuls, small enough for the group's activations
#: (about 4096 x 4 x dim floats in the MLP) to stay in the CPU's caches.
WINDOW_GROUP_TOKENS = 4096


def window_partition(x: torch.Tensor, window: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """``(B, H, W, C)`` -> ``(B * num_windows, window, window, C)`` and the padded (H, W)."""
    b, h, w, c = x.shape
    pad_h, pad_w = (-h) % window, (-w) % window
    if pad_h or pad_w:
        x = F.pad(x, (0, 0, 0, pad_w, 0, pad_h))
    hp, wp = h + pad_h, w + pad_w
    x = x.view(b, hp // window, window, wp // window, window, c)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, window, window, c), (hp, wp)


def window_unpartition(
    windows: torch.Tensor, window: int, padded_hw: tuple[int, int], hw: tuple[int, int]
) -> torch.Tensor:
    """Inverse of :func:`window_partition`: ``(B * num_windows, window, window, C)`` -> ``(B, H, W, C)``."""
    hp, wp = padded_hw
    h, w = hw
    b = windows.shape[0] // ((hp // window) * (wp // window))
    x = windows.view(b, hp // window, wp // window, window, window, -1)
    x = x.permute(0, 1, 3, 2, 4, 5).reshape(b, hp, wp, -1)
    if hp > h or wp > w:
        x = x[:, :h, :w, :].contiguous()
    return x


def _pool_nhwc(x: torch.Tensor, pool: nn.Module) -> torch.Tensor:
    """Apply a 2D pooling layer to a channels-last ``(B, H, W, C)`` tensor."""
    return pool(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)


class PatchEmbed(nn.Module):
    """7x7 stride-4 convolution: image ``(B, 3, H, W)`` -> tokens ``(B, H/4, W/4, C)``."""

    def __init__(self, embed_dim: int, in_chans: int = 3) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=7, stride=4, padding=3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).permute(0, 2, 3, 1)


class MultiScaleAttention(nn.Module):
    """Multi-head self-attention whose queries may be max-pooled (downsampling the output)."""

    def __init__(self, dim: int, dim_out: int, num_heads: int, q_pool: nn.Module | None = None) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.q_pool = q_pool
        self.qkv = nn.Linear(dim, dim_out * 3)
        self.proj = nn.Linear(dim_out, dim_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, H, W, C) -> (B, H', W', dim_out)
        b, h, w, _ = x.shape
        qkv = self.qkv(x).reshape(b, h * w, 3, self.num_heads, -1)
        q, k, v = qkv.unbind(2)  # each (B, HW, heads, D)
        if self.q_pool is not None:
            q = _pool_nhwc(q.reshape(b, h, w, -1), self.q_pool)
            h, w = q.shape[1:3]
            q = q.reshape(b, h * w, self.num_heads, -1)
        out = attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
        out = out.transpose(1, 2).reshape(b, h, w, -1)
        return self.proj(out)


class MultiScaleBlock(nn.Module):
    """Pre-norm transformer block with optional windowing, channel growth and q-pooling."""

    def __init__(
        self,
        dim: int,
        dim_out: int,
        num_heads: int,
        mlp_ratio: float = 4.0,
        q_stride: tuple[int, int] | None = None,
        window_size: int = 0,
        drop_path: float = 0.0,
    ) -> None:
        super().__init__()
        self.dim, self.dim_out = dim, dim_out
        self.window_size = window_size
        self.q_stride = q_stride
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.pool = nn.MaxPool2d(kernel_size=q_stride, stride=q_stride) if q_stride else None
        self.attn = MultiScaleAttention(dim, dim_out, num_heads=num_heads, q_pool=self.pool)
        self.norm2 = nn.LayerNorm(dim_out, eps=1e-6)
        self.mlp = MLP(dim_out, int(dim_out * mlp_ratio), dim_out, num_layers=2, activation=nn.GELU)
        if dim != dim_out:
            self.proj = nn.Linear(dim, dim_out)
        self.drop_path = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, H, W, dim) -> (B, H', W', dim_out)
        if self._can_run_by_windows(x):
            return self._forward_by_windows(x)
        shortcut = x
        x = self.norm1(x)
        if self.dim != self.dim_out:
            shortcut = self.proj(x)
            if self.pool is not None:
                shortcut = _pool_nhwc(shortcut, self.pool)
        window = self.window_size
        if window > 0:
            x, _ = window_partition(x, window)
        x = self.attn(x)
        if window > 0:
            if self.q_stride:
                window //= self.q_stride[0]
            h, w = shortcut.shape[1:3]
            padded = (h + (-h) % window, w + (-w) % window)
            x = window_unpartition(x, window, padded, (h, w))
        x = shortcut + self.drop_path(x)
        return x + self.drop_path(self.mlp(self.norm2(x)))

    def _can_run_by_windows(self, x: torch.Tensor) -> bool:
        """Whether the whole block can run window group by window group: windowed attention, a
        map that needs no padding, and q-pooling (if any) that stays inside the windows. Not while
        stochastic depth is active: it drops whole samples, and a group of windows may span two."""
        if self.training and isinstance(self.drop_path, DropPath):
            return False
        window = self.window_size
        if window == 0 or x.shape[1] % window or x.shape[2] % window:
            return False
        if self.q_stride is None:
            return True
        stride_h, stride_w = self.q_stride
        return stride_h == stride_w and window % stride_h == 0

    def _forward_by_windows(self, x: torch.Tensor) -> torch.Tensor:
        """Same result as the plain path, computed on groups of windows of ~``WINDOW_GROUP_TOKENS``
        tokens. Every op of the block is per token or per window, so each group runs the whole
        block (norms, q/k/v, attention, MLP) on tensors that stay in cache, and no activation of
        the full map is allocated except the block's output."""
        h, w = x.shape[1:3]
        window = self.window_size
        stride = self.q_stride[0] if self.q_stride else 1  # square (see _can_run_by_windows)
        out_window = window // stride
        windows, _ = window_partition(x, window)  # (B * nW, window, window, dim)
        num_windows = windows.shape[0]
        out = windows.new_empty(num_windows, out_window, out_window, self.dim_out)
        group = max(1, WINDOW_GROUP_TOKENS // (window * window))
        for start in range(0, num_windows, group):
            part = windows[start : start + group]
            normed = self.norm1(part)
            shortcut = part
            if self.dim != self.dim_out:
                shortcut = self.proj(normed)
                if self.pool is not None:
                    shortcut = _pool_nhwc(shortcut, self.pool)
            y = shortcut + self.attn(normed)
            out[start : start + group] = y + self.mlp(self.norm2(y))
        out_hw = (h // stride, w // stride)
        return window_unpartition(out, out_window, out_hw, out_hw)


class Hiera(nn.Module):
    """Hiera trunk. ``forward`` returns the output of every stage, highest resolution first:
    ``[(B, C, H/4, W/4), (B, 2C, H/8, W/8), (B, 4C, H/16, W/16), (B, 8C, H/32, W/32)]``.
    """

    def __init__(
        self,
        embed_dim: int = 96,
        num_heads: int = 1,
        stages: tuple[int, ...] = (2, 3, 16, 3),
        global_att_blocks: tuple[int, ...] = (12, 16, 20),
        window_pos_embed_bkg_spatial_size: tuple[int, int] = (14, 14),
        window_spec: tuple[int, ...] = (8, 4, 14, 7),
        q_pool: int = 3,
        q_stride: tuple[int, int] = (2, 2),
        dim_mul: float = 2.0,
        head_mul: float = 2.0,
        mlp_ratio: float = 4.0,
        drop_path_rate: float = 0.0,
    ) -> None:
        super().__init__()
        self.stage_ends = [sum(stages[: i + 1]) - 1 for i in range(len(stages))]
        pooled_blocks = [end + 1 for end in self.stage_ends[:-1]][:q_pool]
        self.patch_embed = PatchEmbed(embed_dim)
        self.pos_embed = nn.Parameter(torch.zeros(1, embed_dim, *window_pos_embed_bkg_spatial_size))
        self.pos_embed_window = nn.Parameter(torch.zeros(1, embed_dim, window_spec[0], window_spec[0]))
        self._pos_cache: tuple[tuple, torch.Tensor] | None = None

        self.blocks = nn.ModuleList()
        depth = sum(stages)
        # Stochastic depth rises linearly from 0 (first block) to drop_path_rate (last block).
        drop_rates = torch.linspace(0.0, drop_path_rate, depth).tolist()
        stage = 0
        dim = embed_dim
        for i in range(depth):
            # The first block of a stage still uses the previous stage's window size.
            window = 0 if i in global_att_blocks else window_spec[stage]
            dim_out = dim
            if i - 1 in self.stage_ends:
                dim_out = int(dim * dim_mul)
                num_heads = int(num_heads * head_mul)
                stage += 1
            self.blocks.append(
                MultiScaleBlock(
                    dim,
                    dim_out,
                    num_heads=num_heads,
                    mlp_ratio=mlp_ratio,
                    q_stride=q_stride if i in pooled_blocks else None,
                    window_size=window,
                    drop_path=drop_rates[i],
                )
            )
            dim = dim_out

    def _position_embedding(self, h: int, w: int) -> torch.Tensor:
        """Background embedding resized to (h, w) plus the tiled window embedding: ``(1, h, w, C)``.

        It depends only on the weights and the grid size, so it is cached when it can be: the key
        holds the parameters' identity and version counters, so loading or editing weights
        recomputes it. Parameters created under ``torch.inference_mode`` have no version counter
        (an in-place load would go unseen), and a forward that records gradients for them must
        build the graph; in both cases, and while torch.compile / torch.export trace it, it is
        recomputed (a few small ops beside the trunk).
        """
        params = (self.pos_embed, self.pos_embed_window)
        recording = torch.is_grad_enabled() and any(p.requires_grad for p in params)
        tracing = torch.compiler.is_compiling()  # torch.compile / torch.export: no storage to key on
        cacheable = not recording and not tracing and not any(p.is_inference() for p in params)
        key = None
        if cacheable:
            key = (h, w, self.pos_embed.dtype, self.pos_embed.device, torch.is_inference_mode_enabled(),
                   *((id(p), p.data_ptr(), p._version) for p in params))
            if self._pos_cache is not None and self._pos_cache[0] == key:
                return self._pos_cache[1]
        pos = F.interpolate(self.pos_embed, size=(h, w), mode="bicubic")
        window = self.pos_embed_window
        reps = [p // s for p, s in zip(pos.shape, window.shape, strict=True)]
        embedding = (pos + window.tile(reps)).permute(0, 2, 3, 1)
        if key is not None:
            self._pos_cache = (key, embedding)
        return embedding

    def forward(self, image: torch.Tensor) -> list[torch.Tensor]:  # (B, 3, H, W)
        x = self.patch_embed(image)
        x = x + self._position_embedding(x.shape[1], x.shape[2])
        features = []
        for i, block in enumerate(self.blocks):
            x = block(x)
            if i in self.stage_ends:
                features.append(x.permute(0, 3, 1, 2))
        return features
