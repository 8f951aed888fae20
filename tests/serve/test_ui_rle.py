"""The web UI's COCO RLE decoder (``static/rle.js``, run with Node) against pycocotools."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from sam2kit.io.masks import to_coco_rle

NODE = shutil.which("node")
RLE_JS = Path(__file__).resolve().parents[2] / "src" / "sam2kit" / "serve" / "static" / "rle.js"


@pytest.mark.skipif(NODE is None, reason="node is not installed (the browser test covers the decoder too)")
def test_rle_js_decodes_like_pycocotools() -> None:
    rng = np.random.default_rng(0)
    masks = [rng.random((37, 53)) > 0.5, np.zeros((5, 7), dtype=bool), np.ones((6, 4), dtype=bool)]
    big = np.zeros((300, 400), dtype=bool)
    big[20:250, 30:390] = True
    big[100:120, 50:60] = False
    masks.append(big)
    rles = [to_coco_rle(mask) for mask in masks]
    script = (f"import {{ decodeRle }} from {json.dumps(RLE_JS.as_uri())};\n"
              f"const rles = {json.dumps(rles)};\n"
              "console.log(JSON.stringify(rles.map((r) => Array.from(decodeRle(r)))));\n")
    assert NODE is not None
    proc = subprocess.run([NODE, "--input-type=module", "-e", script], capture_output=True, text=True, timeout=60,
                          check=False)
    assert proc.returncode == 0, proc.stderr
    for mask, decoded in zip(masks, json.loads(proc.stdout), strict=True):
        np.testing.assert_array_equal(np.array(decoded, dtype=bool).reshape(mask.shape), mask)
