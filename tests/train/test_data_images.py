"""Image data sets (folders of pairs, COCO JSON), augmentations and splits, on tiny generated files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from sam2kit.io.masks import save_palette_png, to_coco_rle
from sam2kit.predict.transforms import image_to_tensor, preprocess_image
from sam2kit.synthetic import write_synthetic_dataset
from sam2kit.train.data import (
    AugmentOptions,
    CocoDataset,
    DataError,
    ImageFolderDataset,
    augment_sample,
    split_names,
)

MEAN = torch.tensor([0.485, 0.456, 0.406])[:, None, None]
STD = torch.tensor([0.229, 0.224, 0.225])[:, None, None]
NO_COLOUR = dict(brightness=0.0, contrast=0.0, saturation=0.0, grayscale=0.0)


def scene(height: int = 48, width: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """A red rectangle (id 1) and a green one (id 7) on black: (H, W, 3) uint8 and (H, W) ids."""
    image = np.zeros((height, width, 3), dtype=np.uint8)
    ids = np.zeros((height, width), dtype=np.uint8)
    image[8:24, 8:40] = (255, 0, 0)
    ids[8:24, 8:40] = 1
    image[28:44, 36:60] = (0, 255, 0)
    ids[28:44, 36:60] = 7
    return image, ids


def write_pair(root: Path, name: str, image: np.ndarray, ids: np.ndarray, suffix: str = ".png") -> None:
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(root / "images" / f"{name}{suffix}")
    save_palette_png(root / "masks" / f"{name}.png", ids)


def test_image_folder_sample(tmp_path: Path) -> None:
    image, ids = scene()
    write_pair(tmp_path, "a", image, ids)
    data = ImageFolderDataset(tmp_path, 32, augment=None, max_objects=None)
    sample = data[0]
    assert sample.name == "a" and sample.object_ids == [1, 7]
    assert sample.image.shape == (3, 32, 32) and sample.image.dtype == torch.float32
    assert sample.masks.shape == (2, 32, 32) and sample.masks.dtype == torch.bool
    # Without augmentation the image is exactly what the image predictor feeds the model.
    assert torch.allclose(sample.image, preprocess_image(image_to_tensor(image), 32), atol=1e-6)
    expected = torch.zeros(32, 32, dtype=torch.bool)
    expected[round(8 * 32 / 48) : round(24 * 32 / 48), round(8 * 32 / 64) : round(40 * 32 / 64)] = True
    assert (sample.masks[0] != expected).float().mean() < 0.03


def test_mask_formats(tmp_path: Path) -> None:
    image, ids = scene()
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    Image.fromarray(image).save(tmp_path / "images" / "rgb.jpg")
    Image.fromarray(image).save(tmp_path / "masks" / "rgb.png")  # RGB: each colour one object
    Image.fromarray(image).save(tmp_path / "images" / "gray16.png")
    Image.fromarray(ids.astype(np.uint16) * 300).save(tmp_path / "masks" / "gray16.png")
    data = ImageFolderDataset(tmp_path, 32, augment=None, max_objects=None)
    assert data.names == ["gray16", "rgb"]
    assert data[0].object_ids == [300, 2100] and len(data[1].object_ids) == 2


def test_augmentation_moves_image_and_masks_together(tmp_path: Path) -> None:
    image, ids = scene(64, 64)
    write_pair(tmp_path, "a", image, ids)
    options = AugmentOptions(hflip=0.5, crop=1.0, crop_area=(0.5, 1.0), degrees=30, shear=15,
                             scale=(0.8, 1.2), translate=0.1, **NO_COLOUR)
    data = ImageFolderDataset(tmp_path, 64, augment=options, max_objects=None)
    still = ImageFolderDataset(tmp_path, 64, augment=None, max_objects=None)[0]
    moved = 0
    for epoch in range(8):
        data.set_epoch(epoch)
        sample = data[0]
        rgb = sample.image * STD + MEAN
        red = (rgb[0] > 0.5) & (rgb[1] < 0.5)
        green = (rgb[1] > 0.5) & (rgb[0] < 0.5)
        for obj_id, colour in ((1, red), (7, green)):
            if obj_id in sample.object_ids:
                mask = sample.masks[sample.object_ids.index(obj_id)]
                agreement = (mask == colour).float().mean().item()
                assert agreement > 0.97, (epoch, obj_id, agreement)
        moved += int(not torch.equal(sample.masks, still.masks))
    assert moved >= 6


def test_augmentation_is_seeded(tmp_path: Path) -> None:
    image, ids = scene()
    write_pair(tmp_path, "a", image, ids)
    data = ImageFolderDataset(tmp_path, 32, seed=3)
    first, again = data[0], ImageFolderDataset(tmp_path, 32, seed=3)[0]
    assert torch.equal(first.image, again.image) and torch.equal(first.masks, again.masks)
    data.set_epoch(1)
    assert not torch.equal(first.image, data[0].image)


def test_augment_sample_clip_consistency() -> None:
    frames = torch.zeros(3, 3, 40, 40, dtype=torch.uint8)
    masks = torch.zeros(3, 1, 40, 40, dtype=torch.bool)
    for t in range(3):
        frames[t, 0, 10:30, 5 + t : 25 + t] = 255
        masks[t, 0, 10:30, 5 + t : 25 + t] = True
    gen = torch.Generator().manual_seed(0)
    images, out = augment_sample(frames, masks, 40, AugmentOptions(degrees=40, **NO_COLOUR), gen)
    assert images.shape == (3, 3, 40, 40) and out.shape == (3, 1, 40, 40)
    # The same warp on every frame: the masks still differ by the 1-px shifts only.
    assert all(abs(int(out[t].sum()) - int(out[0].sum())) < 25 for t in range(3))


def test_max_objects(tmp_path: Path) -> None:
    image, ids = scene()
    write_pair(tmp_path, "a", image, ids)
    data = ImageFolderDataset(tmp_path, 32, augment=None, max_objects=1)
    chosen = set()
    for epoch in range(10):
        data.set_epoch(epoch)
        sample = data[0]
        assert sample.masks.shape[0] == 1 and len(sample.object_ids) == 1
        chosen.update(sample.object_ids)
    assert chosen == {1, 7}


def test_splits(tmp_path: Path) -> None:
    names = [f"n{i:02d}" for i in range(20)]
    train, val = split_names(names, "train", 0.25, 1), split_names(names, "val", 0.25, 1)
    assert len(val) == 5 and not set(train) & set(val) and sorted(train + val) == names
    assert split_names(names, "val", 0.25, 1) == val and split_names(names, "val", 0.25, 2) != val
    assert split_names(names[:2], "val", 0.01, 0) and split_names(names, "all", 0.5) == names
    image, ids = scene()
    for name in names[:4]:
        write_pair(tmp_path, name, image, ids)
    assert len(ImageFolderDataset(tmp_path, 32, split="val", val_fraction=0.5)) == 2
    with pytest.raises(ValueError, match="split"):
        split_names(names, "test", 0.1)  # type: ignore[arg-type]


def one_line(error: pytest.ExceptionInfo[DataError]) -> str:
    message = str(error.value)
    assert "\n" not in message
    return message


def test_image_folder_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError) as error:
        ImageFolderDataset(tmp_path, 32)
    assert "images/" in one_line(error)
    image, ids = scene()
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    Image.fromarray(image).save(tmp_path / "images" / "lonely.png")
    with pytest.raises(DataError) as error:
        ImageFolderDataset(tmp_path, 32)
    assert "no image/mask pairs" in one_line(error) and "masks/NAME.png" in str(error.value)

    write_pair(tmp_path, "small", image, ids[:40])
    write_pair(tmp_path, "void", image, np.zeros_like(ids))
    with pytest.warns(RuntimeWarning, match="1 images without a mask"):
        data = ImageFolderDataset(tmp_path, 32)
    with pytest.raises(DataError) as error:
        data[data.names.index("small")]
    assert "small.png" in one_line(error) and "64x40" in str(error.value) and "64x48" in str(error.value)
    with pytest.raises(DataError) as error:
        data[data.names.index("void")]
    assert "void.png" in one_line(error) and "empty mask" in str(error.value)


def write_coco(tmp_path: Path, annotations: list[dict], width: int = 64, height: int = 48) -> Path:
    image, _ = scene(height, width)
    (tmp_path / "imgs").mkdir(exist_ok=True)
    Image.fromarray(image).save(tmp_path / "imgs" / "a.jpg")
    doc = {"images": [{"id": 5, "file_name": "a.jpg", "height": height, "width": width}], "annotations": annotations}
    path = tmp_path / "coco.json"
    path.write_text(json.dumps(doc))
    return path


def test_coco(tmp_path: Path) -> None:
    pytest.importorskip("pycocotools")
    _, ids = scene()
    green = ids == 7
    uncompressed_counts = []  # column-major runs of the green rectangle
    flat = green.flatten(order="F")
    value, run = False, 0
    for pixel in flat:
        if pixel != value:
            uncompressed_counts.append(run)
            value, run = pixel, 0
        run += 1
    uncompressed_counts.append(run)
    annotations = [
        {"id": 11, "image_id": 5, "segmentation": [[8, 8, 40, 8, 40, 24, 8, 24]], "iscrowd": 0},
        {"id": 12, "image_id": 5, "segmentation": to_coco_rle(green), "iscrowd": 0},
        {"id": 13, "image_id": 5, "segmentation": {"size": [48, 64], "counts": uncompressed_counts}, "iscrowd": 0},
        {"id": 14, "image_id": 5, "segmentation": to_coco_rle(green), "iscrowd": 1},
    ]
    data = CocoDataset(write_coco(tmp_path, annotations), tmp_path / "imgs", 48, augment=None, max_objects=None)
    sample = data[0]
    assert sample.object_ids == [11, 12, 13] and sample.masks.shape == (3, 48, 48)
    assert torch.equal(sample.masks[1], sample.masks[2])
    # The polygon outlines the red rectangle (16 x 32 px, resized from 64 x 48 to 48 x 48).
    assert sample.masks[0].sum() > 0.9 * (16 * 32 * 48 / 64)


def test_coco_errors(tmp_path: Path) -> None:
    pytest.importorskip("pycocotools")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(DataError) as error:
        CocoDataset(tmp_path / "bad.json", tmp_path, 32)
    assert "bad.json" in one_line(error)
    empty = [{"id": 1, "image_id": 5, "segmentation": to_coco_rle(np.zeros((48, 64), dtype=bool))}]
    with pytest.raises(DataError) as error:
        CocoDataset(write_coco(tmp_path, empty), tmp_path / "imgs", 32)[0]
    assert "annotation 1 of a.jpg is an empty mask" in one_line(error)
    polygon = [{"id": 2, "image_id": 5, "segmentation": [[1, 1, 20, 1, 20, 20]]}]
    path = write_coco(tmp_path, polygon)
    assert CocoDataset(path, tmp_path / "imgs", 32)[0].object_ids == [2]
    doc = json.loads(path.read_text())
    doc["images"][0]["width"] = 100
    path.write_text(json.dumps(doc))
    with pytest.raises(DataError) as error:
        CocoDataset(path, tmp_path / "imgs", 32)[0]
    assert "a.jpg" in one_line(error) and "64x48" in str(error.value) and "100x48" in str(error.value)
    with pytest.raises(DataError, match="no image has an annotation"):
        CocoDataset(write_coco(tmp_path, []), tmp_path / "imgs", 32)


def test_reads_the_synthetic_layout(tmp_path: Path) -> None:
    summary = write_synthetic_dataset(tmp_path, num_images=3, num_clips=0, size=64, seed=0)
    data = ImageFolderDataset(tmp_path, 64, augment=None, max_objects=None)
    assert data.names == summary.images
    assert sum(len(data[i].object_ids) for i in range(3)) == summary.num_image_objects
