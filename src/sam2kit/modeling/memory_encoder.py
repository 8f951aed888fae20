"""Memory encoder: fuses a frame's image embedding with its predicted mask into a memory feature."""

from __future__ import annotations

import math

import torch
from torch import nn

from .common import LayerNorm2d
from .position import PositionEmbeddingSine


class MaskDownSampler(nn.Module):
    """Downsamples a mask by ``total_stride`` with stride-``stride`` convs (x stride**2 channels each),
    then projects to ``embed_dim``: ``(B, 1, H, W)`` -> ``(B, embed_dim, H/16, W/16)``."""

    def __init__(
        self,
        embed_dim: int = 256,
        kernel_size: int = 3,
        stride: int = 2,
        padding: int = 1,
        total_stride: int = 16,
    ) -> None:
        super().__init__()
        num_layers = round(math.log(total_stride, stride))
        self.encoder = nn.Sequential()
        channels = 1
        for _ in range(num_layers):
            out_channels = channels * stride**2
            self.encoder.append(nn.Conv2d(channels, out_channels, kernel_size, stride, padding))
            self.encoder.append(LayerNorm2d(out_channels))
            self.encoder.append(nn.GELU())
            channels = out_channels
        self.encoder.append(nn.Conv2d(channels, embed_dim, kernel_size=1))

    def forward(self, mask: torch.Tensor) -> torch.Tensor:
        return self.encoder(mask)


class CXBlock(nn.Module):
    """ConvNeXt block: depthwise 7x7 conv, LayerNorm, pointwise MLP (x4), layer scale, residual."""

    def __init__(
        self, dim: int = 256, kernel_size: int = 7, padding: int = 3, layer_scale_init_value: float = 1e-6
    ) -> None:
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, kernel_size=kernel_size, padding=padding, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)  # channels-last, where the MLP runs
        self.pwconv1 = nn.Linear(dim, 4 * dim)
        self.act = nn.GELU()
        self.pwconv2 = nn.Linear(4 * dim, dim)
        self.gamma = nn.Parameter(layer_scale_init_value * torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W)
        y = self.norm(self.dwconv(x).permute(0, 2, 3, 1))
        y = self.pwconv2(self.act(self.pwconv1(y)))
        return x + (self.gamma * y).permute(0, 3, 1, 2)


class Fuser(nn.Module):
    """A stack of CX blocks."""

    def __init__(self, dim: int = 256, num_layers: int = 2) -> None:
        super().__init__()
        self.layers = nn.ModuleList(CXBlock(dim) for _ in range(num_layers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return x


class MemoryEncoder(nn.Module):
    """``pix_feat`` ``(B or 1, in_dim, H, W)`` + mask ``(B, 1, 16H, 16W)`` -> memory features
    ``(B, out_dim, H, W)`` and their sine position encoding (same shape). A ``pix_feat`` of batch 1
    is shared by all B masks (objects on the same frame)."""

    def __init__(self, out_dim: int = 64, in_dim: int = 256, num_fuser_layers: int = 2) -> None:
        super().__init__()
        self.mask_downsampler = MaskDownSampler(embed_dim=in_dim)
        self.pix_feat_proj = nn.Conv2d(in_dim, in_dim, kernel_size=1)
        self.fuser = Fuser(in_dim, num_fuser_layers)
        self.position_encoding = PositionEmbeddingSine(out_dim)
        self.out_proj = nn.Conv2d(in_dim, out_dim, kernel_size=1) if out_dim != in_dim else nn.Identity()

    def forward(
        self, pix_feat: torch.Tensor, masks: torch.Tensor, skip_mask_sigmoid: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if not skip_mask_sigmoid:
            masks = torch.sigmoid(masks)
        pix_feat = self.pix_feat_proj(pix_feat)
        one_by_one = masks.device.type == "cpu" and not (torch.compiler.is_compiling() or torch.jit.is_tracing())
        if one_by_one and masks.shape[0] > 1:
            # One object at a time on the CPU: the batch's activations (50 MB per tensor for 3
            # objects at 1024 px) fall out of cache, and the element-wise steps run ~1.3x slower.
            features = torch.cat([
                self._fuse(pix_feat if pix_feat.shape[0] == 1 else pix_feat[i : i + 1], masks[i : i + 1])
                for i in range(masks.shape[0])
            ])
        else:
            features = self._fuse(pix_feat, masks)
        return features, self.position_encoding(features)

    def _fuse(self, pix_feat: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        """Projected ``pix_feat`` ``(B or 1, in_dim, H, W)`` + masks -> ``(B, out_dim, H, W)``."""
        fused = pix_feat + self.mask_downsampler(masks)
        # Channels-last, so that the CX blocks' channel-last LayerNorm and MLP read their input in
        # place (the sum of a channels-last and an NCHW map comes out NCHW, and copies follow).
        return self.out_proj(self.fuser(fused.contiguous(memory_format=torch.channels_last)))
