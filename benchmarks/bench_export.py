"""ONNX export speed: the image encoder under onnxruntime (CPU) beside the same graph in torch.

A seeded random model of ``--config`` (weights do not change the speed) is exported with
``sam2kit.export.export_onnx`` (the image encoder graph only); then the torch model's
``forward_image`` and the onnxruntime session run the same ``(1, 3, S, S)`` input, alternately,
``--repeats`` times after one warm-up each, with ``--threads`` intra-op threads on both sides.
Reported: the median seconds of each side, their ratio and the largest output difference.

Usage (repository root, export extra installed)::

    nice -n 19 python -m benchmarks.bench_export --config sam2.1_hiera_tiny --threads 2 --repeats 5

Results go to ``bench_results/export_<config>_<threads>t.json`` and are printed as a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

if __package__ in (None, ""):  # run as a file: make `benchmarks` and `sam2kit` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="sam2.1_hiera_tiny")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out-dir", default="bench_results")
    args = parser.parse_args(argv)

    import onnxruntime
    import torch

    from sam2kit.build import build_model
    from sam2kit.export import export_onnx

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = build_model(args.config, device="cpu")
    size = model.image_size
    image = torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(1))
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        folder = export_onnx(model, Path(tmp) / "onnx", graphs=("image_encoder",))
        export_s = time.perf_counter() - started
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = args.threads
        options.inter_op_num_threads = 1
        session = onnxruntime.InferenceSession(str(folder / "image_encoder.onnx"), options,
                                               providers=["CPUExecutionProvider"])

    def run_torch() -> np.ndarray:
        with torch.inference_mode():
            return model.forward_image(image).vision_feats[-1].numpy()

    def run_onnx() -> np.ndarray:
        return session.run(["image_embed"], {"image": image.numpy()})[0]

    times: dict[str, list[float]] = {"torch": [], "onnxruntime": []}
    outputs = {"torch": run_torch(), "onnxruntime": run_onnx()}  # warm-up
    for _ in range(args.repeats):
        for side, fn in (("torch", run_torch), ("onnxruntime", run_onnx)):
            started = time.perf_counter()
            fn()
            times[side].append(time.perf_counter() - started)
    grid = outputs["onnxruntime"]
    expected = outputs["torch"].transpose(1, 2, 0).reshape(grid.shape)
    median = {side: statistics.median(values) for side, values in times.items()}
    result = {
        "config": args.config,
        "image_size": size,
        "threads": args.threads,
        "repeats": args.repeats,
        "torch_version": torch.__version__,
        "onnxruntime_version": onnxruntime.__version__,
        "export_seconds": export_s,
        "median_seconds": median,
        "runs": times,
        "onnxruntime_over_torch": median["onnxruntime"] / median["torch"],
        "max_abs_difference": float(np.abs(expected - grid).max()),
    }
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"export_{args.config}_{args.threads}t.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"| image encoder, {args.config} @ {size}, {args.threads} threads | median s |")
    print("|---|---|")
    for side, value in median.items():
        print(f"| {side} | {value:.3f} |")
    print(f"onnxruntime / torch = {result['onnxruntime_over_torch']:.2f}; "
          f"max |diff| {result['max_abs_difference']:.2e}; export {export_s:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
