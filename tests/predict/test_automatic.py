"""Unit tests of the automatic mask generator (no reference package needed): record format, output
modes, COCO JSON round trip through pycocotools, the re-associated decoder against the model's own,
invariances, input errors, and the ``sam2kit auto`` command end to end.

A seeded random SAM 2.1 tiny at image_size 256 stands in for a trained model; its logits are weak
and flat, so the generator runs with a small stability offset and low thresholds.
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from sam2kit.build import build_model
from sam2kit.checkpoints import save_checkpoint
from sam2kit.config import get_config
from sam2kit.predict.automatic import MaskGenerator, SAM2AutomaticMaskGenerator
from sam2kit.predict.grid_decoder import GridPointDecoder

pytest.importorskip("torchvision", reason="the mask generator's NMS needs torchvision")

IMAGE_SIZE = 256
HEIGHT, WIDTH = 96, 128
#: Keep many masks on random weights (large masks; the box NMS off).
LOOSE = dict(mask_threshold=0.0, stability_score_offset=0.05, pred_iou_thresh=0.0,
             stability_score_thresh=0.0, box_nms_thresh=1.0, points_per_side=4)
RECORD_KEYS = {"segmentation", "area", "bbox", "predicted_iou", "point_coords", "stability_score", "crop_box"}


@pytest.fixture(scope="module")
def model() -> Any:
    torch.manual_seed(0)
    net = build_model(get_config("sam2.1_hiera_tiny").replace(image_size=IMAGE_SIZE), device="cpu")
    with torch.no_grad():
        for param in net.parameters():  # keep mask decisions off the knife edge of random init
            param.add_(0.01 * torch.randn_like(param))
    return net.eval()


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    """(96, 128) RGB: a bright disc and a dark square on a gradient."""
    yy, xx = np.mgrid[:HEIGHT, :WIDTH]
    pixels = np.zeros((HEIGHT, WIDTH, 3), dtype=np.uint8)
    pixels[..., 2] = (xx * 255 // WIDTH).astype(np.uint8)
    pixels[(yy - 48) ** 2 + (xx - 40) ** 2 < 22**2] = (250, 200, 40)
    pixels[20:70, 80:120] = (10, 60, 20)
    return pixels


@pytest.fixture(scope="module")
def records(model: Any, image: np.ndarray) -> list[dict[str, Any]]:
    return MaskGenerator(model, **LOOSE).generate(image)


def _coco_decode(rle: dict[str, Any]) -> np.ndarray:
    from pycocotools import mask as mask_utils

    return mask_utils.decode({"size": rle["size"], "counts": rle["counts"].encode()}).astype(bool)


# ----------------------------------------------------------------------------- records
def test_records_are_consistent(records: list[dict[str, Any]]) -> None:
    assert len(records) >= 10
    scores = [r["predicted_iou"] for r in records]
    assert scores == sorted(scores, reverse=True), "records come in NMS order (by predicted IoU)"
    for record in records:
        assert set(record) == RECORD_KEYS
        mask = record["segmentation"]
        assert isinstance(mask, np.ndarray) and mask.dtype == bool and mask.shape == (HEIGHT, WIDTH)
        assert isinstance(record["area"], int) and record["area"] == int(mask.sum())
        x, y, w, h = record["bbox"]
        assert all(isinstance(v, float) for v in record["bbox"])
        if record["area"]:
            rows, cols = np.nonzero(mask)  # the reference's convention: w = x1 - x0
            assert [x, y, w, h] == [cols.min(), rows.min(), cols.max() - cols.min(), rows.max() - rows.min()]
        assert record["crop_box"] == [0.0, 0.0, float(WIDTH), float(HEIGHT)]
        (px, py), = record["point_coords"]
        assert 0 <= px < WIDTH and 0 <= py < HEIGHT
        assert isinstance(record["predicted_iou"], float) and isinstance(record["stability_score"], float)


def test_output_modes_encode_the_same_masks(model: Any, image: np.ndarray, records: list[dict[str, Any]]) -> None:
    from sam2kit.io.masks import decode_rle

    uncompressed = MaskGenerator(model, output_mode="uncompressed_rle", **LOOSE).generate(image)
    coco = MaskGenerator(model, output_mode="coco_rle", **LOOSE).generate(image)
    assert len(uncompressed) == len(coco) == len(records)
    for binary, raw, compressed in zip(records, uncompressed, coco, strict=True):
        rle = raw["segmentation"]
        assert rle["size"] == [HEIGHT, WIDTH] and all(isinstance(c, int) for c in rle["counts"])
        assert sum(rle["counts"]) == HEIGHT * WIDTH
        assert np.array_equal(decode_rle(rle), binary["segmentation"])
        assert isinstance(compressed["segmentation"]["counts"], str)
        assert np.array_equal(_coco_decode(compressed["segmentation"]), binary["segmentation"])
        assert raw["area"] == compressed["area"] == binary["area"]


def test_coco_json_round_trip_through_pycocotools(records: list[dict[str, Any]], tmp_path: Path) -> None:
    from pycocotools.coco import COCO

    from sam2kit.io.masks import CocoWriter

    writer = CocoWriter()
    image_id = writer.add_image("synthetic.png", HEIGHT, WIDTH)
    masks = np.stack([r["segmentation"] for r in records])
    writer.add_masks(image_id, masks, scores=[r["predicted_iou"] for r in records])
    writer.save(tmp_path / "annotations.json")
    coco = COCO(str(tmp_path / "annotations.json"))
    annotations = coco.loadAnns(coco.getAnnIds(imgIds=[image_id]))
    assert len(annotations) == len(records)
    for annotation, record in zip(annotations, records, strict=True):
        assert np.array_equal(coco.annToMask(annotation).astype(bool), record["segmentation"])
        assert annotation["area"] == record["area"]
        assert annotation["score"] == pytest.approx(record["predicted_iou"])


# ----------------------------------------------------------------------------- fast path
def test_grid_decoder_matches_the_model_decoder(model: Any, image: np.ndarray) -> None:
    generator = MaskGenerator(model, **LOOSE)
    with torch.inference_mode():
        from sam2kit.predict.transforms import image_to_tensor

        image_embed, high_res = generator._embed(image_to_tensor(image))
        points = torch.rand(9, 2, generator=torch.Generator().manual_seed(1)) * IMAGE_SIZE
        expected_iou, expected_logits = generator._run_decoder(points, None, True, image_embed, high_res)
        iou, logits_of = GridPointDecoder(model, image_embed, high_res).decode(points)
        index = torch.tensor([0, 4, 5, 13, 26, 2])
        logits = logits_of(index)
    assert torch.allclose(iou, expected_iou.flatten(), atol=1e-5)
    assert torch.allclose(logits, expected_logits.flatten(0, 1)[index], atol=1e-4)


def test_fast_and_plain_paths_give_the_same_masks(model: Any, image: np.ndarray, records: list[dict[str, Any]]) -> None:
    plain = MaskGenerator(model, **LOOSE)
    plain._fast_decoder = False
    expected = plain.generate(image)
    assert len(expected) == len(records)
    for ours, theirs in zip(records, expected, strict=True):
        assert np.array_equal(ours["segmentation"], theirs["segmentation"])
        assert ours["predicted_iou"] == pytest.approx(theirs["predicted_iou"], abs=1e-5)


def test_points_per_batch_does_not_change_results(model: Any, image: np.ndarray, records: list[dict[str, Any]]) -> None:
    small_batches = MaskGenerator(model, **{**LOOSE, "points_per_batch": 3}).generate(image)
    assert [r["bbox"] for r in small_batches] == [r["bbox"] for r in records]
    for a, b in zip(small_batches, records, strict=True):
        assert np.array_equal(a["segmentation"], b["segmentation"])


def test_crops_and_cleanup_run(model: Any, image: np.ndarray) -> None:
    out = MaskGenerator(
        model, crop_n_layers=1, min_mask_region_area=10, **{**LOOSE, "box_nms_thresh": 0.7}
    ).generate(image)
    assert out, "no masks"
    crops = {tuple(r["crop_box"]) for r in out}
    assert all(x >= 0 and y >= 0 and x + w <= WIDTH and y + h <= HEIGHT for x, y, w, h in crops)


def test_accepts_pil_and_tensor_images(model: Any, image: np.ndarray, records: list[dict[str, Any]]) -> None:
    generator = MaskGenerator(model, **LOOSE)
    from_pil = generator.generate(Image.fromarray(image))
    from_tensor = generator.generate(torch.from_numpy(image).permute(2, 0, 1))
    for other in (from_pil, from_tensor):
        assert [r["bbox"] for r in other] == [r["bbox"] for r in records]


def test_progress_bar(model: Any, image: np.ndarray, capsys: pytest.CaptureFixture[str]) -> None:
    MaskGenerator(model, show_progress=True, **{**LOOSE, "points_per_batch": 8}).generate(image)
    assert "segmenting" in capsys.readouterr().err


def test_postprocess_small_regions() -> None:
    masks = torch.zeros(2, 40, 40, dtype=torch.bool)
    masks[0, 5:30, 5:30] = True
    masks[0, 10:12, 10:12] = False  # a 4-pixel hole
    masks[0, 35:37, 35:37] = True  # a 4-pixel island
    masks[1, 20:38, 20:38] = True  # clean, far from the first
    cleaned, keep = MaskGenerator.postprocess_small_regions(masks, min_area=10, nms_thresh=0.7)
    assert sorted(keep.tolist()) == [0, 1]
    first = cleaned[keep.tolist().index(0)]
    assert first[10:12, 10:12].all() and not first[35:, 35:].any()


# ----------------------------------------------------------------------------- API and errors
def test_official_name_and_defaults() -> None:
    assert SAM2AutomaticMaskGenerator is MaskGenerator
    defaults = {name: p.default for name, p in inspect.signature(MaskGenerator).parameters.items()}
    expected = dict(points_per_side=32, points_per_batch=64, pred_iou_thresh=0.8, stability_score_thresh=0.95,
                    stability_score_offset=1.0, mask_threshold=0.0, box_nms_thresh=0.7, crop_n_layers=0,
                    crop_nms_thresh=0.7, crop_overlap_ratio=512 / 1500, crop_n_points_downscale_factor=1,
                    point_grids=None, min_mask_region_area=0, output_mode="binary_mask", use_m2m=False,
                    multimask_output=True, show_progress=False)
    assert {k: defaults[k] for k in expected} == expected


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        (dict(points_per_side=0), ValueError, "points_per_side must be >= 1"),
        (dict(points_per_side=2.5), TypeError, "points_per_side must be an integer"),
        (dict(points_per_side=None), ValueError, "exactly one of points_per_side and point_grids"),
        (dict(point_grids=[np.full((4, 2), 0.5)]), ValueError, "exactly one of points_per_side and point_grids"),
        (dict(points_per_side=None, point_grids=[np.zeros((4, 3))]), ValueError, r"\(N, 2\)"),
        (dict(points_per_side=None, point_grids=[np.full((4, 2), 1.5)]), ValueError, r"\[0, 1\]"),
        (dict(points_per_side=None, point_grids=[np.full((4, 2), 0.5)], crop_n_layers=1), ValueError, "needs 2"),
        (dict(output_mode="png"), ValueError, "output_mode must be one of"),
        (dict(crop_n_layers=-1), ValueError, "crop_n_layers must be >= 0"),
        (dict(points_per_side=4, crop_n_layers=3, crop_n_points_downscale_factor=2), ValueError, "no points"),
        (dict(points_per_batch=0), ValueError, "points_per_batch must be >= 1"),
        (dict(box_nms_thresh=1.5), ValueError, r"box_nms_thresh must be in \[0, 1\]"),
        (dict(pred_iou_thresh=float("nan")), ValueError, "pred_iou_thresh must be finite"),
        (dict(stability_score_thresh="high"), TypeError, "stability_score_thresh must be a number"),
        (dict(min_mask_region_area=-1), ValueError, "min_mask_region_area must be >= 0"),
        (dict(crop_overlap_ratio=1.0), ValueError, "crop_overlap_ratio"),
    ],
)
def test_invalid_parameters(model: Any, kwargs: dict[str, Any], error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        MaskGenerator(model, **kwargs)


def test_invalid_model() -> None:
    with pytest.raises(TypeError, match="SAM2Model"):
        MaskGenerator(torch.nn.Linear(2, 2))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "bad_image, error, message",
    [
        (np.zeros((0, 10, 3), np.uint8), ValueError, "empty"),
        (np.zeros((10, 10, 3), np.float32), TypeError, "uint8"),
        (np.zeros((10, 10), np.uint8), ValueError, r"\(H, W, 3\)"),
        ("photo.jpg", TypeError, "numpy array"),
    ],
)
def test_invalid_images(model: Any, bad_image: Any, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        MaskGenerator(model, **LOOSE).generate(bad_image)


# ----------------------------------------------------------------------------- CLI
@pytest.fixture(scope="module")
def checkpoint(model: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ckpt") / "random_tiny.pt"  # not an official name: --config needed
    save_checkpoint(model, path)
    return path


def test_auto_cli_end_to_end(
    checkpoint: Path, image: np.ndarray, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from pycocotools.coco import COCO

    from sam2kit.cli import main

    folder = tmp_path / "photos"
    folder.mkdir()
    Image.fromarray(image).save(folder / "a.png")
    Image.fromarray(image[:, ::-1].copy()).save(folder / "b.jpg", quality=95)
    (folder / "notes.txt").write_text("not an image")
    single = tmp_path / "single.png"
    Image.fromarray(image[::-1].copy()).save(single)
    out = tmp_path / "out"
    code = main([
        "auto", str(single), str(folder), "--out", str(out),
        "--checkpoint", str(checkpoint), "--config", "sam2.1_hiera_tiny", "--image-size", str(IMAGE_SIZE),
        "--device", "cpu", "--points-per-side", "4", "--pred-iou-thresh", "0", "--stability-score-thresh", "0",
    ])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    summary = json.loads(captured.out)
    assert summary["images"] == 3 and summary["model"]["image_size"] == IMAGE_SIZE
    assert "auto" in captured.err  # the progress bar
    coco = COCO(str(out / "annotations.json"))
    expected_files = [str(single), str(folder / "a.png"), str(folder / "b.jpg")]
    assert [img["file_name"] for img in coco.dataset["images"]] == expected_files
    assert summary["masks"] == len(coco.dataset["annotations"]) > 0
    for entry, image_info in zip(summary["per_image"], coco.dataset["images"], strict=True):
        annotations = coco.loadAnns(coco.getAnnIds(imgIds=[image_info["id"]]))
        assert len(annotations) == entry["masks"]
        for annotation in annotations:
            mask = coco.annToMask(annotation)
            assert mask.shape == (HEIGHT, WIDTH) and annotation["area"] == int(mask.sum())
            assert set(annotation) >= {"segmentation", "bbox", "area", "score", "predicted_iou", "stability_score"}
        with Image.open(out / entry["overlay"]) as overlay:
            assert overlay.size == (WIDTH, HEIGHT) and overlay.mode == "RGB"
    assert not [p for p in out.iterdir() if p.name.startswith(".")], "temporary files left behind"


def test_auto_cli_errors(checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from sam2kit.cli import main

    model_args = ["--checkpoint", str(checkpoint), "--config", "sam2.1_hiera_tiny",
                  "--image-size", str(IMAGE_SIZE), "--device", "cpu"]
    assert main(["auto", str(tmp_path / "missing.png"), "--out", str(tmp_path / "o"), *model_args]) == 1
    assert "not found" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["auto", str(empty), "--out", str(tmp_path / "o"), *model_args]) == 1
    assert "no images" in capsys.readouterr().err
    assert main(["auto", str(empty), "--out", "o", "--pred-iou-thresh", "2"]) == 2
    assert "[0, 1]" in capsys.readouterr().err
    assert main(["auto", "--out", "o"]) == 2


def test_from_pretrained_passes_generator_options(model: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import sam2kit.build

    calls = []

    def fake_from_pretrained(model_id: str, **kwargs: Any) -> Any:
        calls.append((model_id, kwargs))
        return model

    monkeypatch.setattr(sam2kit.build, "from_pretrained", fake_from_pretrained)
    generator = MaskGenerator.from_pretrained("facebook/sam2.1-hiera-small", device="cpu", points_per_side=8)
    assert generator.points_per_side == 8 and generator.model is model
    assert calls == [("facebook/sam2.1-hiera-small", dict(device="cpu", cache_dir=None, local_files_only=False))]
