"""VideoPredictor behaviour that parity cannot pin: video inputs, bounded memory, errors, results on disk."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from sam2kit.build import build_model
from sam2kit.config import get_config
from sam2kit.predict.video import VideoPredictor

av = pytest.importorskip("av", reason="PyAV decodes video files")


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    net = build_model(get_config("sam2.1_hiera_tiny").replace(image_size=128), device="cpu")
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for param in net.parameters():
            param.add_(0.01 * torch.randn(param.shape, generator=generator))
        net.sam_mask_decoder.pred_obj_score_head.layers[2].bias.add_(2.0)
    return net


@pytest.fixture()
def predictor(model) -> VideoPredictor:
    return VideoPredictor(model, fill_hole_area=0, show_progress=False)


def synthetic_clip(num_frames: int, height: int = 48, width: int = 64) -> np.ndarray:
    """A textured background with a bright square moving right: ``(T, H, W, 3)`` uint8."""
    rng = np.random.default_rng(0)
    background = rng.integers(0, 80, size=(height, width, 3), dtype=np.uint8)
    frames = np.repeat(background[None], num_frames, axis=0)
    for t in range(num_frames):
        x = 8 + (t % 30)
        frames[t, 16:32, x : x + 16] = (230, 200, 40)
    return frames


def write_lossless(path: Path, frames: np.ndarray) -> Path:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("ffv1", rate=10)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "bgr0"
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def track_all(predictor: VideoPredictor, video, **init_kwargs) -> list[torch.Tensor]:
    state = predictor.init_state(video, **init_kwargs)
    predictor.add_new_points_or_box(state, 0, 1, points=[[16, 24]], labels=[1])
    predictor.add_new_points_or_box(state, 0, 2, box=[0, 0, 20, 14])
    return [masks.clone() for _, _, masks in predictor.propagate_in_video(state)]


def test_video_file_and_frame_folder_give_the_same_masks(predictor, tmp_path: Path) -> None:
    if "ffv1" not in av.codecs_available:
        pytest.skip("PyAV build lacks the lossless ffv1 encoder")
    from sam2kit.io.frames import write_frames_to_folder

    clip = synthetic_clip(12)
    video = write_lossless(tmp_path / "clip.mkv", clip)
    folder = write_frames_to_folder(clip, tmp_path / "png", extension=".png")
    from_file = track_all(predictor, video)
    from_folder = track_all(predictor, folder)
    from_array = track_all(predictor, clip)
    assert len(from_file) == len(from_folder) == len(from_array) == 12
    for a, b, c in zip(from_file, from_folder, from_array, strict=True):
        assert torch.equal(a, b) and torch.equal(a, c)


def test_lossy_mp4_equals_its_decoded_frames(predictor, tmp_path: Path) -> None:
    from sam2kit.io.frames import open_frames, write_frames_to_folder
    from sam2kit.io.video_writer import VideoWriter

    clip = synthetic_clip(10)
    with VideoWriter(tmp_path / "clip.mp4", fps=10) as writer:
        for frame in clip:
            writer.write(frame)
    decoded = np.stack(list(open_frames(tmp_path / "clip.mp4")))
    folder = write_frames_to_folder(decoded, tmp_path / "decoded", extension=".png")
    for a, b in zip(track_all(predictor, tmp_path / "clip.mp4"), track_all(predictor, folder), strict=True):
        assert torch.equal(a, b)


def _retained_during(predictor: VideoPredictor, num_frames: int) -> list[int]:
    state = predictor.init_state(synthetic_clip(num_frames))
    predictor.add_new_points_or_box(state, 0, 1, points=[[16, 24]], labels=[1])
    predictor.add_new_points_or_box(state, 0, 2, points=[[40, 10]], labels=[1])
    sizes = []
    for _ in predictor.propagate_in_video(state):
        sizes.append(state.retained_entries())
    for track in state.objects.values():
        assert len(track.non_cond) <= predictor.memory_window + 1
        kept = [t for t, entry in track.non_cond.items() if entry.maskmem_features is not None]
        assert len(kept) <= predictor.model.num_maskmem
    return sizes


def test_retained_state_does_not_grow_with_video_length(predictor) -> None:
    short = _retained_during(predictor, 30)
    long = _retained_during(predictor, 75)
    window = predictor.memory_window
    # After the memory window fills, the number of per-frame entries is constant.
    assert len(set(short[window + 2 :])) == 1
    assert len(set(long[window + 2 :])) == 1
    assert short[-1] == long[-1]


def test_keep_all_memories_grows_like_the_reference(predictor) -> None:
    state = predictor.init_state(synthetic_clip(20), keep_all_memories=True)
    predictor.add_new_points_or_box(state, 0, 1, points=[[16, 24]], labels=[1])
    for _ in predictor.propagate_in_video(state):
        pass
    assert len(state.objects[1].non_cond) == 19


def test_first_mask_does_not_decode_the_whole_video(predictor, tmp_path: Path) -> None:
    if "ffv1" not in av.codecs_available:
        pytest.skip("PyAV build lacks the lossless ffv1 encoder")
    video = write_lossless(tmp_path / "long.mkv", synthetic_clip(300))
    state = predictor.init_state(video)
    _, ids, masks = predictor.add_new_points_or_box(state, 0, 1, points=[[16, 24]], labels=[1])
    assert ids == [1] and masks.shape == (1, 1, 48, 64)
    assert state.frames.num_decoded <= 2


def test_results_dir_keeps_yielded_frames_retrievable(predictor, tmp_path: Path) -> None:
    state = predictor.init_state(synthetic_clip(8), results_dir=tmp_path / "results")
    predictor.add_new_points_or_box(state, 0, 1, points=[[16, 24]], labels=[1])
    yielded = {t: masks.clone() for t, _, masks in predictor.propagate_in_video(state)}
    for t, masks in yielded.items():
        ids, stored = predictor.get_frame_masks(state, t)
        assert ids == [1]
        assert torch.equal(stored, masks)


def test_fill_hole_area_fills_small_holes_on_cpu(model) -> None:
    frames = np.full((4, 128, 128, 3), 90, dtype=np.uint8)
    mask = np.zeros((128, 128), dtype=bool)
    mask[32:96, 32:96] = True
    mask[60:68, 60:68] = False  # an 8x8 hole: 2x2 pixels in the 32x32 low-res mask
    outputs = {}
    for area in (0, 8):
        predictor = VideoPredictor(model, fill_hole_area=area, show_progress=False)
        state = predictor.init_state(frames)
        _, _, masks = predictor.add_new_mask(state, 0, 1, mask)
        outputs[area] = masks[0, 0]
    assert outputs[0][64, 64] < 0, "the hole is background without hole filling"
    assert outputs[8][64, 64] > 0, "fill_hole_area=8 fills the hole"
    changed = (outputs[8] > 0) != (outputs[0] > 0)
    assert changed.any() and not changed[:48].any() and not changed[80:].any(), "only the hole changes"


def test_non_overlap_masks_give_each_pixel_to_one_object(model) -> None:
    predictor = VideoPredictor(model, fill_hole_area=0, non_overlap_masks=True, show_progress=False)
    state = predictor.init_state(synthetic_clip(3))
    predictor.add_new_points_or_box(state, 0, 1, box=[0, 0, 40, 40])
    _, _, masks = predictor.add_new_points_or_box(state, 0, 2, box=[10, 10, 60, 46])
    assert not ((masks[0] > 0) & (masks[1] > 0)).any()


def _track_three_overlapping_objects(model, groups_of_one: bool, monkeypatch) -> list[torch.Tensor]:
    """Objects 1 and 2 (overlapping boxes) are prompted on frame 0, object 3 on frames 0 and 2, so
    the engine batches 1 + 2 and runs 3 apart on frame 1 (or, ``groups_of_one``, each apart)."""
    from sam2kit.predict.tracker import TrackingEngine

    if groups_of_one:
        monkeypatch.setattr(TrackingEngine, "_batch_groups", lambda self, tracks, indices, t: [[i] for i in indices])
    predictor = VideoPredictor(model, fill_hole_area=0, show_progress=False)
    state = predictor.init_state(synthetic_clip(5))
    predictor.add_new_points_or_box(state, 0, 1, box=[0, 0, 40, 40])
    predictor.add_new_points_or_box(state, 0, 2, box=[10, 10, 60, 46])
    predictor.add_new_points_or_box(state, 0, 3, box=[20, 5, 50, 30])
    predictor.add_new_points_or_box(state, 2, 3, points=[[30, 20]], labels=[1])
    outputs = [masks for _, _, masks in predictor.propagate_in_video(state)]
    monkeypatch.undo()
    return outputs


def test_memory_non_overlap_spans_every_tracked_object(model, monkeypatch) -> None:
    """``non_overlap_masks_for_mem_enc`` constrains the remembered masks across all objects tracked
    on a frame, however the engine batches them; and it does change what is remembered."""
    exclusive = build_model(model.config.replace(non_overlap_masks_for_mem_enc=True), device="cpu").eval()
    exclusive.load_state_dict(model.state_dict())
    batched = _track_three_overlapping_objects(exclusive, False, monkeypatch)
    apart = _track_three_overlapping_objects(exclusive, True, monkeypatch)
    for t, (a, b) in enumerate(zip(batched, apart, strict=True)):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-4, msg=f"frame {t}")
    shared = _track_three_overlapping_objects(model.eval(), False, monkeypatch)
    assert max((a - b).abs().max().item() for a, b in zip(batched[3:], shared[3:], strict=True)) > 1e-3


# ------------------------------------------------------------------------------- errors
def test_bad_inputs_give_clear_errors(predictor, tmp_path: Path) -> None:
    from sam2kit.io.source import VideoReadError

    not_a_video = tmp_path / "notes.mp4"
    not_a_video.write_text("this is not a video")
    with pytest.raises(VideoReadError, match="notes.mp4"):
        predictor.init_state(not_a_video)
    (tmp_path / "empty").mkdir()
    with pytest.raises(VideoReadError):
        predictor.init_state(tmp_path / "empty")
    with pytest.raises(FileNotFoundError):
        predictor.init_state(tmp_path / "missing.mp4")

    state = predictor.init_state(synthetic_clip(5))
    with pytest.raises(IndexError, match=r"out of range.*0\.\.4"):
        predictor.add_new_points_or_box(state, 5, 1, points=[[1, 1]], labels=[1])
    with pytest.raises(RuntimeError, match="no object"):
        next(predictor.propagate_in_video(state))
    with pytest.raises(ValueError, match="outside the image"):
        predictor.add_new_points_or_box(state, 0, 1, points=[[100, 1]], labels=[1])
    with pytest.raises(ValueError, match="together"):
        predictor.add_new_points_or_box(state, 0, 1, points=[[1, 1]])
    predictor.add_new_points_or_box(state, 0, 1, points=[[10, 10]], labels=[1])
    with pytest.raises(KeyError, match=r"unknown object id 7.*\[1\]"):
        predictor.clear_all_prompts_in_frame(state, 0, 7)
    with pytest.raises(KeyError, match="unknown object id 7"):
        predictor.remove_object(state, 7, strict=True)
    assert predictor.remove_object(state, 7) == ([1], [])
    with pytest.raises(IndexError):
        next(predictor.propagate_in_video(state, start_frame_idx=9))
    with pytest.raises(RuntimeError, match="results_dir"):
        predictor.get_frame_masks(state, 0)


# ------------------------------------------------------------------------------- engine
def test_engine_steps_a_clip_with_gradients_like_the_predictor(model) -> None:
    """The tracking engine, driven as a training loop drives it (autograd on, features given,
    prompts in model pixels), gives the predictor's masks and gradients reach the memory modules."""
    from sam2kit.modeling.sam2 import PointPrompts
    from sam2kit.predict.tracker import TrackingEngine
    from sam2kit.predict.transforms import preprocess_frame_pil
    from sam2kit.predict.video_state import InferenceState

    clip = synthetic_clip(4, height=128, width=128)
    predictor = VideoPredictor(model, fill_hole_area=0, show_progress=False)
    state = predictor.init_state(clip)
    predictor.add_new_points_or_box(state, 0, 1, points=[[24, 24]], labels=[1])
    expected = [masks for _, _, masks in predictor.propagate_in_video(state)]

    engine = TrackingEngine(model, fill_hole_area=0)
    session = InferenceState(frames=None, num_frames=4, video_height=128, video_width=128,
                             device=torch.device("cpu"), storage_device=torch.device("cpu"))
    features = [model.forward_image(preprocess_frame_pil(frame, 128)[None]) for frame in clip]
    with pytest.raises(RuntimeError, match="set_frame_features"):
        engine.frame_features(session, 0)
    try:
        engine.set_frame_features(session, 0, features[0])
        click = PointPrompts(torch.tensor([[[24.0, 24.0]]]), torch.tensor([[1]], dtype=torch.int32))
        steps = [engine.add_points(session, 1, 0, click)]
        engine.commit_prompts(session)
        for t in range(1, 4):
            engine.set_frame_features(session, t, features[t])
            steps.append(engine.track_frame(session, t))
        assert all(step.obj_ids == [1] and step.low_res_masks.requires_grad for step in steps)
        assert steps[-1].model_outputs[0][1].ious.requires_grad
        for t, step in enumerate(steps):
            masks = engine.video_res_masks(session, step.low_res_masks)
            torch.testing.assert_close(masks, expected[t], atol=1e-3, rtol=0)
        loss = sum(step.low_res_masks.sigmoid().mean() + step.object_score_logits.sum() for step in steps)
        loss.backward()
        for module in (model.memory_attention, model.memory_encoder, model.image_encoder):
            assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in module.parameters())
    finally:
        model.zero_grad(set_to_none=True)
