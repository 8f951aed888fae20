"""The loss of a micro-batch as one ``nn.Module`` call: what ``DistributedDataParallel`` wraps (its
gradient hooks need the whole forward in one module call), and what one process calls directly.

Each sample runs on its own (:mod:`.step`): images with their objects as one decoder batch, clips
frame by frame through the tracking engine. Frame features come from the encoder with gradients
(``train="all"`` or LoRA), from a :class:`~.features.FeatureCache`, or from the frozen encoder
without gradients.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ..modeling.sam2 import FrameFeatures, SAM2Model
from .features import FeatureCache, frame_features
from .loader import LoadedItem, prompt_generator
from .losses import LossTerms, SAM2Loss
from .prompts import PromptOptions
from .step import clip_sample_loss, image_sample_loss, training_engine

__all__ = ["TrainingObjective", "TERM_NAMES", "num_objects_of"]

#: The loss terms a forward returns, in order (``total`` first).
TERM_NAMES = ("loss", "mask", "dice", "iou", "object_score")


def num_objects_of(item: LoadedItem) -> int:
    """Objects of a loaded sample (masks ``(N, S, S)`` of an image, ``(T, N, S, S)`` of a clip)."""
    masks = item.sample.masks
    return int(masks.shape[0] if masks.ndim == 3 else masks.shape[1])


class TrainingObjective(nn.Module):
    """``forward(items, num_objects)`` -> the micro-batch's loss and its terms.

    Args:
        model: the model (its trainable parameters are this module's).
        kind: ``"images"`` or ``"video"``: the run's samples (a video run may mix in still
            images: each sample is trained as what it is).
        prompts: the prompt simulation's options.
        loss_fn: the loss (terms summed over samples, each divided by ``num_objects``).
        encoder_trains: frame features need gradients.
        cache: cached features of a frozen encoder (None: computed each time).
        seed: the run's seed (with each sample's epoch and index, seeds its prompts).
    """

    def __init__(
        self,
        model: SAM2Model,
        *,
        kind: str,
        prompts: PromptOptions,
        loss_fn: SAM2Loss,
        encoder_trains: bool,
        cache: FeatureCache | None,
        seed: int,
    ) -> None:
        super().__init__()
        if kind not in ("images", "video"):
            raise ValueError(f"kind must be 'images' or 'video', got {kind!r}")
        self.model = model
        self.kind = kind
        self.prompts = prompts
        self.loss_fn = loss_fn
        self.encoder_trains = encoder_trains
        self.cache = cache
        self.seed = seed
        self.engine = training_engine(model, prompts) if kind == "video" else None

    def _features(self, keys: Sequence[str], images: torch.Tensor) -> list[FrameFeatures]:
        """Features of ``(B, 3, S, S)`` frames named ``keys``."""
        if self.cache is not None:
            return [self.cache.get(key, image) for key, image in zip(keys, images, strict=True)]
        return frame_features(self.model, images.to(self.model.device), with_grad=self.encoder_trains)

    def forward(self, items: Sequence[LoadedItem], num_objects: float) -> tuple[torch.Tensor, torch.Tensor]:
        """Loss of ``items`` (the ones without objects are skipped).

        Returns:
            the total loss (0-d, to backpropagate) and the detached ``(5,)`` terms in
            :data:`TERM_NAMES` order, each summed over the samples.
        """
        device = self.model.device
        samples = [item for item in items if num_objects_of(item) > 0]
        stills = [item for item in samples if item.sample.masks.ndim == 3]  # a mixed run's image steps
        results: list[LossTerms] = []
        if stills:
            images = torch.stack([item.sample.image for item in stills])
            features = self._features([item.sample.name for item in stills], images)
            for item, feats in zip(stills, features, strict=True):
                results.append(
                    image_sample_loss(
                        self.model, feats, item.sample.masks.to(device), self.prompts,
                        prompt_generator(self.seed, item.epoch, item.index), self.loss_fn, num_objects,
                    )
                )
        for item in samples:
            if item.sample.masks.ndim != 4:
                continue
            if self.engine is None:
                raise ValueError("a video clip in a run of still images")
            clip = item.sample
            keys = [f"{clip.name}/{frame}" for frame in clip.frame_names]
            features = self._features(keys, clip.frames)
            results.append(
                clip_sample_loss(
                    self.model, self.engine, features.__getitem__, clip.masks.to(device), self.prompts,
                    prompt_generator(self.seed, item.epoch, item.index), self.loss_fn, num_objects,
                )
            )
        if not results:
            # Nothing to learn from here, but a backward pass must still run (other processes
            # wait for this one's gradients): a zero that touches every trained weight.
            zero = sum(param.sum() for param in self.parameters() if param.requires_grad) * 0.0
            return zero, torch.zeros(len(TERM_NAMES), device=device)  # type: ignore[return-value]
        total = torch.stack([r.total for r in results]).sum()
        terms = torch.stack([
            torch.stack([r.total, r.mask, r.dice, r.iou, r.object_score]).detach() for r in results
        ]).sum(dim=0)
        return total, terms
