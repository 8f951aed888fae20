"""Parity of video tracking on the raw-value memory attention (the default CPU inference path,
:mod:`sam2kit.modeling.blocked_attention`) with the reference, on every config family.

Each scenario clicks on frame 0, propagates forward, adds a correction click on the last frame and
propagates back from it, with 1 and with 3 objects (a click, a box, a click). The query blocks are
made smaller than the 16x16 grid so that whole and partial blocks both run. Every yielded frame
must agree to max |Δ logit| <= 1e-4.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from test_video_parity import VIDEO_MASK_MISMATCH, _patch_reference_dtype, panned_clip

from conftest import assert_logits_close, make_model_pair, mask_mismatch_fraction
from sam2kit.modeling import blocked_attention, transformer
from sam2kit.predict.video import VideoPredictor

IMAGE_SIZE = 256
NUM_FRAMES = 3
RAW_VALUE_LOGIT_ATOL = 1e-4


@pytest.fixture(scope="module")
def short_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from sam2kit.io.frames import write_frames_to_folder

    folder = tmp_path_factory.mktemp("short_video") / "frames"
    write_frames_to_folder(panned_clip(NUM_FRAMES), folder, quality=95)
    return folder


@pytest.fixture
def kernel_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the blocked kernel's calls; blocks of 96 queries (256 = 96 + 96 + 64)."""
    monkeypatch.setattr(blocked_attention, "QUERY_BLOCK", 96)
    calls: list[int] = []
    kernel = blocked_attention.blocked_attention

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return kernel(*args, **kwargs)

    monkeypatch.setattr(transformer, "blocked_attention", counted)
    return calls


#: Every family, 1 and 3 objects (the memory attention is the same module in every family; the
#: families differ in the image encoder, whose size sets the run time).
SCENARIOS = [
    (config_name, num_objects)
    for config_name in ("sam2.1_hiera_tiny", "sam2.1_hiera_small", "sam2.1_hiera_base_plus")
    for num_objects in (1, 3)
]


@pytest.mark.parametrize(("config_name", "num_objects"), SCENARIOS)
def test_tracking_on_raw_value_attention(
    sam2_reference: Any, short_video: Path, kernel_calls: list[int], config_name: str, num_objects: int
) -> None:
    pair = make_model_pair(config_name, IMAGE_SIZE, obj_score_bias=2.0, video=True)
    _patch_reference_dtype(pair.ref)
    ref, ours = pair.ref, VideoPredictor(pair.ours, fill_hole_area=0, show_progress=False)
    ref_state, our_state = ref.init_state(str(short_video)), ours.init_state(short_video)
    worst = 0.0

    def compare(ref_out: tuple, our_out: tuple, what: str) -> None:
        nonlocal worst
        assert our_out[0] == ref_out[0] and list(our_out[1]) == list(ref_out[1]), what
        worst = max(worst, assert_logits_close(ref_out[2], our_out[2], what, atol=RAW_VALUE_LOGIT_ATOL))
        assert mask_mismatch_fraction(ref_out[2], our_out[2]) <= VIDEO_MASK_MISMATCH, what

    def call(method: str, **kwargs: Any) -> None:
        compare(getattr(ref, method)(ref_state, **kwargs), getattr(ours, method)(our_state, **kwargs), method)

    def propagate(**kwargs: Any) -> list[int]:
        ref_iter: Iterator = ref.propagate_in_video(ref_state, **kwargs)
        our_iter: Iterator = ours.propagate_in_video(our_state, **kwargs)
        frames = []
        for ref_out, our_out in zip(ref_iter, our_iter, strict=True):
            compare(ref_out, our_out, f"propagate({kwargs}) frame {ref_out[0]}")
            frames.append(ref_out[0])
        return frames

    call("add_new_points_or_box", frame_idx=0, obj_id=1, points=[[150, 110]], labels=[1])
    if num_objects == 3:
        call("add_new_points_or_box", frame_idx=0, obj_id=2, box=[40, 40, 120, 180])
        call("add_new_points_or_box", frame_idx=0, obj_id=3, points=[[250, 130]], labels=[1])
    assert propagate() == list(range(NUM_FRAMES))
    calls_forward = len(kernel_calls)
    assert calls_forward > 0, "the raw-value attention path did not run"

    last = NUM_FRAMES - 1
    call("add_new_points_or_box", frame_idx=last, obj_id=num_objects, points=[[160, 120], [60, 60]],
         labels=[1, 0], clear_old_points=False)
    assert propagate(start_frame_idx=last, reverse=True) == list(range(last, -1, -1))
    assert len(kernel_calls) > calls_forward
    assert np.isfinite(worst) and worst <= RAW_VALUE_LOGIT_ATOL
