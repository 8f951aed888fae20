"""Parity of VideoPredictor with the reference SAM2VideoPredictor on a JPEG-folder video.

The video is 16 frames panned and zoomed over a real photograph. Both predictors run on the same
seeded random weights (object-score bias +2 so objects reliably appear) with hole filling off (the
reference skips it without its CUDA extension). Every yielded frame must agree: logits max |Δ| <=
1e-3 and binarised masks differ on <= 0.05 % of pixels.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from conftest import assert_logits_close, make_model_pair, mask_mismatch_fraction
from sam2kit.predict.video import VideoPredictor

IMAGE_SIZE = 256
NUM_FRAMES = 16
VIDEO_MASK_MISMATCH = 5e-4  # 0.05 % of pixels


def panned_clip(num_frames: int = NUM_FRAMES, height: int = 240, width: int = 320) -> np.ndarray:
    """``(T, H, W, 3)`` uint8: a camera panning and zooming over scikit-image's astronaut."""
    from PIL import Image
    from skimage import data

    photo = data.astronaut()
    frames = []
    for t in range(num_frames):
        zoom = 1.0 + 0.02 * t
        crop_h, crop_w = int(360 / zoom), int(480 / zoom)
        top, left = 10 + 3 * t, 8 + 5 * t
        crop = photo[top : top + crop_h, left : left + crop_w]
        frames.append(np.asarray(Image.fromarray(crop).resize((width, height), Image.BICUBIC)))
    return np.stack(frames)


@pytest.fixture(scope="module")
def jpeg_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from sam2kit.io.frames import write_frames_to_folder

    folder = tmp_path_factory.mktemp("video") / "frames"
    write_frames_to_folder(panned_clip(), folder, quality=95)
    return folder


def _patch_reference_dtype(ref: Any) -> None:
    """On CPU in fp32 the reference fails when every memory token is a bf16 stored memory (no fp32
    object pointer in the concat to promote it). Cast to the query dtype, as the promoted concat
    does on every other frame (see shared/REFERENCE.md)."""
    if getattr(ref, "_sam2kit_dtype_patch", False):
        return
    original = ref.memory_attention.forward

    def forward(curr, memory, curr_pos=None, memory_pos=None, num_obj_ptr_tokens=0):
        dtype = curr[0].dtype if isinstance(curr, list) else curr.dtype
        return original(
            curr=curr,
            memory=memory.to(dtype),
            curr_pos=curr_pos,
            memory_pos=memory_pos.to(dtype),
            num_obj_ptr_tokens=num_obj_ptr_tokens,
        )

    ref.memory_attention.forward = forward
    ref._sam2kit_dtype_patch = True


class Session:
    """One reference session and one sam2kit session driven by the same calls."""

    def __init__(
        self, config_name: str, video: Path, keep_all_memories: bool = False, reference_overrides: tuple[str, ...] = ()
    ) -> None:
        pair = make_model_pair(
            config_name, IMAGE_SIZE, obj_score_bias=2.0, video=True, reference_overrides=reference_overrides
        )
        _patch_reference_dtype(pair.ref)
        self.ref = pair.ref
        self.ours = VideoPredictor(pair.ours, fill_hole_area=0, show_progress=False)
        self.ref_state = self.ref.init_state(str(video))
        self.our_state = self.ours.init_state(video, keep_all_memories=keep_all_memories)
        self.frames_compared = 0

    def compare(self, ref_out: tuple, our_out: tuple, what: str) -> None:
        ref_frame, ref_ids, ref_masks = ref_out
        our_frame, our_ids, our_masks = our_out
        assert our_frame == ref_frame, what
        assert list(our_ids) == list(ref_ids), what
        assert our_masks.shape == ref_masks.shape, what
        assert_logits_close(ref_masks, our_masks, f"{what} frame {ref_frame}")
        mismatch = mask_mismatch_fraction(ref_masks, our_masks)
        assert mismatch <= VIDEO_MASK_MISMATCH, f"{what} frame {ref_frame}: {mismatch:.3%} pixels differ"
        self.frames_compared += 1

    def call(self, method: str, *args: Any, **kwargs: Any) -> None:
        ref_out = getattr(self.ref, method)(self.ref_state, *args, **kwargs)
        our_out = getattr(self.ours, method)(self.our_state, *args, **kwargs)
        self.compare(ref_out, our_out, method)

    def propagate(self, **kwargs: Any) -> list[int]:
        ref_iter: Iterator = self.ref.propagate_in_video(self.ref_state, **kwargs)
        our_iter: Iterator = self.ours.propagate_in_video(self.our_state, **kwargs)
        frames = []
        for ref_out, our_out in zip(ref_iter, our_iter, strict=True):
            self.compare(ref_out, our_out, f"propagate({kwargs})")
            frames.append(ref_out[0])
        return frames


@pytest.mark.parametrize("config_name", ["sam2.1_hiera_tiny", "sam2_hiera_tiny"])
def test_one_object_one_click(sam2_reference: Any, jpeg_video: Path, config_name: str) -> None:
    session = Session(config_name, jpeg_video)
    session.call("add_new_points_or_box", frame_idx=0, obj_id=1, points=[[150, 110]], labels=[1])
    assert session.propagate() == list(range(NUM_FRAMES))


@pytest.mark.parametrize("config_name", ["sam2.1_hiera_tiny", "sam2_hiera_tiny"])
def test_multi_object_interactive_session(sam2_reference: Any, jpeg_video: Path, config_name: str) -> None:
    """Three objects (points, box, mask), clicks on frames 0 and 8, a correction after propagation,
    reverse propagation from the last frame, then remove_object and re-propagation.

    remove_object reports every object's mask on the removed object's prompted frames, frames far
    behind the last pass; only a session that keeps all memories (as the reference does) still
    holds those, so this scenario runs with ``keep_all_memories=True``. The default bounded mode is
    covered by the other tests.
    """
    session = Session(config_name, jpeg_video, keep_all_memories=True)
    session.call("add_new_points_or_box", frame_idx=0, obj_id=1, points=[[150, 110]], labels=[1])
    session.call("add_new_points_or_box", frame_idx=0, obj_id=2, box=[40, 40, 120, 180])
    mask = np.zeros((240, 320), dtype=bool)
    mask[80:160, 200:290] = True
    session.call("add_new_mask", frame_idx=0, obj_id=3, mask=mask)
    session.call(
        "add_new_points_or_box", frame_idx=8, obj_id=1, points=[[160, 120], [60, 60]], labels=[1, 0]
    )
    assert session.propagate() == list(range(NUM_FRAMES))

    last = NUM_FRAMES - 1
    session.call(
        "add_new_points_or_box", frame_idx=last, obj_id=2, points=[[90, 100]], labels=[1], clear_old_points=False
    )
    assert session.propagate(start_frame_idx=last, reverse=True) == list(range(last, -1, -1))

    ref_ids, ref_updates = session.ref.remove_object(session.ref_state, 2)
    our_ids, our_updates = session.ours.remove_object(session.our_state, 2)
    assert our_ids == ref_ids == [1, 3]
    assert [t for t, _ in our_updates] == [t for t, _ in ref_updates]
    for (t, ref_masks), (_, our_masks) in zip(ref_updates, our_updates, strict=True):
        session.compare((t, ref_ids, ref_masks), (t, our_ids, our_masks), "remove_object")
    session.propagate()
    assert session.frames_compared == 4 + NUM_FRAMES + 1 + NUM_FRAMES + len(ref_updates) + NUM_FRAMES


def test_object_prompted_on_a_later_frame(sam2_reference: Any, jpeg_video: Path) -> None:
    """An object whose only prompt lies on frame 8 is tracked from frame 0 on memories alone."""
    session = Session("sam2.1_hiera_tiny", jpeg_video)
    session.call("add_new_points_or_box", frame_idx=0, obj_id=5, points=[[150, 110]], labels=[1])
    session.call("add_new_points_or_box", frame_idx=8, obj_id=6, points=[[70, 150]], labels=[1])
    session.propagate(start_frame_idx=0, max_frame_num_to_track=11)
    session.call("clear_all_prompts_in_frame", frame_idx=8, obj_id=6)


#: The reference's legacy video predictor (SAM 2.0's, still in sam2 1.1.0) tracks all objects as one
#: batch, as sam2kit does; the 1.1.0 one tracks them one at a time, which makes the switch a no-op.
NON_OVERLAP_MEMORY = (
    "++model._target_=sam2.sam2_video_predictor_legacy.SAM2VideoPredictor",
    "++model.non_overlap_masks_for_mem_enc=true",
)


def test_non_overlapping_memories(sam2_reference: Any, jpeg_video: Path) -> None:
    """``non_overlap_masks_for_mem_enc``: three objects prompted on frame 0 whose masks overlap;
    what each remembers of the prompted and tracked frames keeps each pixel for the highest-scoring
    one, as in the reference's legacy (batched) predictor; and that changes the masks."""
    session = Session("sam2.1_hiera_tiny", jpeg_video, reference_overrides=NON_OVERLAP_MEMORY)
    assert session.ours.model.config.non_overlap_masks_for_mem_enc and session.ref.non_overlap_masks_for_mem_enc
    assert type(session.ref).__module__ == "sam2.sam2_video_predictor_legacy"
    shared = make_model_pair("sam2.1_hiera_tiny", IMAGE_SIZE, obj_score_bias=2.0, video=True)
    plain = VideoPredictor(shared.ours, fill_hole_area=0, show_progress=False)
    plain_state = plain.init_state(jpeg_video)
    prompts = [
        dict(obj_id=1, points=[[150, 110]], labels=[1]),
        dict(obj_id=2, box=[100, 60, 220, 200]),
        dict(obj_id=3, points=[[160, 120], [140, 90]], labels=[1, 1]),
    ]
    for prompt in prompts:
        session.call("add_new_points_or_box", frame_idx=0, **prompt)
        plain.add_new_points_or_box(plain_state, frame_idx=0, **prompt)
    ref_iter = session.ref.propagate_in_video(session.ref_state)
    our_iter = session.ours.propagate_in_video(session.our_state)
    largest_change = 0.0
    for ref_out, our_out, plain_out in zip(ref_iter, our_iter, plain.propagate_in_video(plain_state), strict=True):
        session.compare(ref_out, our_out, "propagate, non-overlapping memories")
        largest_change = max(largest_change, (our_out[2] - plain_out[2]).abs().max().item())
    assert session.frames_compared == 3 + NUM_FRAMES
    assert largest_change > 1e-2, "the switch changed nothing: the objects' masks did not overlap"


def test_objects_are_batched_with_identical_results(jpeg_video: Path) -> None:
    """Objects sharing a memory layout run as one batch; results equal one-at-a-time tracking."""
    pair = make_model_pair("sam2.1_hiera_tiny", IMAGE_SIZE, obj_score_bias=2.0, video=True)
    predictor = VideoPredictor(pair.ours, fill_hole_area=0, show_progress=False)
    prompts = {1: [[150, 110]], 2: [[60, 150]], 3: [[250, 120]]}
    together = predictor.init_state(jpeg_video)
    for obj_id, points in prompts.items():
        predictor.add_new_points_or_box(together, 0, obj_id, points=points, labels=[1])
    batched = [masks for _, _, masks in predictor.propagate_in_video(together, max_frame_num_to_track=5)]
    for index, (obj_id, points) in enumerate(prompts.items()):
        alone = predictor.init_state(jpeg_video)
        predictor.add_new_points_or_box(alone, 0, obj_id, points=points, labels=[1])
        single = [masks for _, _, masks in predictor.propagate_in_video(alone, max_frame_num_to_track=5)]
        for frame_masks, frame_single in zip(batched, single, strict=True):
            assert_logits_close(frame_single[0], frame_masks[index], "batched vs single object")
