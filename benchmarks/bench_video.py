"""Video predictor speed and memory, sam2kit beside the reference ``sam2`` package.

Three figures, both sides on the same seeded random checkpoint and the same JPEG folders (hole
filling off on both: the reference skips it without its CUDA extension):

1. **Time to first mask** on a ``--video-frames`` (default 300) frame 480x854 clip: wall time of
   ``init_state(folder)`` + ``add_new_points_or_box`` (one click) on frame 0. The reference loads,
   resizes and normalises every frame in ``init_state``; sam2kit decodes lazily. Median of
   ``--repeats`` runs per side after one warm-up, sides alternated run by run.
2. **Propagation per frame**, 1 and 3 objects (clicked on frame 0), on a short clip of
   ``1 + --propagation-warmup + --propagation-frames`` frames of the same video: the time to the
   next frame yielded by ``propagate_in_video`` (sam2kit's includes decoding the frame's JPEG; the
   reference decoded every frame in ``init_state``), the sides alternated frame by frame. Median
   over the frames after the warm-up ones. The two sides' masks are compared.
3. **Peak RSS vs video length**: one object tracked through every frame of clips of
   ``--rss-lengths`` frames (small 240x320 frames, model ``--rss-image-size``, default 256, so that
   1,000 frames finish), each length in a fresh worker process (peak RSS = ``ru_maxrss`` of that
   process: imports, model, video, tracking). The reference can be run on other lengths
   (``--rss-reference-lengths``) when it is too slow for the longest; growth per frame is reported
   for both sides.

Each side runs in its own worker process (peak RSS, thread pools and caches are its own). The
reference runs with a dtype patch for fp32 on CPU (see ``shared/REFERENCE.md``): stored bf16
memories are cast to the query dtype, which its own concat already does whenever an object pointer
is present, as on every frame here.

Usage (from the repository root, with the reference installed: pip install sam2==1.1.0)::

    python -m benchmarks.bench_video --threads 2                 # everything (20-40 min on 2 cores)
    python -m benchmarks.bench_video --skip-rss                  # figures 1-2 only
    python -m benchmarks.bench_video --skip-first-mask --skip-propagation   # figure 3 only
    python -m benchmarks.bench_video --skip-rss --skip-propagation --repeats 5

Results go to ``bench_results/`` (Markdown table + JSON); parts run alone get their own file name.
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator

import numpy as np

if __package__ in (None, ""):  # run as a file: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import (  # noqa: E402
    Row,
    Worker,
    bench_image,
    build_sam2kit_model,
    current_rss_mib,
    machine_info,
    markdown_table,
    open_channel,
    peak_rss_mib,
    reference_config_file,
    seeded_checkpoint,
    serve,
    set_threads,
    time_interleaved,
    time_once,
    write_results,
)

REPO = Path(__file__).resolve().parents[1]
SIDES = ("sam2kit", "reference")
VIDEO_HW = (480, 854)
RSS_HW = (240, 320)
#: Clicks as fractions of the frame's width and height (the first: the astronaut's face on frame 0).
CLICKS = ((0.54, 0.375), (0.25, 0.70), (0.80, 0.80))


# ---------------------------------------------------------------------------- the video
def panned_clip(count: int, height: int, width: int) -> Iterator[np.ndarray]:
    """``count`` frames ``(height, width, 3)`` uint8 of a window panning back and forth across the
    benchmark photograph (scaled so that a 480x854 window sees the 1024x768 original). Lazy."""
    photo = bench_image((max(round(width * 1024 / 854), width + 16), max(round(height * 768 / 480), height + 16)))
    span_y, span_x = photo.shape[0] - height, photo.shape[1] - width

    def bounce(position: int, span: int) -> int:
        position %= 2 * span
        return position if position <= span else 2 * span - position

    step_x, step_y = max(1, round(3 * width / 854)), max(1, round(2 * height / 480))
    for index in range(count):
        y, x = bounce(step_y * index, span_y), bounce(step_x * index, span_x)
        yield np.ascontiguousarray(photo[y : y + height, x : x + width])


def clicks(num_objects: int, height: int, width: int) -> list[tuple[float, float]]:
    if not 1 <= num_objects <= len(CLICKS):
        raise ValueError(f"1 to {len(CLICKS)} objects, got {num_objects}")
    return [(fx * width, fy * height) for fx, fy in CLICKS[:num_objects]]


# ---------------------------------------------------------------------------- worker
def _patch_reference_dtype(predictor: Any) -> None:
    """Cast stored bf16 memories to the query dtype (the reference relies on CUDA autocast; see
    shared/REFERENCE.md). A no-op whenever its concat already promoted them to fp32."""
    original = predictor.memory_attention.forward

    def forward(curr, memory, curr_pos=None, memory_pos=None, num_obj_ptr_tokens=0):  # type: ignore[no-untyped-def]
        dtype = curr[0].dtype if isinstance(curr, list) else curr.dtype
        return original(curr=curr, memory=memory.to(dtype), curr_pos=curr_pos, memory_pos=memory_pos.to(dtype),
                        num_obj_ptr_tokens=num_obj_ptr_tokens)

    predictor.memory_attention.forward = forward


def _build_predictor(side: str, config: str, checkpoint: str, image_size: int) -> Any:
    if side == "reference":
        from sam2.build_sam import build_sam2_video_predictor

        predictor = build_sam2_video_predictor(
            reference_config_file(config), checkpoint, device="cpu",
            hydra_overrides_extra=[f"++model.image_size={image_size}", "++model.fill_hole_area=0"],
        )
        _patch_reference_dtype(predictor)
        return predictor
    from sam2kit.predict.video import VideoPredictor

    return VideoPredictor(build_sam2kit_model(config, checkpoint, image_size, "cpu"), fill_hole_area=0,
                          show_progress=False)


def _frame_hw(folder: Path) -> tuple[int, int]:
    from PIL import Image

    with Image.open(next(iter(sorted(folder.glob("*.jpg"))))) as image:
        return image.height, image.width


def _prompt(predictor: Any, state: Any, points: list[tuple[float, float]]) -> Any:
    """One positive click per object on frame 0, objects 1, 2, ...; returns the last output."""
    out = None
    for obj_id, point in enumerate(points, start=1):
        out = predictor.add_new_points_or_box(state, 0, obj_id, points=np.array([point], dtype=np.float32),
                                              labels=np.array([1], dtype=np.int32))
    return out


def _track(predictor: Any, state: Any) -> list[float]:
    """Propagate through the whole clip, dropping the masks; seconds between consecutive yielded
    frames (the first yield, the prompted frame, is not timed)."""
    seconds = []
    last = time.perf_counter()
    for frame_idx, _, logits in predictor.propagate_in_video(state):
        now = time.perf_counter()
        if frame_idx > 0:
            seconds.append(now - last)
        del logits
        last = time.perf_counter()
    return seconds


def _reset_peak_rss() -> bool:
    """Release freed memory, then reset this process's RSS high-water mark (Linux: writing 5 to
    /proc/self/clear_refs resets VmHWM, which ``ru_maxrss`` then reports), so that a later
    :func:`peak_rss_mib` measures the video alone and not the checkpoint loading before it."""
    gc.collect()
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


def run_worker(args: argparse.Namespace) -> None:
    """One side: build the predictor, then answer the parent's ops (see ``serve``)."""
    channel = open_channel()
    set_threads(args.threads)
    import torch

    torch.set_grad_enabled(False)
    started = time.perf_counter()
    predictor = _build_predictor(args.worker, args.config, args.checkpoint, args.image_size)
    build_s = time.perf_counter() - started
    build_rss = peak_rss_mib()

    def first_mask() -> dict[str, Any]:
        folder = Path(args.video_dir)
        points = clicks(1, *_frame_hw(folder))
        holder: dict[str, Any] = {}

        def run() -> None:
            state = predictor.init_state(str(folder))
            holder["out"] = _prompt(predictor, state, points)
            holder["state"] = state

        seconds = time_once(run)
        holder.clear()
        gc.collect()
        return {"seconds": seconds, "peak_rss_mib": peak_rss_mib()}

    session: dict[str, Any] = {}

    def propagate_start(folder: str, num_objects: int) -> dict[str, Any]:
        """Open the clip, click every object on frame 0, and pull the prompted frame (untimed)."""
        path = Path(folder)
        points = clicks(num_objects, *_frame_hw(path))
        started = time.perf_counter()
        state = predictor.init_state(str(path))
        _prompt(predictor, state, points)
        prompt_s = time.perf_counter() - started
        frames = predictor.propagate_in_video(state)
        _, _, logits = next(frames)
        session.update(state=state, frames=frames, masks=[(logits[:, 0] > 0).cpu().numpy()])
        return {"init_and_prompt_s": prompt_s}

    def propagate_next() -> dict[str, Any]:
        """Seconds to the next yielded frame (``done`` at the end of the clip)."""
        started = time.perf_counter()
        step = next(session["frames"], None)
        seconds = time.perf_counter() - started
        if step is None:
            return {"done": True}
        session["masks"].append((step[2][:, 0] > 0).cpu().numpy())
        return {"done": False, "frame_idx": step[0], "seconds": seconds}

    def propagate_end(outputs: str) -> dict[str, Any]:
        np.savez_compressed(outputs, masks=np.stack(session["masks"]))
        session.clear()
        gc.collect()
        return {"peak_rss_mib": peak_rss_mib()}

    def track_all(folder: str) -> dict[str, Any]:
        path = Path(folder)
        points = clicks(1, *_frame_hw(path))
        hwm_reset = _reset_peak_rss()
        baseline_rss = current_rss_mib()
        started = time.perf_counter()
        state = predictor.init_state(str(path))
        _prompt(predictor, state, points)
        init_s = time.perf_counter() - started
        after_init = peak_rss_mib()
        seconds = _track(predictor, state)
        video_peak = peak_rss_mib()
        return {
            "frames": len(seconds) + 1,
            "init_and_prompt_s": init_s,
            "track_s": sum(seconds),
            "frame_median_s": statistics.median(seconds),
            "peak_rss_after_build_mib": build_rss,
            "rss_before_video_mib": baseline_rss,
            # ru_maxrss since the high-water mark was reset after the build (if it could be)
            "peak_rss_video_mib": video_peak if hwm_reset else None,
            "peak_rss_after_init_mib": after_init,
            "peak_rss_mib": max(build_rss, video_peak),
            "current_rss_mib": current_rss_mib(),
        }

    handlers = {"first_mask": first_mask, "propagate_start": propagate_start, "propagate_next": propagate_next,
                "propagate_end": propagate_end, "track_all": track_all,
                "rss": lambda: {"peak_rss_mib": peak_rss_mib(), "current_rss_mib": current_rss_mib()}}
    serve(channel, handlers, {"build_s": build_s, "peak_rss_after_build_mib": build_rss})


# ---------------------------------------------------------------------------- parent
def _log(message: str) -> None:
    print(f"[bench_video] {time.strftime('%H:%M:%S')} {message}", file=sys.stderr, flush=True)


def _start_worker(side: str, args: argparse.Namespace, checkpoint: Path, image_size: int,
                  video_dir: Path | None = None) -> Worker:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), str(REPO / "src"), env.get("PYTHONPATH")) if p)
    for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[variable] = str(args.threads)
    env["TQDM_DISABLE"] = "1"  # the reference's frame-loading progress bar
    command = [
        sys.executable, "-m", "benchmarks.bench_video", "--worker", side, "--checkpoint", str(checkpoint),
        "--config", args.config, "--image-size", str(image_size), "--threads", str(args.threads),
    ]
    if video_dir is not None:
        command += ["--video-dir", str(video_dir)]
    return Worker(side, command, env=env, cwd=REPO)


def _write_clip(folder: Path, count: int, hw: tuple[int, int]) -> Path:
    from sam2kit.io.frames import write_frames_to_folder

    return write_frames_to_folder(panned_clip(count, *hw), folder, quality=90)


def _first_mask_and_propagation(args: argparse.Namespace, weights: Path, temporary: Path,
                                payload: dict[str, Any]) -> list[Row]:
    rows: list[Row] = []
    video_dir = _write_clip(temporary / f"video_{args.video_frames}", args.video_frames, VIDEO_HW)
    short_len = 1 + args.propagation_warmup + args.propagation_frames
    short_dir = _write_clip(temporary / f"clip_{short_len}", short_len, VIDEO_HW)
    workers: list[Worker] = []
    try:
        for side in SIDES:
            _log(f"starting the {side} worker (model {args.image_size}px) ...")
            workers.append(_start_worker(side, args, weights, args.image_size, video_dir))
        payload["build"] = {w.name: w.hello for w in workers}
        if not args.skip_first_mask:
            _log(f"time to first mask on {args.video_frames} frames: 1 warm-up + {args.repeats} runs per side ...")
            timing = time_interleaved(workers, "first_mask", repeats=args.repeats, warmup=1)
            memory = {w.name: w.call("rss") for w in workers}
            payload["first_mask"] = {"timings": {side: t.to_json() for side, t in timing.items()},
                                     "memory_after": memory, "video_frames": args.video_frames}
            hw = f"{VIDEO_HW[1]}x{VIDEO_HW[0]}"
            rows += [
                Row(f"time to first mask, {args.video_frames} frames {hw} (init_state + 1 click)",
                    timing["sam2kit"].median, timing["reference"].median),
                Row(f"peak RSS after first masks on {args.video_frames} frames", memory["sam2kit"]["peak_rss_mib"],
                    memory["reference"]["peak_rss_mib"], unit="MiB"),
            ]
        if not args.skip_propagation:
            payload["propagation"] = {"clip_frames": short_len, "warmup_frames": args.propagation_warmup}
            for num_objects in args.objects:
                _log(f"propagation, {num_objects} object(s), {short_len} frames, sides alternated frame by frame ...")
                per_side = {w.name: w.call("propagate_start", folder=str(short_dir), num_objects=num_objects)
                            for w in workers}
                for side in per_side.values():
                    side["frame_s"] = []
                for index in range(short_len - 1):
                    for worker in workers if index % 2 == 0 else list(reversed(workers)):
                        step = worker.call("propagate_next")
                        if step["done"]:
                            raise RuntimeError(f"{worker.name} stopped after {index} tracked frames")
                        per_side[worker.name]["frame_s"].append(step["seconds"])
                masks = {}
                for worker in workers:
                    out = temporary / f"masks_{worker.name}_{num_objects}.npz"
                    per_side[worker.name].update(worker.call("propagate_end", outputs=str(out)))
                    with np.load(out) as saved:
                        masks[worker.name] = saved["masks"]
                    per_side[worker.name]["median_s"] = statistics.median(
                        per_side[worker.name]["frame_s"][args.propagation_warmup :])
                agreement = float((masks["sam2kit"] == masks["reference"]).mean())
                payload["propagation"][f"{num_objects}_objects"] = {**per_side, "mask_pixel_agreement": agreement}
                rows.append(Row(f"propagate, per frame, {num_objects} object{'s' if num_objects > 1 else ''} "
                                f"(median of {args.propagation_frames}; masks agree {agreement:.3%})",
                                per_side["sam2kit"]["median_s"], per_side["reference"]["median_s"]))
    finally:
        for worker in workers:
            worker.close()
    return rows


def _rss_vs_length(args: argparse.Namespace, weights: Path, temporary: Path, payload: dict[str, Any]) -> list[Row]:
    lengths = {"sam2kit": sorted(args.rss_lengths), "reference": sorted(args.rss_reference_lengths)}
    results: dict[str, dict[int, dict[str, Any]]] = {side: {} for side in SIDES}
    folders: dict[int, Path] = {}
    for side in SIDES:
        for length in lengths[side]:
            if length not in folders:
                folders[length] = _write_clip(temporary / f"rss_{length}", length, RSS_HW)
            _log(f"peak RSS: {side}, {length} frames {RSS_HW[1]}x{RSS_HW[0]}, model {args.rss_image_size}px "
                 f"(fresh process) ...")
            worker = _start_worker(side, args, weights, args.rss_image_size)
            try:
                results[side][length] = worker.call("track_all", folder=str(folders[length]))
            finally:
                worker.close()
            figures = results[side][length]
            _log(f"  peak RSS {figures['peak_rss_mib']:.0f} MiB, {figures['frame_median_s'] * 1000:.0f} ms/frame")
    size = f"model {args.rss_image_size}px, {RSS_HW[1]}x{RSS_HW[0]} frames"
    growth = {}
    for side in SIDES:
        short, long = results[side][lengths[side][0]], results[side][lengths[side][-1]]
        span = max(lengths[side][-1] - lengths[side][0], 1)
        growth[side] = {"lengths": [lengths[side][0], lengths[side][-1]]}
        for key in ("peak_rss_mib", "peak_rss_video_mib"):
            if short[key] is not None and long[key] is not None:
                growth[side][key] = {"ratio": long[key] / short[key], "kib_per_frame": (long[key] - short[key]) * 1024 / span}
    rows = []
    for length in sorted(set(lengths["sam2kit"]) & set(lengths["reference"])):
        ours, ref = results["sam2kit"][length], results["reference"][length]
        rows.append(Row(f"peak RSS, 1 object, {length} frames, whole process ({size})", ours["peak_rss_mib"],
                        ref["peak_rss_mib"], unit="MiB"))
        if ours["peak_rss_video_mib"] is not None and ref["peak_rss_video_mib"] is not None:
            rows.append(Row(f"peak RSS, 1 object, {length} frames, from init_state on ({size})",
                            ours["peak_rss_video_mib"], ref["peak_rss_video_mib"], unit="MiB"))
    payload["rss_vs_length"] = {"image_size": args.rss_image_size, "frame_hw": list(RSS_HW),
                                "results": {side: {str(k): v for k, v in r.items()} for side, r in results.items()},
                                "growth": growth}
    return rows


def _mib(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.0f} MiB"


def _rss_summary(payload: dict[str, Any]) -> list[str]:
    section = payload.get("rss_vs_length")
    if not section:
        return []
    lines = ["", f"Peak RSS vs video length (model {section['image_size']}px, "
                 f"{section['frame_hw'][1]}x{section['frame_hw'][0]} frames, 1 object tracked through every frame, "
                 "fresh process per run; 'from init_state on': ru_maxrss after resetting the high-water mark "
                 "once the model was built):", "",
             "| side | frames | peak RSS, whole process | peak after build | RSS before video | "
             "peak from init_state on | RSS at the end | per frame (median) |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for side, per_length in section["results"].items():
        for length, f in sorted(per_length.items(), key=lambda item: int(item[0])):
            lines.append(f"| {side} | {length} | {_mib(f['peak_rss_mib'])} | {_mib(f['peak_rss_after_build_mib'])} | "
                         f"{_mib(f['rss_before_video_mib'])} | {_mib(f['peak_rss_video_mib'])} | "
                         f"{_mib(f['current_rss_mib'])} | {f['frame_median_s'] * 1000:.0f} ms |")
    lines.append("")
    for side, growth in section["growth"].items():
        short, long = growth["lengths"]
        for key, label in (("peak_rss_mib", "whole process"), ("peak_rss_video_mib", "from init_state on")):
            if key in growth:
                lines.append(f"- {side}, {label}: peak RSS at {long} / at {short} frames = {growth[key]['ratio']:.3f} "
                             f"({growth[key]['kib_per_frame']:+.1f} KiB per extra frame)")
    return lines


def _setup_notes(args: argparse.Namespace, payload: dict[str, Any]) -> list[str]:
    notes = [""]
    if "first_mask" in payload:
        notes.append(f"- Time to first mask: `init_state` on a folder of {args.video_frames} JPEG frames "
                     f"{VIDEO_HW[1]}x{VIDEO_HW[0]} + one click on frame 0; median of {args.repeats} runs per side "
                     "after 1 warm-up, sides alternated. Peak RSS of that worker after those runs.")
    if "propagation" in payload:
        clip = payload["propagation"]["clip_frames"]
        notes.append(f"- Propagation: {clip}-frame clip of the same video, one click per object on frame 0; "
                     f"median of frames {args.propagation_warmup + 1}-{clip - 1} (frames 1-{args.propagation_warmup} "
                     "untimed), the sides alternated frame by frame; masks compared on every frame.")
    load = payload["machine"].get("load_average_before"), payload["machine"].get("load_average")
    if load[0] and load[1]:
        notes.append(f"- Load average (1 min) {load[0][0]:.1f} before, {load[1][0]:.1f} after, on "
                     f"{payload['machine'].get('logical_cores')} cores (shared machine).")
    return notes if len(notes) > 1 else []


def run_parent(args: argparse.Namespace) -> int:
    weights = seeded_checkpoint(args.config, Path(args.out) / "weights", seed=args.seed)
    load_before = os.getloadavg() if hasattr(os, "getloadavg") else None
    payload: dict[str, Any] = {
        "benchmark": "video",
        "config": args.config,
        "image_size": args.image_size,
        "video_hw": list(VIDEO_HW),
        "clicks_fraction_xy": CLICKS,
        "repeats": args.repeats,
        "seed": args.seed,
    }
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="bench_video_") as name:
        temporary = Path(name)
        if not (args.skip_first_mask and args.skip_propagation):
            rows += _first_mask_and_propagation(args, weights, temporary, payload)
        if not args.skip_rss:
            rows += _rss_vs_length(args, weights, temporary, payload)
    machine = machine_info(args.threads, "cpu")
    machine["load_average_before"] = load_before
    payload["machine"] = machine
    timed = not (args.skip_first_mask and args.skip_propagation)
    name = f"video_{args.config}" + (f"_{args.image_size}px" if timed else "")
    name += ("" if args.skip_rss else f"_rss{args.rss_image_size}px") + f"_{args.threads}threads_cpu"
    if timed and (args.skip_first_mask or args.skip_propagation):
        name += "_first_mask" if args.skip_propagation else "_propagation"
    summary = _setup_notes(args, payload) + _rss_summary(payload)
    md_path, json_path = write_results(args.out, name, rows, payload)
    if summary:
        with md_path.open("a") as md:
            md.write("\n".join(summary) + "\n")
    print(markdown_table(rows))
    print("\n".join(summary))
    sizes = ([f"model {args.image_size}px for figures 1-2"] if timed else []) + (
        [] if args.skip_rss else [f"model {args.rss_image_size}px for peak RSS vs length"])
    print(f"\nfp32 CPU, {args.threads} threads, {args.config}, {', '.join(sizes)}; "
          f"load average {load_before[0] if load_before else float('nan'):.1f} -> {machine['load_average'][0]:.1f} "
          f"on {os.cpu_count()} cores")
    if load_before is not None and max(load_before[0], machine["load_average"][0]) > (os.cpu_count() or 1):
        print("warning: the machine was busy; absolute times are inflated", file=sys.stderr)
    print(f"written: {md_path}, {json_path}", file=sys.stderr)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="sam2.1_hiera_tiny", help="preset name (default sam2.1_hiera_tiny)")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads (default 2)")
    parser.add_argument("--image-size", type=int, default=1024,
                        help="model input resolution of figures 1-2 (default 1024)")
    parser.add_argument("--repeats", type=int, default=3, help="timed first-mask runs per side after 1 warm-up (default 3)")
    parser.add_argument("--video-frames", type=int, default=300, help="frames of the first-mask video (default 300)")
    parser.add_argument("--propagation-frames", type=int, default=6, help="timed propagation frames (default 6)")
    parser.add_argument("--propagation-warmup", type=int, default=2, help="untimed frames after the prompt (default 2)")
    parser.add_argument("--objects", type=int, nargs="+", default=[1, 3], help="object counts to propagate (default 1 3)")
    parser.add_argument("--rss-image-size", type=int, default=256, help="model resolution of figure 3 (default 256)")
    parser.add_argument("--rss-lengths", type=int, nargs=2, default=[100, 1000],
                        help="sam2kit video lengths of figure 3 (default 100 1000)")
    parser.add_argument("--rss-reference-lengths", type=int, nargs=2, default=[100, 1000],
                        help="reference video lengths of figure 3 (default 100 1000)")
    parser.add_argument("--skip-first-mask", action="store_true", help="skip figure 1")
    parser.add_argument("--skip-propagation", action="store_true", help="skip figure 2")
    parser.add_argument("--skip-rss", action="store_true", help="skip figure 3")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random weights (default 0)")
    parser.add_argument("--out", default=str(REPO / "bench_results"), help="results folder (default bench_results/)")
    parser.add_argument("--worker", choices=SIDES, help=argparse.SUPPRESS)
    parser.add_argument("--checkpoint", help=argparse.SUPPRESS)
    parser.add_argument("--video-dir", help=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.worker:
        run_worker(args)
        return 0
    if args.skip_first_mask and args.skip_propagation and args.skip_rss:
        raise SystemExit("nothing to run: every figure is skipped")
    if args.repeats < 1 or args.propagation_frames < 1 or args.propagation_warmup < 0:
        raise SystemExit("--repeats and --propagation-frames must be >= 1, --propagation-warmup >= 0")
    if args.repeats < 3:
        print("[bench_video] note: fewer than 3 repeats make the medians noisy", file=sys.stderr)
    if any(not 1 <= n <= len(CLICKS) for n in args.objects):
        raise SystemExit(f"--objects: 1 to {len(CLICKS)}")
    return run_parent(args)


if __name__ == "__main__":
    sys.exit(main())
