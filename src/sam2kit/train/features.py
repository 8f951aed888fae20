"""Frame features for training: with gradients when the image encoder trains, else computed without
and, when asked, once per frame (in memory or in files).

A frozen encoder in eval mode gives the same features for the same frame every time, so
:class:`FeatureCache` keeps them by the frame's name. They are the features of the un-augmented
frame: a flip or an affine warp of the frame would need the encoder again, and warping the features
instead is not the same (the encoder is not equivariant to them). So a cached run trains without
augmentation; the prompts (random points, jittered boxes, correction clicks) still differ every
time. ``cache="off"`` runs the frozen encoder every step on augmented frames instead.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Literal

import torch

from ..io.atomic import atomic_path
from ..modeling.sam2 import FrameFeatures, SAM2Model

__all__ = ["FeatureCache", "frame_features"]


def frame_features(model: SAM2Model, images: torch.Tensor, *, with_grad: bool) -> list[FrameFeatures]:
    """Features of ``(B, 3, S, S)`` normalised frames, one :class:`FrameFeatures` of batch 1 each."""
    with torch.set_grad_enabled(with_grad and torch.is_grad_enabled()):
        features = model.forward_image(images)
    return [features.select(i) for i in range(images.shape[0])]


class FeatureCache:
    """Features of a frozen image encoder, computed once per frame key.

    Args:
        model: the model whose (frozen, eval-mode) encoder computes the features.
        mode: ``"memory"`` (kept in RAM, on the model's device) or ``"disk"`` (one file per frame in
            ``folder``, which outlives the process and serves ``--resume`` and other processes).
        folder: where ``"disk"`` keeps its files.
    Every :meth:`get` returns a new :class:`FrameFeatures` (its ``shared`` results, computed by
    trained modules, must not leak from one step into the next).
    """

    def __init__(self, model: SAM2Model, mode: Literal["memory", "disk"], folder: Path | None = None) -> None:
        if mode not in ("memory", "disk"):
            raise ValueError(f"mode must be 'memory' or 'disk', got {mode!r}")
        if mode == "disk" and folder is None:
            raise ValueError("a disk cache needs a folder")
        self.model = model
        self.mode = mode
        self.folder = folder
        self._memory: dict[str, list[torch.Tensor]] = {}
        # Position encodings depend on the feature sizes only: kept once.
        self._positions: list[torch.Tensor] | None = None
        self._sizes: list[tuple[int, int]] | None = None
        self.hits = self.misses = 0

    def __len__(self) -> int:
        return len(self._memory) if self.mode == "memory" else len(list(self.folder.glob("*.pt")))  # type: ignore[union-attr]

    def _path(self, key: str) -> Path:
        return self.folder / f"{hashlib.sha1(key.encode('utf-8')).hexdigest()}.pt"  # type: ignore[operator]

    def _lookup(self, key: str) -> list[torch.Tensor] | None:
        if self.mode == "memory":
            return self._memory.get(key)
        path = self._path(key)
        if not path.is_file():
            return None
        levels = torch.load(path, map_location=self.model.device, weights_only=True)
        return list(levels)

    def _store(self, key: str, levels: list[torch.Tensor]) -> None:
        if self.mode == "memory":
            self._memory[key] = levels
            return
        self.folder.mkdir(parents=True, exist_ok=True)  # type: ignore[union-attr]
        with atomic_path(self._path(key)) as tmp:
            torch.save([level.cpu() for level in levels], tmp)

    def get(self, key: str, image: torch.Tensor) -> FrameFeatures:
        """The features of the frame ``key`` (``image`` ``(3, S, S)``, encoded on a miss)."""
        levels = self._lookup(key) if self._positions is not None else None
        if levels is None:
            self.misses += 1
            with torch.no_grad():
                features = self.model.forward_image(image[None].to(self.model.device))
            levels = [feat.detach() for feat in features.vision_feats]
            self._positions = [pos.detach() for pos in features.vision_pos]
            self._sizes = list(features.feat_sizes)
            self._store(key, levels)
        else:
            self.hits += 1
        return FrameFeatures(list(levels), list(self._positions), list(self._sizes))  # type: ignore[arg-type]
