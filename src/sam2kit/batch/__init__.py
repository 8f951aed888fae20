"""Batch labelling of images and videos from a manifest, on Ray (``sam2kit batch``).

- :mod:`~sam2kit.batch.manifest`: the manifest (JSONL or CSV) and its JSON Schema;
- :mod:`~sam2kit.batch.item`: one item's run, its output folder and record, resume;
- :mod:`~sam2kit.batch.worker`: the actor that loads the model once;
- :mod:`~sam2kit.batch.job`: :func:`run_batch`, the Ray run.

Importing this package imports neither torch nor Ray.
"""

from __future__ import annotations

from .item import ItemOptions
from .job import BatchSummary, run_batch
from .manifest import BatchItem, ManifestError, ObjectPrompt, load_manifest, manifest_schema

__all__ = ["BatchItem", "BatchSummary", "ItemOptions", "ManifestError", "ObjectPrompt", "load_manifest",
           "manifest_schema", "run_batch"]
