"""The tracking engine: one frame step of SAM 2's memory-based tracking over a typed session state.

:class:`VideoPredictor` and :class:`StreamPredictor` are front ends over one :class:`TrackingEngine`
(they validate user input and convert units); the engine does the work they share: frame features,
prompted-frame steps, committing prompts to memory, batched per-object track steps, memory-bank
bookkeeping and eviction, outputs at video resolution, and per-frame result files.

The engine never switches autograd off and never changes the model's mode: the public predictors
call it under ``torch.inference_mode()`` on a model in eval mode, and a training loop can drive the
same steps with gradients (prompts in model-input pixels, features set with
:meth:`TrackingEngine.set_frame_features`, the per-frame tensors read from :class:`FrameStep`).
Its interface (no leading underscore) is internal to the package, not part of the public API.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..modeling.sam2 import LOW_RES_CLAMP, NO_OBJ_SCORE, FrameFeatures, PointPrompts, SAM2Model, TrackStepOutput
from ..modeling.tracking import keeps_memories_apart
from .postprocess import apply_non_overlapping_constraints, fill_holes_in_mask_scores
from .transforms import preprocess_frame_pil
from .video_state import InferenceState, MemoryEntry, ObjectTrack, StackedMemories


@dataclass
class FrameStep:
    """What one engine step computed on one frame, for N objects.

    Attributes:
        frame_idx: the frame.
        obj_ids: the N objects, in the order of the tensors below.
        low_res_masks: ``(N, 1, S/4, S/4)`` mask logits (after hole filling), S the model input size.
        object_score_logits: ``(N, 1)``; > 0 means the object is judged present.
        model_outputs: per batched model step that ran: the indices (into ``obj_ids``) of its objects
            and the model's full :class:`TrackStepOutput` for them (``ious (B, M)``, ``obj_ptr``,
            high-res masks, ...). An object with a conditioning output on this frame reuses it and
            appears in none.
    """

    frame_idx: int
    obj_ids: list[int]
    low_res_masks: torch.Tensor
    object_score_logits: torch.Tensor
    model_outputs: list[tuple[list[int], TrackStepOutput]]


class TrackingEngine:
    """SAM 2 tracking steps on an :class:`InferenceState` (any number of objects, bounded memory).

    Args:
        model: a :class:`SAM2Model` (its mode and autograd are the caller's choice).
        fill_hole_area: fill background holes up to this area in the low-res masks (0: off).
        non_overlap_masks: give each pixel to at most one object in video-resolution outputs.
        clear_non_cond_mem_around_input: drop tracked memories around newly prompted frames.
        add_all_frames_to_correct_as_cond: corrections on tracked frames become conditioning frames.
        open_ended: the video has no known length (a stream): the model is told ``num_frames=None``,
            which fixes its object-pointer window at ``max_obj_ptrs_in_encoder`` frames.
        memory_dtype: dtype spatial memories are stored in (bfloat16 like the reference; None keeps
            the model's dtype).
    """

    def __init__(
        self,
        model: SAM2Model,
        *,
        fill_hole_area: int = 8,
        non_overlap_masks: bool = False,
        clear_non_cond_mem_around_input: bool = False,
        add_all_frames_to_correct_as_cond: bool = False,
        open_ended: bool = False,
        memory_dtype: torch.dtype | None = torch.bfloat16,
    ) -> None:
        self.model = model
        self.fill_hole_area = fill_hole_area
        self.non_overlap_masks = non_overlap_masks
        self.clear_non_cond_mem_around_input = clear_non_cond_mem_around_input
        self.add_all_frames_to_correct_as_cond = add_all_frames_to_correct_as_cond
        self.open_ended = open_ended
        self.memory_dtype = memory_dtype

    @property
    def memory_window(self) -> int:
        """How many frames back (or ahead, in reverse) a tracked frame can still be attended to."""
        m = self.model
        return max((m.num_maskmem - 1) * m.memory_temporal_stride_for_eval, m.max_obj_ptrs_in_encoder - 1, 1)

    def model_num_frames(self, state: InferenceState) -> int | None:
        """The video length the model is told: it caps the object-pointer window at
        ``min(num_frames, max_obj_ptrs_in_encoder)``; None for an open-ended stream."""
        return None if self.open_ended else state.num_frames

    # ------------------------------------------------------------------ frames
    def frame_features(self, state: InferenceState, frame_idx: int) -> FrameFeatures:
        """The image features of a frame (batch 1), computed from ``state.frames`` unless they are
        the ones cached last (only the most recent frame's features are held)."""
        cached = state.cached_features
        if cached is not None and cached[0] == frame_idx:
            return cached[1]
        if state.frames is None:
            raise RuntimeError(f"frame {frame_idx} has no features: give them with set_frame_features first")
        frame = state.frames[frame_idx]  # type: ignore[index]
        image = preprocess_frame_pil(frame, self.model.image_size).to(state.device)
        return self.set_frame_features(state, frame_idx, self.model.forward_image(image[None]))

    def set_frame_features(self, state: InferenceState, frame_idx: int, features: FrameFeatures) -> FrameFeatures:
        """Use ``features`` (batch 1, e.g. computed by a training loop from its own augmented frame, or
        cached embeddings) for ``frame_idx`` until another frame's features are needed."""
        state.cached_features = (frame_idx, features)
        return features

    # ------------------------------------------------------------------ prompts
    def add_points(
        self, state: InferenceState, obj_id: int, frame_idx: int, prompts: PointPrompts, *, append: bool = False
    ) -> FrameStep:
        """Clicks and/or box corners ``(1, P, 2)`` in model-input pixels for one object on one frame
        (``append``: after its earlier clicks there, else replacing them). Runs the prompted step;
        the result is pending until :meth:`commit_prompts`."""
        track = state.add_object(obj_id)
        old = track.point_inputs.get(frame_idx) if append else None
        if old is not None:
            prompts = PointPrompts(
                torch.cat([old.coords, prompts.coords], dim=1), torch.cat([old.labels, prompts.labels], dim=1)
            )
        track.point_inputs[frame_idx] = prompts
        track.mask_inputs.pop(frame_idx, None)
        return self._prompt_step(state, track, frame_idx, prompts, None)

    def add_mask(self, state: InferenceState, obj_id: int, frame_idx: int, mask: torch.Tensor) -> FrameStep:
        """A mask prompt ``(1, 1, S, S)`` (0/1 float at the model's input size) for one object."""
        track = state.add_object(obj_id)
        track.mask_inputs[frame_idx] = mask
        track.point_inputs.pop(frame_idx, None)
        return self._prompt_step(state, track, frame_idx, None, mask)

    def _prompt_step(
        self,
        state: InferenceState,
        track: ObjectTrack,
        frame_idx: int,
        point_inputs: PointPrompts | None,
        mask_inputs: torch.Tensor | None,
    ) -> FrameStep:
        is_init_cond_frame = frame_idx not in track.tracked
        is_cond = is_init_cond_frame or self.add_all_frames_to_correct_as_cond
        prev_logits = None
        if point_inputs is not None:
            # A correction: the previous prediction on this frame is the mask prompt beside the clicks.
            prev = track.output_on(frame_idx, is_cond)
            if prev is not None and prev.pred_masks is not None:
                prev_logits = prev.pred_masks.to(state.device).clamp(-LOW_RES_CLAMP, LOW_RES_CLAMP)
        entries, step = self.run_step(
            state,
            frame_idx,
            [track],
            is_init_cond_frame=is_init_cond_frame,
            point_inputs=point_inputs,
            mask_inputs=mask_inputs,
            reverse=track.tracked.reverse_of(frame_idx),
            run_mem_encoder=False,
            prev_sam_mask_logits=prev_logits,
        )
        (track.temp_cond if is_cond else track.temp_non_cond)[frame_idx] = entries[0]
        return step

    def commit_prompts(self, state: InferenceState) -> None:
        """Encode the memory of newly prompted frames and move them into the memory banks.

        Raises:
            RuntimeError: no object, or an object without any prompted frame.
        """
        if not state.objects:
            raise RuntimeError("no object has prompts: call add_new_points_or_box or add_new_mask first")
        self._encode_prompted_memories(state)
        for track in state.objects.values():
            for pending, bank in ((track.temp_non_cond, track.non_cond), (track.temp_cond, track.cond)):
                for frame_idx, entry in pending.items():
                    bank[frame_idx] = entry
                    if self.clear_non_cond_mem_around_input:
                        self.clear_memory_around(state, frame_idx)
                pending.clear()
            if not track.cond:
                raise RuntimeError(f"object id {track.obj_id} has no prompts: add points, a box or a mask first")
            for frame_idx in track.cond:
                track.non_cond.pop(frame_idx, None)

    def _encode_prompted_memories(self, state: InferenceState) -> None:
        """Encode the memories of prompted outputs that have none yet: one at a time, or, when the
        model keeps remembered masks apart (:func:`keeps_memories_apart`), every object prompted on
        a frame together, so that each pixel goes to the highest-scoring one."""
        by_frame: dict[int, list[MemoryEntry]] = {}
        for track in state.objects.values():
            for pending in (track.temp_non_cond, track.temp_cond):
                for frame_idx, entry in pending.items():
                    if entry.maskmem_features is None:
                        by_frame.setdefault(frame_idx, []).append(entry)
        size = self.model.image_size
        joint = keeps_memories_apart(self.model)
        for frame_idx, entries in by_frame.items():
            for batch in [entries] if joint else [[entry] for entry in entries]:
                low_res = torch.cat([entry.pred_masks for entry in batch]).to(state.device)  # type: ignore[misc]
                high_res = F.interpolate(low_res, size=(size, size), mode="bilinear", align_corners=False)
                object_scores = torch.cat([entry.object_score_logits for entry in batch]).to(state.device)
                self._encode_memories(state, frame_idx, batch, high_res, object_scores, is_mask_from_pts=True)

    def _encode_memories(
        self,
        state: InferenceState,
        frame_idx: int,
        entries: list[MemoryEntry],
        high_res: torch.Tensor,
        object_scores: torch.Tensor,
        is_mask_from_pts: bool,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Encode the memories of ``entries`` (one per row of ``(B, 1, S, S)`` mask logits
        ``high_res`` and ``(B, 1)`` ``object_scores``) on ``frame_idx`` as one batch and store them
        in the entries; returns the batch's ``maskmem_features`` and ``maskmem_pos_enc``."""
        features = self.frame_features(state, frame_idx).expand(len(entries))
        maskmem, pos = self.model.encode_new_memory(features, high_res, object_scores, is_mask_from_pts)
        stored = self._stored_memory(state, maskmem)
        for row, entry in enumerate(entries):
            entry.maskmem_features = stored[row : row + 1]
            entry.maskmem_pos_enc = pos[row : row + 1]
        return maskmem, pos

    # ------------------------------------------------------------------ tracking
    def track_frame(
        self, state: InferenceState, frame_idx: int, tracks: list[ObjectTrack] | None = None, reverse: bool = False
    ) -> FrameStep:
        """One frame of propagation for ``tracks`` (default: every object; call :meth:`commit_prompts`
        first). Objects with a conditioning output on the frame keep it, the others run batched on
        their memories; new memories are stored and what later frames cannot attend to is evicted
        (unless ``state.keep_all_memories``)."""
        tracks = list(state.objects.values()) if tracks is None else tracks
        low_res: list[torch.Tensor | None] = [None] * len(tracks)
        scores: list[torch.Tensor | None] = [None] * len(tracks)
        to_run, model_outputs = [], []
        for i, track in enumerate(tracks):
            entry = track.cond.get(frame_idx)
            if entry is not None:
                low_res[i] = entry.pred_masks.to(state.device)  # type: ignore[union-attr]
                scores[i] = entry.object_score_logits.to(state.device)
                if self.clear_non_cond_mem_around_input:
                    self.clear_memory_around(state, frame_idx)
            else:
                to_run.append(i)
        groups = self._batch_groups(tracks, to_run, frame_idx)
        # The model's non-overlap constraint on the masks it remembers spans every object run on
        # the frame, not only those batched together: with several batches, memories wait for all
        # (objects prompted on the frame had theirs encoded together in commit_prompts).
        joint_memory = len(groups) > 1 and keeps_memories_apart(self.model)
        for group in groups:
            entries, step = self.run_step(
                state,
                frame_idx,
                [tracks[i] for i in group],
                is_init_cond_frame=False,
                point_inputs=None,
                mask_inputs=None,
                reverse=reverse,
                run_mem_encoder=not joint_memory,
            )
            for j, i in enumerate(group):
                tracks[i].non_cond[frame_idx] = entries[j]
                low_res[i] = step.low_res_masks[j : j + 1]
                scores[i] = step.object_score_logits[j : j + 1]
            model_outputs.append((group, step.model_outputs[0][1]))
        if joint_memory:
            self._encode_memories_together(state, frame_idx, tracks, model_outputs)
        for track in tracks:
            track.tracked.add(frame_idx, reverse)
            if not state.keep_all_memories:
                self._evict(track, frame_idx)
        return FrameStep(
            frame_idx,
            [track.obj_id for track in tracks],
            torch.cat(low_res, dim=0),  # type: ignore[arg-type]
            torch.cat(scores, dim=0),  # type: ignore[arg-type]
            model_outputs,
        )

    def run_step(
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
    ) -> tuple[list[MemoryEntry], FrameStep]:
        """One model step for a batch of objects (nothing is stored): per-object memory entries (on
        the storage device) and the step's tensors."""
        features = self.frame_features(state, frame_idx).expand(len(tracks))
        cond: Mapping[int, MemoryEntry]
        non_cond: Mapping[int, MemoryEntry]
        if len(tracks) == 1:
            cond, non_cond = tracks[0].cond, tracks[0].non_cond
        else:
            cond = StackedMemories([t.cond for t in tracks])
            non_cond = StackedMemories([t.non_cond for t in tracks])
        out = self.model.track_step(
            frame_idx,
            is_init_cond_frame,
            features,
            point_inputs,
            mask_inputs,
            cond,
            non_cond,
            self.model_num_frames(state),
            track_in_reverse=reverse,
            run_mem_encoder=run_mem_encoder,
            prev_sam_mask_logits=prev_sam_mask_logits,
        )
        pred_masks = out.pred_masks
        if self.fill_hole_area > 0:
            pred_masks = fill_holes_in_mask_scores(pred_masks, self.fill_hole_area)
        stored_masks = pred_masks.to(state.storage_device)
        maskmem = None if out.maskmem_features is None else self._stored_memory(state, out.maskmem_features)
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
        obj_ids = [track.obj_id for track in tracks]
        step = FrameStep(frame_idx, obj_ids, pred_masks, out.object_score_logits, [(list(range(len(tracks))), out)])
        return entries, step

    def _encode_memories_together(
        self,
        state: InferenceState,
        frame_idx: int,
        tracks: list[ObjectTrack],
        model_outputs: list[tuple[list[int], TrackStepOutput]],
    ) -> None:
        """Encode the memories of every object in ``model_outputs`` (steps run without their memory
        encoder) as one batch, so that ``non_overlap_masks_for_mem_enc`` gives each pixel of the
        remembered masks to the highest-scoring object among all of them."""
        entries = [tracks[i].non_cond[frame_idx] for group, _ in model_outputs for i in group]
        high_res = torch.cat([out.pred_masks_high_res for _, out in model_outputs])
        object_scores = torch.cat([out.object_score_logits for _, out in model_outputs])
        maskmem, pos = self._encode_memories(state, frame_idx, entries, high_res, object_scores, is_mask_from_pts=False)
        row = 0
        for group, out in model_outputs:
            out.maskmem_features = maskmem[row : row + len(group)]
            out.maskmem_pos_enc = pos[row : row + len(group)]
            row += len(group)

    def _stored_memory(self, state: InferenceState, maskmem: torch.Tensor) -> torch.Tensor:
        if self.memory_dtype is not None:
            maskmem = maskmem.to(self.memory_dtype)
        return maskmem.to(state.storage_device)

    # ------------------------------------------------------------------ memory bank
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

    def clear_memory_around(self, state: InferenceState, frame_idx: int) -> None:
        """Drop every object's tracked memories within ``stride * num_maskmem`` frames of ``frame_idx``."""
        r = self.model.memory_temporal_stride_for_eval * self.model.num_maskmem
        for track in state.objects.values():
            for t in range(frame_idx - r, frame_idx + r + 1):
                track.non_cond.pop(t, None)

    # ------------------------------------------------------------------ outputs
    def video_res_masks(self, state: InferenceState, low_res: torch.Tensor) -> torch.Tensor:
        """``(N, 1, S/4, S/4)`` logits -> ``(N, 1, H, W)`` at the video's size (non-overlapping if set)."""
        hw = (state.video_height, state.video_width)
        masks = F.interpolate(low_res, size=hw, mode="bilinear", align_corners=False)
        return apply_non_overlapping_constraints(masks) if self.non_overlap_masks else masks

    def frame_output(self, state: InferenceState, frame_idx: int) -> torch.Tensor:
        """Every object's latest logits on a frame, ``(num_objects, 1, H, W)`` at the video's size;
        an object without output there gets NO_OBJ_SCORE everywhere."""
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

    def save_frame_result(self, state: InferenceState, step: FrameStep) -> None:
        """Write a tracked frame's low-res logits to ``state.results_dir`` (atomically)."""
        from ..io.atomic import atomic_path

        if state.results_dir is None:
            raise RuntimeError("the session has no results_dir")
        path = state.results_dir / f"{step.frame_idx:07d}.npz"
        low_res = step.low_res_masks.detach().float().cpu().numpy()
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as f:
                np.savez_compressed(f, obj_ids=np.asarray(step.obj_ids), low_res=low_res)

    def load_frame_result(self, state: InferenceState, frame_idx: int) -> tuple[list[int], torch.Tensor] | None:
        """``(obj_ids, low_res logits (N, 1, S/4, S/4))`` saved for a frame, or None if there is none."""
        if state.results_dir is None:
            raise RuntimeError("the session has no results_dir")
        path = state.results_dir / f"{frame_idx:07d}.npz"
        if not path.exists():
            return None
        with np.load(path) as data:
            obj_ids = [int(x) for x in data["obj_ids"]]
            low_res = torch.from_numpy(data["low_res"]).to(state.device)
        return obj_ids, low_res
