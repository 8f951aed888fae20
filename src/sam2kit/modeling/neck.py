"""FPN neck and the image encoder (Hiera trunk + neck), and how a config builds them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from .hiera import Hiera
from .position import PositionEmbeddingSine

if TYPE_CHECKING:
    from ..config import SAM2Config


@dataclass
class BackboneOutput:
    """Multi-scale image features, highest resolution first.

    ``backbone_fpn[i]`` is ``(B, d_model, H_i, W_i)`` and ``vision_pos_enc[i]`` its sine position
    encoding of the same shape. With the default ``scalp=1`` there are three levels at strides
    4, 8 and 16.
    """

    backbone_fpn: list[torch.Tensor]
    vision_pos_enc: list[torch.Tensor]

    @property
    def vision_features(self) -> torch.Tensor:
        """The lowest-resolution level ``(B, d_model, H/16, W/16)``: the image embedding."""
        return self.backbone_fpn[-1]


class FpnNeck(nn.Module):
    """Projects every trunk stage to ``d_model`` channels with 1x1 convs and adds nearest-upsampled
    top-down features on the levels in ``fpn_top_down_levels``."""

    def __init__(
        self,
        backbone_channel_list: tuple[int, ...],
        d_model: int = 256,
        fpn_top_down_levels: tuple[int, ...] = (2, 3),
    ) -> None:
        super().__init__()
        self.d_model = d_model
        self.position_encoding = PositionEmbeddingSine(d_model)
        self.convs = nn.ModuleList()
        for channels in backbone_channel_list:
            lateral = nn.Sequential()
            lateral.add_module("conv", nn.Conv2d(channels, d_model, kernel_size=1))
            self.convs.append(lateral)
        self.fpn_top_down_levels = tuple(fpn_top_down_levels)

    def forward(self, trunk_features: list[torch.Tensor]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Trunk features (highest resolution first) -> (features, position encodings), same order."""
        num_levels = len(self.convs)
        features: list[torch.Tensor] = [None] * num_levels  # type: ignore[list-item]
        positions: list[torch.Tensor] = [None] * num_levels  # type: ignore[list-item]
        top_down = None
        # ``convs`` are ordered lowest resolution first, the trunk highest resolution first.
        for level in range(num_levels - 1, -1, -1):
            lateral = self.convs[num_levels - 1 - level](trunk_features[level])
            if top_down is not None and level in self.fpn_top_down_levels:
                upsampled = F.interpolate(top_down.float(), scale_factor=2.0, mode="nearest")
                top_down = lateral + upsampled
            else:
                top_down = lateral
            features[level] = top_down
            positions[level] = self.position_encoding(top_down)
        return features, positions


class ImageEncoder(nn.Module):
    """Hiera trunk followed by the FPN neck; drops the ``scalp`` lowest-resolution levels."""

    def __init__(self, trunk: Hiera, neck: FpnNeck, scalp: int = 1) -> None:
        super().__init__()
        self.trunk = trunk
        self.neck = neck
        self.scalp = scalp

    def forward(self, image: torch.Tensor) -> BackboneOutput:
        """``(B, 3, S, S)`` normalised image -> multi-scale features."""
        features, positions = self.neck(self.trunk(image))
        if self.scalp > 0:
            features, positions = features[: -self.scalp], positions[: -self.scalp]
        return BackboneOutput(backbone_fpn=features, vision_pos_enc=positions)


def build_image_encoder(config: SAM2Config) -> ImageEncoder:
    """The Hiera trunk and the FPN neck of ``config``."""
    trunk = config.trunk
    hiera = Hiera(
        embed_dim=trunk.embed_dim,
        num_heads=trunk.num_heads,
        stages=trunk.stages,
        global_att_blocks=trunk.global_att_blocks,
        window_pos_embed_bkg_spatial_size=trunk.window_pos_embed_bkg_spatial_size,
        window_spec=trunk.window_spec,
        q_pool=trunk.q_pool,
        q_stride=trunk.q_stride,
        dim_mul=trunk.dim_mul,
        head_mul=trunk.head_mul,
        mlp_ratio=trunk.mlp_ratio,
        drop_path_rate=trunk.drop_path_rate,
    )
    neck = FpnNeck(
        backbone_channel_list=trunk.channel_list,
        d_model=config.d_model,
        fpn_top_down_levels=config.fpn_top_down_levels,
    )
    return ImageEncoder(hiera, neck, scalp=config.scalp)
