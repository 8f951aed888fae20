"""Automatic mask generator ("segment everything") speed, sam2kit beside the reference ``sam2``.

Runs ``generate`` end to end (image embedding, 32 x 32 point prompts, filters, NMS, binary masks)
on the same 1024x768 image with the same seeded random weights on both sides, alternating the
sides run by run, and prints the medians and their ratio. Each side runs in its own worker
process. The outputs of the last run are compared: the same number of masks, matched one to one
(mask IoU >= 0.99 and the same box), in the same order.

Random weights give weak, flat logits, so the default thresholds keep nothing; the benchmark's
settings (``SETTINGS``) lower the mask threshold's stability offset and the score thresholds so
that about 40% of the candidate masks pass the predicted-IoU filter and about 20% reach NMS,
similar to a trained model at the default thresholds.

Usage (from the repository root, with the reference installed: pip install sam2==1.1.0)::

    python -m benchmarks.bench_automatic --threads 2 --repeats 3
    python -m benchmarks.bench_automatic --points-per-side 16 --image-size 512 --repeats 5

Results go to ``bench_results/`` (Markdown table + JSON).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

if __package__ in (None, ""):  # run as a file: make `benchmarks` and `sam2kit` importable
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
#: Generator settings of both sides (besides points_per_side).
SETTINGS = dict(mask_threshold=0.3, stability_score_offset=0.02, pred_iou_thresh=0.5, stability_score_thresh=0.2)
MIN_MASK_IOU = 0.99


# ---------------------------------------------------------------------------- worker
def run_worker(args: argparse.Namespace) -> None:
    """One side: build the generator, then run ``generate`` whenever the parent asks."""
    channel = open_channel()
    set_threads(args.threads)
    import torch

    sync = torch.cuda.synchronize if args.device.startswith("cuda") else None
    image = bench_image()
    started = time.perf_counter()
    if args.worker == "reference":
        from sam2.automatic_mask_generator import SAM2AutomaticMaskGenerator as Generator

        model = build_reference_model(args.config, args.checkpoint, args.image_size, args.device)
    else:
        from sam2kit.predict.automatic import MaskGenerator as Generator

        model = build_sam2kit_model(args.config, args.checkpoint, args.image_size, args.device)

    def make(points_per_side: int) -> Any:
        generator = Generator(model, points_per_side=points_per_side, **SETTINGS)
        if args.worker == "reference":  # it hard-codes the feature sizes of a 1024 px model
            size = args.image_size
            generator.predictor._bb_feat_sizes = [(size // 4,) * 2, (size // 8,) * 2, (size // 16,) * 2]
        return generator

    generator, small = make(args.points_per_side), make(2)
    build_s = time.perf_counter() - started
    last: list[list[dict[str, Any]]] = []

    def generate() -> dict[str, Any]:
        with torch.inference_mode():
            seconds = time_once(lambda: last.append(generator.generate(image)), sync)
        del last[:-1]
        return {"seconds": seconds, "masks": len(last[-1])}

    def warmup() -> dict[str, Any]:
        with torch.inference_mode():
            return {"seconds": time_once(lambda: small.generate(image), sync)}

    def finish(outputs: str) -> dict[str, Any]:
        from sam2kit.io.masks import to_coco_rle

        records = last[-1]
        masks = np.stack([r["segmentation"] for r in records]) if records else np.zeros((0, 1, 1), bool)
        rles = to_coco_rle(masks) if records else []
        saved = [{**{k: v for k, v in r.items() if k != "segmentation"}, "segmentation": rle}
                 for r, rle in zip(records, rles)]
        Path(outputs).write_text(json.dumps(saved))
        memory = {"peak_rss_mib": peak_rss_mib()}
        if sync is not None:
            memory["peak_cuda_mib"] = torch.cuda.max_memory_allocated() / 2**20
        return memory

    serve(channel, {"warmup": warmup, "generate": generate, "finish": finish}, {"build_s": build_s})


# ---------------------------------------------------------------------------- parent
def _start_worker(side: str, args: argparse.Namespace, checkpoint: Path) -> Worker:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), str(REPO / "src"), env.get("PYTHONPATH")) if p)
    for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[variable] = str(args.threads)
    command = [
        sys.executable, "-m", "benchmarks.bench_automatic", "--worker", side, "--checkpoint", str(checkpoint),
        "--config", args.config, "--image-size", str(args.image_size), "--threads", str(args.threads),
        "--device", args.device, "--points-per-side", str(args.points_per_side),
    ]
    print(f"[bench_automatic] starting the {side} worker ...", file=sys.stderr, flush=True)
    return Worker(side, command, env=env, cwd=REPO)


def compare_records(ours: list[dict[str, Any]], reference: list[dict[str, Any]]) -> dict[str, Any]:
    """Match our masks one to one to the reference's (best mask IoU, same box, same order)."""
    from sam2kit.io.masks import coco_rle_to_mask

    ref_masks = [coco_rle_to_mask(r["segmentation"]) for r in reference]
    our_masks = [coco_rle_to_mask(r["segmentation"]) for r in ours]
    result: dict[str, Any] = {"masks_sam2kit": len(ours), "masks_reference": len(reference),
                              "same_count": len(ours) == len(reference)}
    ious, same_box, same_order, identical = [], True, True, 0
    unmatched = set(range(len(reference)))
    for index, mask in enumerate(our_masks):
        if not unmatched:
            break
        scores = {j: _iou(mask, ref_masks[j]) for j in unmatched}
        best = max(scores, key=scores.__getitem__)
        unmatched.remove(best)
        ious.append(scores[best])
        same_box &= ours[index]["bbox"] == reference[best]["bbox"]
        same_order &= best == index
        identical += bool(np.array_equal(mask, ref_masks[best]))
    result.update(min_mask_iou=min(ious) if ious else None, same_boxes=same_box, same_order=same_order,
                  pixel_identical_masks=identical)
    result["identical_output"] = bool(result["same_count"] and same_box and same_order
                                      and all(iou >= MIN_MASK_IOU for iou in ious))
    return result


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)


def run_parent(args: argparse.Namespace) -> int:
    weights = seeded_checkpoint(args.config, Path(args.out) / "weights", seed=args.seed)
    load_before = os.getloadavg() if hasattr(os, "getloadavg") else None
    workers: list[Worker] = []
    try:
        for side in SIDES:
            workers.append(_start_worker(side, args, weights))
        for worker in workers:
            worker.call("warmup")  # a 2 x 2 grid: imports, allocator and thread pools warmed up
        print(f"[bench_automatic] timing generate x{args.repeats} per side, sides alternating ...",
              file=sys.stderr, flush=True)
        timings = time_interleaved(workers, "generate", repeats=args.repeats, warmup=0)
        with tempfile.TemporaryDirectory(prefix="bench_automatic_") as temporary:
            memory, outputs = {}, {}
            for worker in workers:
                path = Path(temporary) / f"{worker.name}.json"
                memory[worker.name] = worker.call("finish", outputs=str(path))
                outputs[worker.name] = json.loads(path.read_text())
    finally:
        for worker in workers:
            worker.close()
    build = {worker.name: worker.hello["build_s"] for worker in workers}
    agreement = compare_records(outputs["sam2kit"], outputs["reference"])
    width, height = BENCH_IMAGE_WH
    grid = f"{args.points_per_side}x{args.points_per_side}"
    rows = [
        Row(f"generate, {grid} points, {width}x{height} (model {args.image_size}px)",
            timings["sam2kit"].median, timings["reference"].median),
        Row("build + load checkpoint (once)", build["sam2kit"], build["reference"]),
        Row("peak RSS", memory["sam2kit"]["peak_rss_mib"], memory["reference"]["peak_rss_mib"], unit="MiB"),
    ]
    if "peak_cuda_mib" in memory["sam2kit"]:
        rows.append(Row("peak CUDA memory", memory["sam2kit"]["peak_cuda_mib"],
                        memory["reference"]["peak_cuda_mib"], unit="MiB"))
    machine = machine_info(args.threads, args.device)
    machine["load_average_before"] = load_before
    name = (f"automatic_{args.config}_{args.image_size}px_{grid}_{args.threads}threads_"
            f"{args.device.replace(':', '')}")
    payload = {
        "benchmark": "automatic",
        "config": args.config,
        "image_size": args.image_size,
        "image_wh": list(BENCH_IMAGE_WH),
        "points_per_side": args.points_per_side,
        "settings": SETTINGS,
        "repeats": args.repeats,
        "seed": args.seed,
        "machine": machine,
        "timings": {side: t.to_json() for side, t in timings.items()},
        "build_s": build,
        "memory": memory,
        "agreement": agreement,
    }
    md_path, json_path = write_results(args.out, name, rows, payload)
    print(markdown_table(rows))
    print(f"\nspeed-up (reference / sam2kit, medians): {rows[0].ratio:.2f}x; "
          f"runs sam2kit {[round(s, 1) for s in timings['sam2kit'].runs]} s, "
          f"reference {[round(s, 1) for s in timings['reference'].runs]} s")
    print(f"outputs: {agreement['masks_sam2kit']} vs {agreement['masks_reference']} masks, "
          f"min IoU {agreement['min_mask_iou']}, {agreement['pixel_identical_masks']} pixel-identical, "
          f"same boxes {agreement['same_boxes']}, same order {agreement['same_order']} -> "
          f"{'IDENTICAL' if agreement['identical_output'] else 'DIFFERENT'}")
    print(f"load average before / after: {load_before} / {os.getloadavg() if hasattr(os, 'getloadavg') else None}")
    print(f"wrote {md_path} and {json_path}")
    return 0 if agreement["identical_output"] else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="sam2.1_hiera_tiny", help="preset name (default sam2.1_hiera_tiny)")
    parser.add_argument("--image-size", type=int, default=1024, help="model input size (default 1024)")
    parser.add_argument("--points-per-side", type=int, default=32, help="prompt grid side (default 32)")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads (default 2)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per side (default 3)")
    parser.add_argument("--device", default="cpu", help="torch device (default cpu)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random weights")
    parser.add_argument("--out", default=str(REPO / "bench_results"), help="results folder")
    parser.add_argument("--worker", choices=SIDES, help=argparse.SUPPRESS)
    parser.add_argument("--checkpoint", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        run_worker(args)
        return 0
    return run_parent(args)


if __name__ == "__main__":
    sys.exit(main())
