"""Streaming speed: StreamPredictor per-frame latency and frames per second, beside the reference
``SAM2VideoPredictor``'s per-frame propagation cost on the same frames.

One object is boxed on frame 0 of a clip panned across a photograph (480x640 frames stored as JPEG,
the reference's input format); then every frame is tracked. sam2kit receives the decoded frames one
by one through ``StreamPredictor.track`` (which includes the per-frame resize and normalisation);
the reference loads the folder with ``init_state`` (reported separately, it preprocesses every frame
up front) and is timed between two frames yielded by ``propagate_in_video``. The first
``--warmup`` tracked frames are not timed; figures are medians of the next ``--frames``. Both sides
load the same seeded random checkpoint and run the same computation (hole filling off: the
reference skips it without its CUDA extension); the agreement of their masks is printed.

The reference clip has ``1 + warmup + frames`` frames; below 16 its object-pointer window is
``min(num_frames, 16)`` while the stream's is 16, so masks may differ on a few pixels.

Each side of each config runs in its own worker process. Usage (repository root, reference
installed)::

    python -m benchmarks.bench_stream --configs sam2.1_hiera_tiny sam2.1_hiera_small --threads 2

Results go to ``bench_results/`` (Markdown table + JSON).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

if __package__ in (None, ""):  # run as a file: make `benchmarks` and `sam2kit` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import (  # noqa: E402
    Row,
    bench_image,
    build_sam2kit_model,
    machine_info,
    markdown_table,
    patch_reference_dtype,
    peak_rss_mib,
    reference_config_file,
    seeded_checkpoint,
    set_threads,
    write_results,
)

REPO = Path(__file__).resolve().parents[1]
SIDES = ("sam2kit", "reference")
FRAME_HW = (480, 640)
BOX = (300.0, 40.0, 560.0, 330.0)  # the astronaut's head and shoulders in frame 0


def panned_frames(count: int, height: int = FRAME_HW[0], width: int = FRAME_HW[1]) -> list[np.ndarray]:
    """``count`` frames of a window panning across the 1024x768 benchmark photograph."""
    photo = bench_image()
    return [np.ascontiguousarray(photo[8 * i : 8 * i + height, 12 * i : 12 * i + width]) for i in range(count)]


# ---------------------------------------------------------------------------- workers
def run_worker(args: argparse.Namespace) -> None:
    """Track the clip on one side; write ``<worker_out>.json`` (figures) and ``.npz`` (masks)."""
    set_threads(args.threads)
    import torch

    sync = torch.cuda.synchronize if args.device.startswith("cuda") else (lambda: None)
    folder = Path(args.frames_dir)
    started = time.perf_counter()
    latencies: list[float] = []
    masks: list[np.ndarray] = []
    figures: dict = {}
    if args.worker == "reference":
        from sam2.build_sam import build_sam2_video_predictor

        predictor = build_sam2_video_predictor(
            reference_config_file(args.config), args.checkpoint, device=args.device,
            hydra_overrides_extra=[f"++model.image_size={args.image_size}", "++model.fill_hole_area=0"],
        )
        patch_reference_dtype(predictor)
        figures["build_s"] = time.perf_counter() - started
        with torch.inference_mode():
            started = time.perf_counter()
            state = predictor.init_state(str(folder))
            sync()
            figures["init_s"] = time.perf_counter() - started
            predictor.add_new_points_or_box(state, 0, 1, box=np.array(BOX, dtype=np.float32))
            last = time.perf_counter()
            for frame_idx, _, logits in predictor.propagate_in_video(state):
                sync()
                now = time.perf_counter()
                if frame_idx > 0:
                    latencies.append(now - last)
                    masks.append((logits[0, 0] > 0).cpu().numpy())
                last = time.perf_counter()
    else:
        from sam2kit.io.frames import open_frames
        from sam2kit.predict.stream import StreamPredictor

        predictor = StreamPredictor(
            build_sam2kit_model(args.config, args.checkpoint, args.image_size, args.device), fill_hole_area=0
        )
        figures["build_s"] = time.perf_counter() - started
        with open_frames(folder) as source:
            frames = list(source)  # decoded up front: only tracking is timed
        started = time.perf_counter()
        predictor.load_first_frame(frames[0])
        predictor.add_new_prompt(0, 1, box=list(BOX))
        sync()
        figures["init_s"] = time.perf_counter() - started
        for frame in frames[1:]:
            started = time.perf_counter()
            _, logits = predictor.track(frame)
            sync()
            latencies.append(time.perf_counter() - started)
            masks.append((logits[0, 0] > 0).cpu().numpy())
        figures["retained_entries"] = predictor.inference_state.retained_entries()
    measured = latencies[args.warmup :]
    figures.update({
        "latencies_s": latencies,
        "frame_median_s": statistics.median(measured),
        "frame_min_s": min(measured),
        "frame_max_s": max(measured),
        "fps": 1.0 / statistics.median(measured),
        "peak_rss_mib": peak_rss_mib(),
    })
    if args.device.startswith("cuda"):
        figures["peak_cuda_mib"] = torch.cuda.max_memory_allocated() / 2**20
    out = Path(args.worker_out)
    np.savez_compressed(out.with_suffix(".npz"), masks=np.stack(masks[args.warmup :]))
    out.with_suffix(".json").write_text(json.dumps(figures))


# ---------------------------------------------------------------------------- parent
def _spawn_worker(side: str, config: str, args: argparse.Namespace, checkpoint: Path, frames_dir: Path,
                  folder: Path) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), str(REPO / "src"), env.get("PYTHONPATH")) if p)
    for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[variable] = str(args.threads)
    out = folder / f"{config}_{side}"
    command = [
        sys.executable, "-m", "benchmarks.bench_stream", "--worker", side, "--worker-out", str(out),
        "--checkpoint", str(checkpoint), "--config", config, "--frames-dir", str(frames_dir),
        "--image-size", str(args.image_size), "--threads", str(args.threads), "--warmup", str(args.warmup),
        "--device", args.device,
    ]
    print(f"[bench_stream] {config}: measuring {side} ...", file=sys.stderr, flush=True)
    subprocess.run(command, cwd=REPO, env=env, check=True)
    figures = json.loads(out.with_suffix(".json").read_text())
    with np.load(out.with_suffix(".npz")) as saved:
        figures["masks"] = saved["masks"]
    return figures


def run_parent(args: argparse.Namespace) -> int:
    from sam2kit.io.frames import write_frames_to_folder

    count = 1 + args.warmup + args.frames
    rows, sides_by_config, agreement = [], {}, {}
    with tempfile.TemporaryDirectory(prefix="bench_stream_") as temporary:
        frames_dir = write_frames_to_folder(panned_frames(count), Path(temporary) / "frames", quality=95)
        for config in args.configs:
            weights = seeded_checkpoint(config, Path(args.out) / "weights", seed=args.seed)
            figures = {side: _spawn_worker(side, config, args, weights, frames_dir, Path(temporary)) for side in SIDES}
            ours, ref = figures["sam2kit"], figures["reference"]
            agreement[config] = float((ours.pop("masks") == ref.pop("masks")).mean())
            sides_by_config[config] = figures
            rows += [
                Row(f"{config}: per frame, 1 object (median)", ours["frame_median_s"], ref["frame_median_s"]),
                Row(f"{config}: start (sam2kit first frame + prompt; reference init_state)", ours["init_s"],
                    ref["init_s"]),
                Row(f"{config}: peak RSS", ours["peak_rss_mib"], ref["peak_rss_mib"], unit="MiB"),
            ]
    name = f"stream_{args.image_size}px_{args.threads}threads_{args.device.replace(':', '')}"
    payload = {
        "benchmark": "stream",
        "configs": args.configs,
        "image_size": args.image_size,
        "frame_hw": list(FRAME_HW),
        "frames": {"warmup": args.warmup, "measured": args.frames},
        "seed": args.seed,
        "machine": machine_info(args.threads, args.device),
        "sides": sides_by_config,
        "mask_pixel_agreement": agreement,
    }
    md_path, json_path = write_results(args.out, name, rows, payload)
    print(markdown_table(rows))
    print()
    for config, figures in sides_by_config.items():
        print(
            f"{config}: sam2kit stream {figures['sam2kit']['fps']:.3f} frames/s, reference "
            f"{figures['reference']['fps']:.3f} frames/s; masks agree on {agreement[config]:.4%} of pixels"
        )
    print(f"medians of {args.frames} frames after {args.warmup} warm-up frame(s), "
          f"{FRAME_HW[1]}x{FRAME_HW[0]} frames, model {args.image_size}px")
    print(f"written: {md_path}, {json_path}", file=sys.stderr)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", nargs="+", default=["sam2.1_hiera_tiny", "sam2.1_hiera_small"],
                        help="preset names (default: sam2.1_hiera_tiny sam2.1_hiera_small)")
    parser.add_argument("--frames", type=int, default=10, help="timed frames after warm-up (default 10)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed frames after the prompt (default 2)")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads (default 2)")
    parser.add_argument("--image-size", type=int, default=1024, help="model input resolution (default 1024)")
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda, ...")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random weights (default 0)")
    parser.add_argument("--out", default=str(REPO / "bench_results"), help="results folder (default bench_results/)")
    parser.add_argument("--worker", choices=SIDES, help=argparse.SUPPRESS)
    parser.add_argument("--worker-out", help=argparse.SUPPRESS)
    parser.add_argument("--checkpoint", help=argparse.SUPPRESS)
    parser.add_argument("--config", help=argparse.SUPPRESS)
    parser.add_argument("--frames-dir", help=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.worker:
        run_worker(args)
        return 0
    if args.frames < 1 or args.warmup < 0:
        raise SystemExit("--frames must be >= 1 and --warmup >= 0")
    return run_parent(args)


if __name__ == "__main__":
    sys.exit(main())
