"""Training: ``sam2kit train`` and what it is made of.

The entry point is :func:`train` with :class:`TrainOptions` (the command's flags), returning a
:class:`TrainResult`; both are imported lazily (importing this package imports nothing heavy).

Modules (imported where used):

- :mod:`sam2kit.train.options`: :class:`TrainOptions`, what must match across ``--resume``.
- :mod:`sam2kit.train.trainer`: the loop (one process or ``torchrun``), validation, run files.
- :mod:`sam2kit.train.step`: one sample's forward, interactive rounds on images, clips through the
  inference tracking engine.
- :mod:`sam2kit.train.objective`: a micro-batch's loss as one module call (what DDP wraps).
- :mod:`sam2kit.train.losses`: focal + dice + IoU + object-score loss over interactive steps.
- :mod:`sam2kit.train.prompts`: first prompts (point, box, mask) and correction clicks.
- :mod:`sam2kit.train.parts`: what ``decoder`` / ``memory`` / ``all`` train, activation checkpointing.
- :mod:`sam2kit.train.lora`: LoRA adapters on the image encoder, merged on save.
- :mod:`sam2kit.train.features`: frame features with gradients, or cached for a frozen encoder.
- :mod:`sam2kit.train.optim`: AdamW groups (encoder rate, layer decay), warm-up + cosine.
- :mod:`sam2kit.train.loader`: seeded data order sharded over processes.
- :mod:`sam2kit.train.sources`: ``--data`` layouts -> training / validation sets.
- :mod:`sam2kit.train.validate`: image mIoU (click, box) and video J&F of a run.
- :mod:`sam2kit.train.model_setup`, :mod:`sam2kit.train.distributed`, :mod:`sam2kit.train.run_files`.
- :mod:`sam2kit.train.data`: image folders, COCO JSON, DAVIS / SA-V videos, augmentations.
- :mod:`sam2kit.synthetic` (beside this package): seeded synthetic scenes and clips, the test data.
- :mod:`sam2kit.train.mini`: the scaled-down ``sam2kit-mini`` configuration.
"""

from __future__ import annotations

from typing import Any

__all__ = ["TrainOptions", "TrainResult", "train"]

_LAZY = {"TrainOptions": "options", "TrainResult": "trainer", "train": "trainer"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from importlib import import_module

        return getattr(import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
