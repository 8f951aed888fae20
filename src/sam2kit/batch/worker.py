"""The Ray actor of a batch run: loads the model once, then runs items one at a time.

A plain class: :mod:`sam2kit.batch.job` wraps it with ``ray.remote``, so this module does not
import Ray and the class can be tried without it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..model_spec import LoadedModel, ModelSpec
from .item import ItemOptions, process_item
from .manifest import BatchItem

__all__ = ["ItemWorker"]


class ItemWorker:
    """One worker: the model, the output folder and the output options.

    A model that cannot be loaded does not raise here (Ray would only report a dead actor): the
    error is kept and returned by :meth:`ready`.
    """

    def __init__(self, spec: ModelSpec, out_dir: str, options: ItemOptions, threads: int | None = None) -> None:
        import torch

        from ..model_spec import load_model

        if threads is not None:
            torch.set_num_threads(threads)
        self.out = Path(out_dir)
        self.options = options
        self.loaded: LoadedModel | None = None
        self.error: str | None = None
        try:
            self.loaded = load_model(spec)
        except Exception as error:
            self.error = f"{type(error).__name__}: {error}"

    def ready(self) -> str | None:
        """``None`` when the model is loaded, else why not."""
        return self.error

    def run(self, item: BatchItem, run_id: str) -> dict[str, Any]:
        """Run and record one item; returns its record (see :func:`~sam2kit.batch.item.process_item`)."""
        if self.loaded is None:
            raise RuntimeError(f"the model is not loaded: {self.error}")
        return process_item(item, self.loaded, self.out, self.options, run_id)
