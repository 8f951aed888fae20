"""`sam2kit eval` against the public evaluator vos-benchmark 0.1.0 (MIT; the code SA-V's evaluator
derives from, itself built on the DAVIS 2017 evaluation): the same palette PNGs, read by its
folder-level driver (`vos_benchmark.benchmark.VideoEvaluator`, first and last frames skipped as
sam2kit does by default), must give the same per-object J and F and the same overall figures.

The masks are seeded random shapes with holes, thin lines, isolated pixels and jagged edges, on
non-square frames whose F tolerances are 1, 2 and 3 px; objects are missed by the prediction on
some frames, absent from the ground truth on others (with and without a hallucinated prediction),
some frames are empty on one or both sides and the prediction holds an id the ground truth never has.

Two known differences of vos-benchmark are kept out of the shared cases: it has no "void" label
(255 would be scored as an object), and it starts an object's average at the first evaluated frame
where the object is seen, where DAVIS (and sam2kit) count every evaluated frame, an object absent
from both masks scoring 1; the last test pins that difference.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from sam2kit.cli import main
from sam2kit.io.masks import save_palette_png
from sam2kit.pipelines.evaluate import evaluate_folders

VOS_BENCHMARK_VERSION = "0.1.0"
VOS_BENCHMARK_MISSING = (
    f"vos-benchmark=={VOS_BENCHMARK_VERSION} is not installed "
    f"(pip install --no-deps vos-benchmark=={VOS_BENCHMARK_VERSION}; it needs cv2, scikit-image, tqdm)"
)


def require_vos_benchmark() -> Any:
    """Import and return ``vos_benchmark.benchmark``; when missing (or another version), fail under
    CI (env ``CI`` set) and skip elsewhere, as ``conftest.require_reference`` does for ``sam2``."""
    reason = None
    if importlib.util.find_spec("vos_benchmark") is None:
        reason = VOS_BENCHMARK_MISSING
    elif (version := importlib.metadata.version("vos-benchmark")) != VOS_BENCHMARK_VERSION:
        reason = f"{VOS_BENCHMARK_MISSING}; found {version}"
    if reason is None:
        try:
            from vos_benchmark import benchmark
        except ImportError as error:  # cv2, scikit-image or tqdm missing
            reason = f"vos-benchmark cannot be imported: {error}"
        else:
            return benchmark
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


# ----------------------------------------------------------------------------- random shapes
def _ellipse(h: int, w: int, cy: float, cx: float, ry: float, rx: float) -> np.ndarray:
    y, x = np.ogrid[:h, :w]
    return ((y - cy) / ry) ** 2 + ((x - cx) / rx) ** 2 <= 1


def _shape(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A blob of a few ellipses with a hole, a 1-px tail and ragged edges: (H, W) bool."""
    mask = np.zeros((h, w), dtype=bool)
    cy, cx = rng.uniform(0.25, 0.75) * h, rng.uniform(0.25, 0.75) * w
    for _ in range(3):
        mask |= _ellipse(h, w, cy + rng.normal(0, h / 12), cx + rng.normal(0, w / 12),
                         rng.uniform(0.08, 0.2) * h, rng.uniform(0.08, 0.2) * w)
    mask &= ~_ellipse(h, w, cy, cx, rng.uniform(0.02, 0.06) * h, rng.uniform(0.02, 0.06) * w)  # hole
    row, col = int(cy), int(cx)
    mask[row, col : col + w // 3] = True  # 1-px tail
    mask[row + 1 :, min(w - 1, col + w // 4)] = rng.random(h - row - 1) < 0.7  # dotted 1-px line
    return mask ^ (rng.random((h, w)) < 0.04)  # ragged edges, specks, pinholes


def _predict(rng: np.random.Generator, mask: np.ndarray) -> np.ndarray:
    """The truth shifted a few pixels with a few flipped pixels: a plausible prediction."""
    dy, dx = rng.integers(-3, 4, size=2)
    moved = np.roll(mask, (int(dy), int(dx)), axis=(0, 1))
    return moved ^ (rng.random(mask.shape) < 0.01)


def _labels(masks: list[np.ndarray | None], h: int, w: int) -> np.ndarray:
    """Object masks (ids 1..N; None: absent) -> an (H, W) label map, later ids on top."""
    label = np.zeros((h, w), dtype=np.uint8)
    for obj_id, mask in enumerate(masks, start=1):
        if mask is not None:
            label[mask] = obj_id
    return label


#: sequence -> (height, width, frames, objects); F tolerance ceil(0.008 * diagonal) = 1, 2, 3 px.
SEQUENCES = {"narrow": (41, 67, 5, 2), "rings": (90, 130, 6, 3), "wide": (150, 260, 5, 4)}


def _write_sequences(gt_dir: Path, pred_dir: Path, seed: int = 0) -> None:
    """DAVIS-layout palette PNGs, ``<dir>/<sequence>/<frame:05d>.png``, on both sides.

    Every object of a sequence is in the ground truth of frames 0 and 1, so that vos-benchmark's
    late start (see the module docstring) does not apply."""
    rng = np.random.default_rng(seed)
    for name, (h, w, frames, objects) in SEQUENCES.items():
        base = [_shape(rng, h, w) for _ in range(objects)]
        for index in range(frames):
            gt = [_predict(rng, mask) if index else mask for mask in base]
            pred: list[np.ndarray | None] = [_predict(rng, mask) for mask in gt]
            if index >= 2:
                if rng.random() < 0.5:
                    pred[int(rng.integers(objects))] = None  # missed
                absent = int(rng.integers(objects))
                gt[absent] = None  # left the scene ...
                if rng.random() < 0.5:
                    pred[absent] = None  # ... and the tracker agrees, else it hallucinates
            gt_label, pred_label = _labels(gt, h, w), _labels(pred, h, w)
            if name == "narrow" and index == 2:
                gt_label[:] = 0  # an empty frame on both sides
                pred_label[:] = 0
            if name == "narrow" and index == 3:
                pred_label[:] = 0  # an empty prediction of a full frame
            if name == "rings" and index == 2:
                pred_label[: h // 4, : w // 4] = 9  # an id the ground truth never has
            save_palette_png(gt_dir / name / f"{index:05d}.png", gt_label)
            save_palette_png(pred_dir / name / f"{index:05d}.png", pred_label)


def _vos_benchmark_scores(benchmark: Any, gt_dir: Path, pred_dir: Path,
                          skip_first_and_last: bool) -> tuple[dict[str, dict[int, tuple[float, float]]], float]:
    """vos-benchmark's per-sequence {obj_id: (J, F)} in [0, 1] and its global J&F, computed as its
    ``benchmark()`` does (mean over every object of every sequence) without the process pool."""
    per_sequence, all_j, all_f = {}, [], []
    for name in sorted(SEQUENCES):
        evaluator = benchmark.VideoEvaluator(str(gt_dir), str(pred_dir), skip_first_and_last=skip_first_and_last)
        _, iou, boundary_f = evaluator(name)
        per_sequence[name] = {int(k): (iou[k] / 100, boundary_f[k] / 100) for k in iou}
        all_j.extend(iou.values())
        all_f.extend(boundary_f.values())
    global_jf = (np.mean(all_j) + np.mean(all_f)) / 2 / 100
    return per_sequence, float(global_jf)


@pytest.mark.parametrize("all_frames", [False, True], ids=["skip_first_and_last", "all_frames"])
def test_eval_matches_vos_benchmark(tmp_path: Path, all_frames: bool) -> None:
    benchmark = require_vos_benchmark()
    gt_dir, pred_dir = tmp_path / "gt", tmp_path / "pred"
    _write_sequences(gt_dir, pred_dir)
    out = tmp_path / "scores.json"
    options = ["--json", str(out)] + (["--all-frames"] if all_frames else [])
    assert main(["eval", str(pred_dir), str(gt_dir), *options]) == 0
    ours = json.loads(out.read_text())
    theirs, global_jf = _vos_benchmark_scores(benchmark, gt_dir, pred_dir, skip_first_and_last=not all_frames)

    assert [s["sequence"] for s in ours["sequences"]] == sorted(SEQUENCES)
    values = []
    for sequence in ours["sequences"]:
        name = sequence["sequence"]
        assert sequence["frames"] == SEQUENCES[name][2] - (0 if all_frames else 2)
        ours_objects = {o["obj_id"]: (o["J"], o["F"]) for o in sequence["objects"]}
        assert sorted(ours_objects) == sorted(theirs[name]) == list(range(1, SEQUENCES[name][3] + 1))
        for obj_id, (j, f) in ours_objects.items():
            assert (j, f) == pytest.approx(theirs[name][obj_id], abs=1e-9), f"{name} object {obj_id}"
            values += [j, f]
    assert ours["overall"]["J&F"] == pytest.approx(global_jf, abs=1e-9)
    # the cases are not degenerate: partial scores, and J and F that disagree
    assert sum(0.05 < v < 0.95 for v in values) >= len(values) // 2
    assert any(abs(o["J"] - o["F"]) > 0.05 for s in ours["sequences"] for o in s["objects"])


def test_late_appearance_is_scored_as_davis(tmp_path: Path) -> None:
    """An object absent from both masks on the first evaluated frame: sam2kit (as DAVIS 2017)
    scores that frame 1 and averages over all evaluated frames; vos-benchmark averages from the
    object's first appearance. Every other number still agrees."""
    benchmark = require_vos_benchmark()
    h, w = 30, 44
    one, two = np.zeros((h, w), dtype=bool), np.zeros((h, w), dtype=bool)
    one[3:12, 4:18] = True
    two[16:27, 20:40] = True
    one_moved, two_moved = np.roll(one, (2, 3), axis=(0, 1)), np.roll(two, (2, 3), axis=(0, 1))
    gt_frames = [_labels([one, two], h, w), _labels([one, None], h, w)] + [_labels([one, two], h, w)] * 3
    pred_frames = [gt_frames[0], _labels([one_moved, None], h, w)] + [_labels([one_moved, two_moved], h, w)] * 3
    for index, (gt_label, pred_label) in enumerate(zip(gt_frames, pred_frames, strict=True)):
        save_palette_png(tmp_path / "gt" / "seq" / f"{index:05d}.png", gt_label)
        save_palette_png(tmp_path / "pred" / "seq" / f"{index:05d}.png", pred_label)

    scores = evaluate_folders(tmp_path / "pred", tmp_path / "gt").sequences[0].scores  # frames 1..3
    _, iou, boundary_f = benchmark.VideoEvaluator(str(tmp_path / "gt"), str(tmp_path / "pred"))("seq")
    two_j = scores.j[1, 1]
    assert 0 < two_j < 1
    np.testing.assert_allclose(scores.j[:, 1], [1.0, two_j, two_j])  # absent on both sides: 1
    np.testing.assert_allclose(scores.j_per_object, [iou[1] / 100, (1 + 2 * two_j) / 3], atol=1e-9)
    np.testing.assert_allclose([iou[2] / 100, boundary_f[2] / 100],
                               [scores.j[1:, 1].mean(), scores.f[1:, 1].mean()], atol=1e-9)
    np.testing.assert_allclose(scores.f_per_object[0], boundary_f[1] / 100, atol=1e-9)
