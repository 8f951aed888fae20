"""Batch test data: synthetic scenes of :mod:`sam2kit.synthetic` (held out from the bundled
``sam2kit-mini``'s training scenes) as images and frame-folder videos, with the generator's masks as
ground truth, the 20-item manifest of the issue (18 good items, a missing image and a corrupt video),
and Ray started once per test module. The model is the bundled ``sam2kit-mini``, so the masks mean
something and the tests can score them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sam2kit.io.masks import save_palette_png
from sam2kit.pipelines.synthetic_eval import interior_point
from sam2kit.synthetic import render_clip, render_image

NUM_IMAGES, NUM_VIDEOS, NUM_FRAMES = 13, 4, 3
IMAGE_SIZE = VIDEO_SIZE = 128
#: Random streams of the scenes: ``[SCENE_SEED, kind, index]``; sam2kit-mini trained on seed 1.
SCENE_SEED, _IMAGES, _CLIPS = 20, 0, 1


@dataclass(frozen=True)
class BatchData:
    root: Path
    manifest: Path
    gt_dir: Path  # DAVIS layout: <id>/<frame:05d>.png, each clip's clicked shape as object 1
    ok_ids: list[str]
    broken_ids: list[str]
    #: image item id -> {obj_id: (H, W) bool truth} of the prompted shapes (1 clicked, 2 boxed)
    image_truth: dict[str, dict[int, np.ndarray]]

    def model_args(self) -> list[str]:
        return ["--checkpoint", "sam2kit-mini", "--device", "cpu"]


def _by_size(masks: np.ndarray) -> list[np.ndarray]:
    """The ``(N, H, W)`` masks, largest first (the click goes to the largest shape: a small or
    mostly hidden one is a poor test of whether a mask means something)."""
    return [masks[i] for i in np.argsort([-int(m.sum()) for m in masks], kind="stable")]


def _click(mask: np.ndarray) -> list[list[int]]:
    x, y = interior_point(mask)
    return [[int(x), int(y)]]


def _box(mask: np.ndarray) -> list[int]:
    ys, xs = np.nonzero(mask)
    return [int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max())]


def write_batch_data(root: Path) -> BatchData:
    """Write the images, clips, ground truth and manifest under ``root``."""
    lines: list[dict] = []
    truth: dict[str, dict[int, np.ndarray]] = {}
    for index in range(NUM_IMAGES):
        image, masks = render_image(np.random.default_rng([SCENE_SEED, _IMAGES, index]), IMAGE_SIZE)
        Image.fromarray(image).save(root / f"img{index}.png")
        shapes = _by_size(masks)
        prompts: list[dict] = [{"obj_id": 1, "points": _click(shapes[0]), "labels": [1]}]
        truth[f"img{index}"] = {1: shapes[0]}
        if index % 3 == 0 and len(shapes) > 1:
            prompts.append({"obj_id": 2, "box": _box(shapes[1])})
            truth[f"img{index}"][2] = shapes[1]
        lines.append({"id": f"img{index}", "image": f"img{index}.png", "prompts": prompts})
    lines.append({"id": "auto0", "image": "img0.png", "mode": "auto",
                  "options": {"points_per_side": 4, "points_per_batch": 16}})
    gt_dir = root / "gt"
    for index in range(NUM_VIDEOS):
        frames, masks = render_clip(np.random.default_rng([SCENE_SEED, _CLIPS, index]), NUM_FRAMES, VIDEO_SIZE)
        largest = int(np.argmax(masks[0].sum(axis=(1, 2))))
        folder = root / f"clip{index}"
        folder.mkdir()
        for frame in range(NUM_FRAMES):
            Image.fromarray(frames[frame]).save(folder / f"{frame:05d}.png")
            save_palette_png(gt_dir / f"clip{index}" / f"{frame:05d}.png", masks[frame, largest].astype(np.uint8))
        lines.append({"id": f"clip{index}", "video": f"clip{index}",
                      "prompts": [{"frame": 0, "obj_id": 1, "points": _click(masks[0, largest])}]})
    (root / "corrupt.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 this is not a video" * 10)
    lines.append({"id": "missing", "image": "no_such_image.png", "prompts": [{"obj_id": 1, "points": [[5, 5]]}]})
    lines.append({"id": "corrupt", "video": "corrupt.mp4", "prompts": [{"frame": 0, "obj_id": 1, "points": [[5, 5]]}]})
    manifest = root / "items.jsonl"
    manifest.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    assert len(lines) == 20
    ids = [line["id"] for line in lines]
    return BatchData(root, manifest, gt_dir, ids[:-2], ids[-2:], truth)


@pytest.fixture(scope="session")
def batch_data(tmp_path_factory: pytest.TempPathFactory) -> BatchData:
    return write_batch_data(tmp_path_factory.mktemp("batch_data"))


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    """Ray in this process for the module: 2 CPUs, no dashboard, no worker logs on the console."""
    ray = pytest.importorskip("ray", reason="sam2kit batch needs Ray: pip install 'sam2kit[batch]'")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="WARNING")
    try:
        yield
    finally:
        ray.shutdown()
