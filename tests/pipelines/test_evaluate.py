"""`sam2kit eval` / `evaluate_folders` on tiny palette PNGs whose J and F are worked out by hand.

10x10 frames: the diagonal is 14.1 px, so F's tolerance is ceil(0.008 * 14.1) = 1 px (a plus-shaped
dilation). Object 1: ground truth rows 2..5 x cols 2..5, prediction rows 2..5 x cols 5..8.
J = 4 / 28 = 1/7. Each square's boundary (DAVIS seg2bmap: a pixel differing from its right, lower
or lower-right neighbour) has 16 pixels: its last row and column (7) and the row above and column
left of it (9). Within 1 px of the other boundary: 9 of the prediction's ((1,4)..(5,4), (1,5), (1,6),
(5,5), (5,6)) and 9 of the ground truth's ((2,5)..(5,5), (5,3), (5,4), (1,3)..(1,5)), so
precision = recall = F = 9/16.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from sam2kit.cli import main
from sam2kit.io.masks import save_palette_png
from sam2kit.pipelines.evaluate import evaluate_folders


def _label(*objects: tuple[int, slice, slice], size: int = 10) -> np.ndarray:
    label = np.zeros((size, size), dtype=np.uint8)
    for obj_id, rows, cols in objects:
        label[rows, cols] = obj_id
    return label


GT_SQUARE, PRED_SQUARE = (1, slice(2, 6), slice(2, 6)), (1, slice(2, 6), slice(5, 9))
SMALL = (2, slice(7, 9), slice(7, 9))


@pytest.fixture
def folders(tmp_path: Path) -> tuple[Path, Path]:
    """s1: 3 frames, objects 1 (shifted) and 2 (exact, plus a predicted pixel on a void pixel);
    s2: 3 frames, object 1 missed on the middle frame. First and last frames are perfect."""
    gt, pred = tmp_path / "gt", tmp_path / "pred"
    void_gt = _label(GT_SQUARE, SMALL)
    void_gt[0, 9] = 255
    void_pred = _label(PRED_SQUARE, SMALL, (2, slice(0, 1), slice(9, 10)))
    frames = {
        "s1": [(_label(GT_SQUARE), _label(GT_SQUARE)), (void_gt, void_pred), (_label(SMALL), _label(SMALL))],
        "s2": [(_label(GT_SQUARE),) * 2, (_label(GT_SQUARE), _label()), (_label(GT_SQUARE),) * 2],
    }
    for name, pairs in frames.items():
        for index, (gt_label, pred_label) in enumerate(pairs):
            save_palette_png(gt / name / f"{index:05d}.png", gt_label)
            save_palette_png(pred / name / "palette" / f"{index:05d}.png", pred_label)  # batch layout
    return pred, gt


def test_scores_worked_out_by_hand(folders: tuple[Path, Path]) -> None:
    report = evaluate_folders(*folders)
    s1, s2 = report.sequences
    assert (s1.name, s1.frames, s1.scores.object_ids) == ("s1", ["00001.png"], [1, 2])
    np.testing.assert_allclose(s1.scores.j_per_object, [1 / 7, 1.0])  # the void pixel is not counted
    np.testing.assert_allclose(s1.scores.f_per_object, [9 / 16, 1.0])
    np.testing.assert_allclose([s2.scores.j_mean, s2.scores.f_mean], [0.0, 0.0])
    overall = report.overall
    assert overall["J"] == pytest.approx((1 / 7 + 1 + 0) / 3)
    assert overall["F"] == pytest.approx((9 / 16 + 1 + 0) / 3)
    assert overall["J&F"] == pytest.approx((overall["J"] + overall["F"]) / 2)


def test_all_frames_and_one_sequence(folders: tuple[Path, Path]) -> None:
    report = evaluate_folders(*folders, skip_first_and_last=False, sequences=["s2"])
    (s2,) = report.sequences
    np.testing.assert_allclose(s2.scores.j[:, 0], [1.0, 0.0, 1.0])
    pred, gt = folders  # a single sequence folder on both sides
    single = evaluate_folders(pred / "s2", gt / "s2", skip_first_and_last=False)
    np.testing.assert_allclose(single.sequences[0].scores.j, s2.scores.j)


def test_errors_say_what_is_missing(folders: tuple[Path, Path], tmp_path: Path) -> None:
    pred, gt = folders
    (pred / "s2" / "palette" / "00001.png").unlink()
    with pytest.raises(FileNotFoundError, match=r"sequence s2: no prediction 00001.png"):
        evaluate_folders(pred, gt)
    with pytest.raises(ValueError, match=r"unknown sequence\(s\) \['s3'\]"):
        evaluate_folders(pred, gt, sequences=["s3"])
    with pytest.raises(ValueError, match="none is left once the first and last"):
        save_palette_png(tmp_path / "one" / "a" / "0.png", _label(GT_SQUARE))
        evaluate_folders(tmp_path / "one", tmp_path / "one")
    (tmp_path / "empty" / "seq").mkdir(parents=True)
    with pytest.raises(ValueError, match="no ground truth"):
        evaluate_folders(pred, tmp_path / "empty")


def test_cli_prints_a_table_and_writes_json(folders: tuple[Path, Path], tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    pred, gt = folders
    assert main(["eval", str(pred), str(gt), "--json", str(tmp_path / "scores.json")]) == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines()]
    assert rows[0] == ["sequence", "object", "J", "F", "J&F"]
    assert rows[1] == ["s1", "1", "0.143", "0.562", "0.353"]
    assert rows[-1][0] == "overall"
    saved = json.loads((tmp_path / "scores.json").read_text())
    assert saved["sequences"][0]["objects"][0] == pytest.approx({"obj_id": 1, "J": 1 / 7, "F": 9 / 16,
                                                                 "J&F": (1 / 7 + 9 / 16) / 2})
    assert main(["eval", str(pred), str(tmp_path / "nowhere")]) == 1
    assert "ground-truth folder not found" in capsys.readouterr().err
