"""``sam2kit serve`` on the command line, and the export helpers that need no server."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("fastapi", reason="the serve extra is not installed: pip install -e '.[serve]'")

from sam2kit.cli import main
from sam2kit.serve.exports import mask_polygons


def test_help_lists_the_limits(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--help"]) == 0
    out = capsys.readouterr().out
    for option in ("--host", "--port", "--token", "--insecure", "--media-root", "--max-upload-mb", "--max-frames",
                   "--max-sessions", "--idle-timeout", "--max-objects", "--checkpoint", "--device", "--precision"):
        assert option in out


def test_public_address_without_token_is_refused_before_loading(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SAM2KIT_SERVE_TOKEN", raising=False)
    code = main(["serve", "--host", "0.0.0.0", "--checkpoint", "missing.pt"])  # checked before the model loads
    assert code == 1
    err = capsys.readouterr().err
    assert "refusing to listen on 0.0.0.0 without a token" in err and "--insecure" in err


def test_bad_limit_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--max-sessions", "0"]) == 2
    assert "--max-sessions" in capsys.readouterr().err


def test_mask_polygons_trace_outer_boundaries() -> None:
    mask = np.zeros((10, 12), dtype=bool)
    mask[1:4, 1:5] = True  # a 4 x 3 rectangle
    mask[5:9, 6:11] = True  # a 5 x 4 rectangle with a hole
    mask[6:8, 8] = False
    polygons = sorted(mask_polygons(mask, min_area=1), key=len)
    assert len(polygons) == 2  # the hole is dropped
    assert sorted(polygons[0]) == sorted([(1, 1), (5, 1), (5, 4), (1, 4)])
    assert sorted(polygons[1]) == sorted([(6, 5), (11, 5), (11, 9), (6, 9)])
    assert mask_polygons(np.zeros((4, 4), dtype=bool)) == []
    single = np.zeros((3, 3), dtype=bool)
    single[1, 1] = True
    assert [sorted(p) for p in mask_polygons(single, min_area=1)] == [sorted([(1, 1), (2, 1), (2, 2), (1, 2)])]
