"""StreamPredictor: equal to the video predictor's forward propagation, prompts mid-stream, constant
retained state over hundreds of frames, input validation, and the ``sam2kit stream`` command.

Models are SAM 2.1 tiny on seeded random weights at small input sizes (256 px for parity, 128 px and
64 px where only behaviour is checked), with noise on every parameter and a raised object-score
bias so that objects reliably appear. The whole module runs in about a minute on 2 CPU cores.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from sam2kit.build import build_model
from sam2kit.config import get_config
from sam2kit.modeling.sam2 import SAM2Model
from sam2kit.predict.stream import CameraPredictor, StreamFrames, StreamPredictor
from sam2kit.predict.video import VideoPredictor

LOGIT_ATOL = 1e-3
MASK_MISMATCH_MAX = 5e-4  # 0.05 % of the pixels
HEIGHT, WIDTH = 120, 160


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@cache
def tiny_model(image_size: int) -> SAM2Model:
    """SAM 2.1 tiny at ``image_size`` on seeded random weights, objects biased to appear."""
    torch.manual_seed(0)
    model = build_model(get_config("sam2.1_hiera_tiny").replace(image_size=image_size), device="cpu")
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for param in model.parameters():
            param.add_(0.01 * torch.randn(param.shape, generator=generator, dtype=param.dtype))
        model.sam_mask_decoder.pred_obj_score_head.layers[2].bias.add_(2.0)
    return model.eval()


@cache
def panned_frames(count: int, height: int = HEIGHT, width: int = WIDTH) -> np.ndarray:
    """``(count, height, width, 3)`` uint8: a window panning across scikit-image's astronaut."""
    skimage_data = pytest.importorskip("skimage.data", reason="scikit-image provides the test photograph")
    photo = skimage_data.astronaut()  # (512, 512, 3)
    frames = [photo[60 + 3 * i : 60 + 3 * i + height, 40 + 5 * i : 40 + 5 * i + width] for i in range(count)]
    array = np.ascontiguousarray(np.stack(frames))
    array.setflags(write=False)
    return array


def noise_frames(count: int, height: int = 24, width: int = 32, seed: int = 0) -> Iterator[np.ndarray]:
    rng = np.random.default_rng(seed)
    for _ in range(count):
        yield rng.integers(0, 256, (height, width, 3), dtype=np.uint8)


def mismatch(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(((a > 0) != (b > 0)).float().mean())


# ---------------------------------------------------------------------------- parity with the video predictor
def test_stream_equals_video_forward_propagation() -> None:
    """Same frames, same prompts on frame 0: the stream's masks are the video predictor's on every
    frame (16 frames, so both use the full 16-pointer window; shorter clips differ slightly, see the
    module docstring of sam2kit.predict.stream)."""
    model = tiny_model(256)
    frames = panned_frames(16)
    box, click = [40, 10, 120, 100], [[30, 80]]

    video = VideoPredictor(model, show_progress=False)
    state = video.init_state(np.array(frames))
    video.add_new_points_or_box(state, 0, 1, box=box)
    video.add_new_points_or_box(state, 0, 2, points=click, labels=[1])
    expected = {idx: (ids, masks.clone()) for idx, ids, masks in video.propagate_in_video(state)}
    assert sorted(expected) == list(range(16))

    stream = StreamPredictor(model)
    stream.load_first_frame(frames[0])
    stream.add_new_prompt(0, 1, box=box)
    _, ids, masks = stream.add_new_prompt(0, 2, points=click, labels=[1])
    got = {0: (ids, masks)}
    for idx in range(1, 16):
        got[idx] = stream.track(frames[idx])
        assert stream.frame_idx == idx

    for idx in range(16):
        (ref_ids, ref), (our_ids, ours) = expected[idx], got[idx]
        assert our_ids == ref_ids == [1, 2]
        assert ours.shape == ref.shape == (2, 1, HEIGHT, WIDTH)
        delta = float((ours - ref).abs().max())
        assert delta <= LOGIT_ATOL, f"frame {idx}: logits max |Δ| {delta:.3g}"
        assert mismatch(ours, ref) <= MASK_MISMATCH_MAX, f"frame {idx}: {mismatch(ours, ref):.3%} of pixels differ"
        area = (ours > 0).float().mean(dim=(1, 2, 3))
        assert ((area > 0.001) & (area < 0.999)).all(), f"frame {idx}: trivial masks {area.tolist()}"


def test_camera_predictor_is_the_stream_predictor() -> None:
    assert CameraPredictor is StreamPredictor


# ---------------------------------------------------------------------------- prompts mid-stream
def test_prompt_mid_stream_adds_object_from_that_frame() -> None:
    """An object boxed on frame 10 of 30 appears from frame 10 on; the first object is unaffected."""
    model = tiny_model(128)
    frames = panned_frames(30)

    def run(add_second: bool) -> list[tuple[list[int], torch.Tensor]]:
        stream = StreamPredictor(model)
        stream.load_first_frame(frames[0])
        results = [stream.add_new_prompt(0, 1, box=[40, 10, 120, 100])[1:]]
        for idx in range(1, 30):
            obj_ids, masks = stream.track(frames[idx])
            assert masks.shape == (len(obj_ids), 1, HEIGHT, WIDTH)
            if add_second and idx == 10:
                assert obj_ids == [1]
                frame_idx, obj_ids, masks = stream.add_new_prompt(10, 7, box=[0, 40, 60, 119])
                assert frame_idx == 10
            results.append((obj_ids, masks))
        return results

    alone, together = run(False), run(True)
    for idx in range(30):
        assert together[idx][0] == ([1] if idx < 10 else [1, 7]), idx
        first = together[idx][1][:1]
        assert float((first - alone[idx][1]).abs().max()) <= 1e-5, f"frame {idx}: object 1 changed"
        if idx >= 10:
            area = float((together[idx][1][1] > 0).float().mean())
            assert 0.001 < area < 0.999, f"frame {idx}: new object's mask is trivial ({area:.4f})"


def test_frames_before_any_prompt_and_object_lifecycle() -> None:
    model = tiny_model(64)
    stream = StreamPredictor(model)
    frames = list(noise_frames(6))
    stream.load_first_frame(frames[0])
    obj_ids, masks = stream.track(frames[1])
    assert obj_ids == [] and masks.shape == (0, 1, 24, 32)
    _, obj_ids, masks = stream.add_new_prompt(1, 3, points=[[10, 10]], labels=[1])
    assert obj_ids == [3] and masks.shape == (1, 1, 24, 32)
    _, obj_ids, masks = stream.add_new_prompt(1, 4, mask=np.ones((24, 32), dtype=bool))
    assert obj_ids == [3, 4]
    obj_ids, masks = stream.track(frames[2])
    assert obj_ids == [3, 4] and masks.shape == (2, 1, 24, 32)
    assert stream.object_scores().shape == (2,)
    assert stream.remove_object(3) == [4]
    assert stream.track(frames[3])[0] == [4]
    with pytest.raises(KeyError, match="unknown object id 99"):
        stream.remove_object(99, strict=True)
    stream.reset()
    assert stream.obj_ids == [] and stream.track(frames[4])[0] == []
    assert stream.frame_idx == 4


# ---------------------------------------------------------------------------- bounded memory
def _snapshot(stream: StreamPredictor) -> dict[str, Any]:
    """Everything the stream holds, counted: per-frame entries, tensors' bytes, frames."""
    state = stream.inference_state
    tensor_bytes = 0
    tables = {}
    for track in state.objects.values():
        for name in ("point_inputs", "mask_inputs", "cond", "non_cond", "temp_cond", "temp_non_cond"):
            tables[(track.obj_id, name)] = len(getattr(track, name))
        for table in (track.cond, track.non_cond, track.temp_cond, track.temp_non_cond):
            for entry in table.values():
                for tensor in (entry.maskmem_features, entry.pred_masks, entry.obj_ptr, entry.object_score_logits):
                    tensor_bytes += 0 if tensor is None else tensor.numel() * tensor.element_size()
    frames: StreamFrames = state.frames  # type: ignore[assignment]
    return {
        "retained_entries": state.retained_entries(),
        "tables": tables,
        "tensor_bytes": tensor_bytes,
        "frames_held": int(frames._latest is not None),
        "features_cached_for_current_frame": state.cached_features is not None
        and state.cached_features[0] == stream.frame_idx,
    }


def test_retained_state_is_the_same_after_50_and_500_frames() -> None:
    """500 frames, a correction every 10 frames that becomes a conditioning frame: the state after
    frame 500 is exactly as large as after frame 50 (conditioning frames bounded by max_cond_frames,
    the first kept), and only the current frame is held."""
    model = tiny_model(64)
    stream = StreamPredictor(model, max_cond_frames=3, add_all_frames_to_correct_as_cond=True)
    frames = noise_frames(501)
    stream.load_first_frame(next(frames))
    stream.add_new_prompt(0, 1, box=[4, 4, 20, 16])
    stream.add_new_prompt(0, 2, points=[[24, 12]], labels=[1])
    snapshots = {}
    for idx, frame in enumerate(frames, start=1):
        stream.track(frame)
        if idx in (50, 500):
            snapshots[idx] = _snapshot(stream)
            conds = [sorted(track.cond) for track in stream.inference_state.objects.values()]
            assert conds == [[0, idx - 20, idx - 10]] * 2, conds
        if idx % 10 == 0:
            stream.add_new_prompt(idx, 1, points=[[12, 10]], labels=[1])
            stream.add_new_prompt(idx, 2, points=[[24, 12]], labels=[1])
    assert snapshots[50] == snapshots[500]
    assert snapshots[500]["frames_held"] == 1 and snapshots[500]["features_cached_for_current_frame"]
    window = stream.engine.memory_window  # pointers of the last 15 frames, spatial memories of 6
    assert snapshots[500]["tables"][(1, "non_cond")] <= window + 1


def test_max_cond_frames_is_validated() -> None:
    model = tiny_model(64)
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="max_cond_frames"):
            StreamPredictor(model, max_cond_frames=bad)
    assert StreamPredictor(model, max_cond_frames=None).max_cond_frames is None


# ---------------------------------------------------------------------------- inputs
def test_frame_types_give_the_same_masks() -> None:
    """numpy, PIL, uint8 tensor and float tensor frames are the same frame to the tracker."""
    model = tiny_model(64)
    frames = list(noise_frames(3, seed=5))
    variants = {
        "numpy": frames,
        "pil": [Image.fromarray(f) for f in frames],
        "tensor_uint8": [torch.from_numpy(f).permute(2, 0, 1) for f in frames],
        "tensor_float": [torch.from_numpy(f).permute(2, 0, 1).float() / 255.0 for f in frames],
    }
    results = {}
    for name, items in variants.items():
        stream = StreamPredictor(model)
        stream.load_first_frame(items[0])
        stream.add_new_prompt(0, 1, box=[4, 4, 20, 16])
        results[name] = [stream.track(item)[1] for item in items[1:]]
    for name, masks in results.items():
        for ours, ref in zip(masks, results["numpy"], strict=True):
            assert torch.equal(ours, ref), name


BAD_FRAMES = [
    (np.zeros((24, 32), dtype=np.uint8), ValueError, "shape"),
    (np.zeros((24, 32, 4), dtype=np.uint8), ValueError, "alpha"),
    (np.zeros((3, 24, 32), dtype=np.uint8), ValueError, "channels first"),
    (np.zeros((24, 32, 3), dtype=np.float32), TypeError, "uint8"),
    (np.zeros((0, 32, 3), dtype=np.uint8), ValueError, "empty"),
    (np.zeros((48, 64, 3), dtype=np.uint8), ValueError, "same size"),
    (torch.zeros(24, 32, 3, dtype=torch.uint8), ValueError, r"\(3, H, W\)"),
    (torch.zeros(3, 24, 32, dtype=torch.int32), TypeError, "uint8"),
    (torch.full((3, 24, 32), 2.0), ValueError, r"\[0, 1\]"),
    ([[0, 0, 0]], TypeError, "numpy array"),
    (None, TypeError, "numpy array"),
]


def test_bad_frames_raise_clear_errors_and_the_stream_stays_usable() -> None:
    model = tiny_model(64)
    frames = list(noise_frames(4, seed=3))

    clean = StreamPredictor(model)
    clean.load_first_frame(frames[0])
    clean.add_new_prompt(0, 1, box=[4, 4, 20, 16])
    expected = [clean.track(frame)[1] for frame in frames[1:]]

    stream = StreamPredictor(model)
    for bad, error, message in BAD_FRAMES:
        if message != "same size":  # any size is fine for a first frame
            with pytest.raises(error, match=message):
                stream.load_first_frame(bad)
    stream.load_first_frame(frames[0])
    stream.add_new_prompt(0, 1, box=[4, 4, 20, 16])
    for idx, frame in enumerate(frames[1:], start=1):
        for bad, error, message in BAD_FRAMES:
            with pytest.raises(error, match=message):
                stream.track(bad)
            assert stream.frame_idx == idx - 1
        obj_ids, masks = stream.track(frame)
        assert obj_ids == [1] and torch.equal(masks, expected[idx - 1]), f"frame {idx} differs after bad frames"


def test_usage_errors() -> None:
    model = tiny_model(64)
    stream = StreamPredictor(model)
    frame = next(noise_frames(1))
    with pytest.raises(RuntimeError, match="load_first_frame"):
        stream.track(frame)
    with pytest.raises(RuntimeError, match="load_first_frame"):
        stream.add_new_prompt(0, 1, box=[1, 1, 5, 5])
    stream.load_first_frame(frame)
    stream.track(frame)
    with pytest.raises(ValueError, match="current frame"):
        stream.add_new_prompt(0, 1, box=[1, 1, 5, 5])
    with pytest.raises(TypeError, match="frame_idx"):
        stream.add_new_prompt(1.0, 1, box=[1, 1, 5, 5])
    with pytest.raises(ValueError, match="points"):
        stream.add_new_prompt(1, 1)
    with pytest.raises(ValueError, match="not both"):
        stream.add_new_prompt(1, 1, box=[1, 1, 5, 5], mask=np.ones((24, 32), bool))
    with pytest.raises(ValueError, match="outside the image"):
        stream.add_new_prompt(1, 1, box=[1, 1, 50, 5])
    assert stream.obj_ids == []  # failed prompts add no object
    stream.add_new_prompt(1, 1, box=[1, 1, 5, 5])
    assert stream.track(frame)[0] == [1]


# ---------------------------------------------------------------------------- the CLI
CLI_SIZE = 128


@pytest.fixture(scope="module")
def cli_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from sam2kit.checkpoints import save_checkpoint

    path = tmp_path_factory.mktemp("ckpt") / "sam2.1_hiera_tiny.pt"  # the name gives the config
    save_checkpoint(tiny_model(CLI_SIZE), path)
    return path


@pytest.fixture(scope="module")
def clip_mp4(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("av")
    from sam2kit.io.video_writer import VideoWriter

    path = tmp_path_factory.mktemp("clip") / "clip.mp4"
    with VideoWriter(path, fps=10) as writer:
        for frame in panned_frames(6, 96, 128):
            writer.write(frame)
    return path


def _cli(args: list[str], checkpoint: Path) -> list[str]:
    return ["stream", *args, "--checkpoint", str(checkpoint), "--image-size", str(CLI_SIZE), "--device", "cpu"]


def test_stream_cli_writes_one_json_line_per_frame(
    cli_checkpoint: Path, clip_mp4: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from sam2kit.cli import main
    from sam2kit.io.frames import open_frames

    overlay = tmp_path / "out" / "overlay.mp4"
    argv = ["--source", str(clip_mp4), "--box", "20,10,90,80", "--box", "0,40,50,95", "--overlay", str(overlay)]
    assert main(_cli(argv, cli_checkpoint)) == 0
    captured = capsys.readouterr()
    records = [json.loads(line) for line in captured.out.splitlines()]
    assert [r["frame"] for r in records] == list(range(6))
    times = [r["time_s"] for r in records]
    assert times == sorted(times) and times[1] - times[0] == pytest.approx(0.1, abs=1e-3)
    for record in records:
        assert [o["id"] for o in record["objects"]] == [0, 1]
        for obj in record["objects"]:
            assert set(obj) == {"id", "bbox_xywh", "area", "score"}
            x, y, w, h = obj["bbox_xywh"]
            assert 0 <= x and 0 <= y and x + w <= 128 and y + h <= 96
            assert 0 <= obj["area"] <= w * h and 0.0 <= obj["score"] <= 1.0
    assert any(obj["area"] > 0 for r in records for obj in r["objects"])
    assert "frames per second" in captured.err and "ended" in captured.err
    with open_frames(overlay) as video:
        assert len(video) == 6 and (video.height, video.width) == (96, 128)

    assert main(_cli(["--source", str(clip_mp4), "--box", "20,10,90,80", "--max-frames", "2"], cli_checkpoint)) == 0
    assert len(capsys.readouterr().out.splitlines()) == 2


def test_stream_cli_failures(
    cli_checkpoint: Path, clip_mp4: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from sam2kit.cli import main

    assert main(_cli(["--source", str(tmp_path / "missing.mp4"), "--box", "1,1,5,5"], cli_checkpoint)) == 1
    captured = capsys.readouterr()
    assert "stream source not found" in captured.err and captured.out == ""
    assert main(_cli(["--source", str(clip_mp4), "--box", "1,1,500,5"], cli_checkpoint)) == 1
    assert "outside the image" in capsys.readouterr().err
    assert main(_cli(["--source", str(clip_mp4)], cli_checkpoint)) == 2  # --box is required
    assert "--box" in capsys.readouterr().err


class _BreakingStream:
    """A LiveStream stand-in that yields ``good`` frames, then ``then`` (an exception or a frame)."""

    fps = 10.0

    def __init__(self, frames: np.ndarray, then: Any) -> None:
        self.frames, self.then = frames, then

    def __iter__(self) -> Iterator[tuple[int, float, np.ndarray]]:
        for index, frame in enumerate(self.frames):
            yield index, index / self.fps, np.array(frame)
        if isinstance(self.then, Exception):
            raise self.then
        yield len(self.frames), len(self.frames) / self.fps, self.then

    def close(self) -> None:
        pass


@pytest.mark.parametrize("then", ["network", "resolution"])
def test_stream_cli_ends_cleanly_when_the_source_breaks(
    then: str, cli_checkpoint: Path, clip_mp4: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from sam2kit.cli import main
    from sam2kit.io import stream as stream_module

    failure = (
        stream_module.StreamError("stream rtsp://cam failed after 3 frames: connection reset")
        if then == "network"
        else np.zeros((50, 60, 3), dtype=np.uint8)
    )

    def open_breaking_stream(source: Any) -> _BreakingStream:
        return _BreakingStream(panned_frames(3, 96, 128), failure)

    monkeypatch.setattr(stream_module, "open_stream", open_breaking_stream)
    assert main(_cli(["--source", "rtsp://cam/live", "--box", "20,10,90,80"], cli_checkpoint)) == 0
    captured = capsys.readouterr()
    assert len(captured.out.splitlines()) == 3
    assert ("connection reset" if then == "network" else "same size") in captured.err
    assert "tracked 3 frame(s)" in captured.err

    empty = _BreakingStream(np.zeros((0, 96, 128, 3), np.uint8), stream_module.StreamError("cannot decode"))
    monkeypatch.setattr(stream_module, "open_stream", lambda source: empty)
    assert main(_cli(["--source", "rtsp://cam/live", "--box", "20,10,90,80"], cli_checkpoint)) == 1
    assert "cannot decode" in capsys.readouterr().err
