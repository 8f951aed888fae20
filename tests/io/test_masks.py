"""Mask formats: RLE against pycocotools, PNG / palette roundtrips, atomic writes, COCO JSON."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from PIL import Image

from sam2kit.io.atomic import JsonlWriter, atomic_path, atomic_write, save_json
from sam2kit.io.masks import (
    CocoWriter,
    coco_rle_to_mask,
    davis_palette,
    decode_rle,
    encode_rle,
    load_mask_png,
    load_palette_png,
    mask_to_box_xywh,
    masks_to_uncompressed_rle,
    rle_area,
    save_coco_json,
    save_mask_png,
    save_palette_png,
    to_coco_rle,
    uncompressed_to_coco_rle,
)
from sam2kit.io.overlay import object_color, overlay_masks

mask_utils = pytest.importorskip("pycocotools.mask")

# pycocotools' decode trips a NumPy 2 DeprecationWarning (copy keyword) inside its own code.
pytestmark = pytest.mark.filterwarnings(
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning"
)

masks_2d = arrays(np.bool_, st.tuples(st.integers(1, 9), st.integers(1, 9)))


def special_masks() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [
        np.zeros((5, 7), bool),
        np.ones((5, 7), bool),
        rng.random((1, 13)) > 0.5,
        rng.random((13, 1)) > 0.5,
        np.ones((1, 1), bool),
        np.zeros((1, 1), bool),
        rng.random((40, 30)) > 0.3,
    ]


def assert_rle_matches_pycocotools(mask: np.ndarray, rle: dict) -> None:
    height, width = mask.shape
    assert rle["size"] == [height, width]
    assert all(isinstance(count, int) for count in rle["counts"])
    coco = mask_utils.frPyObjects(rle, height, width)
    np.testing.assert_array_equal(mask_utils.decode(coco).astype(bool), mask)
    reference = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    assert coco["counts"] == reference["counts"]


# ---- RLE ---------------------------------------------------------------------------------------
@settings(max_examples=60, deadline=None)
@given(mask=masks_2d)
def test_numpy_rle_roundtrip_and_pycocotools_agree(mask):
    rle = encode_rle(mask)
    assert_rle_matches_pycocotools(mask, rle)
    np.testing.assert_array_equal(decode_rle(rle), mask)
    assert rle_area(rle) == mask.sum()


@pytest.mark.parametrize("mask", special_masks(), ids=lambda m: f"{m.shape}-{int(m.sum())}")
def test_rle_special_masks(mask):
    rle = encode_rle(mask)
    assert_rle_matches_pycocotools(mask, rle)
    decoded = decode_rle(rle)
    assert decoded.dtype == np.bool_ and decoded.flags.c_contiguous
    np.testing.assert_array_equal(decoded, mask)
    if mask.all():
        assert rle["counts"] == [0, mask.size]
    if not mask.any():
        assert rle["counts"] == [mask.size]


@settings(max_examples=30, deadline=None)
@given(
    masks=st.integers(1, 6).flatmap(
        lambda n: arrays(np.bool_, st.tuples(st.just(n), st.integers(1, 8), st.integers(1, 8)))
    )
)
def test_torch_batched_rle_equals_numpy(masks):
    rles = masks_to_uncompressed_rle(torch.from_numpy(masks))
    assert rles == [encode_rle(mask) for mask in masks]


@settings(max_examples=20, deadline=None)
@given(masks=arrays(np.bool_, st.tuples(st.integers(1, 4), st.integers(1, 7), st.integers(1, 7))))
def test_torch_change_points_equal_numpy(masks):
    """The torch branch (taken for CUDA tensors) agrees with the numpy one (CPU tensors)."""
    from sam2kit.io.masks import _change_point_keys

    np.testing.assert_array_equal(_change_point_keys(torch.from_numpy(masks)), _change_point_keys(masks))


def test_torch_batched_rle_special_cases():
    batch = np.stack([np.zeros((6, 4), bool), np.ones((6, 4), bool), np.eye(6, 4, dtype=bool)])
    rles = masks_to_uncompressed_rle(torch.from_numpy(batch))
    for mask, rle in zip(batch, rles, strict=True):
        assert_rle_matches_pycocotools(mask, rle)
    non_contiguous = torch.from_numpy(batch).transpose(1, 2)  # (3, 4, 6) view
    assert masks_to_uncompressed_rle(non_contiguous) == [encode_rle(m) for m in batch.transpose(0, 2, 1)]
    assert masks_to_uncompressed_rle(torch.zeros((0, 3, 3), dtype=torch.bool)) == []
    with pytest.raises(TypeError, match="bool tensor"):
        masks_to_uncompressed_rle(torch.zeros((1, 3, 3)))


def test_coco_rle_helpers():
    masks = np.stack(special_masks()[:2])  # (2, 5, 7)
    rles = to_coco_rle(masks)
    assert isinstance(rles, list) and all(isinstance(rle["counts"], str) for rle in rles)
    json.dumps(rles)
    for mask, rle in zip(masks, rles, strict=True):
        np.testing.assert_array_equal(coco_rle_to_mask(rle), mask)
        np.testing.assert_array_equal(decode_rle(rle), mask)
        assert rle_area(rle) == mask.sum()
        assert uncompressed_to_coco_rle(encode_rle(mask)) == rle
        assert to_coco_rle(mask) == rle
    assert to_coco_rle(np.zeros((0, 4, 4), bool)) == []


def test_rle_matches_the_reference_amg_helpers():
    """The one RLE codec gives what the reference generator's own helpers give (sam2.utils.amg:
    mask_to_rle_pytorch, rle_to_mask, area_from_rle, coco_encode_rle)."""
    amg = pytest.importorskip("sam2.utils.amg", reason="needs the reference package sam2")
    generator = torch.Generator().manual_seed(1)
    coarse = torch.randn(12, 1, 6, 9, generator=generator)
    masks = torch.nn.functional.interpolate(coarse, size=(37, 53), mode="bilinear")[:, 0] > 0
    masks ^= torch.rand(masks.shape, generator=generator) < 0.02
    masks[0], masks[1], masks[4] = False, True, False
    masks[2, 0, 0], masks[3, 0, 0], masks[4, -1, -1] = True, False, True
    rles = masks_to_uncompressed_rle(masks)
    assert rles == amg.mask_to_rle_pytorch(masks)
    for mask, rle in zip(masks, rles, strict=True):
        decoded = decode_rle(rle)
        np.testing.assert_array_equal(decoded, amg.rle_to_mask(rle))
        np.testing.assert_array_equal(decoded, mask.numpy())
        assert rle_area(rle) == amg.area_from_rle(rle) == int(mask.sum())
    pytest.importorskip("pycocotools")
    for rle in rles[:4]:
        assert uncompressed_to_coco_rle(rle) == amg.coco_encode_rle(rle)


def test_rle_errors():
    with pytest.raises(TypeError, match="bool.*mask > 0"):
        encode_rle(np.zeros((3, 3), np.uint8))
    with pytest.raises(ValueError, match=r"\(H, W\)"):
        encode_rle(np.zeros((1, 3, 3), bool))
    with pytest.raises(ValueError, match="sum to 5"):
        decode_rle({"size": [2, 3], "counts": [2, 3]})


# ---- boxes ---------------------------------------------------------------------------------------
def test_mask_to_box_xywh():
    mask = np.zeros((10, 12), bool)
    assert mask_to_box_xywh(mask) == [0, 0, 0, 0]
    mask[2, 3] = True
    assert mask_to_box_xywh(mask) == [3, 2, 1, 1]
    mask[7, 10] = True
    box = mask_to_box_xywh(mask)
    assert box == [3, 2, 8, 6] and all(type(v) is int for v in box)
    assert box == mask_utils.toBbox(to_coco_rle(mask)).astype(int).tolist()


# ---- PNG -----------------------------------------------------------------------------------------
def test_mask_png_roundtrip(tmp_path):
    mask = special_masks()[-1]
    path = save_mask_png(tmp_path / "mask.png", mask)
    with Image.open(path) as image:
        assert image.mode == "L" and set(np.unique(np.array(image))) <= {0, 255}
    np.testing.assert_array_equal(load_mask_png(path), mask)
    with pytest.raises(TypeError, match="bool"):
        save_mask_png(tmp_path / "bad.png", mask.astype(np.float32))


def test_davis_palette():
    palette = davis_palette()
    assert palette.shape == (256, 3) and palette.dtype == np.uint8
    assert palette[:6].tolist() == [[0, 0, 0], [128, 0, 0], [0, 128, 0], [128, 128, 0], [0, 0, 128], [128, 0, 128]]
    assert palette[255].tolist() == [224, 224, 192]
    assert len({tuple(color) for color in palette}) == 256


def test_palette_png_roundtrip(tmp_path):
    labels = np.random.default_rng(1).integers(0, 5, size=(20, 30)).astype(np.int64)
    path = save_palette_png(tmp_path / "labels.png", labels)
    with Image.open(path) as image:
        assert image.mode == "P"
        assert image.getpalette()[:9] == [0, 0, 0, 128, 0, 0, 0, 128, 0]
        Image.fromarray(np.array(image.convert("RGB"))).save(tmp_path / "rgb.png")
    loaded = load_palette_png(path)
    assert loaded.dtype == np.uint8
    np.testing.assert_array_equal(loaded, labels)
    np.testing.assert_array_equal(load_palette_png(tmp_path / "rgb.png"), labels)
    np.testing.assert_array_equal(load_mask_png(path), labels > 0)
    with pytest.raises(ValueError, match="0..255"):
        save_palette_png(tmp_path / "bad.png", np.full((2, 2), 300))


# ---- atomic writes -------------------------------------------------------------------------------
def test_atomic_write_replaces_whole_file(tmp_path):
    path = atomic_write(tmp_path / "a.txt", "first")
    atomic_write(path, b"second")
    assert path.read_text() == "second"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_failed_writer_leaves_no_temp_and_no_partial_file(tmp_path):
    target = tmp_path / "out.bin"
    with pytest.raises(RuntimeError, match="disk full"):
        with atomic_path(target) as temporary:
            assert temporary.parent == tmp_path and temporary.suffix == ".bin"
            temporary.write_bytes(b"partial")
            raise RuntimeError("disk full")
    assert list(tmp_path.iterdir()) == []

    atomic_write(target, b"good")
    with pytest.raises(ValueError):
        with atomic_path(target) as temporary:
            temporary.write_bytes(b"half")
            raise ValueError
    assert target.read_bytes() == b"good"
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]


def test_save_json_and_jsonl(tmp_path):
    path = save_json(tmp_path / "sub" / "r.json", {"a": np.int64(3), "b": np.arange(3), "c": np.float32(0.5)})
    assert json.loads(path.read_text()) == {"a": 3, "b": [0, 1, 2], "c": 0.5}
    stream = io.StringIO()
    with JsonlWriter(stream) as writer:
        writer.write({"frame": 0, "score": np.float64(0.25)})
        writer.write({"frame": 1})
    assert [json.loads(line) for line in stream.getvalue().splitlines()] == [{"frame": 0, "score": 0.25}, {"frame": 1}]
    with JsonlWriter(tmp_path / "out.jsonl") as writer:
        writer.write([1, 2])
    assert (tmp_path / "out.jsonl").read_text() == "[1,2]\n"


# ---- COCO ----------------------------------------------------------------------------------------
def test_coco_json_loads_back_through_pycocotools(tmp_path):
    coco_module = pytest.importorskip("pycocotools.coco")
    rng = np.random.default_rng(2)
    writer = CocoWriter()
    first = writer.add_image("a.jpg", 24, 32)
    second = writer.add_image("b.jpg", 10, 12)
    masks_a = rng.random((3, 24, 32)) > 0.6
    masks_a[2] = False  # an empty mask is legal
    masks_b = rng.random((10, 12)) > 0.5
    ids_a = writer.add_masks(first, masks_a, scores=[0.9, 0.8, 0.1], predicted_iou=np.array([0.7, 0.6, 0.5]))
    ids_b = writer.add_masks(second, masks_b)
    path = writer.save(tmp_path / "coco.json")

    coco = coco_module.COCO(str(path))
    assert sorted(coco.getImgIds()) == [1, 2] and coco.loadCats([1])[0]["name"] == "object"
    for annotation_id, mask in zip(ids_a + ids_b, [*masks_a, masks_b], strict=True):
        annotation = coco.loadAnns([annotation_id])[0]
        np.testing.assert_array_equal(coco.annToMask(annotation).astype(bool), mask)
        assert annotation["area"] == mask.sum() and annotation["iscrowd"] == 0
        assert annotation["bbox"] == mask_to_box_xywh(mask)
    annotation = coco.loadAnns([ids_a[0]])[0]
    assert annotation["score"] == pytest.approx(0.9) and annotation["predicted_iou"] == pytest.approx(0.7)

    with pytest.raises(ValueError, match="masks are"):
        writer.add_masks(first, masks_b)
    with pytest.raises(KeyError, match="add_image"):
        writer.add_masks(99, masks_b)
    with pytest.raises(ValueError, match="missing keys"):
        save_coco_json(tmp_path / "bad.json", {"images": []})


# ---- overlays ------------------------------------------------------------------------------------
def test_overlay_masks():
    image = np.full((20, 30, 3), 100, np.uint8)
    masks = np.zeros((2, 20, 30), bool)
    masks[0, 2:8, 2:8] = True
    masks[1, 10:18, 10:25] = True
    out = overlay_masks(image, masks, alpha=0.5)
    assert out.shape == image.shape and out.dtype == np.uint8
    np.testing.assert_array_equal(out[0, 29], image[0, 29])  # outside every mask
    np.testing.assert_array_equal(out[5, 5], np.rint(0.5 * 100 + 0.5 * np.array(object_color(0))))
    np.testing.assert_array_equal(out[2, 5], object_color(0))  # contour
    by_id = overlay_masks(image, masks, object_ids=[7, 3])
    np.testing.assert_array_equal(by_id[14, 14], overlay_masks(image, masks[1:], object_ids=[3])[14, 14])
    plain = overlay_masks(image, masks[0], colors=[(0, 0, 0)], alpha=1.0, draw_contours=False)
    assert plain[2:8, 2:8].max() == 0 and plain[9, 9].tolist() == [100, 100, 100]
    assert object_color(12) == object_color(12) and object_color(12) != object_color(13)
    with pytest.raises(ValueError, match="do not match"):
        overlay_masks(image, masks[:, :10])
    with pytest.raises(TypeError, match="bool"):
        overlay_masks(image, masks.astype(np.uint8))
