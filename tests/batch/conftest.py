"""Batch test data: a seeded random ``sam2kit-mini`` checkpoint, small images and frame-folder videos
of bright rectangles with their ground-truth palette masks, and the 20-item manifest of the issue
(18 good items, a missing image and a corrupt video); and Ray started once per test module."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from sam2kit.build import build_model
from sam2kit.io.masks import save_palette_png

NUM_IMAGES, NUM_VIDEOS, NUM_FRAMES = 13, 4, 3
IMAGE_HW, VIDEO_HW = (96, 128), (64, 80)


@dataclass(frozen=True)
class BatchData:
    root: Path
    checkpoint: Path
    manifest: Path
    gt_dir: Path  # DAVIS layout: <id>/<frame:05d>.png, the videos' rectangles as object 1
    ok_ids: list[str]
    broken_ids: list[str]

    def model_args(self) -> list[str]:
        return ["--checkpoint", str(self.checkpoint), "--config", "sam2kit-mini", "--device", "cpu"]


def _scene(hw: tuple[int, int], box: tuple[int, int, int, int], seed: int) -> np.ndarray:
    """A dark noisy image with one bright rectangle ``(x0, y0, x1, y1)`` (inclusive corners)."""
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 40, (*hw, 3), dtype=np.uint8)
    x0, y0, x1, y1 = box
    image[y0:y1 + 1, x0:x1 + 1] = (230, 190, 40)
    return image


@pytest.fixture(scope="session")
def batch_data(tmp_path_factory: pytest.TempPathFactory) -> BatchData:
    root = tmp_path_factory.mktemp("batch_data")
    torch.manual_seed(0)
    checkpoint = root / "mini.pt"
    torch.save({"model": build_model("sam2kit-mini", device="cpu").state_dict()}, checkpoint)
    lines: list[dict] = []
    for index in range(NUM_IMAGES):
        box = (10 + 3 * index, 12 + index, 60 + 3 * index, 70)
        Image.fromarray(_scene(IMAGE_HW, box, index)).save(root / f"img{index}.png")
        prompts = [{"obj_id": 1, "points": [[(box[0] + box[2]) // 2, (box[1] + box[3]) // 2]], "labels": [1]}]
        if index % 3 == 0:
            prompts.append({"obj_id": 2, "box": [100, 10, 124, 40]})
        lines.append({"id": f"img{index}", "image": f"img{index}.png", "prompts": prompts})
    lines.append({"id": "auto0", "image": "img0.png", "mode": "auto",
                  "options": {"points_per_side": 4, "points_per_batch": 16}})
    gt_dir = root / "gt"
    for index in range(NUM_VIDEOS):
        frames = root / f"clip{index}"
        frames.mkdir()
        for frame in range(NUM_FRAMES):
            box = (10 + 4 * frame + index, 14, 40 + 4 * frame + index, 44)
            Image.fromarray(_scene(VIDEO_HW, box, 100 + frame)).save(frames / f"{frame:05d}.png")
            label = np.zeros(VIDEO_HW, dtype=np.uint8)
            label[box[1]:box[3] + 1, box[0]:box[2] + 1] = 1
            save_palette_png(gt_dir / f"clip{index}" / f"{frame:05d}.png", label)
        lines.append({"id": f"clip{index}", "video": f"clip{index}",
                      "prompts": [{"frame": 0, "obj_id": 1, "points": [[25 + index, 29]]}]})
    (root / "corrupt.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 this is not a video" * 10)
    lines.append({"id": "missing", "image": "no_such_image.png", "prompts": [{"obj_id": 1, "points": [[5, 5]]}]})
    lines.append({"id": "corrupt", "video": "corrupt.mp4", "prompts": [{"frame": 0, "obj_id": 1, "points": [[5, 5]]}]})
    manifest = root / "items.jsonl"
    manifest.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    assert len(lines) == 20
    ids = [line["id"] for line in lines]
    return BatchData(root, checkpoint, manifest, gt_dir, ids[:-2], ids[-2:])


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    """Ray in this process for the module: 2 CPUs, no dashboard, no worker logs on the console."""
    ray = pytest.importorskip("ray", reason="sam2kit batch needs Ray: pip install 'sam2kit[batch]'")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="WARNING")
    try:
        yield
    finally:
        ray.shutdown()
