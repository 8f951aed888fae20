"""VideoPredictor: interactive multi-object tracking through a video, in bounded memory.

API as the official ``SAM2VideoPredictor``: ``init_state``, ``add_new_points_or_box``,
``add_new_mask``, ``propagate_in_video``, ``clear_all_prompts_in_frame``, ``remove_object``,
``reset_state``. Differences users notice: frames are decoded lazily (any video file, folder, list or
array), memory does not grow with video length, and objects sharing a memory layout run as a batch.

The predictor validates input and runs the :class:`~sam2kit.predict.tracker.TrackingEngine` (which
it shares with the stream predictor) under ``torch.inference_mode()``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from ..modeling.sam2 import SAM2Model
from .tracker import TrackingEngine
from .video_prompts import mask_prompt, point_prompts
from .video_state import InferenceState


class _EngineOption:
    """A predictor attribute that reads and writes the engine's option of the same name."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, predictor: Any, owner: type | None = None) -> Any:
        return self if predictor is None else getattr(predictor.engine, self.name)

    def __set__(self, predictor: Any, value: Any) -> None:
        setattr(predictor.engine, self.name, value)


class VideoPredictor:
    """Tracks objects prompted on any frames through a whole video.

    Args:
        model: a :class:`SAM2Model`.
        fill_hole_area: fill background holes up to this area in the low-res masks (0: off).
            Runs on CPU and GPU (the reference skips it without its CUDA extension).
        non_overlap_masks: give each pixel to at most one object in the returned masks.
        clear_non_cond_mem_around_input: drop tracked memories around newly prompted frames.
        add_all_frames_to_correct_as_cond: corrections on tracked frames become conditioning frames.
        show_progress: tqdm progress bar (stderr) during propagation.

    The four tracking options are attributes that can be changed between calls; the engine doing the
    work is :attr:`engine`.
    """

    fill_hole_area = _EngineOption()
    non_overlap_masks = _EngineOption()
    clear_non_cond_mem_around_input = _EngineOption()
    add_all_frames_to_correct_as_cond = _EngineOption()

    def __init__(
        self,
        model: SAM2Model,
        fill_hole_area: int = 8,
        non_overlap_masks: bool = False,
        clear_non_cond_mem_around_input: bool = False,
        add_all_frames_to_correct_as_cond: bool = False,
        show_progress: bool = True,
    ) -> None:
        self.model = model.eval()
        self.engine = TrackingEngine(
            self.model,
            fill_hole_area=fill_hole_area,
            non_overlap_masks=non_overlap_masks,
            clear_non_cond_mem_around_input=clear_non_cond_mem_around_input,
            add_all_frames_to_correct_as_cond=add_all_frames_to_correct_as_cond,
        )
        self.show_progress = show_progress

    @classmethod
    def from_pretrained(
        cls, model_id: str = "facebook/sam2.1-hiera-tiny", device: str | None = None, **kwargs: Any
    ) -> VideoPredictor:
        """Predictor for an official hub checkpoint (see :func:`sam2kit.from_pretrained`)."""
        from ..build import from_pretrained

        return cls(from_pretrained(model_id, device=device), **kwargs)

    @property
    def device(self) -> torch.device:
        return self.model.device

    @property
    def memory_window(self) -> int:
        """How many frames back (or ahead, in reverse) a tracked frame can still be attended to."""
        return self.engine.memory_window

    # ------------------------------------------------------------------ session
    @torch.inference_mode()
    def init_state(
        self,
        video: Any = None,
        offload_video_to_cpu: bool = False,
        offload_state_to_cpu: bool = False,
        async_loading_frames: bool = False,
        *,
        video_path: Any = None,
        keep_all_memories: bool = False,
        results_dir: str | Path | None = None,
        frame_cache_size: int = 16,
    ) -> InferenceState:
        """Open a video for tracking. Nothing is decoded beyond the first frame.

        Args:
            video: a video file (mp4, mov, mkv, webm, avi; PyAV), a folder of JPEG/PNG frames, a list
                of images, a ``(T, H, W, 3)`` uint8 array, or a :class:`sam2kit.io.FrameSource`.
            video_path: the official name of ``video`` (give one of the two).
            offload_video_to_cpu / async_loading_frames: accepted for compatibility; frames are always
                decoded lazily on the CPU, so neither is needed.
            offload_state_to_cpu: keep memories on the CPU (saves GPU memory).
            keep_all_memories: keep every tracked frame's memory like the reference does (memory then
                grows with length). Default: only what later frames can attend to.
            results_dir: write every yielded frame's masks there, retrievable with
                :meth:`get_frame_masks`.
            frame_cache_size: decoded frames kept in the source's LRU cache.
        Raises:
            FileNotFoundError, TypeError, sam2kit.io.VideoReadError: unreadable or empty video, or
            none (or both) of ``video`` and ``video_path``.
        """
        from ..io.frames import open_frames

        if (video is None) == (video_path is None):
            given = "both" if video is not None else "neither"
            raise TypeError(f"init_state needs the video once, as video= or its official name video_path=; got {given}")
        video = video if video is not None else video_path

        frames = open_frames(video, cache_size=frame_cache_size)
        device = self.device
        state = InferenceState(
            frames=frames,
            num_frames=len(frames),
            video_height=frames.height,
            video_width=frames.width,
            device=device,
            storage_device=torch.device("cpu") if offload_state_to_cpu else device,
            keep_all_memories=keep_all_memories,
            results_dir=Path(results_dir) if results_dir is not None else None,
        )
        if state.results_dir is not None:
            state.results_dir.mkdir(parents=True, exist_ok=True)
        self.engine.frame_features(state, 0)  # warm up: the first mask comes faster
        return state

    @torch.inference_mode()
    def reset_state(self, inference_state: InferenceState) -> None:
        """Remove every object and prompt (the video stays open)."""
        inference_state.objects.clear()

    # ------------------------------------------------------------------ prompts
    @torch.inference_mode()
    def add_new_points_or_box(
        self,
        inference_state: InferenceState,
        frame_idx: int,
        obj_id: int,
        points: Any = None,
        labels: Any = None,
        clear_old_points: bool = True,
        normalize_coords: bool = True,
        box: Any = None,
    ) -> tuple[int, list[int], torch.Tensor]:
        """Add clicks and/or a box for one object on one frame (a new ``obj_id`` adds an object).

        Args:
            points: ``(N, 2)`` (x, y) pixels of the video frame (or [0, 1] with
                ``normalize_coords=False``); labels ``(N,)``: 1 foreground, 0 background.
            clear_old_points: replace this object's earlier clicks on this frame (else append).
            box: ``(4,)`` XYXY box (with ``clear_old_points=True`` only).
        Returns:
            ``(frame_idx, obj_ids, video_res_masks)``: logits ``(num_objects, 1, H, W)`` of every
            object on this frame.
        Raises:
            IndexError: frame out of range. ValueError: invalid prompts.
        """
        state, engine = inference_state, self.engine
        state.check_frame(frame_idx)
        prompts = point_prompts(
            points,
            labels,
            box,
            (state.video_height, state.video_width),
            self.model.image_size,
            self.device,
            normalize_coords=normalize_coords,
            box_allowed=clear_old_points,
        )
        engine.add_points(state, obj_id, frame_idx, prompts, append=not clear_old_points)
        return frame_idx, state.obj_ids, engine.frame_output(state, frame_idx)

    add_new_points = add_new_points_or_box

    @torch.inference_mode()
    def add_new_mask(
        self, inference_state: InferenceState, frame_idx: int, obj_id: int, mask: Any
    ) -> tuple[int, list[int], torch.Tensor]:
        """Give an object's mask ``(H, W)`` (bool / 0-1, any resolution) on one frame.

        Returns:
            ``(frame_idx, obj_ids, video_res_masks)`` as :meth:`add_new_points_or_box`.
        Raises:
            IndexError: frame out of range. ValueError: not a non-empty 2D mask.
        """
        state, engine = inference_state, self.engine
        state.check_frame(frame_idx)
        engine.add_mask(state, obj_id, frame_idx, mask_prompt(mask, self.model.image_size, self.device))
        return frame_idx, state.obj_ids, engine.frame_output(state, frame_idx)

    @torch.inference_mode()
    def clear_all_prompts_in_frame(
        self, inference_state: InferenceState, frame_idx: int, obj_id: int, need_output: bool = True
    ) -> tuple[int, list[int], torch.Tensor] | None:
        """Remove one object's prompts on a frame (its result there becomes a tracked one)."""
        track = inference_state.get_object(obj_id)
        inference_state.check_frame(frame_idx)
        track.clear_prompts(frame_idx)
        if not need_output:
            return None
        return frame_idx, inference_state.obj_ids, self.engine.frame_output(inference_state, frame_idx)

    @torch.inference_mode()
    def remove_object(
        self, inference_state: InferenceState, obj_id: int, strict: bool = False, need_output: bool = True
    ) -> tuple[list[int], list[tuple[int, torch.Tensor]]]:
        """Remove an object. Returns the remaining ids and the updated masks of its prompted frames.

        Raises:
            KeyError: with ``strict``, when ``obj_id`` is unknown.
        """
        if obj_id not in inference_state.objects:
            if strict:
                inference_state.get_object(obj_id)
            return inference_state.obj_ids, []
        track = inference_state.objects.pop(obj_id)
        prompted = sorted(set(track.point_inputs) | set(track.mask_inputs))
        updated = []
        if need_output and inference_state.objects:
            updated = [(t, self.engine.frame_output(inference_state, t)) for t in prompted]
        return inference_state.obj_ids, updated

    # ------------------------------------------------------------------ propagation
    @torch.inference_mode()
    def propagate_in_video(
        self,
        inference_state: InferenceState,
        start_frame_idx: int | None = None,
        max_frame_num_to_track: int | None = None,
        reverse: bool = False,
    ) -> Iterator[tuple[int, list[int], torch.Tensor]]:
        """Track every object through the video, yielding ``(frame_idx, obj_ids, video_res_masks)``
        with logits ``(num_objects, 1, H, W)`` for each frame as soon as it is computed.

        Starts at the earliest prompted frame by default; ``reverse`` tracks backwards.
        """
        state, engine = inference_state, self.engine
        engine.commit_prompts(state)
        num_frames = state.num_frames
        if start_frame_idx is None:
            start_frame_idx = min(t for track in state.objects.values() for t in track.cond)
        state.check_frame(start_frame_idx)
        if max_frame_num_to_track is None:
            max_frame_num_to_track = num_frames
        if reverse:
            end = max(start_frame_idx - max_frame_num_to_track, 0)
            order = range(start_frame_idx, end - 1, -1) if start_frame_idx > 0 else range(0)
        else:
            end = min(start_frame_idx + max_frame_num_to_track, num_frames - 1)
            order = range(start_frame_idx, end + 1)
        tracks = list(state.objects.values())
        for frame_idx in tqdm(order, desc="propagate in video", disable=not self.show_progress, unit="frame"):
            step = engine.track_frame(state, frame_idx, tracks, reverse)
            if state.results_dir is not None:
                engine.save_frame_result(state, step)
            yield frame_idx, step.obj_ids, engine.video_res_masks(state, step.low_res_masks)

    def get_frame_masks(self, inference_state: InferenceState, frame_idx: int) -> tuple[list[int], torch.Tensor]:
        """Masks of an already yielded frame, read back from ``results_dir``:
        ``(obj_ids, logits (num_objects, 1, H, W))``.

        Raises:
            RuntimeError: the session has no ``results_dir``. KeyError: the frame was not tracked yet.
        """
        state = inference_state
        state.check_frame(frame_idx)
        if state.results_dir is None:
            raise RuntimeError("frame results are kept only with init_state(..., results_dir=DIR)")
        saved = self.engine.load_frame_result(state, frame_idx)
        if saved is None:
            raise KeyError(f"frame {frame_idx} has not been tracked yet")
        obj_ids, low_res = saved
        return obj_ids, self.engine.video_res_masks(state, low_res)
