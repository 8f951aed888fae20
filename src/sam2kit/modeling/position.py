"""Position encodings: 2D sine (feature maps), 1D sine (time), random Fourier (prompts), axial RoPE."""

from __future__ import annotations

import math

import torch
from torch import nn


def _sine_cosine_interleaved(positions: torch.Tensor, num_feats: int, temperature: float) -> torch.Tensor:
    """``(..., )`` positions -> ``(..., num_feats)``: sin on even, cos on odd frequency slots."""
    steps = torch.arange(num_feats, dtype=torch.float32, device=positions.device)
    inv_freq = temperature ** (2 * torch.div(steps, 2, rounding_mode="floor") / num_feats)
    angles = positions[..., None] / inv_freq
    # Pairs (sin(a0), cos(a1)), (sin(a2), cos(a3)), ... as in DETR.
    return torch.stack((angles[..., 0::2].sin(), angles[..., 1::2].cos()), dim=-1).flatten(-2)


class PositionEmbeddingSine(nn.Module):
    """DETR-style normalised 2D sine encoding of a feature map's grid.

    ``num_pos_feats`` output channels: the first half encodes y, the second half x. The result depends
    only on the grid size, so it is cached per (H, W, device).
    """

    def __init__(self, num_pos_feats: int, temperature: float = 10000.0) -> None:
        super().__init__()
        if num_pos_feats % 2:
            raise ValueError("num_pos_feats must be even")
        self.num_pos_feats = num_pos_feats
        self.temperature = temperature
        self._cache: dict[tuple[int, int, str], torch.Tensor] = {}

    def encode_grid(self, height: int, width: int, device: torch.device) -> torch.Tensor:
        """``(num_pos_feats, H, W)`` float32 encoding of an ``H x W`` grid."""
        key = (height, width, str(device))
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        half = self.num_pos_feats // 2
        eps, scale = 1e-6, 2 * math.pi
        ys = torch.arange(1, height + 1, dtype=torch.float32, device=device)
        xs = torch.arange(1, width + 1, dtype=torch.float32, device=device)
        ys = ys / (ys[-1:] + eps) * scale
        xs = xs / (xs[-1:] + eps) * scale
        pos_y = _sine_cosine_interleaved(ys, half, self.temperature)  # (H, half)
        pos_x = _sine_cosine_interleaved(xs, half, self.temperature)  # (W, half)
        grid = torch.cat(
            (pos_y[:, None, :].expand(height, width, half), pos_x[None, :, :].expand(height, width, half)),
            dim=-1,
        ).permute(2, 0, 1)
        self._cache[key] = grid.contiguous()
        return self._cache[key]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W)`` feature map -> ``(B, num_pos_feats, H, W)`` encoding in ``x.dtype``."""
        grid = self.encode_grid(x.shape[-2], x.shape[-1], x.device)
        return grid.to(x.dtype)[None].expand(x.shape[0], -1, -1, -1)


def sine_encoding_1d(positions: torch.Tensor, dim: int, temperature: float = 10000.0) -> torch.Tensor:
    """``(N,)`` float positions -> ``(N, dim)``: ``[sin(p / f_i) ..., cos(p / f_i) ...]`` halves."""
    half = dim // 2
    steps = torch.arange(half, dtype=torch.float32, device=positions.device)
    inv_freq = temperature ** (2 * torch.div(steps, 2, rounding_mode="floor") / half)
    angles = positions[..., None] / inv_freq
    return torch.cat([angles.sin(), angles.cos()], dim=-1)


class PositionEmbeddingRandom(nn.Module):
    """Random Fourier features of normalised (x, y) coordinates (SAM prompt encoder)."""

    positional_encoding_gaussian_matrix: torch.Tensor  # (2, num_pos_feats) buffer

    def __init__(self, num_pos_feats: int = 64, scale: float | None = None) -> None:
        super().__init__()
        scale = 1.0 if scale is None or scale <= 0.0 else scale
        self.register_buffer("positional_encoding_gaussian_matrix", scale * torch.randn((2, num_pos_feats)))

    def _encode(self, coords: torch.Tensor) -> torch.Tensor:
        """``(..., 2)`` coordinates in [0, 1] -> ``(..., 2 * num_pos_feats)``."""
        projected = (2 * coords - 1) @ self.positional_encoding_gaussian_matrix
        projected = 2 * math.pi * projected
        return torch.cat([projected.sin(), projected.cos()], dim=-1)

    def forward(self, size: tuple[int, int]) -> torch.Tensor:
        """Encoding of every cell centre of an ``(H, W)`` grid: ``(C, H, W)``."""
        h, w = size
        device = self.positional_encoding_gaussian_matrix.device
        ys = (torch.arange(h, device=device, dtype=torch.float32) + 0.5) / h
        xs = (torch.arange(w, device=device, dtype=torch.float32) + 0.5) / w
        grid = torch.stack([xs[None, :].expand(h, w), ys[:, None].expand(h, w)], dim=-1)
        return self._encode(grid).permute(2, 0, 1)

    def forward_with_coords(self, coords: torch.Tensor, image_size: tuple[int, int]) -> torch.Tensor:
        """``(B, N, 2)`` pixel (x, y) coordinates in an ``(H, W)`` image -> ``(B, N, C)``."""
        h, w = image_size
        scale = torch.tensor([1.0 / w, 1.0 / h], device=coords.device, dtype=torch.float32)
        return self._encode(coords.float() * scale)


def axial_rope_angles(head_dim: int, width: int, height: int, theta: float = 10000.0) -> torch.Tensor:
    """Rotation angles of 2D axial RoPE for a row-major ``height x width`` grid.

    Returns ``(width * height, head_dim // 2)``: the first quarter of the channel pairs rotate with
    the x index, the second quarter with the y index.
    """
    freqs = 1.0 / (theta ** (torch.arange(0, head_dim, 4)[: head_dim // 4].float() / head_dim))
    index = torch.arange(width * height, dtype=torch.float32)
    t_x = index % width
    t_y = torch.div(index, width, rounding_mode="floor")
    return torch.cat([torch.outer(t_x, freqs), torch.outer(t_y, freqs)], dim=-1)


def rope_rotation(angles: torch.Tensor, real: bool = False) -> torch.Tensor:
    """The rotation by ``angles`` ``(N, D // 2)``, for :func:`apply_rope`: the unit complex numbers
    ``cos + i sin`` ``(N, D // 2)``, or with ``real`` the same as ``(N, D // 2, 2)`` float (cos, sin)
    pairs, for graphs without complex numbers (ONNX export)."""
    if real:
        return torch.stack((angles.cos(), angles.sin()), dim=-1)
    return torch.complex(angles.cos(), angles.sin())


def apply_rope(x: torch.Tensor, rotation: torch.Tensor) -> torch.Tensor:
    """Rotate consecutive channel pairs of ``x`` ``(B, heads, N, D)`` by ``rotation`` (from
    :func:`rope_rotation`: complex ``(N, D // 2)`` or real ``(N, D // 2, 2)``). Computed in float32,
    returned in ``x.dtype``.

    The complex form multiplies each pair as one complex number: one pass over ``x`` and one output,
    where the real-arithmetic form makes six full-size temporaries (4-5x slower on the memory keys).
    The real form computes the same products and sums (equal up to float rounding, ~1e-7) and
    exports to ONNX, which has no complex numbers.
    """
    pairs = x.float().unflatten(-1, (-1, 2))
    if not rotation.is_complex():
        cos, sin = rotation.unbind(-1)
        real, imag = pairs.unbind(-1)
        rotated = torch.stack((real * cos - imag * sin, real * sin + imag * cos), dim=-1)
        return rotated.flatten(-2).to(x.dtype)
    if (pairs.stride(-1) != 1 or pairs.storage_offset() % 2
            or any(stride % 2 for stride in pairs.stride()[:-1])):
        pairs = pairs.contiguous()  # view_as_complex needs (real, imag) pairs on even offsets
    return torch.view_as_real(torch.view_as_complex(pairs) * rotation).flatten(-2).to(x.dtype)
