"""Score predicted masks against ground truth: J, F and J&F per object, per sequence and overall,
on DAVIS-layout folders of palette PNGs (the layout the DAVIS 2017 and SA-V evaluators read).

Layout: ``GT_DIR/<sequence>/<frame>.png`` (or PNGs directly in ``GT_DIR``: one sequence), each an
indexed PNG whose pixel value is the object id (0 background, 255 "void": not scored), and the
same file names under ``PRED_DIR/<sequence>/`` or ``PRED_DIR/<sequence>/palette/`` (the folder that
``sam2kit batch --palette`` and ``sam2kit video --palette`` write).

As the DAVIS evaluator: the objects are the ids of the ground truth; void pixels are removed from
both masks before J and F; the first and last frame of each sequence are left out unless
``skip_first_and_last=False``; a sequence's J (F) of an object is the mean over its frames; the
overall figures average every object of every sequence (:func:`sam2kit.metrics.mean_j_and_f`).
The measures themselves are those of :mod:`sam2kit.metrics`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..metrics import BOUNDARY_TOLERANCE, SequenceScores, boundary_f_measure, mean_j_and_f, region_similarity

__all__ = ["EvalReport", "VOID_ID", "evaluate_folders", "find_sequences"]

logger = logging.getLogger(__name__)

#: The DAVIS "void" label: pixels left out of the scores.
VOID_ID = 255


def _png_files(folder: Path) -> list[Path]:
    from ..io.frames import sort_frame_files

    return sort_frame_files(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() == ".png")


def find_sequences(gt_dir: str | Path) -> dict[str, Path]:
    """Sequence name -> ground-truth folder: the subfolders of ``gt_dir`` that hold PNGs, or
    ``gt_dir`` itself when it holds PNGs.

    Raises:
        FileNotFoundError: ``gt_dir`` is not a folder. ValueError: no PNG in it or its subfolders.
    """
    gt = Path(gt_dir)
    if not gt.is_dir():
        raise FileNotFoundError(f"ground-truth folder not found: {gt}")
    if _png_files(gt):
        return {gt.name: gt}
    found = {sub.name: sub for sub in sorted(gt.iterdir()) if sub.is_dir() and _png_files(sub)}
    if not found:
        raise ValueError(f"no ground truth in {gt}: expected <sequence>/<frame>.png palette PNGs (DAVIS layout)")
    return found


def _pred_folder(pred_dir: Path, name: str, single: bool) -> Path:
    """``PRED/<name>`` (or, when GT_DIR is one sequence, PRED itself), or its ``palette/`` subfolder."""
    base = pred_dir if single and not (pred_dir / name).is_dir() else pred_dir / name
    return base / "palette" if (base / "palette").is_dir() else base


@dataclass(frozen=True)
class SequenceResult:
    """One sequence's scores: ``scores.j`` / ``scores.f`` ``(T', N)`` over its evaluated frames."""

    name: str
    frames: list[str]
    scores: SequenceScores

    def to_json(self) -> dict[str, Any]:
        s = self.scores
        objects = [{"obj_id": obj_id, "J": float(j), "F": float(f), "J&F": float((j + f) / 2)}
                   for obj_id, j, f in zip(s.object_ids, s.j_per_object, s.f_per_object, strict=True)]
        return {"sequence": self.name, "frames": len(self.frames), "objects": objects,
                "J": s.j_mean, "F": s.f_mean, "J&F": s.j_and_f}


@dataclass(frozen=True)
class EvalReport:
    """What :func:`evaluate_folders` found: per sequence (and object) and overall J, F, J&F."""

    pred_dir: str
    gt_dir: str
    skip_first_and_last: bool
    sequences: list[SequenceResult]

    @property
    def overall(self) -> dict[str, float]:
        return mean_j_and_f([s.scores for s in self.sequences])

    def to_json(self) -> dict[str, Any]:
        return {"pred_dir": self.pred_dir, "gt_dir": self.gt_dir, "skip_first_and_last": self.skip_first_and_last,
                "overall": self.overall, "sequences": [s.to_json() for s in self.sequences]}

    def table(self) -> str:
        """A plain-text table: one row per object, the sequence means, the overall means."""
        width = max([len("sequence")] + [len(s.name) for s in self.sequences])
        rows = [f"{'sequence':<{width}}  {'object':>6}  {'J':>6}  {'F':>6}  {'J&F':>6}"]
        for result in self.sequences:
            for obj in result.to_json()["objects"]:
                rows.append(f"{result.name:<{width}}  {obj['obj_id']:>6}  {obj['J']:6.3f}  {obj['F']:6.3f}  "
                            f"{obj['J&F']:6.3f}")
            s = result.scores
            rows.append(f"{result.name:<{width}}  {'mean':>6}  {s.j_mean:6.3f}  {s.f_mean:6.3f}  {s.j_and_f:6.3f}")
        total = self.overall
        rows.append(f"{'overall':<{width}}  {'':>6}  {total['J']:6.3f}  {total['F']:6.3f}  {total['J&F']:6.3f}")
        return "\n".join(rows)


def _score_sequence(name: str, gt_files: list[Path], pred_folder: Path, skip_first_and_last: bool,
                    tolerance: float) -> SequenceResult:
    from ..io.masks import load_palette_png

    missing = [f.name for f in gt_files if not (pred_folder / f.name).is_file()]
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise FileNotFoundError(f"sequence {name}: no prediction {shown} in {pred_folder}")
    labels = [load_palette_png(f) for f in gt_files]
    obj_ids = sorted(set(np.unique(np.stack(labels)).tolist()) - {0, VOID_ID})
    if not obj_ids:
        raise ValueError(f"sequence {name}: the ground truth has no object (only 0 / {VOID_ID} pixels)")
    evaluated = range(1, len(gt_files) - 1) if skip_first_and_last else range(len(gt_files))
    if len(evaluated) == 0:
        raise ValueError(f"sequence {name} has {len(gt_files)} frame(s): none is left once the first and last are "
                         "left out (score every frame with skip_first_and_last=False)")
    ids = np.array(obj_ids)[:, None, None]
    j_rows, f_rows = [], []
    for index in evaluated:
        gt_label = labels[index]
        pred_label = load_palette_png(pred_folder / gt_files[index].name)
        if pred_label.shape != gt_label.shape:
            raise ValueError(f"sequence {name}, frame {gt_files[index].name}: prediction {pred_label.shape} and "
                             f"ground truth {gt_label.shape} differ in size (H, W)")
        keep = gt_label != VOID_ID
        gt_masks = (gt_label[None] == ids) & keep  # (N, H, W)
        pred_masks = (pred_label[None] == ids) & keep
        j_rows.append(region_similarity(pred_masks, gt_masks))
        f_rows.append(boundary_f_measure(pred_masks, gt_masks, tolerance))
    scores = SequenceScores(j=np.stack(j_rows), f=np.stack(f_rows), object_ids=obj_ids)
    return SequenceResult(name, [gt_files[i].name for i in evaluated], scores)


def evaluate_folders(
    pred_dir: str | Path,
    gt_dir: str | Path,
    *,
    skip_first_and_last: bool = True,
    tolerance: float = BOUNDARY_TOLERANCE,
    sequences: Sequence[str] | None = None,
) -> EvalReport:
    """Score every ground-truth sequence of ``gt_dir`` against ``pred_dir`` (see the module docstring).

    Args:
        skip_first_and_last: leave out each sequence's first frame (the prompt's) and last, as DAVIS.
        tolerance: boundary tolerance of F, a fraction of the image diagonal (< 1) or pixels (>= 1).
        sequences: only these sequences (names of ``gt_dir``'s subfolders).
    Raises:
        FileNotFoundError: a folder, sequence or predicted frame that does not exist.
        ValueError: no ground truth, a sequence without objects or without frames to score, sizes
            that differ, an unknown sequence name.
    """
    pred, gt = Path(pred_dir), Path(gt_dir)
    if not pred.is_dir():
        raise FileNotFoundError(f"prediction folder not found: {pred}")
    found = find_sequences(gt)
    if sequences is not None:
        unknown = sorted(set(sequences) - set(found))
        if unknown:
            raise ValueError(f"unknown sequence(s) {unknown}; {gt} has {sorted(found)}")
        found = {name: found[name] for name in sequences}
    single = len(found) == 1 and next(iter(found.values())) == gt
    results = []
    for name, folder in found.items():
        results.append(_score_sequence(name, _png_files(folder), _pred_folder(pred, name, single),
                                       skip_first_and_last, tolerance))
        logger.debug("%s: J&F %.3f", name, results[-1].scores.j_and_f)
    return EvalReport(str(pred), str(gt), skip_first_and_last, results)
