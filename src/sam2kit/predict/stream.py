"""StreamPredictor: track objects in a live camera or network stream, frame by frame, forever.

Frames arrive one at a time (``track(frame)``) and prompts can be added on the current frame at any
moment, for known objects (corrections) or for new ones. The tracking itself is the video predictor's:
both are front ends over one :class:`~sam2kit.predict.tracker.TrackingEngine`, which the stream runs
one forward step per frame on a :class:`StreamFrames` source that grows with the stream.

What is kept, per object, whatever the stream length (memory and time per frame stay constant):

- the conditioning (prompted) frames' memories, at most ``max_cond_frames``: the object's first
  prompted frame plus the most recent ones, the oldest others being dropped. Prompts on a frame the
  object was already tracked on are corrections; they become conditioning frames only with
  ``add_all_frames_to_correct_as_cond=True`` (else they are ordinary memories that slide out of the
  window), so the bound matters mostly with that option or when one object is prompted again and
  again. The model's ``max_cond_frames_in_attn`` is a different limit: it chooses which of the kept
  conditioning frames each frame attends to (-1: all), it does not free memory;
- the memory window: spatial memories of the last ``(num_maskmem - 1) * memory_temporal_stride``
  frames (6) and object pointers of the last ``max_obj_ptrs_in_encoder - 1`` frames (15);
- the prompts of retained frames only.

Besides, only the current frame (pixels and image features) is held.

One difference from the video predictor: a stream has no known length, so the model is told
``num_frames=None`` and its object-pointer window is always ``max_obj_ptrs_in_encoder`` (16). The
video predictor uses ``min(num_frames, 16)``, which gives the same results on videos of 16 frames or
more, and slightly different temporal encodings of the pointers on shorter clips.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..modeling.sam2 import SAM2Model
from .stream_frames import StreamFrames, frame_to_array
from .tracker import TrackingEngine
from .video_prompts import mask_prompt, point_prompts
from .video_state import InferenceState, ObjectTrack

__all__ = ["CameraPredictor", "StreamFrames", "StreamPredictor", "frame_to_array"]


class StreamPredictor:
    """Tracks prompted objects through a live stream, one frame at a time, in constant memory.

    Args:
        model: a :class:`SAM2Model`.
        max_cond_frames: conditioning (prompted) frames kept per object: the first plus the
            ``max_cond_frames - 1`` most recent (>= 1; None: no bound, memory then grows with the number
            of prompted frames). Each kept frame adds memory-attention work to every later frame.
        fill_hole_area, non_overlap_masks, clear_non_cond_mem_around_input,
        add_all_frames_to_correct_as_cond: as for :class:`VideoPredictor`.
        offload_state_to_cpu: keep memories on the CPU (saves GPU memory).

    The engine doing the work (shared with :class:`VideoPredictor`) is :attr:`engine`.

    Example::

        predictor = StreamPredictor(build_model("sam2.1_hiera_tiny", checkpoint="sam2.1_hiera_tiny.pt"))
        predictor.load_first_frame(first)
        predictor.add_new_prompt(0, obj_id=1, box=[100, 80, 300, 260])
        for frame in camera:
            obj_ids, mask_logits = predictor.track(frame)   # (num_objects, 1, H, W)
            masks = mask_logits[:, 0] > 0
    """

    def __init__(
        self,
        model: SAM2Model,
        *,
        max_cond_frames: int | None = 8,
        fill_hole_area: int = 8,
        non_overlap_masks: bool = False,
        clear_non_cond_mem_around_input: bool = False,
        add_all_frames_to_correct_as_cond: bool = False,
        offload_state_to_cpu: bool = False,
    ) -> None:
        if max_cond_frames is not None and (
            isinstance(max_cond_frames, bool) or not isinstance(max_cond_frames, int) or max_cond_frames < 1
        ):
            raise ValueError(f"max_cond_frames must be an int >= 1 or None (no bound), got {max_cond_frames!r}")
        self.max_cond_frames = max_cond_frames
        self.offload_state_to_cpu = offload_state_to_cpu
        # A stream has no known length: the model is told num_frames=None (see the module docstring).
        self.engine = TrackingEngine(
            model.eval(),
            fill_hole_area=fill_hole_area,
            non_overlap_masks=non_overlap_masks,
            clear_non_cond_mem_around_input=clear_non_cond_mem_around_input,
            add_all_frames_to_correct_as_cond=add_all_frames_to_correct_as_cond,
            open_ended=True,
        )
        self._frames: StreamFrames | None = None
        self._state: InferenceState | None = None

    @classmethod
    def from_pretrained(
        cls, model_id: str = "facebook/sam2.1-hiera-tiny", device: str | None = None, **kwargs: Any
    ) -> StreamPredictor:
        """Predictor for an official hub checkpoint (see :func:`sam2kit.from_pretrained`)."""
        from ..build import from_pretrained

        return cls(from_pretrained(model_id, device=device), **kwargs)

    # ------------------------------------------------------------------ properties
    @property
    def model(self) -> SAM2Model:
        return self.engine.model

    @property
    def device(self) -> torch.device:
        return self.engine.model.device

    @property
    def inference_state(self) -> InferenceState:
        """The tracking state (for inspection: ``retained_entries()``, objects' memories).

        Raises:
            RuntimeError: no stream yet (call :meth:`load_first_frame`).
        """
        return self._require_stream()

    @property
    def frame_idx(self) -> int:
        """Index of the current (latest) frame; -1 before the first."""
        return len(self._frames) - 1 if self._frames is not None else -1

    @property
    def obj_ids(self) -> list[int]:
        return self._state.obj_ids if self._state is not None else []

    @property
    def frame_size(self) -> tuple[int, int] | None:
        """``(height, width)`` of the stream's frames, None before the first frame."""
        return (self._frames.height, self._frames.width) if self._frames is not None else None

    # ------------------------------------------------------------------ stream
    @torch.inference_mode()
    def load_first_frame(self, frame: Any) -> None:
        """Start a new stream with its first frame (index 0), forgetting any previous stream.

        Args:
            frame: an RGB ``(H, W, 3)`` uint8 array, a PIL image or a ``(3, H, W)`` tensor (uint8, or
                float in [0, 1]); any size, the same for the whole stream.
        Raises:
            TypeError / ValueError: an invalid frame (the previous stream, if any, is left unchanged).
        """
        frames = StreamFrames()
        frames.append(frame)
        device = self.device
        self._frames = frames
        self._state = InferenceState(
            frames=frames,
            num_frames=1,
            video_height=frames.height,
            video_width=frames.width,
            device=device,
            storage_device=torch.device("cpu") if self.offload_state_to_cpu else device,
        )

    @torch.inference_mode()
    def track(self, frame: Any) -> tuple[list[int], torch.Tensor]:
        """Add the next frame of the stream and track every object on it.

        Prompts given on the previous frame are committed to memory first. Cost: one image encoding
        plus one memory-attention step per group of objects with the same memory layout.

        Returns:
            ``(obj_ids, mask_logits)``: logits ``(num_objects, 1, H, W)`` at the frame's resolution
            (``> 0`` is the mask; an object judged absent has all logits at -1024). Without objects,
            ``([], (0, 1, H, W) tensor)``: frames may flow before the first prompt.
        Raises:
            RuntimeError: no stream yet (call :meth:`load_first_frame`).
            TypeError / ValueError: an invalid frame, or one whose size differs from the stream's;
                nothing is changed, the next valid frame tracks normally.
        """
        state = self._require_stream()
        frames: StreamFrames = self._frames  # type: ignore[assignment]
        array = frames.check(frame)
        engine = self.engine
        if state.objects:
            # While the current frame's features are still cached: encode its new prompts' memory.
            engine.commit_prompts(state)
            self._bound_cond_frames(state)
        frame_idx = frames.append(array)
        state.num_frames = len(frames)
        height, width = frames.height, frames.width
        if not state.objects:
            return [], torch.zeros((0, 1, height, width), dtype=torch.float32, device=state.device)
        step = engine.track_frame(state, frame_idx)
        for track in state.objects.values():
            self._drop_stale_prompts(track)
        return step.obj_ids, engine.video_res_masks(state, step.low_res_masks)

    # ------------------------------------------------------------------ prompts
    @torch.inference_mode()
    def add_new_prompt(
        self,
        frame_idx: int,
        obj_id: int,
        points: Any = None,
        labels: Any = None,
        box: Any = None,
        mask: Any = None,
        *,
        clear_old_points: bool = True,
        normalize_coords: bool = True,
        bbox: Any = None,
    ) -> tuple[int, list[int], torch.Tensor]:
        """Prompt an object on the current frame: a new ``obj_id`` adds an object (at any time), a known
        one is corrected. The prompt takes effect on this frame and is remembered from the next one.

        Args:
            frame_idx: the current frame's index (:attr:`frame_idx`); a stream keeps no past frames.
            points: ``(N, 2)`` (x, y) pixels of the frame (or [0, 1] with ``normalize_coords=False``);
                labels ``(N,)``: 1 foreground, 0 background.
            box: ``(4,)`` XYXY box in the same units (``bbox``: its name in the camera-predictor forks).
            mask: ``(H, W)`` bool / 0-1 mask of the object (any resolution), instead of points and box.
            clear_old_points: replace this object's earlier clicks on this frame (else append).
        Returns:
            ``(frame_idx, obj_ids, mask_logits)``: logits ``(num_objects, 1, H, W)`` of every object on
            the current frame.
        Raises:
            RuntimeError: no stream yet. ValueError: not the current frame, no prompt, a mask together
            with points or a box, invalid prompts. TypeError: non-integer ``frame_idx`` / ``obj_id``.
        """
        state = self._require_stream()
        if bbox is not None:
            if box is not None:
                raise ValueError("give the box once: box= or bbox=, not both")
            box = bbox
        if isinstance(frame_idx, bool) or not isinstance(frame_idx, (int, np.integer)):
            raise TypeError(f"frame_idx must be an int, got {type(frame_idx).__name__}")
        if frame_idx != self.frame_idx:
            raise ValueError(
                f"prompts can only be given on the current frame ({self.frame_idx}), got frame {frame_idx}: "
                "a stream keeps no past frames"
            )
        frame_idx, engine, size = int(frame_idx), self.engine, self.model.image_size
        if mask is not None:
            if points is not None or labels is not None or box is not None:
                raise ValueError("give either a mask or points / a box, not both")
            engine.add_mask(state, obj_id, frame_idx, mask_prompt(mask, size, self.device))
        else:
            if points is None and labels is None and box is None:
                raise ValueError("give points (with labels), a box, or a mask")
            hw = (state.video_height, state.video_width)
            prompts = point_prompts(points, labels, box, hw, size, self.device,
                                    normalize_coords=normalize_coords, box_allowed=clear_old_points)
            engine.add_points(state, obj_id, frame_idx, prompts, append=not clear_old_points)
        return frame_idx, state.obj_ids, engine.frame_output(state, frame_idx)

    @torch.inference_mode()
    def remove_object(self, obj_id: int, strict: bool = False) -> list[int]:
        """Stop tracking an object. Returns the remaining object ids.

        Raises:
            KeyError: with ``strict``, when ``obj_id`` is unknown.
        """
        if self._state is None:
            if strict:
                raise KeyError(f"unknown object id {obj_id!r}: no stream yet")
            return []
        if strict:
            self._state.get_object(obj_id)
        self._state.objects.pop(obj_id, None)
        return self._state.obj_ids

    def reset(self) -> None:
        """Remove every object and prompt; the stream goes on (the next frame keeps its index).
        To start a different stream, call :meth:`load_first_frame`."""
        if self._state is not None:
            self._state.objects.clear()

    @torch.inference_mode()
    def object_scores(self) -> torch.Tensor:
        """Presence probability of each object on the current frame: ``(num_objects,)`` in [0, 1]
        (the sigmoid of the model's object score; NaN for an object without output there)."""
        state = self._require_stream()
        scores = torch.full((len(state.objects),), float("nan"))
        for i, track in enumerate(state.objects.values()):
            entry = track.output_on(self.frame_idx)
            if entry is not None:
                scores[i] = torch.sigmoid(entry.object_score_logits.float().reshape(-1)[0]).cpu()
        return scores

    # ------------------------------------------------------------------ bounds
    def _bound_cond_frames(self, state: InferenceState) -> None:
        """Keep each object's first conditioning frame and its ``max_cond_frames - 1`` most recent."""
        limit = self.max_cond_frames
        if limit is None:
            return
        for track in state.objects.values():
            if len(track.cond) <= limit:
                continue
            ordered = sorted(track.cond)
            keep = {ordered[0], *ordered[len(ordered) - limit + 1 :]}
            for frame_idx in ordered:
                if frame_idx not in keep:
                    del track.cond[frame_idx]
            self._drop_stale_prompts(track)

    @staticmethod
    def _drop_stale_prompts(track: ObjectTrack) -> None:
        """Forget the prompts of frames whose memories are gone (they can never be edited again)."""
        for table in (track.point_inputs, track.mask_inputs):
            for frame_idx in list(table):
                if track.output_on(frame_idx) is None:
                    del table[frame_idx]

    def _require_stream(self) -> InferenceState:
        if self._state is None:
            raise RuntimeError("no stream yet: call load_first_frame(frame) first")
        return self._state


#: The name used by the camera-streaming forks of SAM 2.
CameraPredictor = StreamPredictor
