"""Mask prompts in a batch item, run as a worker runs it (``process_item``, no Ray): an image whose
objects are given by a mask (alone, and beside a box) and a video whose object is given by a mask on
frame 0; a missing mask or one of another size is the item's recorded error, not a crash."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from sam2kit.batch.item import ItemOptions, process_item
from sam2kit.batch.manifest import parse_item
from sam2kit.io.masks import coco_rle_to_mask, load_palette_png, save_mask_png
from sam2kit.model_spec import LoadedModel, ModelSpec, load_model
from sam2kit.pipelines.mask_prompts import MASK_PROMPT_LOGIT

IMAGE_HW = VIDEO_HW = (128, 128)  # of the images and videos that tests/batch/conftest.py makes


@pytest.fixture(scope="module")
def loaded(batch_data) -> LoadedModel:
    return load_model(ModelSpec(checkpoint="sam2kit-mini", device="cpu"))


def _rectangle(hw: tuple[int, int], box: tuple[int, int, int, int]) -> np.ndarray:
    mask = np.zeros(hw, dtype=bool)
    mask[box[1]:box[3], box[0]:box[2]] = True
    return mask


def _run(entry: dict[str, Any], base: Path, loaded: LoadedModel, out: Path) -> dict[str, Any]:
    record = process_item(parse_item(entry, base), loaded, out, ItemOptions(palette=True), "test-run")
    saved = json.loads((out / "_status" / f"{entry['id']}.json").read_text())
    assert (saved["status"], saved["error"], saved["files"]) == (record["status"], record["error"], record["files"])
    return record


def test_an_image_mask_prompt_becomes_the_predictors_mask_input(batch_data, loaded, tmp_path, monkeypatch) -> None:
    from sam2kit.predict.image import ImagePredictor

    given: list[Any] = []
    real_predict = ImagePredictor.predict

    def spy(self: ImagePredictor, *args: Any, **kwargs: Any) -> Any:
        given.append(kwargs)
        return real_predict(self, *args, **kwargs)

    monkeypatch.setattr(ImagePredictor, "predict", spy)
    save_mask_png(tmp_path / "masks" / "obj1.png", _rectangle(IMAGE_HW, (0, 0, 64, 64)))  # the top-left quarter
    save_mask_png(tmp_path / "masks" / "obj2.png", _rectangle(IMAGE_HW, (100, 10, 124, 40)))
    entry = {"id": "m", "image": str(batch_data.root / "img0.png"),
             "prompts": [{"obj_id": 1, "mask": "masks/obj1.png"},
                         {"obj_id": 2, "mask": "masks/obj2.png", "box": [100, 10, 124, 40]}]}
    record = _run(entry, tmp_path, loaded, tmp_path / "out")
    assert record["status"] == "ok", record["error"]

    (first, second) = given  # one call per object, in object order
    assert first["point_coords"] is None and first["box"] is None
    np.testing.assert_array_equal(second["box"], [100, 10, 124, 40])
    assert second["mask_input"].shape == first["mask_input"].shape
    logits = first["mask_input"]  # the image stretched to the model's square: its top-left quarter
    low_h, low_w = loaded.model.sam_prompt_encoder.mask_input_size
    assert logits.shape == (1, low_h, low_w) and logits.dtype == np.float32
    np.testing.assert_allclose(logits[0, :low_h // 2 - 2, :low_w // 2 - 2], MASK_PROMPT_LOGIT, atol=1e-4)
    np.testing.assert_allclose(logits[0, low_h // 2 + 2:], -MASK_PROMPT_LOGIT, atol=1e-4)
    np.testing.assert_allclose(logits[0, :, low_w // 2 + 2:], -MASK_PROMPT_LOGIT, atol=1e-4)
    assert -MASK_PROMPT_LOGIT < logits[0, low_h // 2, low_w // 4] < MASK_PROMPT_LOGIT  # a soft edge

    coco = json.loads((tmp_path / "out" / "m" / "masks.json").read_text())
    assert (coco["images"][0]["height"], coco["images"][0]["width"]) == IMAGE_HW
    assert [a["obj_id"] for a in coco["annotations"]] == [1, 2]
    palette = load_palette_png(tmp_path / "out" / "m" / "palette" / "00000.png")
    for annotation in coco["annotations"]:
        assert (palette == annotation["obj_id"]).sum() <= annotation["area"]


def test_a_video_mask_prompt_on_frame_0_is_tracked(batch_data, loaded, tmp_path) -> None:
    gt = batch_data.gt_dir / "clip0"
    entry = {"id": "v", "video": str(batch_data.root / "clip0"),
             "prompts": [{"frame": 0, "obj_id": 1, "mask": str(gt / "00000.png")}]}  # a palette PNG: non-zero = 1
    record = _run(entry, tmp_path, loaded, tmp_path / "out")
    assert record["status"] == "ok", record["error"]
    tracks = json.loads((tmp_path / "out" / "v" / "tracks.json").read_text())
    assert tracks["prompts"] == [{"frame": 0, "obj_id": 1, "points": [], "labels": [], "box": None,
                                  "mask": str(gt / "00000.png")}]
    assert [f["frame"] for f in tracks["frames"]] == [0, 1, 2]
    coco = json.loads((tmp_path / "out" / "v" / "masks.json").read_text())
    assert [image["frame"] for image in coco["images"]] == [0, 1, 2]
    # the model takes a given mask as its output on that frame: frame 0 is the mask, up to resizing
    frame0 = coco_rle_to_mask(next(a for a in coco["annotations"] if a["image_id"] == 1)["segmentation"])
    truth = load_palette_png(gt / "00000.png") > 0
    assert truth.shape == frame0.shape == VIDEO_HW
    assert (frame0 & truth).sum() / (frame0 | truth).sum() > 0.9


@pytest.mark.parametrize(("kind", "mask_hw", "message"), [
    ("image", None, "FileNotFoundError: prompt of object 1: mask file not found: "),
    ("image", (10, 12), "ValueError: prompt of object 1: mask {mask} is 12x10 pixels but the image is 128x128"),
    ("video", (96, 128), "ValueError: prompt of object 1 on frame 1: mask {mask} is 128x96 pixels but the video "
                          "frame is 128x128"),
])
def test_a_bad_mask_is_the_items_recorded_error(batch_data, loaded, tmp_path, kind, mask_hw, message) -> None:
    mask = tmp_path / "bad.png"
    if mask_hw is not None:
        Image.fromarray(np.full(mask_hw, 255, dtype=np.uint8)).save(mask)
    source = "img0.png" if kind == "image" else "clip0"
    entry = {"id": "bad", kind: str(batch_data.root / source),
             "prompts": [{"obj_id": 1, "frame": 0 if kind == "image" else 1, "mask": "bad.png"}]}
    out = tmp_path / "out"
    record = _run(entry, tmp_path, loaded, out)
    assert record["status"] == "error" and record["files"] == []
    assert record["error"].startswith(message.format(mask=mask)), record["error"]
    assert not (out / "bad").exists()


@pytest.mark.parametrize("non_overlap", [False, True])
def test_non_overlap_gives_each_video_pixel_to_one_object(batch_data, loaded, tmp_path, non_overlap) -> None:
    """Two objects clicked on the same shape: their masks overlap, unless ``non_overlap`` gives each
    pixel to one of them."""
    from sam2kit.pipelines.synthetic_eval import interior_point

    x, y = interior_point(load_palette_png(batch_data.gt_dir / "clip0" / "00000.png") == 1)
    entry = {"id": "v2", "video": str(batch_data.root / "clip0"),
             "prompts": [{"frame": 0, "obj_id": 1, "points": [[x, y]]},
                         {"frame": 0, "obj_id": 2, "points": [[x + 2, y + 1]]}]}
    out = tmp_path / "out"
    record = process_item(parse_item(entry, tmp_path), loaded, out, ItemOptions(non_overlap=non_overlap), "t")
    assert record["status"] == "ok", record["error"]
    assert json.loads((out / "v2" / "tracks.json").read_text())["options"]["non_overlap"] is non_overlap
    coco = json.loads((out / "v2" / "masks.json").read_text())
    shared = []
    for image in coco["images"]:
        masks = {a["obj_id"]: coco_rle_to_mask(a["segmentation"]) for a in coco["annotations"]
                 if a["image_id"] == image["id"]}
        assert set(masks) == {1, 2} and (masks[1] | masks[2]).any()
        shared.append(int((masks[1] & masks[2]).sum()))
    assert (max(shared) == 0) if non_overlap else (min(shared) > 0), shared
