"""The pieces of the video job around the tracking: a view of a video's first frames, and the
writer of each tracked frame's mask files and ``tracks.json`` record."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..io.source import FrameSource

__all__ = ["SCORE_DECIMALS", "FirstFrames", "MaskWriter"]

#: Decimal places of the scores in tracks.json.
SCORE_DECIMALS = 4


class FirstFrames(FrameSource):
    """A view of the first ``count`` frames of another :class:`~sam2kit.io.FrameSource` (no copy);
    closing it closes that source."""

    def __init__(self, source: FrameSource, count: int) -> None:
        super().__init__(source.name)
        self.source = source
        self.count = min(count, len(source))

    def __len__(self) -> int:
        return self.count

    @property
    def height(self) -> int:
        return self.source.height

    @property
    def width(self) -> int:
        return self.source.width

    @property
    def fps(self) -> float | None:
        return self.source.fps

    def _read(self, index: int) -> np.ndarray:
        return self.source.get(index)

    def close(self) -> None:
        self.source.close()


class MaskWriter:
    """Writes one tracked frame's masks (per-object PNGs or one palette PNG) and describes them.

    Files: ``masks/<obj_id>/<frame:05d>.png`` (8-bit, 0 / 255), or with ``palette``
    ``palette/<frame:05d>.png`` (DAVIS palette, pixel value = object id; higher ids win overlaps).
    """

    def __init__(self, out: Path, obj_ids: Sequence[int], palette: bool) -> None:
        self.out = out
        self.obj_ids = sorted(obj_ids)  # palette: higher ids are painted last and win overlaps
        self.palette = palette

    def mask_path(self, frame_idx: int, obj_id: int | None = None) -> Path:
        if self.palette:
            return self.out / "palette" / f"{frame_idx:05d}.png"
        return self.out / "masks" / str(obj_id) / f"{frame_idx:05d}.png"

    def write(self, frame_idx: int, obj_ids: Sequence[int], logits: Any) -> tuple[dict[str, Any], np.ndarray]:
        """Save the masks of ``logits`` ``(N, 1, H, W)`` (objects in the order ``obj_ids``).

        Returns the frame's ``tracks.json`` record (per object ``bbox_xywh``, ``area`` in pixels,
        ``score`` = mean foreground probability over the mask, ``present``) and the written masks
        ``(N, H, W)`` bool in ascending object id order.
        """
        import torch

        from ..io.masks import mask_to_box_xywh, save_mask_png, save_palette_png

        order = [list(obj_ids).index(obj_id) for obj_id in self.obj_ids]
        logits = logits[order, 0].float()  # (N, H, W)
        masks = logits > 0
        if self.palette:
            label = torch.zeros(masks.shape[1:], dtype=torch.uint8, device=masks.device)
            for mask, obj_id in zip(masks, self.obj_ids, strict=True):
                label[mask] = obj_id
            masks = label[None] == torch.tensor(self.obj_ids, dtype=torch.uint8, device=masks.device)[:, None, None]
        areas = masks.sum(dim=(1, 2))
        prob_sums = (torch.sigmoid(logits) * masks).sum(dim=(1, 2))
        scores = torch.where(areas > 0, prob_sums / areas.clamp(min=1), torch.zeros_like(prob_sums))
        masks_np = masks.cpu().numpy()
        if self.palette:
            save_palette_png(self.mask_path(frame_idx), label.cpu().numpy())
        else:
            for mask, obj_id in zip(masks_np, self.obj_ids, strict=True):
                save_mask_png(self.mask_path(frame_idx, obj_id), mask)
        objects = [
            {"id": obj_id, "bbox_xywh": mask_to_box_xywh(mask), "area": int(area),
             "score": round(float(score), SCORE_DECIMALS), "present": bool(area > 0)}
            for obj_id, mask, area, score in zip(self.obj_ids, masks_np, areas.tolist(), scores.tolist(), strict=True)
        ]
        return {"frame": int(frame_idx), "objects": objects}, masks_np

    def read(self, frame_idx: int) -> np.ndarray:
        """The masks written for a frame, ``(N, H, W)`` bool in ascending object id order."""
        from ..io.masks import load_mask_png, load_palette_png

        if self.palette:
            label = load_palette_png(self.mask_path(frame_idx))
            return np.stack([label == obj_id for obj_id in self.obj_ids])
        return np.stack([load_mask_png(self.mask_path(frame_idx, obj_id)) for obj_id in self.obj_ids])
