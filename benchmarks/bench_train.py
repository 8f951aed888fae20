"""Training speed and memory: optimizer steps per second and peak memory of ``sam2kit train``,
decoder-only on cached image embeddings beside full fine-tuning (``--train all``).

Each mode runs the real training loop (:func:`sam2kit.train.trainer.train`, the code behind
``sam2kit train``) in its own worker process, so that its peak RSS (and peak CUDA memory) is its
own. The data are synthetic still scenes (:func:`sam2kit.synthetic.write_synthetic_dataset`,
coloured shapes with instance masks) at the model's input size; the weights are the seeded random
checkpoint of the config in the official layout (built by the reference package when it is
installed, as the other benchmarks do, else by sam2kit on the same seed: the values only matter
for the masks, not for the speed).

A step is one optimizer step on ``--batch-size`` images with the recipe's interactive prompts (a
first point, box or mask, then 7 correction rounds), loading included, as the trainer times it
(``samples_per_s`` in ``log.csv``). The first ``--warmup`` steps are not timed; in decoder mode the
warm-up also covers one epoch, so that every image's features are in the cache and the timed steps
run the prompt encoder and mask decoder only. Figures are the median, min and max of the next
``--steps``. Usage (repository root)::

    python -m benchmarks.bench_train                                   # tiny at 1024, CPU, 2 threads
    python -m benchmarks.bench_train --steps 3 --threads 1             # a short run
    python -m benchmarks.bench_train --device cuda --act-ckpt --precision bf16

Results go to ``bench_results/train_<config>_<size>px_<device>_<threads>t_<precision>[_actckpt]``
(``.md`` table + ``.json`` with every step's time and the machine).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a file: make `benchmarks` and `sam2kit` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import machine_info, peak_rss_mib, seeded_checkpoint, set_threads  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
MODES = ("decoder", "all")
MODE_TITLES = {"decoder": "decoder only, cached embeddings", "all": "all weights (--train all)"}
PRECISIONS = ("fp32", "bf16", "fp16")


# ---------------------------------------------------------------------------- weights
def seeded_weights(config: str, folder: Path, seed: int) -> tuple[Path, str]:
    """The seeded random checkpoint of ``config`` (official layout) and who built it."""
    try:
        import sam2  # noqa: F401
    except ImportError:
        pass
    else:
        return seeded_checkpoint(config, folder, seed=seed), "reference (sam2.build_sam + seeded noise)"
    import torch

    from sam2kit.config import get_config
    from sam2kit.modeling.sam2 import SAM2Model

    path = folder / f"{config}_seed{seed}_sam2kit.pt"
    if not path.is_file():
        torch.manual_seed(seed)
        model = SAM2Model(get_config(config))
        generator = torch.Generator().manual_seed(seed + 1)
        with torch.no_grad():
            for param in model.parameters():
                param.add_(0.01 * torch.randn(param.shape, generator=generator, dtype=param.dtype))
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.tmp")
        torch.save({"model": model.state_dict()}, temporary)
        os.replace(temporary, path)
    return path, "sam2kit (SAM2Model + seeded noise; reference not installed)"


# ---------------------------------------------------------------------------- worker
def warmup_steps(mode: str, args: argparse.Namespace) -> int:
    """Untimed steps: ``--warmup``, and in decoder mode at least one epoch (every image cached)."""
    if mode == "decoder":
        return max(args.warmup, math.ceil(args.images / args.batch_size))
    return args.warmup


def run_worker(args: argparse.Namespace) -> None:
    """Train ``--worker`` mode for warm-up + ``--steps`` steps; write the figures as JSON."""
    set_threads(args.threads)
    import torch

    from sam2kit.train.options import TrainOptions
    from sam2kit.train.trainer import train

    mode = args.worker
    warmup = warmup_steps(mode, args)
    run_dir = Path(args.worker_out).with_suffix("")
    options = TrainOptions(
        data=args.data,
        out=str(run_dir),
        checkpoint=args.checkpoint,
        config=args.config,
        image_size=args.image_size,
        train=mode,
        steps=warmup + args.steps,
        batch_size=args.batch_size,
        precision=args.precision,
        act_ckpt=args.act_ckpt,
        seed=args.seed,
        val_fraction=0.0,
        val_max=0,
        save_every=10**9,  # only the final checkpoint, after the timed steps
        cache="memory",
        workers=0,
        device=args.device,
        progress=False,
    )
    started = time.perf_counter()
    result = train(options)
    if result.status != "finished":
        raise RuntimeError(f"training {mode} ended {result.status} at step {result.step}")
    with open(run_dir / "log.csv", newline="", encoding="utf-8") as f:
        rows = [row for row in csv.DictReader(f) if row["kind"] == "train"]
    step_s = [args.batch_size / float(row["samples_per_s"]) for row in rows]
    timed = step_s[warmup:]
    run = json.loads((run_dir / "run.json").read_text())
    figures: dict[str, Any] = {
        "mode": mode,
        "warmup_steps": warmup,
        "timed_steps": len(timed),
        "step_s": step_s,
        "step_median_s": statistics.median(timed),
        "step_min_s": min(timed),
        "step_max_s": max(timed),
        "steps_per_s": 1.0 / statistics.median(timed),
        "objects_per_step": statistics.mean(int(row["objects"]) for row in rows[warmup:]),
        "losses": [float(row["loss"]) for row in rows],
        "parameters": run["model"]["parameters"],
        "trainable_parameters": run["model"]["trainable_parameters"],
        "run_wall_s": time.perf_counter() - started,
        "peak_rss_mib": peak_rss_mib(),
    }
    if torch.device(args.device).type == "cuda":
        figures["peak_cuda_mib"] = torch.cuda.max_memory_allocated() / 2**20
    Path(args.worker_out).write_text(json.dumps(figures))


# ---------------------------------------------------------------------------- parent
def _spawn_worker(mode: str, args: argparse.Namespace, data: Path, checkpoint: Path, folder: Path) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), str(REPO / "src"), env.get("PYTHONPATH")) if p)
    for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[variable] = str(args.threads)
    out = folder / f"{mode}.json"
    command = [
        sys.executable, "-m", "benchmarks.bench_train", "--worker", mode, "--worker-out", str(out),
        "--data", str(data), "--checkpoint", str(checkpoint), "--config", args.config,
        "--image-size", str(args.image_size), "--images", str(args.images), "--batch-size", str(args.batch_size),
        "--steps", str(args.steps), "--warmup", str(args.warmup), "--threads", str(args.threads),
        "--device", args.device, "--precision", args.precision, "--seed", str(args.seed),
    ]
    if args.act_ckpt:
        command.append("--act-ckpt")
    print(f"[bench_train] {args.config} {args.image_size}px: training {mode} ...", file=sys.stderr, flush=True)
    subprocess.run(command, cwd=REPO, env=env, check=True)
    return json.loads(out.read_text())


def _seconds(value: float) -> str:
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"


def markdown_table(results: dict[str, dict], cuda: bool) -> str:
    header = "| mode | trainable params | steps/s | s/step median (min-max) | objects/step | peak RSS |"
    rule = "|---|---:|---:|---:|---:|---:|"
    if cuda:
        header += " peak CUDA |"
        rule += "---:|"
    lines = [header, rule]
    for mode, r in results.items():
        line = (
            f"| {MODE_TITLES[mode]} | {r['trainable_parameters'] / 1e6:.2f} M | {r['steps_per_s']:.3f} | "
            f"{_seconds(r['step_median_s'])} ({_seconds(r['step_min_s'])}-{_seconds(r['step_max_s'])}) | "
            f"{r['objects_per_step']:.1f} | {r['peak_rss_mib']:,.0f} MiB |"
        )
        if cuda:
            line += f" {r['peak_cuda_mib']:,.0f} MiB |"
        lines.append(line)
    return "\n".join(lines)


def _write(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text)
    os.replace(temporary, path)


def run_parent(args: argparse.Namespace) -> int:
    from sam2kit.synthetic import write_synthetic_dataset

    out = Path(args.out)
    checkpoint, weights_from = seeded_weights(args.config, out / "weights", args.seed)
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="bench_train_") as temporary:
        folder = Path(temporary)
        data = write_synthetic_dataset(
            folder / "data", num_images=args.images, num_clips=0, size=args.image_size, seed=args.seed
        ).root
        for mode in args.modes:
            results[mode] = _spawn_worker(mode, args, data, checkpoint, folder)
    cuda = args.device.startswith("cuda")
    machine = machine_info(args.threads, args.device)
    name = (
        f"train_{args.config}_{args.image_size}px_{args.device.replace(':', '')}_{args.threads}t_{args.precision}"
        + ("_actckpt" if args.act_ckpt else "")
    )
    settings = (
        f"{args.config} at {args.image_size} px, batch {args.batch_size}, {args.precision}"
        f"{', activation checkpointing' if args.act_ckpt else ''}; {args.images} synthetic images; medians of "
        f"{args.steps} steps after warm-up; weights: {weights_from}"
    )
    load = machine.get("load_average")
    header = (
        f"# {name}\n\n{machine.get('cpu', '?')}, {machine.get('logical_cores', '?')} logical cores, "
        f"{args.threads} torch threads, device {args.device}{' (' + machine['gpu'] + ')' if 'gpu' in machine else ''}; "
        f"torch {machine.get('torch', '?')}."
        + (f" Load average at the end: {load[0]:.1f}." if load else "")
        + f"\n\n{settings}.\n\n"
    )
    table = markdown_table(results, cuda)
    payload = {
        "benchmark": "train",
        "config": args.config,
        "image_size": args.image_size,
        "batch_size": args.batch_size,
        "precision": args.precision,
        "act_ckpt": args.act_ckpt,
        "images": args.images,
        "steps": {"warmup": args.warmup, "timed": args.steps},
        "seed": args.seed,
        "weights": weights_from,
        "machine": machine,
        "modes": results,
    }
    out.mkdir(parents=True, exist_ok=True)
    md_path, json_path = out / f"{name}.md", out / f"{name}.json"
    _write(md_path, header + table + "\n")
    _write(json_path, json.dumps(payload, indent=2) + "\n")
    print(table)
    print(f"\n{settings}")
    print(f"written: {md_path}, {json_path}", file=sys.stderr)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="sam2.1_hiera_tiny", help="preset name (default: sam2.1_hiera_tiny)")
    parser.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES),
                        help="what trains: decoder (cached embeddings), all (default: both)")
    parser.add_argument("--steps", type=int, default=5, help="timed steps after warm-up (default 5)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first (default 2)")
    parser.add_argument("--batch-size", type=int, default=1, help="images per step (default 1)")
    parser.add_argument("--images", type=int, default=2, help="synthetic images in the data set (default 2)")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads (default 2)")
    parser.add_argument("--image-size", type=int, default=1024, help="model input resolution (default 1024)")
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda, ...")
    parser.add_argument("--precision", choices=PRECISIONS, default="fp32", help="fp32 (default), bf16, fp16 (GPU)")
    parser.add_argument("--act-ckpt", action="store_true", help="activation checkpointing (less memory)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the weights, data and prompts (default 0)")
    parser.add_argument("--out", default=str(REPO / "bench_results"), help="results folder (default bench_results/)")
    parser.add_argument("--worker", choices=MODES, help=argparse.SUPPRESS)
    parser.add_argument("--worker-out", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--checkpoint", help=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.worker:
        run_worker(args)
        return 0
    if args.steps < 1 or args.warmup < 0 or args.batch_size < 1 or args.images < 1 or args.threads < 1:
        raise SystemExit("--steps, --batch-size, --images and --threads must be >= 1, --warmup >= 0")
    if args.precision == "fp16" and not args.device.startswith("cuda"):
        raise SystemExit("--precision fp16 needs a CUDA device (use bf16 or fp32 on a CPU)")
    return run_parent(args)


if __name__ == "__main__":
    sys.exit(main())
