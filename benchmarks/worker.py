"""One benchmark side in its own process, driven by :mod:`benchmarks.run` over stdin / stdout.

Each side runs alone in its process, so its peak RSS, thread pools and caches are its own. Every op
returns a JSON object; timed ops return ``{"seconds": ...}`` for one run, and the parent alternates
the sides run by run (see :func:`benchmarks.common.time_interleaved`).

    python -m benchmarks.worker --side sam2kit --config sam2.1_hiera_tiny --checkpoint W.pt \\
        --image-size 1024 --threads 2 --device cpu
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

if __package__ in (None, ""):  # run as a file: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import bench_image, current_rss_mib, open_channel, peak_rss_mib, serve, set_threads, time_once  # noqa: E402
from benchmarks.scenes import CLICK, benchmark_boxes, clicks, frame_hw  # noqa: E402


def reset_peak_rss() -> bool:
    """Reset the kernel's RSS high-water mark (Linux ``/proc/self/clear_refs``), after returning
    freed heap memory to the OS; False where that is not possible."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass
    try:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
    except OSError:
        return False
    return True


class Handlers:
    """The ops of one side (see the module docstring)."""

    def __init__(self, side: Any, args: argparse.Namespace, build_rss: float) -> None:
        import torch

        from benchmarks.hardware import synchronizer

        self.side = side
        self.args = args
        self.sync = synchronizer(args.device)
        self.build_rss = build_rss
        self.image = bench_image()
        height, width = self.image.shape[:2]
        self.box_prompts = benchmark_boxes(width, height)
        generator = torch.Generator().manual_seed(0)
        size = args.image_size
        self.encoder_input = torch.randn(1, 3, size, size, generator=generator).to(args.device)
        self.session: dict[str, Any] = {}
        self.last_masks: list[dict[str, Any]] = []

    def ops(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in (
            "set_image", "click", "boxes", "encoder", "encoder_flops", "image_outputs", "first_mask",
            "propagate_start", "propagate_next", "propagate_end", "amg", "amg_outputs", "track_all", "rss", "gemm",
        )}

    def _timed(self, fn: Any) -> dict[str, Any]:
        return {"seconds": time_once(fn, self.sync)}

    # ------------------------------------------------------------------ image
    def set_image(self) -> dict[str, Any]:
        return self._timed(lambda: self.side.set_image(self.image))

    def click(self) -> dict[str, Any]:
        return self._timed(lambda: self.side.predict_click(CLICK))

    def boxes(self) -> dict[str, Any]:
        return self._timed(lambda: self.side.predict_boxes(self.box_prompts))

    def encoder(self) -> dict[str, Any]:
        return self._timed(lambda: self.side.forward_image(self.encoder_input))

    def encoder_flops(self) -> dict[str, Any]:
        from benchmarks.hardware import count_flops

        return {"gflop": count_flops(lambda: self.side.forward_image(self.encoder_input)) / 1e9}

    def image_outputs(self, outputs: str) -> dict[str, Any]:
        self.side.set_image(self.image)
        click_masks, click_scores = self.side.predict_click(CLICK)
        box_masks, box_scores = self.side.predict_boxes(self.box_prompts)
        np.savez_compressed(outputs, click_masks=click_masks, click_scores=np.asarray(click_scores),
                            box_masks=box_masks, box_scores=np.asarray(box_scores))
        return self.rss()

    # ------------------------------------------------------------------ video
    def first_mask(self, folder: str) -> dict[str, Any]:
        """``init_state`` on the folder + one click on frame 0 (the user's time to a first mask)."""
        point = clicks(1, *frame_hw(folder))[0]

        def run() -> None:
            self.side.video_open(folder)
            self.side.video_click(0, 1, point)

        seconds = time_once(run, self.sync)
        self.side.video_close()
        gc.collect()
        return {"seconds": seconds, "peak_rss_mib": peak_rss_mib()}

    def propagate_start(self, folder: str, num_objects: int, profile: bool = True) -> dict[str, Any]:
        """Open the clip, click every object on frame 0, pull the prompted frame (untimed)."""
        started = time.perf_counter()
        self.side.video_open(folder)
        for obj_id, point in enumerate(clicks(num_objects, *frame_hw(folder)), start=1):
            self.side.video_click(0, obj_id, point)
        frames = self.side.video_propagate()
        _, masks = next(frames)
        stages = self.side.stage_modules() if profile and hasattr(self.side, "stage_modules") else None
        self.session = {"frames": frames, "masks": [masks], "stages": stages}
        return {"init_and_prompt_s": time.perf_counter() - started, "profiled": stages is not None}

    def propagate_next(self, count_flops: bool = False) -> dict[str, Any]:
        """Seconds to the next yielded frame, and each stage's share (``done`` at the end)."""
        from benchmarks.hardware import StageProfiler

        stages = self.session["stages"]
        profiler = StageProfiler(stages or {}, count=count_flops, device=self.args.device)
        with profiler:
            started = time.perf_counter()
            step = next(self.session["frames"], None)
            if self.sync:
                self.sync()
            seconds = time.perf_counter() - started
        if step is None:
            return {"done": True}
        self.session["masks"].append(step[1])
        reply: dict[str, Any] = {"done": False, "frame_idx": step[0], "seconds": seconds}
        if stages is not None:
            reply["stage_s"] = profiler.seconds
            if count_flops:
                reply["stage_gflop"] = {name: flops / 1e9 for name, flops in profiler.flops.items()}
        return reply

    def propagate_end(self, outputs: str) -> dict[str, Any]:
        np.savez_compressed(outputs, masks=np.stack(self.session["masks"]))
        self.session = {}
        self.side.video_close()
        gc.collect()
        return self.rss()

    def track_all(self, folder: str) -> dict[str, Any]:
        """One object tracked through every frame; peak RSS from ``init_state`` on."""
        point = clicks(1, *frame_hw(folder))[0]
        hwm_reset = reset_peak_rss()
        baseline_rss = current_rss_mib()
        started = time.perf_counter()
        self.side.video_open(folder)
        self.side.video_click(0, 1, point)
        init_s = time.perf_counter() - started
        seconds, last = [], time.perf_counter()
        for _ in self.side.video_propagate():
            now = time.perf_counter()
            seconds.append(now - last)
            last = now
        video_peak = peak_rss_mib()
        self.side.video_close()
        return {
            "frames": len(seconds),
            "init_and_prompt_s": init_s,
            "track_s": sum(seconds),
            "frame_median_s": statistics.median(seconds[1:] or seconds),
            "peak_rss_after_build_mib": self.build_rss,
            "rss_before_video_mib": baseline_rss,
            "peak_rss_video_mib": video_peak if hwm_reset else None,
            "peak_rss_mib": max(self.build_rss, video_peak),
            "current_rss_mib": current_rss_mib(),
        }

    # ------------------------------------------------------------------ automatic masks
    def amg(self, points_per_side: int) -> dict[str, Any]:
        def run() -> None:
            self.last_masks = self.side.generate_masks(self.image, points_per_side)

        seconds = time_once(run, self.sync)
        return {"seconds": seconds, "masks": len(self.last_masks)}

    def amg_outputs(self, outputs: str) -> dict[str, Any]:
        from sam2kit.io.masks import to_coco_rle

        records = self.last_masks
        masks = np.stack([r["segmentation"] for r in records]) if records else np.zeros((0, 1, 1), bool)
        rles = to_coco_rle(masks) if records else []
        saved = [
            {"bbox": [float(v) for v in r["bbox"]], "segmentation": rle}
            for r, rle in zip(records, rles, strict=True)
        ]
        import json

        Path(outputs).write_text(json.dumps(saved))
        return self.rss()

    # ------------------------------------------------------------------ machine
    def rss(self) -> dict[str, Any]:
        reply: dict[str, Any] = {"peak_rss_mib": peak_rss_mib(), "current_rss_mib": current_rss_mib()}
        if self.sync is not None:
            import torch

            reply["peak_cuda_mib"] = torch.cuda.max_memory_allocated() / 2**20
        return reply

    def gemm(self, dtype: str) -> dict[str, Any]:
        import torch

        from benchmarks.hardware import gemm_gflops

        return gemm_gflops(self.args.device, getattr(torch, dtype))


def main(argv: list[str] | None = None) -> int:
    from benchmarks.sides import SIDE_NAMES, make_side

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--side", required=True, choices=SIDE_NAMES)
    parser.add_argument("--config", required=True)
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--image-size", type=int, default=1024)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    channel = open_channel()
    set_threads(args.threads)
    import torch

    torch.set_grad_enabled(False)
    started = time.perf_counter()
    side = make_side(args.side, args.config, args.checkpoint, args.image_size, args.device)
    build_s = time.perf_counter() - started
    build_rss = peak_rss_mib()
    serve(channel, Handlers(side, args, build_rss).ops(), {"build_s": build_s, "peak_rss_after_build_mib": build_rss})
    return 0


if __name__ == "__main__":
    sys.exit(main())
