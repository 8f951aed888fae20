"""`segment_objects`: several named objects of one image from one embedding, written as COCO RLE
(plus palette PNG and overlay), and errors that name the object at fault."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from sam2kit.errors import ArgumentError
from sam2kit.io.masks import coco_rle_to_mask, load_palette_png
from sam2kit.model_spec import ModelSpec, load_model
from sam2kit.pipelines.image import Prompt
from sam2kit.pipelines.objects import segment_objects


@pytest.fixture(scope="module")
def loaded():
    torch.manual_seed(0)
    return load_model(ModelSpec(checkpoint=None, config="sam2kit-mini", device="cpu"))


@pytest.fixture(scope="module")
def image_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    image = np.zeros((48, 64, 3), dtype=np.uint8)
    image[12:36, 16:48] = (240, 200, 40)
    path = tmp_path_factory.mktemp("objects") / "square.png"
    Image.fromarray(image).save(path)
    return path


def test_objects_are_written_with_their_ids(loaded, image_file: Path, tmp_path: Path) -> None:
    prompts = {7: Prompt(box=(16, 12, 47, 35)), 3: Prompt([(30.0, 20.0), (5.0, 5.0)], [1, 0])}
    result = segment_objects(image_file, prompts, tmp_path, model=loaded, palette=True, overlay=True)
    assert result.files == ["masks.json", "palette/00000.png", "overlay.png"]
    assert all((tmp_path / name).is_file() for name in result.files)
    coco = json.loads((tmp_path / "masks.json").read_text())
    assert coco["images"] == [{"id": 1, "file_name": str(image_file), "height": 48, "width": 64, "frame": 0}]
    assert [a["obj_id"] for a in coco["annotations"]] == [3, 7]
    painted = np.zeros((48, 64), dtype=np.uint8)
    for annotation in coco["annotations"]:
        mask = coco_rle_to_mask(annotation["segmentation"])
        assert annotation["area"] == result.areas[annotation["obj_id"]] == int(mask.sum())
        assert annotation["score"] == pytest.approx(result.scores[annotation["obj_id"]])
        painted[mask] = annotation["obj_id"]
    np.testing.assert_array_equal(load_palette_png(tmp_path / "palette" / "00000.png"), painted)


def test_errors_name_the_object(loaded, image_file: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="prompt of object 2: "):
        segment_objects(image_file, {1: Prompt([(3.0, 3.0)], [1]), 2: Prompt([(300.0, 3.0)], [1])}, tmp_path,
                        model=loaded)
    with pytest.raises(ArgumentError, match=r"object ids must be 1..255"):
        segment_objects(image_file, {0: Prompt([(3.0, 3.0)], [1])}, tmp_path, model=loaded)
    assert not (tmp_path / "masks.json").exists()
