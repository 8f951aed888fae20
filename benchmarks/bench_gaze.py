"""``sam2kit gaze`` cost: seconds of processing per minute of recording (AOIs tracked from clicks,
stride 1 and 3) and peak memory for a short vs a long recording (it should stay flat: masks are
hit-tested frame by frame and never kept).

A synthetic recording is streamed to disk (moving, overlapping rectangles on a gradient, 30 Hz scene,
200 Hz gaze in a generic CSV), so writing a long one needs no memory either. Speed does not depend
on the weights, so the model is the chosen preset on seeded random weights. Each case runs in its
own process (its peak RSS is its own). Usage (repository root)::

    python -m benchmarks.bench_gaze --minutes 1 10 --strides 1 3 --config sam2.1_hiera_tiny --threads 2

Results go to ``bench_results/gaze.md`` and ``bench_results/gaze.json``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

if __package__ in (None, ""):  # run as a file: make `benchmarks` and `sam2kit` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import machine_info, peak_rss_mib, set_threads  # noqa: E402

FPS, GAZE_HZ = 30, 200
RECTS = ((0.2, 0.3, 0.15, (220, 40, 40)), (0.6, 0.5, 0.2, (40, 200, 60)), (0.4, 0.7, 0.12, (50, 80, 230)))


def _frame(t: float, height: int, width: int) -> np.ndarray:
    image = np.empty((height, width, 3), np.uint8)
    image[...] = np.linspace(30, 160, width, dtype=np.uint8)[None, :, None]
    for k, (cx, cy, half, color) in enumerate(RECTS):
        x = int((cx + 0.15 * np.sin(0.5 * t + k)) * width)
        y = int((cy + 0.1 * np.cos(0.4 * t + 2 * k)) * height)
        h = int(half * min(height, width))
        image[max(y - h, 0) : y + h, max(x - h, 0) : x + h] = color
    return image


def write_recording(folder: Path, minutes: float, height: int, width: int) -> tuple[Path, Path]:
    """``scene.mp4`` + ``gaze.csv`` (``t`` in s, ``x``, ``y`` in pixels), streamed to disk."""
    from sam2kit.io.video_writer import VideoWriter

    folder.mkdir(parents=True, exist_ok=True)
    frames = int(minutes * 60 * FPS)
    with VideoWriter(folder / "scene.mp4", fps=FPS) as writer:
        for index in range(frames):
            writer.write(_frame(index / FPS, height, width))
    rng = np.random.default_rng(0)
    with open(folder / "gaze.csv", "w") as handle:
        handle.write("t,x,y\n")
        for index in range(int(minutes * 60 * GAZE_HZ)):
            t = index / GAZE_HZ
            k = int(t / 0.4) % len(RECTS)  # hop between the rectangles every 0.4 s
            cx, cy = RECTS[k][0] + 0.15 * np.sin(0.5 * t + k), RECTS[k][1] + 0.1 * np.cos(0.4 * t + 2 * k)
            handle.write(f"{t:.6f},{cx * width + rng.normal(0, 2):.2f},{cy * height + rng.normal(0, 2):.2f}\n")
    return folder / "gaze.csv", folder / "scene.mp4"


def run_case(gaze_csv: Path, video: Path, stride: int, config: str, image_size: int | None) -> dict[str, float]:
    """One case in this process: read, track 3 clicked AOIs, hit-test; seconds and peak RSS."""
    import torch

    from sam2kit.gaze import PromptAOIs, analyse_gaze, group_aoi_prompts
    from sam2kit.io.eyetracking import read_generic_csv
    from sam2kit.model_spec import ModelSpec, load_model

    torch.manual_seed(0)
    model = load_model(ModelSpec(checkpoint=None, config=config, device="cpu", image_size=image_size))
    recording = read_generic_csv(gaze_csv, video, time_column="t")
    height, width = recording.camera.height, recording.camera.width
    clicks = [(0, k + 1, (cx * width + 0.15 * np.sin(k) * width, cy * height + 0.1 * np.cos(2 * k) * height, 1))
              for k, (cx, cy, _, _) in enumerate(RECTS)]
    started = time.perf_counter()
    tables = analyse_gaze(recording, PromptAOIs(group_aoi_prompts(clicks, []), model=model), stride=stride,
                          fixation_options=None)
    seconds = time.perf_counter() - started
    minutes = recording.frame_times_s[-1] / 60 + 1 / FPS / 60
    return {"seconds": seconds, "seconds_per_minute": seconds / minutes, "peak_rss_mib": peak_rss_mib(),
            "frames": recording.num_frames, "samples": len(tables.samples)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, nargs="+", default=[1.0, 10.0])
    parser.add_argument("--strides", type=int, nargs="+", default=[1, 3])
    parser.add_argument("--config", default="sam2.1_hiera_tiny")
    parser.add_argument("--image-size", type=int, help="model input size (default: the config's, 1024)")
    parser.add_argument("--size", type=int, nargs=2, default=[480, 640], metavar=("H", "W"), help="scene frame size")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default="bench_results")
    parser.add_argument("--child", nargs=3, metavar=("CSV", "VIDEO", "STRIDE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    set_threads(args.threads)
    if args.child:
        result = run_case(Path(args.child[0]), Path(args.child[1]), int(args.child[2]), args.config, args.image_size)
        print(json.dumps(result))
        return
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for minutes in args.minutes:
            gaze_csv, video = write_recording(Path(scratch) / f"rec_{minutes}", minutes, *args.size)
            for stride in args.strides:
                command = [sys.executable, "-m", "benchmarks.bench_gaze", "--config", args.config, "--threads",
                           str(args.threads), "--child", str(gaze_csv), str(video), str(stride)]
                if args.image_size:
                    command += ["--image-size", str(args.image_size)]
                done = subprocess.run(command, capture_output=True, text=True, check=True,
                                      cwd=Path(__file__).resolve().parents[1])
                result = json.loads(done.stdout.strip().splitlines()[-1])
                rows.append({"minutes": minutes, "stride": stride, **result})
                print(f"{minutes:g} min, stride {stride}: {result['seconds_per_minute']:.1f} s per minute, "
                      f"peak RSS {result['peak_rss_mib']:.0f} MiB", flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    lines = ["# gaze", "", f"{args.config}, frames {args.size[1]}x{args.size[0]}, {args.threads} threads", "",
             "| recording (min) | stride | s per minute of recording | peak RSS (MiB) |", "|---:|---:|---:|---:|"]
    lines += [f"| {r['minutes']:g} | {r['stride']} | {r['seconds_per_minute']:.1f} | {r['peak_rss_mib']:.0f} |"
              for r in rows]
    (out / "gaze.md").write_text("\n".join(lines) + "\n")
    (out / "gaze.json").write_text(json.dumps({"machine": machine_info(args.threads), "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
