"""Prompt encoder: points / box corners -> sparse tokens, mask prompt -> dense embedding."""

from __future__ import annotations

from typing import cast

import torch
from torch import nn

from .common import LayerNorm2d
from .position import PositionEmbeddingRandom

# Point labels understood by the prompt encoder.
LABEL_PAD = -1
LABEL_NEGATIVE = 0
LABEL_POSITIVE = 1
LABEL_BOX_TOP_LEFT = 2
LABEL_BOX_BOTTOM_RIGHT = 3


class PromptEncoder(nn.Module):
    """Encodes prompts for the mask decoder.

    Args:
        embed_dim: token width (256).
        image_embedding_size: (H, W) of the image embedding (image_size / 16).
        input_image_size: (H, W) of the model's input image in pixels.
        mask_in_chans: hidden channels of the mask-downscaling convs (16).
    """

    def __init__(
        self,
        embed_dim: int,
        image_embedding_size: tuple[int, int],
        input_image_size: tuple[int, int],
        mask_in_chans: int = 16,
    ) -> None:
        super().__init__()
        self.embed_dim = embed_dim
        self.image_embedding_size = image_embedding_size
        self.input_image_size = input_image_size
        self.mask_input_size = (4 * image_embedding_size[0], 4 * image_embedding_size[1])
        self.pe_layer = PositionEmbeddingRandom(embed_dim // 2)
        # One learned embedding per label: negative, positive, box top-left, box bottom-right.
        self.point_embeddings = nn.ModuleList(nn.Embedding(1, embed_dim) for _ in range(4))
        self.not_a_point_embed = nn.Embedding(1, embed_dim)
        self.mask_downscaling = nn.Sequential(
            nn.Conv2d(1, mask_in_chans // 4, kernel_size=2, stride=2),
            LayerNorm2d(mask_in_chans // 4),
            nn.GELU(),
            nn.Conv2d(mask_in_chans // 4, mask_in_chans, kernel_size=2, stride=2),
            LayerNorm2d(mask_in_chans),
            nn.GELU(),
            nn.Conv2d(mask_in_chans, embed_dim, kernel_size=1),
        )
        self.no_mask_embed = nn.Embedding(1, embed_dim)

    def _label_embeddings(self) -> torch.Tensor:
        """The four learned label embeddings stacked: ``(4, C)``."""
        return torch.cat([cast(nn.Embedding, embedding).weight for embedding in self.point_embeddings], dim=0)

    def get_dense_pe(self) -> torch.Tensor:
        """Position encoding of the image embedding grid: ``(1, embed_dim, H, W)``."""
        return self.pe_layer(self.image_embedding_size).unsqueeze(0)

    def embed_points(self, coords: torch.Tensor, labels: torch.Tensor, pad: bool) -> torch.Tensor:
        """``(B, N, 2)`` pixel (x, y) in model-input space, ``(B, N)`` labels -> ``(B, N[+1], C)``.

        Label -1 marks padding (no position, a learned "not a point" token). With ``pad`` one padding
        point is appended, which the decoder was trained with when no box is given.
        """
        coords = coords + 0.5  # pixel centres
        if pad:
            coords = torch.cat([coords, coords.new_zeros(coords.shape[0], 1, 2)], dim=1)
            labels = torch.cat([labels, -labels.new_ones(labels.shape[0], 1)], dim=1)
        embedding = self.pe_layer.forward_with_coords(coords, self.input_image_size)
        is_pad = (labels == LABEL_PAD).unsqueeze(-1)
        embedding = torch.where(is_pad, self.not_a_point_embed.weight.expand_as(embedding), embedding)
        table = self._label_embeddings()  # (4, C)
        label_embed = table[labels.clamp(min=0, max=3).long()]
        return torch.where(labels.unsqueeze(-1) >= 0, embedding + label_embed, embedding)

    def embed_boxes(self, boxes: torch.Tensor) -> torch.Tensor:
        """``(B, 4)`` XYXY boxes in model-input pixels -> two corner tokens ``(B, 2, C)``."""
        corners = boxes.reshape(-1, 2, 2) + 0.5
        embedding = self.pe_layer.forward_with_coords(corners, self.input_image_size)
        corner_embed = self._label_embeddings()[2:4]  # box corners
        return embedding + corner_embed

    def forward(
        self,
        points: tuple[torch.Tensor, torch.Tensor] | None,
        boxes: torch.Tensor | None,
        masks: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns sparse ``(B, N, C)`` and dense ``(B, C, H, W)`` embeddings.

        ``masks`` are low-res mask logits ``(B, 1, 4H, 4W)``.
        """
        if points is not None:
            batch = points[0].shape[0]
        elif boxes is not None:
            batch = boxes.shape[0]
        elif masks is not None:
            batch = masks.shape[0]
        else:
            batch = 1
        device = self.no_mask_embed.weight.device
        sparse = [torch.empty((batch, 0, self.embed_dim), device=device)]
        if points is not None:
            sparse.append(self.embed_points(points[0], points[1], pad=boxes is None))
        if boxes is not None:
            sparse.append(self.embed_boxes(boxes))
        sparse_embeddings = torch.cat(sparse, dim=1)
        if masks is not None:
            dense_embeddings = self.mask_downscaling(masks)
        else:
            h, w = self.image_embedding_size
            dense_embeddings = self.no_mask_embed.weight.reshape(1, -1, 1, 1).expand(batch, -1, h, w)
        return sparse_embeddings, dense_embeddings
