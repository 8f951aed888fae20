"""Image predictor speed and memory, sam2kit beside the reference ``sam2`` package.

Times ``set_image`` on a 1024x768 image and ``predict`` for one click (3 candidate masks) and for
16 boxes in one batch (one mask each), with the same seeded random weights on both sides, and
prints a table of medians.

Each side runs in its own worker process (its peak RSS is its own, and neither library's thread
pools or caches help the other). The parent alternates the two sides run by run, so that a change
of machine load during the benchmark hits both alike. At the end the two sides' masks and scores
are compared, to show that they computed the same thing.

Usage (from the repository root, with the reference installed: pip install sam2==1.1.0)::

    python -m benchmarks.bench_image --config sam2.1_hiera_tiny --threads 2 --repeats 5
    python -m benchmarks.bench_image --device cuda --threads 8

Results go to ``bench_results/`` (Markdown table + JSON).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

if __package__ in (None, ""):  # run as a file: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import (  # noqa: E402
    BENCH_IMAGE_WH,
    Row,
    Worker,
    bench_image,
    build_reference_model,
    build_sam2kit_model,
    machine_info,
    markdown_table,
    open_channel,
    peak_rss_mib,
    seeded_checkpoint,
    serve,
    set_threads,
    time_interleaved,
    time_once,
    write_results,
)

REPO = Path(__file__).resolve().parents[1]
SIDES = ("sam2kit", "reference")
CLICK = (460.0, 180.0)  # on the astronaut's face in the 1024x768 image
NUM_BOXES = 16


def benchmark_boxes(width: int, height: int, count: int = NUM_BOXES, seed: int = 0) -> np.ndarray:
    """``count`` seeded XYXY boxes inside a ``width`` x ``height`` image, 64 to 400 pixels a side."""
    rng = np.random.default_rng(seed)
    sizes = rng.uniform(64, 400, size=(count, 2))
    corners = rng.uniform(0, 1, size=(count, 2)) * (np.array([width, height]) - sizes)
    return np.concatenate([corners, corners + sizes], axis=1).astype(np.float32)


# ---------------------------------------------------------------------------- worker
def run_worker(args: argparse.Namespace) -> None:
    """One side: build the predictor, then time single runs of the ops the parent asks for."""
    channel = open_channel()
    set_threads(args.threads)
    import torch

    sync = torch.cuda.synchronize if args.device.startswith("cuda") else None
    image = bench_image()
    height, width = image.shape[:2]
    boxes = benchmark_boxes(width, height)
    started = time.perf_counter()
    if args.worker == "reference":
        from sam2.sam2_image_predictor import SAM2ImagePredictor

        predictor = SAM2ImagePredictor(build_reference_model(args.config, args.checkpoint, args.image_size, args.device))
        # The reference predictor hard-codes the feature sizes of a 1024 px model.
        size = args.image_size
        predictor._bb_feat_sizes = [(size // 4, size // 4), (size // 8, size // 8), (size // 16, size // 16)]
    else:
        from sam2kit.predict.image import ImagePredictor

        predictor = ImagePredictor(build_sam2kit_model(args.config, args.checkpoint, args.image_size, args.device))
    build_s = time.perf_counter() - started

    def click() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return predictor.predict(point_coords=np.array([CLICK], dtype=np.float32),
                                 point_labels=np.array([1], dtype=np.int32), multimask_output=True)

    def batch_of_boxes() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return predictor.predict(box=boxes, multimask_output=False)

    def finish(outputs: str) -> dict[str, Any]:
        click_masks, click_scores, _ = click()
        box_masks, box_scores, _ = batch_of_boxes()
        np.savez_compressed(outputs, click_masks=click_masks, click_scores=click_scores,
                            box_masks=box_masks, box_scores=box_scores)
        memory = {"peak_rss_mib": peak_rss_mib()}
        if sync is not None:
            memory["peak_cuda_mib"] = torch.cuda.max_memory_allocated() / 2**20
        return memory

    handlers = {
        "set_image": lambda: {"seconds": time_once(lambda: predictor.set_image(image), sync)},
        "click": lambda: {"seconds": time_once(click, sync)},
        "boxes": lambda: {"seconds": time_once(batch_of_boxes, sync)},
        "finish": finish,
    }
    serve(channel, handlers, {"build_s": build_s})


# ---------------------------------------------------------------------------- parent
def _start_worker(side: str, args: argparse.Namespace, checkpoint: Path) -> Worker:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), str(REPO / "src"), env.get("PYTHONPATH")) if p)
    for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[variable] = str(args.threads)
    command = [
        sys.executable, "-m", "benchmarks.bench_image", "--worker", side, "--checkpoint", str(checkpoint),
        "--config", args.config, "--image-size", str(args.image_size), "--threads", str(args.threads),
        "--device", args.device,
    ]
    print(f"[bench_image] starting the {side} worker ...", file=sys.stderr, flush=True)
    return Worker(side, command, env=env, cwd=REPO)


def _agreement(ours: Any, reference: Any) -> dict[str, float]:
    """How closely the two sides' outputs agree (fraction of equal mask pixels, max score gap)."""
    result = {}
    for name in ("click", "box"):
        result[f"{name}_mask_pixel_agreement"] = float((ours[f"{name}_masks"] == reference[f"{name}_masks"]).mean())
        result[f"{name}_max_score_diff"] = float(np.abs(ours[f"{name}_scores"] - reference[f"{name}_scores"]).max())
    return result


def run_parent(args: argparse.Namespace) -> int:
    weights = seeded_checkpoint(args.config, Path(args.out) / "weights", seed=args.seed)
    load_before = os.getloadavg() if hasattr(os, "getloadavg") else None
    workers: list[Worker] = []
    try:
        for side in SIDES:  # built one after the other: build times are not interleaved
            workers.append(_start_worker(side, args, weights))
        print(f"[bench_image] timing set_image x{args.repeats}, predict x{args.predict_repeats} per side ...",
              file=sys.stderr, flush=True)
        timings = {
            "set_image": time_interleaved(workers, "set_image", repeats=args.repeats, warmup=1),
            "predict_click": time_interleaved(workers, "click", repeats=args.predict_repeats, warmup=2),
            "predict_boxes": time_interleaved(workers, "boxes", repeats=args.predict_repeats, warmup=2),
        }
        with tempfile.TemporaryDirectory(prefix="bench_image_") as temporary:
            memory, outputs = {}, {}
            for worker in workers:
                path = Path(temporary) / f"{worker.name}.npz"
                memory[worker.name] = worker.call("finish", outputs=str(path))
                with np.load(path) as arrays:
                    outputs[worker.name] = {key: arrays[key] for key in arrays.files}
    finally:
        for worker in workers:
            worker.close()
    build = {worker.name: worker.hello["build_s"] for worker in workers}
    agreement = _agreement(outputs["sam2kit"], outputs["reference"])

    def row(figure: str, key: str) -> Row:
        return Row(figure, timings[key]["sam2kit"].median, timings[key]["reference"].median)

    rows = [
        row(f"set_image {BENCH_IMAGE_WH[0]}x{BENCH_IMAGE_WH[1]} (model {args.image_size}px)", "set_image"),
        row("predict, 1 point, multimask", "predict_click"),
        row(f"predict, {NUM_BOXES} boxes batched", "predict_boxes"),
        Row("build + load checkpoint (once)", build["sam2kit"], build["reference"]),
        Row("peak RSS", memory["sam2kit"]["peak_rss_mib"], memory["reference"]["peak_rss_mib"], unit="MiB"),
    ]
    if "peak_cuda_mib" in memory["sam2kit"]:
        rows.append(Row("peak CUDA memory", memory["sam2kit"]["peak_cuda_mib"],
                        memory["reference"]["peak_cuda_mib"], unit="MiB"))
    machine = machine_info(args.threads, args.device)
    machine["load_average_before"] = load_before
    name = f"image_{args.config}_{args.image_size}px_{args.threads}threads_{args.device.replace(':', '')}"
    payload = {
        "benchmark": "image",
        "config": args.config,
        "image_size": args.image_size,
        "image_wh": list(BENCH_IMAGE_WH),
        "click": list(CLICK),
        "num_boxes": NUM_BOXES,
        "repeats": {"set_image": args.repeats, "predict": args.predict_repeats},
        "seed": args.seed,
        "machine": machine,
        "timings": {key: {side: t.to_json() for side, t in per_side.items()} for key, per_side in timings.items()},
        "build_s": build,
        "memory": memory,
        "agreement": agreement,
    }
    md_path, json_path = write_results(args.out, name, rows, payload)
    print(markdown_table(rows))
    print(
        f"\nmedians of {args.repeats} (set_image) / {args.predict_repeats} (predict) runs per side after warm-up, "
        f"sides alternated; outputs agree on {agreement['click_mask_pixel_agreement']:.4%} (click) / "
        f"{agreement['box_mask_pixel_agreement']:.4%} (boxes) of mask pixels, max score gap "
        f"{max(agreement['click_max_score_diff'], agreement['box_max_score_diff']):.2e}"
    )
    cores = os.cpu_count() or 1
    if load_before is not None and max(load_before[0], machine["load_average"][0]) > cores:
        print(f"warning: the machine was busy (load average {load_before[0]:.1f} -> "
              f"{machine['load_average'][0]:.1f} on {cores} cores); absolute times are inflated",
              file=sys.stderr)
    print(f"written: {md_path}, {json_path}", file=sys.stderr)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="sam2.1_hiera_tiny", help="preset name (default sam2.1_hiera_tiny)")
    parser.add_argument("--repeats", type=int, default=5, help="timed set_image runs per side, after 1 warm-up (default 5)")
    parser.add_argument("--predict-repeats", type=int, default=20,
                        help="timed runs of each predict figure per side, after 2 warm-ups (default 20)")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads (default 2)")
    parser.add_argument("--image-size", type=int, default=1024, help="model input resolution (default 1024)")
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda, ...")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random weights (default 0)")
    parser.add_argument("--out", default=str(REPO / "bench_results"), help="results folder (default bench_results/)")
    parser.add_argument("--worker", choices=SIDES, help=argparse.SUPPRESS)
    parser.add_argument("--checkpoint", help=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.worker:
        run_worker(args)
        return 0
    if args.repeats < 5:
        print("[bench_image] note: fewer than 5 repeats make the medians noisy", file=sys.stderr)
    return run_parent(args)


if __name__ == "__main__":
    sys.exit(main())
