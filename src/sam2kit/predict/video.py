"""VideoPredictor: interactive multi-object tracking through a video, in bounded memory.

API as the official ``SAM2VideoPredictor``: ``init_state``, ``add_new_points_or_box``,
``add_new_mask``, ``propagate_in_video``, ``clear_all_prompts_in_frame``, ``remove_object``,
``reset_state``. Differences users notice: frames are decoded lazily (any video file, folder, list or
array), memory does not grow with video length, and objects sharing a memory layout run as a batch.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..modeling.sam2 import NO_OBJ_SCORE, FrameFeatures, PointPrompts, SAM2Model, TrackStepOutput
from .postprocess import apply_non_overlapping_constraints, fill_holes_in_mask_scores
from .transforms import as_float_tensor, check_boxes, check_points, preprocess_frame_pil, to_model_coords
from .video_state import InferenceState, MemoryEntry, ObjectTrack, StackedMemories

LOW_RES_CLAMP = 32.0


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
    """

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
        self.fill_hole_area = fill_hole_area
        self.non_overlap_masks = non_overlap_masks
        self.clear_non_cond_mem_around_input = clear_non_cond_mem_around_input
        self.add_all_frames_to_correct_as_cond = add_all_frames_to_correct_as_cond
        self.show_progress = show_progress

    @classmethod
    def from_pretrained(cls, model_id: str = "facebook/sam2.1-hiera-tiny", device: str | None = None, **kwargs: Any) -> "VideoPredictor":
        """Predictor for an official hub checkpoint (see :func:`sam2kit.from_pretrained`)."""
        from ..build import from_pretrained

        return cls(from_pretrained(model_id, device=device), **kwargs)

    @property
    def device(self) -> torch.device:
        return self.model.device

    @property
    def memory_window(self) -> int:
        """How many frames back (or ahead, in reverse) a tracked frame can still be attended to."""
        m = self.model
        return max((m.num_maskmem - 1) * m.memory_temporal_stride_for_eval, m.max_obj_ptrs_in_encoder - 1, 1)

    # ------------------------------------------------------------------ session
    @torch.inference_mode()
    def init_state(
        self,
        video: Any,
        offload_video_to_cpu: bool = False,
        offload_state_to_cpu: bool = False,
        async_loading_frames: bool = False,
        *,
        keep_all_memories: bool = False,
        results_dir: str | Path | None = None,
        frame_cache_size: int = 16,
    ) -> InferenceState:
        """Open a video for tracking. Nothing is decoded beyond the first frame.

        Args:
            video: a video file (mp4, mov, mkv, webm, avi; PyAV), a folder of JPEG/PNG frames, a list
                of images, a ``(T, H, W, 3)`` uint8 array, or a :class:`sam2kit.io.FrameSource`.
            offload_video_to_cpu / async_loading_frames: accepted for compatibility; frames are always
                decoded lazily on the CPU, so neither is needed.
            offload_state_to_cpu: keep memories on the CPU (saves GPU memory).
            keep_all_memories: keep every tracked frame's memory like the reference does (memory then
                grows with length). Default: only what later frames can attend to.
            results_dir: write every yielded frame's masks there, retrievable with
                :meth:`get_frame_masks`.
            frame_cache_size: decoded frames kept in the source's LRU cache.
        Raises:
            FileNotFoundError, TypeError, sam2kit.io.VideoReadError: unreadable or empty video.
        """
        from ..io.frames import open_frames

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
        self._frame_features(state, 0)  # warm up: the first mask comes faster
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
        self._check_frame(inference_state, frame_idx)
        hw = (inference_state.video_height, inference_state.video_width)
        if (points is None) != (labels is None):
            raise ValueError("points and labels must be given together")
        if points is None and box is None:
            raise ValueError("give points (with labels) and/or a box")
        device = self.device
        size = self.model.image_size
        parts_xy, parts_lab = [], []
        if box is not None:
            if not clear_old_points:
                raise ValueError("a box must come first: add it with clear_old_points=True")
            boxes = check_boxes(as_float_tensor(box, "box", device), hw, not normalize_coords)
            if boxes.shape[0] != 1:
                raise ValueError("one box per object and call; got several")
            parts_xy.append(boxes.reshape(1, 2, 2))
            parts_lab.append(torch.tensor([[2, 3]], dtype=torch.int32, device=device))
        if points is not None:
            coords = as_float_tensor(points, "points", device)
            lab = torch.as_tensor(np.asarray(labels) if not isinstance(labels, torch.Tensor) else labels, device=device)
            coords, lab = check_points(coords, lab.to(torch.int32), hw, not normalize_coords)
            if coords.shape[0] != 1:
                raise ValueError("points must have shape (N, 2) for one object")
            parts_xy.append(coords)
            parts_lab.append(lab)
        coords = to_model_coords(torch.cat(parts_xy, dim=1), hw, size, not normalize_coords)
        labels_t = torch.cat(parts_lab, dim=1)

        track = self._get_or_add_object(inference_state, obj_id)
        old = track.point_inputs.get(frame_idx) if not clear_old_points else None
        if old is not None:
            coords = torch.cat([old.coords, coords], dim=1)
            labels_t = torch.cat([old.labels, labels_t], dim=1)
        prompts = PointPrompts(coords, labels_t)
        track.point_inputs[frame_idx] = prompts
        track.mask_inputs.pop(frame_idx, None)
        return self._prompt_frame(inference_state, track, frame_idx, point_inputs=prompts, mask_inputs=None)

    add_new_points = add_new_points_or_box

    @torch.inference_mode()
    def add_new_mask(
        self, inference_state: InferenceState, frame_idx: int, obj_id: int, mask: Any
    ) -> tuple[int, list[int], torch.Tensor]:
        """Give an object's mask ``(H, W)`` (bool / 0-1, any resolution) on one frame."""
        self._check_frame(inference_state, frame_idx)
        mask_t = torch.as_tensor(np.asarray(mask) if not isinstance(mask, torch.Tensor) else mask, device=self.device)
        if mask_t.ndim != 2 or min(mask_t.shape) == 0:
            raise ValueError(f"mask must be a non-empty 2D (H, W) array, got shape {tuple(mask_t.shape)}")
        mask_in = mask_t.bool().float()[None, None]
        size = self.model.image_size
        if tuple(mask_in.shape[-2:]) != (size, size):
            mask_in = F.interpolate(mask_in, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
            mask_in = (mask_in >= 0.5).float()
        track = self._get_or_add_object(inference_state, obj_id)
        track.mask_inputs[frame_idx] = mask_in
        track.point_inputs.pop(frame_idx, None)
        return self._prompt_frame(inference_state, track, frame_idx, point_inputs=None, mask_inputs=mask_in)

    def _prompt_frame(
        self,
        state: InferenceState,
        track: ObjectTrack,
        frame_idx: int,
        point_inputs: PointPrompts | None,
        mask_inputs: torch.Tensor | None,
    ) -> tuple[int, list[int], torch.Tensor]:
        is_init_cond_frame = frame_idx not in track.tracked
        reverse = track.tracked.reverse_of(frame_idx)
        is_cond = is_init_cond_frame or self.add_all_frames_to_correct_as_cond
        prev_logits = None
        if point_inputs is not None:
            prev = track.output_on(frame_idx, is_cond)
            if prev is not None and prev.pred_masks is not None:
                prev_logits = prev.pred_masks.to(state.device).clamp(-LOW_RES_CLAMP, LOW_RES_CLAMP)
        out, _ = self._run_frame(
            state,
            frame_idx,
            [track],
            is_init_cond_frame=is_init_cond_frame,
            point_inputs=point_inputs,
            mask_inputs=mask_inputs,
            reverse=reverse,
            run_mem_encoder=False,
            prev_sam_mask_logits=prev_logits,
        )
        (track.temp_cond if is_cond else track.temp_non_cond)[frame_idx] = out[0]
        return frame_idx, state.obj_ids, self._frame_output(state, frame_idx)

    def _frame_output(self, state: InferenceState, frame_idx: int) -> torch.Tensor:
        """Every object's latest logits on a frame at video resolution (absent: NO_OBJ_SCORE)."""
        hw = (state.video_height, state.video_width)
        masks = torch.full((len(state.objects), 1, *hw), NO_OBJ_SCORE, dtype=torch.float32, device=state.device)
        for i, track in enumerate(state.objects.values()):
            entry = track.output_on(frame_idx)
            if entry is not None and entry.pred_masks is not None:
                masks[i : i + 1] = F.interpolate(
                    entry.pred_masks.to(state.device), size=hw, mode="bilinear", align_corners=False
                )
        if self.non_overlap_masks:
            masks = apply_non_overlapping_constraints(masks)
        return masks

    @torch.inference_mode()
    def clear_all_prompts_in_frame(
        self, inference_state: InferenceState, frame_idx: int, obj_id: int, need_output: bool = True
    ) -> tuple[int, list[int], torch.Tensor] | None:
        """Remove one object's prompts on a frame (its result there becomes a tracked one)."""
        track = self._get_object(inference_state, obj_id)
        self._check_frame(inference_state, frame_idx)
        track.point_inputs.pop(frame_idx, None)
        track.mask_inputs.pop(frame_idx, None)
        track.temp_cond.pop(frame_idx, None)
        track.temp_non_cond.pop(frame_idx, None)
        entry = track.cond.pop(frame_idx, None)
        if entry is not None:
            track.non_cond[frame_idx] = entry
            track.tracked.discard(frame_idx)
        if not need_output:
            return None
        return frame_idx, inference_state.obj_ids, self._frame_output(inference_state, frame_idx)

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
                self._get_object(inference_state, obj_id)
            return inference_state.obj_ids, []
        track = inference_state.objects.pop(obj_id)
        prompted = sorted(set(track.point_inputs) | set(track.mask_inputs))
        updated = []
        if need_output and inference_state.objects:
            updated = [(t, self._frame_output(inference_state, t)) for t in prompted]
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
        state = inference_state
        self._consolidate_prompts(state)
        tracks = list(state.objects.values())
        num_frames = state.num_frames
        if start_frame_idx is None:
            start_frame_idx = min(t for track in tracks for t in track.cond)
        self._check_frame(state, start_frame_idx)
        if max_frame_num_to_track is None:
            max_frame_num_to_track = num_frames
        if reverse:
            end = max(start_frame_idx - max_frame_num_to_track, 0)
            order = range(start_frame_idx, end - 1, -1) if start_frame_idx > 0 else range(0)
        else:
            end = min(start_frame_idx + max_frame_num_to_track, num_frames - 1)
            order = range(start_frame_idx, end + 1)
        obj_ids = state.obj_ids
        for frame_idx in tqdm(order, desc="propagate in video", disable=not self.show_progress, unit="frame"):
            all_low = self._track_frame(state, tracks, frame_idx, reverse)
            if state.results_dir is not None:
                self._save_frame_result(state, frame_idx, obj_ids, all_low)
            yield frame_idx, obj_ids, self._to_video_res(state, all_low)

    def _track_frame(
        self, state: InferenceState, tracks: list[ObjectTrack], frame_idx: int, reverse: bool
    ) -> torch.Tensor:
        """One frame of propagation for every object (shared with the stream predictor): prompted
        objects keep their conditioning output, the others run batched on their memories. Stores the
        new memories, evicts what later frames cannot attend to, and returns the low-res logits
        ``(num_objects, 1, S/4, S/4)`` in the order of ``tracks``."""
        low_res: list[torch.Tensor | None] = [None] * len(tracks)
        to_run = []
        for i, track in enumerate(tracks):
            entry = track.cond.get(frame_idx)
            if entry is not None:
                low_res[i] = entry.pred_masks.to(state.device)  # type: ignore[union-attr]
                if self.clear_non_cond_mem_around_input:
                    self._clear_memory_around(state, frame_idx)
            else:
                to_run.append(i)
        for group in self._batch_groups(tracks, to_run, frame_idx):
            outs, masks = self._run_frame(
                state,
                frame_idx,
                [tracks[i] for i in group],
                is_init_cond_frame=False,
                point_inputs=None,
                mask_inputs=None,
                reverse=reverse,
                run_mem_encoder=True,
            )
            for j, i in enumerate(group):
                tracks[i].non_cond[frame_idx] = outs[j]
                low_res[i] = masks[j : j + 1]
        for track in tracks:
            track.tracked.add(frame_idx, reverse)
            if not state.keep_all_memories:
                self._evict(track, frame_idx)
        return torch.cat(low_res, dim=0)  # type: ignore[arg-type]

    def _to_video_res(self, state: InferenceState, low_res: torch.Tensor) -> torch.Tensor:
        masks = F.interpolate(low_res, size=(state.video_height, state.video_width), mode="bilinear", align_corners=False)
        return apply_non_overlapping_constraints(masks) if self.non_overlap_masks else masks

    def _batch_groups(self, tracks: list[ObjectTrack], indices: list[int], frame_idx: int) -> list[list[int]]:
        """Objects whose memories sit on the same frames can share one batched step."""
        window = self.memory_window
        groups: dict[tuple, list[int]] = {}
        for i in indices:
            track = tracks[i]
            key = (
                tuple(sorted(track.cond)),
                tuple(
                    sorted(
                        (t, e.maskmem_features is None)
                        for t, e in track.non_cond.items()
                        if abs(t - frame_idx) <= window
                    )
                ),
            )
            groups.setdefault(key, []).append(i)
        return list(groups.values())

    def _evict(self, track: ObjectTrack, frame_idx: int) -> None:
        """Keep only memories a later frame can attend to: pointers within the pointer window,
        spatial memories and masks within the memory window."""
        m = self.model
        mem_window = (m.num_maskmem - 1) * m.memory_temporal_stride_for_eval
        window = self.memory_window
        for t in list(track.non_cond):
            distance = abs(t - frame_idx)
            if distance > window:
                del track.non_cond[t]
            elif distance > mem_window:
                entry = track.non_cond[t]
                entry.maskmem_features = None
                entry.pred_masks = None

    def _clear_memory_around(self, state: InferenceState, frame_idx: int) -> None:
        r = self.model.memory_temporal_stride_for_eval * self.model.num_maskmem
        for track in state.objects.values():
            for t in range(frame_idx - r, frame_idx + r + 1):
                track.non_cond.pop(t, None)

    def _consolidate_prompts(self, state: InferenceState) -> None:
        """Encode the memory of newly prompted frames and move them into the memory bank."""
        if not state.objects:
            raise RuntimeError("no object has prompts: call add_new_points_or_box or add_new_mask first")
        size = self.model.image_size
        for track in state.objects.values():
            for pending, bank in ((track.temp_non_cond, track.non_cond), (track.temp_cond, track.cond)):
                for frame_idx, entry in pending.items():
                    if entry.maskmem_features is None:
                        high_res = F.interpolate(
                            entry.pred_masks.to(state.device), size=(size, size), mode="bilinear", align_corners=False  # type: ignore[union-attr]
                        )
                        features = self._frame_features(state, frame_idx)
                        maskmem, pos = self.model.encode_new_memory(
                            features, high_res, entry.object_score_logits.to(state.device), is_mask_from_pts=True
                        )
                        entry.maskmem_features = maskmem.to(torch.bfloat16).to(state.storage_device)
                        entry.maskmem_pos_enc = pos
                    bank[frame_idx] = entry
                    if self.clear_non_cond_mem_around_input:
                        self._clear_memory_around(state, frame_idx)
                pending.clear()
            if not track.cond:
                raise RuntimeError(f"object id {track.obj_id} has no prompts: add points, a box or a mask first")
            for frame_idx in track.cond:
                track.non_cond.pop(frame_idx, None)

    # ------------------------------------------------------------------ core step
    def _frame_features(self, state: InferenceState, frame_idx: int) -> FrameFeatures:
        cached = state.cached_features
        if cached is not None and cached[0] == frame_idx:
            return cached[1]
        frame = state.frames[frame_idx]  # type: ignore[index]
        image = preprocess_frame_pil(frame, self.model.image_size).to(state.device)
        features = self.model.forward_image(image[None])
        state.cached_features = (frame_idx, features)
        return features

    def _run_frame(
        self,
        state: InferenceState,
        frame_idx: int,
        tracks: list[ObjectTrack],
        *,
        is_init_cond_frame: bool,
        point_inputs: PointPrompts | None,
        mask_inputs: torch.Tensor | None,
        reverse: bool,
        run_mem_encoder: bool,
        prev_sam_mask_logits: torch.Tensor | None = None,
    ) -> tuple[list[MemoryEntry], torch.Tensor]:
        """One model step for a batch of objects; returns per-object entries and ``(B, 1, h, w)`` logits."""
        features = self._frame_features(state, frame_idx).expand(len(tracks))
        if len(tracks) == 1:
            cond, non_cond = tracks[0].cond, tracks[0].non_cond
        else:
            cond = StackedMemories([t.cond for t in tracks])
            non_cond = StackedMemories([t.non_cond for t in tracks])
        out: TrackStepOutput = self.model.track_step(
            frame_idx,
            is_init_cond_frame,
            features,
            point_inputs,
            mask_inputs,
            cond,
            non_cond,
            self._model_num_frames(state),
            track_in_reverse=reverse,
            run_mem_encoder=run_mem_encoder,
            prev_sam_mask_logits=prev_sam_mask_logits,
        )
        pred_masks = out.pred_masks
        if self.fill_hole_area > 0:
            pred_masks = fill_holes_in_mask_scores(pred_masks, self.fill_hole_area)
        stored_masks = pred_masks.to(state.storage_device)
        maskmem = out.maskmem_features
        if maskmem is not None:
            maskmem = maskmem.to(torch.bfloat16).to(state.storage_device)
        entries = [
            MemoryEntry(
                maskmem_features=None if maskmem is None else maskmem[i : i + 1],
                maskmem_pos_enc=None if out.maskmem_pos_enc is None else out.maskmem_pos_enc[i : i + 1],
                obj_ptr=out.obj_ptr[i : i + 1],
                pred_masks=stored_masks[i : i + 1],
                object_score_logits=out.object_score_logits[i : i + 1],
            )
            for i in range(len(tracks))
        ]
        return entries, pred_masks

    # ------------------------------------------------------------------ helpers
    def _model_num_frames(self, state: InferenceState) -> int | None:
        """The video length the model is told: it caps the object-pointer window at
        ``min(num_frames, max_obj_ptrs_in_encoder)``. The stream predictor says None (open-ended)."""
        return state.num_frames

    def _check_frame(self, state: InferenceState, frame_idx: int) -> None:
        if not isinstance(frame_idx, (int, np.integer)) or isinstance(frame_idx, bool):
            raise TypeError(f"frame_idx must be an int, got {type(frame_idx).__name__}")
        if not 0 <= frame_idx < state.num_frames:
            raise IndexError(
                f"frame index {frame_idx} is out of range for a video of {state.num_frames} frames "
                f"(valid: 0..{state.num_frames - 1})"
            )

    def _get_or_add_object(self, state: InferenceState, obj_id: int) -> ObjectTrack:
        if isinstance(obj_id, bool) or not isinstance(obj_id, (int, np.integer)):
            raise TypeError(f"obj_id must be an int, got {type(obj_id).__name__}")
        obj_id = int(obj_id)
        if obj_id not in state.objects:
            state.objects[obj_id] = ObjectTrack(obj_id)
        return state.objects[obj_id]

    def _get_object(self, state: InferenceState, obj_id: int) -> ObjectTrack:
        try:
            return state.objects[obj_id]
        except KeyError:
            raise KeyError(f"unknown object id {obj_id!r}; known object ids: {state.obj_ids}") from None

    def _save_frame_result(self, state: InferenceState, frame_idx: int, obj_ids: list[int], low_res: torch.Tensor) -> None:
        from ..io.atomic import atomic_path

        path = state.results_dir / f"{frame_idx:07d}.npz"  # type: ignore[operator]
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as f:
                np.savez_compressed(f, obj_ids=np.asarray(obj_ids), low_res=low_res.float().cpu().numpy())

    def get_frame_masks(self, inference_state: InferenceState, frame_idx: int) -> tuple[list[int], torch.Tensor]:
        """Masks of an already yielded frame, read back from ``results_dir``:
        ``(obj_ids, logits (num_objects, 1, H, W))``.

        Raises:
            RuntimeError: the session has no ``results_dir``. KeyError: the frame was not tracked yet.
        """
        state = inference_state
        self._check_frame(state, frame_idx)
        if state.results_dir is None:
            raise RuntimeError("frame results are kept only with init_state(..., results_dir=DIR)")
        path = state.results_dir / f"{frame_idx:07d}.npz"
        if not path.exists():
            raise KeyError(f"frame {frame_idx} has not been tracked yet")
        with np.load(path) as data:
            obj_ids = [int(x) for x in data["obj_ids"]]
            low_res = torch.from_numpy(data["low_res"]).to(state.device)
        return obj_ids, self._to_video_res(state, low_res)
