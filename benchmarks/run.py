"""The benchmark suite: sam2kit beside Meta's ``sam2`` and Hugging Face ``transformers``, in one run.

Every side (see :mod:`benchmarks.sides`) loads the same seeded random checkpoint (official layout)
and gets the same inputs. Each side runs in its own worker process (:mod:`benchmarks.worker`) so
that its peak RSS, thread pools and caches are its own; timed figures alternate the sides run by run
(A B C, C B A, ...), so a change of machine load hits every side alike. Figures are medians of
``--repeats`` (>= 5) runs after warm-up. Outputs are compared side by side (mask agreement), so each
figure is known to be the same computation.

Figures (``--figures``, default all):

- ``embedding``: ``set_image`` on a 1024x768 image, for every ``--configs`` entry; and the image
  encoder alone (``forward_image``) with its FLOPs, as GFLOP/s beside the machine's large-GEMM rate.
- ``predict``: ``predict`` for 1 click (3 masks) and for 16 boxes in one batch.
- ``video``: propagation per frame with 1 and 3 objects on a 480x854 clip, and each model stage's
  time, FLOPs and GFLOP/s in those frames (image encoder, memory attention, memory encoder,
  decoder; "other" is the rest of the frame).
- ``first-mask``: ``init_state`` on a 300-frame JPEG folder + one click on frame 0.
- ``rss``: peak RSS tracking 1 object through 100 and 1,000 frames (fresh process each; reduced
  model and frame size so 1,000 frames finish on a CPU).
- ``amg``: automatic mask generation, 32x32 points, end to end.

Usage (repository root; ``pip install -e ".[bench]"`` installs the peers)::

    python -m benchmarks.run                                  # everything, CPU, 2 threads (about an hour)
    python -m benchmarks.run --figures embedding predict      # a subset
    python -m benchmarks.run --quick                          # a smoke run of every figure (minutes)
    python -m benchmarks.run --device cuda --threads 8        # on a GPU (adds reference-vos)

Results: ``bench_results/suite_<device>_<threads>t.md`` (tables) and ``.json`` (every run).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

if __package__ in (None, ""):  # run as a file: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import Worker, machine_info, seeded_checkpoint, time_interleaved  # noqa: E402
from benchmarks.scenes import VIDEO_HW, write_clip  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
FIGURES = ("embedding", "predict", "video", "first-mask", "rss", "amg")
OURS = ("sam2kit", "sam2kit-bf16")
PEERS = ("reference", "reference-vos", "transformers")
RSS_HW = (240, 320)


@dataclass
class Record:
    """One figure: a value per side (seconds, MiB or GFLOP/s), with the ratios peers / ours."""

    figure: str
    config: str
    unit: str
    values: dict[str, float]
    details: dict[str, Any] = field(default_factory=dict)
    higher_is_better: bool = False

    def ratio(self, peer: str, ours: str) -> float | None:
        """How many times better ``ours`` is than ``peer`` (> 1: ours is faster / smaller)."""
        if peer not in self.values or ours not in self.values or not self.values[ours]:
            return None
        if self.higher_is_better:
            return self.values[ours] / self.values[peer] if self.values[peer] else None
        return self.values[peer] / self.values[ours]

    def to_json(self) -> dict[str, Any]:
        ratios = {f"{peer}/{ours}": self.ratio(peer, ours) for peer in PEERS for ours in OURS}
        return {**asdict(self), "ratios": {k: v for k, v in ratios.items() if v is not None}}


def _log(message: str) -> None:
    print(f"[bench] {time.strftime('%H:%M:%S')} {message}", file=sys.stderr, flush=True)


class Suite:
    """Starts the workers and runs the figures; see the module docstring."""

    def __init__(self, args: argparse.Namespace, temporary: Path) -> None:
        self.args = args
        self.temporary = temporary
        self.records: list[Record] = []
        self.extra: dict[str, Any] = {}

    # ------------------------------------------------------------------ workers
    def start(self, side: str, config: str, image_size: int) -> Worker:
        weights = seeded_checkpoint(config, Path(self.args.out) / "weights", seed=self.args.seed)
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), str(REPO / "src"), env.get("PYTHONPATH")) if p)
        for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            env[variable] = str(self.args.threads)
        env["TQDM_DISABLE"] = "1"  # the reference's frame-loading progress bar
        command = [sys.executable, "-m", "benchmarks.worker", "--side", side, "--config", config,
                   "--checkpoint", str(weights), "--image-size", str(image_size),
                   "--threads", str(self.args.threads), "--device", self.args.device]
        _log(f"starting {side} ({config}, {image_size}px) ...")
        return Worker(side, command, env=env, cwd=REPO)

    def with_workers(self, sides: Sequence[str], config: str, image_size: int,
                     body: Callable[[list[Worker]], None]) -> None:
        workers: list[Worker] = []
        try:
            for side in sides:
                workers.append(self.start(side, config, image_size))
            body(workers)
        finally:
            for worker in workers:
                worker.close()

    def timed(self, workers: list[Worker], op: str, figure: str, config: str, *, repeats: int | None = None,
              warmup: int = 1, arguments: dict[str, Any] | None = None, **details: Any) -> Record:
        repeats = repeats or self.args.repeats
        _log(f"{figure}: {warmup} warm-up + {repeats} runs per side ...")
        timings = time_interleaved(workers, op, repeats=repeats, warmup=warmup, arguments=arguments)
        record = Record(figure, config, "s", {side: t.median for side, t in timings.items()},
                        {"runs_s": {side: t.runs for side, t in timings.items()}, **details})
        self.records.append(record)
        return record

    # ------------------------------------------------------------------ figures
    def embedding_and_predict(self, config: str, figures: set[str]) -> None:
        args = self.args

        def body(workers: list[Worker]) -> None:
            if "embedding" in figures:
                self.timed(workers, "set_image", "image embedding: set_image 1024x768", config)
                flops = workers[0].call("encoder_flops")["gflop"]
                encoder = self.timed(workers, "encoder", f"image encoder forward ({args.image_size}px)", config,
                                     gflop=flops)
                self.records.append(Record(f"image encoder GFLOP/s ({flops:.0f} GFLOP per image)", config,
                                           "GFLOP/s", {s: flops / v for s, v in encoder.values.items()},
                                           higher_is_better=True))
            if "predict" in figures:
                for op, name in (("click", "predict, 1 point, multimask"), ("boxes", "predict, 16 boxes batched")):
                    self.timed(workers, op, name, config, repeats=max(args.repeats, 20), warmup=2)
                self.extra.setdefault("image_agreement", {})[config] = self.image_agreement(workers)

        self.with_workers(self.sides("image"), config, args.image_size, body)

    def image_agreement(self, workers: list[Worker]) -> dict[str, Any]:
        outputs = {}
        for worker in workers:
            path = self.temporary / f"image_{worker.name}.npz"
            worker.call("image_outputs", outputs=str(path))
            with np.load(path) as arrays:
                outputs[worker.name] = {key: arrays[key] for key in arrays.files}
        base = outputs[workers[0].name]
        result = {}
        for name, out in outputs.items():
            result[name] = {
                "click_mask_pixel_agreement": float((out["click_masks"] == base["click_masks"]).mean()),
                "box_mask_pixel_agreement": float((out["box_masks"] == base["box_masks"]).mean()),
                "max_score_diff": float(max(np.abs(out["click_scores"] - base["click_scores"]).max(),
                                            np.abs(out["box_scores"] - base["box_scores"]).max())),
            }
        return result

    def gemm(self, config: str) -> None:
        def body(workers: list[Worker]) -> None:
            from sam2kit.build import cpu_has_bf16

            cuda = self.args.device.startswith("cuda")
            # Without bf16 instructions a bf16 GEMM is emulated (~100x slower): no rate worth a 20-minute wait.
            dtypes = ["float32"] + (["bfloat16"] if cuda or cpu_has_bf16() else []) + (["float16"] if cuda else [])
            self.extra["gemm"] = {dtype: workers[0].call("gemm", dtype=dtype) for dtype in dtypes}

        self.with_workers(["sam2kit"], config, self.args.image_size, body)

    def video(self, config: str) -> None:
        args = self.args
        clip_len = 1 + args.propagation_warmup + args.propagation_frames + 1
        clip = write_clip(self.temporary / f"clip_{clip_len}", clip_len, args.video_hw)

        def body(workers: list[Worker]) -> None:
            for num_objects in args.objects:
                _log(f"propagation, {num_objects} object(s), {clip_len} frames, sides alternated frame by frame ...")
                for worker in workers:
                    worker.call("propagate_start", folder=str(clip), num_objects=num_objects)
                steps: dict[str, list[dict[str, Any]]] = {w.name: [] for w in workers}
                for index in range(clip_len - 1):
                    count = index == clip_len - 2  # the last frame: FLOPs, not timed
                    for worker in workers if index % 2 == 0 else list(reversed(workers)):
                        step = worker.call("propagate_next", count_flops=count)
                        if step["done"]:
                            raise RuntimeError(f"{worker.name} stopped after {index} tracked frames")
                        steps[worker.name].append(step)
                masks = {}
                for worker in workers:
                    path = self.temporary / f"masks_{worker.name}.npz"
                    worker.call("propagate_end", outputs=str(path))
                    with np.load(path) as saved:
                        masks[worker.name] = saved["masks"]
                timed = {name: s[args.propagation_warmup : -1] for name, s in steps.items()}
                base = masks[workers[0].name]
                agreement = {name: float((m == base).mean()) for name, m in masks.items()}
                plural = "s" if num_objects > 1 else ""
                self.records.append(Record(
                    f"video propagation per frame, {num_objects} object{plural}", config, "s",
                    {name: statistics.median(step["seconds"] for step in s) for name, s in timed.items()},
                    {"frame_s": {n: [st["seconds"] for st in s] for n, s in steps.items()},
                     "mask_pixel_agreement": agreement, "clip_frames": clip_len},
                ))
                self.extra.setdefault("stages", {})[f"{num_objects}_objects"] = {
                    name: _stage_summary(s, steps[name][-1], self.extra.get("gemm", {}))
                    for name, s in timed.items() if "stage_s" in s[0]
                }

        self.with_workers(self.sides("video"), config, args.image_size, body)

    def first_mask(self, config: str) -> None:
        args = self.args
        video = write_clip(self.temporary / f"video_{args.video_frames}", args.video_frames, args.video_hw)

        def body(workers: list[Worker]) -> None:
            hw = f"{args.video_hw[1]}x{args.video_hw[0]}"
            self.timed(workers, "first_mask", f"time to first mask, {args.video_frames}-frame {hw} video "
                       "(init_state + 1 click)", config, arguments={"folder": str(video)})
            memory = {w.name: w.call("rss")["peak_rss_mib"] for w in workers}
            self.records.append(Record(f"peak RSS after the first masks, {args.video_frames} frames", config,
                                       "MiB", memory))

        sides = [s for s in self.sides("video") if s != "reference-vos"]
        self.with_workers(sides, config, args.image_size, body)

    def rss(self, config: str) -> None:
        args = self.args
        results: dict[str, dict[int, dict[str, Any]]] = {}
        for side in [s for s in self.sides("video") if s in ("sam2kit", "reference", "transformers")]:
            for length in args.rss_lengths:
                folder = write_clip(self.temporary / f"rss_{length}", length, RSS_HW)
                _log(f"peak RSS: {side}, {length} frames {RSS_HW[1]}x{RSS_HW[0]}, model {args.rss_image_size}px ...")
                worker = self.start(side, config, args.rss_image_size)
                try:
                    results.setdefault(side, {})[length] = worker.call("track_all", folder=str(folder))
                finally:
                    worker.close()
        short, long = min(args.rss_lengths), max(args.rss_lengths)
        size = f"model {args.rss_image_size}px, {RSS_HW[1]}x{RSS_HW[0]} frames"
        for length in (short, long):
            self.records.append(Record(f"peak RSS, 1 object tracked through {length} frames ({size})", config, "MiB",
                                       {side: r[length]["peak_rss_mib"] for side, r in results.items()}))
        self.records.append(Record(f"peak RSS growth, {long} vs {short} frames (x)", config, "x",
                                   {side: r[long]["peak_rss_mib"] / r[short]["peak_rss_mib"]
                                    for side, r in results.items()}))
        self.extra["rss_vs_length"] = {side: {str(k): v for k, v in r.items()} for side, r in results.items()}

    def amg(self, config: str) -> None:
        args = self.args

        def body(workers: list[Worker]) -> None:
            for worker in workers:  # warm-up on a small grid: kernels, caches
                worker.call("amg", points_per_side=4)
            self.timed(workers, "amg", f"automatic masks, {args.points_per_side}x{args.points_per_side} points",
                       config, warmup=0, arguments={"points_per_side": args.points_per_side})
            self.extra["amg_agreement"] = self.amg_agreement(workers)

        sides = [s for s in self.sides("image") if s not in ("transformers", "reference-vos")]
        self.with_workers(sides, config, args.image_size, body)

    def amg_agreement(self, workers: list[Worker]) -> dict[str, Any]:
        from sam2kit.io.masks import coco_rle_to_mask

        records = {}
        for worker in workers:
            path = self.temporary / f"amg_{worker.name}.json"
            worker.call("amg_outputs", outputs=str(path))
            records[worker.name] = json.loads(path.read_text())
        base = [coco_rle_to_mask(r["segmentation"]) for r in records[workers[0].name]]
        result = {}
        for name, recs in records.items():
            masks = [coco_rle_to_mask(r["segmentation"]) for r in recs]
            ious = [max((_iou(m, b) for b in base), default=0.0) for m in masks]
            result[name] = {"masks": len(masks), "min_best_iou": min(ious) if ious else None,
                            "mean_best_iou": float(np.mean(ious)) if ious else None}
        return result

    # ------------------------------------------------------------------ helpers
    def sides(self, kind: str) -> list[str]:
        """The sides of this run that take part in ``kind`` ("image" or "video") figures."""
        chosen = list(self.args.sides)
        if kind == "image":
            chosen = [s for s in chosen if s != "reference-vos"]  # a video-predictor option
        return chosen


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    if a.shape != b.shape:
        return 0.0
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)


def _stage_summary(steps: list[dict[str, Any]], counted: dict[str, Any], gemm: dict[str, Any]) -> dict[str, Any]:
    """Per stage: median seconds and median share of the frame over the timed frames, FLOPs of the
    counted frame, the rate; "other" is each frame's time outside the stages, then its median."""
    frame = statistics.median(step["seconds"] for step in steps)
    stages = {}
    for name in steps[0]["stage_s"]:
        seconds = statistics.median(step["stage_s"][name] for step in steps)
        gflop = counted.get("stage_gflop", {}).get(name)
        stages[name] = {"seconds": seconds,
                        "share": statistics.median(step["stage_s"][name] / step["seconds"] for step in steps),
                        "gflop": gflop, "gflops": gflop / seconds if gflop and seconds else None}
    others = [step["seconds"] - sum(step["stage_s"].values()) for step in steps]
    fp32 = gemm.get("float32", {}).get("gflops")
    if fp32:
        for stage in stages.values():
            if stage["gflops"]:
                stage["of_fp32_gemm"] = stage["gflops"] / fp32
    return {"frame_s": frame, "stages": stages, "other_s": statistics.median(others),
            "other_share": statistics.median(o / step["seconds"] for o, step in zip(others, steps, strict=True))}


# ---------------------------------------------------------------------------- report
def _format(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "s":
        return f"{value * 1000:.1f} ms" if value < 1 else f"{value:.2f} s"
    if unit == "x":
        return f"{value:.3f}"
    return f"{value:,.0f} {unit}" if unit != "GFLOP/s" else f"{value:,.0f}"


def report(records: list[Record], extra: dict[str, Any], machine: dict[str, Any], args: argparse.Namespace) -> str:
    sides = [s for s in (*OURS, *PEERS) if any(s in r.values for r in records)]
    peers = [s for s in PEERS if s in sides]
    header = ["figure", "config", *sides] + [f"{p} / {o}" for p in peers for o in OURS if o in sides]
    lines = [
        "# sam2kit benchmark suite", "",
        f"{machine.get('cpu')}, {machine.get('logical_cores')} logical cores, {args.threads} torch threads, "
        f"device {args.device}{' (' + machine['gpu'] + ')' if machine.get('gpu') else ''}; "
        f"torch {machine.get('torch')}, "
        f"sam2 {machine.get('sam2_reference')}, transformers {machine.get('transformers')}; "
        f"load average {machine.get('load_average_before', [0])[0]:.1f} before, "
        f"{machine.get('load_average', [0])[0]:.1f} after.",
        f"Command: `python -m benchmarks.run {' '.join(sys.argv[1:])}`", "",
        "Ratios: how many times faster (or smaller) sam2kit is; medians of "
        f"{args.repeats}+ runs per side after warm-up, sides alternated run by run. "
        "`sam2kit-bf16` is the opt-in reduced precision; every other column is fp32.", "",
        "| " + " | ".join(header) + " |", "|" + "---|" * 2 + "---:|" * (len(header) - 2),
    ]
    for record in records:
        cells = [record.figure, record.config.replace("sam2.1_hiera_", "2.1-").replace("sam2_hiera_", "2.0-")]
        cells += [_format(record.values.get(s), record.unit) for s in sides]
        for peer in peers:
            for ours in OURS:
                if ours in sides:
                    ratio = record.ratio(peer, ours)
                    cells.append("-" if ratio is None or record.unit == "x" else f"{ratio:.2f}x")
        lines.append("| " + " | ".join(cells) + " |")
    if "gemm" in extra:
        rates = ", ".join(f"{k} {v['gflops']:.0f} GFLOP/s" for k, v in extra["gemm"].items())
        lines += ["", f"Machine large-GEMM rate ({extra['gemm']['float32']['size']}-square matmul, median): {rates}."]
    for objects, per_side in extra.get("stages", {}).items():
        lines += ["", f"Per-stage cost of one tracked frame ({objects.replace('_', ' ')}; median over the timed "
                      "frames; FLOPs of one frame; GEMM = the fp32 rate above):", "",
                  "| side | stage | time | share of frame | GFLOP | GFLOP/s | of fp32 GEMM |",
                  "|---|---|---:|---:|---:|---:|---:|"]
        for side, summary in per_side.items():
            for stage, s in summary["stages"].items():
                gflop = "-" if s["gflop"] is None else f"{s['gflop']:.1f}"
                rate = "-" if not s["gflops"] else f"{s['gflops']:.0f}"
                of_gemm = f"{s['of_fp32_gemm']:.0%}" if "of_fp32_gemm" in s else "-"
                lines.append(f"| {side} | {stage} | {_format(s['seconds'], 's')} | {s['share']:.1%} | {gflop} | "
                             f"{rate} | {of_gemm} |")
            lines.append(f"| {side} | other (outside the stages) | {_format(summary['other_s'], 's')} | "
                         f"{summary['other_share']:.1%} | | | |")
    for key in ("image_agreement", "amg_agreement"):
        if key in extra:
            lines += ["", f"{key.replace('_', ' ')} (against the first side): `{json.dumps(extra[key])}`"]
    return "\n".join(lines) + "\n"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--figures", nargs="+", choices=FIGURES, default=list(FIGURES),
                        help="figures to run (default all)")
    parser.add_argument("--configs", nargs="+", default=["sam2.1_hiera_tiny", "sam2.1_hiera_small"],
                        help="configs of the embedding figure; the first one runs every figure (default tiny small)")
    parser.add_argument("--sides", nargs="+", help="sides to compare (default: sam2kit sam2kit-bf16 reference "
                        "transformers, + reference-vos on CUDA)")
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda, ...")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads (default 2)")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per side and figure (default 5, at least 5)")
    parser.add_argument("--image-size", type=int, default=1024, help="model resolution (default 1024)")
    parser.add_argument("--objects", type=int, nargs="+", default=[1, 3],
                        help="object counts to propagate (default 1 3)")
    parser.add_argument("--propagation-frames", type=int, default=5, help="timed frames per side (default 5)")
    parser.add_argument("--propagation-warmup", type=int, default=6,
                        help="untimed frames after the prompt (default 6: every timed frame then attends to a "
                        "full bank of 7 memories, the frame whose FLOPs are counted)")
    parser.add_argument("--video-frames", type=int, default=300, help="frames of the first-mask video (default 300)")
    parser.add_argument("--rss-lengths", type=int, nargs=2, default=[100, 1000],
                        help="video lengths (default 100 1000)")
    parser.add_argument("--rss-image-size", type=int, default=256,
                        help="model resolution of the RSS figure (default 256)")
    parser.add_argument("--points-per-side", type=int, default=32, help="automatic-mask grid (default 32)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 256px model, 2 repeats, short videos, 8x8 points (not for reporting)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random weights (default 0)")
    parser.add_argument("--out", default=str(REPO / "bench_results"), help="results folder (default bench_results/)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    cuda = args.device.startswith("cuda")
    if args.sides is None:
        args.sides = ["sam2kit", "sam2kit-bf16", "reference", *(["reference-vos"] if cuda else []), "transformers"]
    args.video_hw = VIDEO_HW
    if args.quick:
        args.image_size, args.repeats, args.video_frames, args.rss_lengths = 256, 2, 30, [20, 60]
        args.rss_image_size, args.points_per_side, args.propagation_frames = 128, 8, 2
        args.video_hw = (240, 428)
    elif args.repeats < 5:
        raise SystemExit("--repeats must be at least 5 (use --quick for a smoke run)")
    if args.sides[0] != "sam2kit":
        raise SystemExit("the first side must be sam2kit (the others are compared with it)")
    load_before = os.getloadavg() if hasattr(os, "getloadavg") else None
    figures = set(args.figures)
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="sam2kit_bench_") as name:
        suite = Suite(args, Path(name))
        main_config = args.configs[0]
        suite.gemm(main_config)
        for config in args.configs:
            suite.embedding_and_predict(config, figures if config == main_config else figures & {"embedding"})
        for figure, run in (("video", suite.video), ("first-mask", suite.first_mask), ("rss", suite.rss),
                            ("amg", suite.amg)):
            if figure in figures:
                run(main_config)
    machine = machine_info(args.threads, args.device)
    machine["load_average_before"] = load_before
    try:
        from importlib.metadata import version

        machine["transformers"] = version("transformers")
    except Exception:
        machine["transformers"] = None
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"suite_{args.device.replace(':', '')}_{args.threads}t" + ("_quick" if args.quick else "")
    markdown = report(suite.records, suite.extra, machine, args)
    payload = {"machine": machine, "arguments": {k: v for k, v in vars(args).items()}, "wall_s": time.time() - started,
               "records": [r.to_json() for r in suite.records], **suite.extra}
    for path, text in ((out / f"{stem}.md", markdown), (out / f"{stem}.json", json.dumps(payload, indent=2) + "\n")):
        temporary = path.with_name(f".{path.name}.tmp")
        temporary.write_text(text)
        os.replace(temporary, path)
    print(markdown)
    print(f"written: {out / stem}.md, .json ({time.time() - started:.0f} s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
