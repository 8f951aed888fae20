"""Batch throughput: items per minute of ``sam2kit batch`` (Ray local mode, 1 and 2 workers) beside a
plain Python loop over the predictors, on the same synthetic manifest.

The manifest holds ``--images`` images (one point-prompted object each, a box-prompted second object
on every third) and ``--videos`` frame folders of ``--frames`` frames (one object clicked on frame
0); all are made here, with a seeded random checkpoint of ``--config`` (default ``sam2kit-mini``).

Rows:
- ``loop: predictors``: one process, the model loaded once, ``ImagePredictor`` / ``VideoPredictor``
  called per item, nothing written (the least work an item needs);
- ``loop: batch jobs``: the same process runs each item's batch job (``sam2kit.batch.item``) in
  turn: the per-item outputs (COCO RLE, records, atomic folder moves) without Ray;
- ``ray: N worker(s)``: :func:`sam2kit.batch.run_batch` end to end, Ray started and stopped
  in-process, each worker loading the model once with 1 CPU and 1 torch thread.

Items per minute count the whole wall time (Ray start and model loads included); the Ray rows also
give the rate after the workers were ready (steady state) and the start-up seconds. Usage::

    python -m benchmarks.bench_batch --images 24 --videos 4 --workers 1 2

Results go to ``bench_results/bench_batch.{md,json}``. On a machine busy with other work the figures
are not comparable to each other: the script prints the load average with them.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

if __package__ in (None, ""):  # run as a file: make `benchmarks` and `sam2kit` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import machine_info, set_threads  # noqa: E402


def make_manifest(folder: Path, images: int, videos: int, frames: int, hw: tuple[int, int]) -> Path:
    """Images and frame folders of a bright rectangle on noise, and their manifest."""
    from PIL import Image

    rng = np.random.default_rng(0)
    height, width = hw
    lines = []

    def scene(shift: int) -> np.ndarray:
        image = rng.integers(0, 40, (height, width, 3), dtype=np.uint8)
        image[height // 4:height // 2, width // 4 + shift:width // 2 + shift] = (230, 190, 40)
        return image

    centre = [width * 3 // 8, height * 3 // 8]
    for index in range(images):
        Image.fromarray(scene(index % 8)).save(folder / f"img{index}.png")
        prompts: list[dict[str, Any]] = [{"obj_id": 1, "points": [centre]}]
        if index % 3 == 0:
            prompts.append({"obj_id": 2, "box": [width * 5 // 8, 4, width - 4, height // 3]})
        lines.append({"id": f"img{index}", "image": f"img{index}.png", "prompts": prompts})
    for index in range(videos):
        clip = folder / f"clip{index}"
        clip.mkdir()
        for frame in range(frames):
            Image.fromarray(scene(2 * frame)).save(clip / f"{frame:05d}.jpg")
        lines.append({"id": f"clip{index}", "video": clip.name, "prompts": [{"obj_id": 1, "points": [centre]}]})
    manifest = folder / "items.jsonl"
    manifest.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return manifest


def loop_predictors(manifest: Path, spec: Any) -> float:
    """Seconds for a plain loop over the predictors (model load included)."""
    from sam2kit.batch import load_manifest
    from sam2kit.io.frames import open_frames
    from sam2kit.model_spec import load_model
    from sam2kit.pipelines.common import load_image
    from sam2kit.predict.image import ImagePredictor
    from sam2kit.predict.video import VideoPredictor

    started = time.perf_counter()
    model = load_model(spec).model
    image_predictor, video_predictor = ImagePredictor(model), VideoPredictor(model, show_progress=False)
    for item in load_manifest(manifest):
        if item.kind == "image":
            image_predictor.set_image(load_image(item.path))
            for prompt in item.prompts:
                image_predictor.predict(
                    point_coords=np.array(prompt.points, np.float32) if prompt.points else None,
                    point_labels=np.array(prompt.labels, np.int32) if prompt.points else None,
                    box=None if prompt.box is None else np.array(prompt.box, np.float32))
        else:
            frames = open_frames(item.path)
            state = video_predictor.init_state(frames)
            for prompt in item.prompts:
                video_predictor.add_new_points_or_box(state, prompt.frame, prompt.obj_id,
                                                      points=np.array(prompt.points, np.float32),
                                                      labels=np.array(prompt.labels, np.int32))
            for _ in video_predictor.propagate_in_video(state):
                pass
            frames.close()
    return time.perf_counter() - started


def loop_jobs(manifest: Path, spec: Any, out: Path) -> float:
    """Seconds for the batch jobs run one after the other in this process (no Ray)."""
    from sam2kit.batch import ItemOptions, load_manifest
    from sam2kit.batch.item import process_item
    from sam2kit.model_spec import load_model

    started = time.perf_counter()
    loaded = load_model(spec)
    for item in load_manifest(manifest):
        record = process_item(item, loaded, out, ItemOptions(), "bench")
        if record["status"] != "ok":
            raise RuntimeError(f"item {item.id} failed: {record['error']}")
    return time.perf_counter() - started


def ray_run(manifest: Path, spec: Any, out: Path, workers: int) -> dict[str, float]:
    """Wall seconds of run_batch, and the seconds the workers spent on items (from their records)."""
    from sam2kit.batch import run_batch

    started = time.perf_counter()
    summary = run_batch(manifest, out, model=spec, workers=workers, show_progress=False)
    wall = time.perf_counter() - started
    if summary.failed:
        raise RuntimeError(f"{summary.failed} item(s) failed: {summary.errors}")
    records = [json.loads(p.read_text()) for p in (out / "_status").glob("*.json")]
    return {"wall": wall, "item_seconds": sum(r["seconds"] for r in records), "items": len(records)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="sam2kit-mini")
    parser.add_argument("--images", type=int, default=24)
    parser.add_argument("--videos", type=int, default=4)
    parser.add_argument("--frames", type=int, default=4)
    parser.add_argument("--size", type=int, nargs=2, default=(192, 256), metavar=("H", "W"))
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--out", default="bench_results")
    args = parser.parse_args(argv)

    import torch

    from sam2kit.build import build_model
    from sam2kit.model_spec import ModelSpec

    set_threads(1)  # every side computes on one thread per model; Ray workers inherit it
    items = args.images + args.videos
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench_batch_") as scratch:
        folder = Path(scratch)
        torch.manual_seed(0)
        checkpoint = folder / "model.pt"
        torch.save({"model": build_model(args.config, device="cpu").state_dict()}, checkpoint)
        spec = ModelSpec(checkpoint=checkpoint, config=args.config, device="cpu")
        manifest = make_manifest(folder, args.images, args.videos, args.frames, tuple(args.size))

        seconds = loop_predictors(manifest, spec)
        rows.append({"run": "loop: predictors", "seconds": seconds, "items_per_minute": 60 * items / seconds})
        seconds = loop_jobs(manifest, spec, folder / "out_loop")
        rows.append({"run": "loop: batch jobs", "seconds": seconds, "items_per_minute": 60 * items / seconds})
        for workers in args.workers:
            result = ray_run(manifest, spec, folder / f"out_ray{workers}", workers)
            rows.append({"run": f"ray: {workers} worker(s)", "seconds": result["wall"],
                         "items_per_minute": 60 * items / result["wall"],
                         "busy_items_per_minute": 60 * items * workers / result["item_seconds"],
                         "startup_seconds": result["wall"] - result["item_seconds"] / workers})
    machine = machine_info(threads=1)
    lines = [f"# bench_batch\n\n{items} items ({args.images} images {args.size[0]}x{args.size[1]}, {args.videos} "
             f"videos x {args.frames} frames), {args.config} random weights, 1 torch thread per model. "
             f"{machine['cpu']}, {machine['logical_cores']} logical cores; load average at the end "
             f"{machine['load_average'][0]:.1f}.\n",
             "| run | seconds | items/min (wall) | items/min (workers busy) | start-up s (approx.) |",
             "|---|---:|---:|---:|---:|"]
    for row in rows:
        busy = f"{row['busy_items_per_minute']:.1f}" if "busy_items_per_minute" in row else ""
        startup = f"{row['startup_seconds']:.1f}" if "startup_seconds" in row else ""
        lines.append(f"| {row['run']} | {row['seconds']:.1f} | {row['items_per_minute']:.1f} | {busy} | {startup} |")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench_batch.md").write_text("\n".join(lines) + "\n")
    (out / "bench_batch.json").write_text(json.dumps({"machine": machine, "args": vars(args), "rows": rows},
                                                     indent=2, default=str))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
