"""HTTP overhead of ``sam2kit serve``: one click on a 1024-px image after the embedding is cached,
through HTTP (a real uvicorn on loopback, ``httpx`` keep-alive client) vs ``ImagePredictor.predict``
called directly in the same process on the same model (``sam2.1_hiera_tiny``, seeded random weights:
the work per click does not depend on the weights).

Both sides run the same clicks (one positive point: three candidates, the best kept), interleaved
click by click; the HTTP side also encodes the mask as COCO RLE and sends it as JSON, which is part
of what a client pays. Usage::

    python -m benchmarks.bench_serve --clicks 30

Prints median and p90 milliseconds of each side and their difference. On a machine busy with other
work the figures are noisy: the script prints the load average with them.
"""

from __future__ import annotations

import argparse
import io
import os
import socket
import statistics
import sys
import threading
import time
from pathlib import Path

import numpy as np

if __package__ in (None, ""):  # run as a file: make `benchmarks` and `sam2kit` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _stats(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered) * 1000, ordered[int(0.9 * (len(ordered) - 1))] * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clicks", type=int, default=30)
    parser.add_argument("--config", default="sam2.1_hiera_tiny")
    parser.add_argument("--size", type=int, default=1024, help="image side in pixels")
    args = parser.parse_args()

    import httpx
    import torch
    import uvicorn
    from PIL import Image

    from sam2kit.build import build_model
    from sam2kit.model_spec import LoadedModel, ModelSpec
    from sam2kit.predict.image import ImagePredictor
    from sam2kit.serve import ServeSettings, create_app

    torch.manual_seed(0)
    model = build_model(args.config, device="cpu")
    loaded = LoadedModel(model=model, spec=ModelSpec(checkpoint=None, config=args.config), config=model.config,
                         device=torch.device("cpu"))
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (args.size, args.size, 3), dtype=np.uint8)
    clicks = [[float(x), float(y)] for x, y in rng.integers(0, args.size, (args.clicks, 2))]

    predictor = ImagePredictor(model)
    predictor.set_image(image)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(ServeSettings(port=port), loaded), host="127.0.0.1",
                                           port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    direct: list[float] = []
    over_http: list[float] = []
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120) as client:
            upload = {"file": ("a.png", buffer.getvalue(), "image/png")}
            sid = client.post("/v1/images", files=upload).json()["session_id"]
            for index, point in enumerate([clicks[0], *clicks]):  # the first round warms both up
                # one click: three candidate masks, the best kept (what the service does for one click)
                started = time.perf_counter()
                masks, scores, _ = predictor.predict(point_coords=[point], point_labels=[1], multimask_output=True)
                best = masks[int(np.argmax(scores))]
                direct_s = time.perf_counter() - started
                started = time.perf_counter()
                reply = client.put(f"/v1/images/{sid}/objects/1", json={"points": [[*point, 1]]})
                http_s = time.perf_counter() - started
                reply.raise_for_status()
                assert reply.json()["area"] == int(best.sum())
                if index:  # interleaved, so a busy machine slows both sides alike
                    direct.append(direct_s)
                    over_http.append(http_s)
    finally:
        server.should_exit = True
        thread.join(timeout=30)
    direct_med, direct_p90 = _stats(direct)
    http_med, http_p90 = _stats(over_http)
    print(f"{args.config}, {args.size}px image, {args.clicks} clicks, torch threads {torch.get_num_threads()}, "
          f"load average {os.getloadavg()[0]:.1f}")
    print(f"ImagePredictor.predict   median {direct_med:7.1f} ms   p90 {direct_p90:7.1f} ms")
    print(f"HTTP PUT .../objects/1   median {http_med:7.1f} ms   p90 {http_p90:7.1f} ms")
    print(f"HTTP overhead            median {http_med - direct_med:7.1f} ms")


if __name__ == "__main__":
    main()
