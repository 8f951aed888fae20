"""Typed tracking state of the video and stream predictors.

Per object, the state holds prompts, the conditioning frames' memories (kept for the whole session)
and a sliding window of recent non-conditioning memories. Nothing else grows with video length.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..modeling.sam2 import FrameFeatures, PointPrompts


@dataclass
class MemoryEntry:
    """What is remembered of one frame for one object.

    Attributes:
        maskmem_features: ``(1, mem_dim, h, w)`` bfloat16 memory (None: not encoded yet, or dropped
            because the frame left the memory window; the pointer is still usable).
        maskmem_pos_enc: ``(1, mem_dim, h, w)`` position encoding (a shared view, no copy).
        obj_ptr: ``(1, C)`` object pointer.
        pred_masks: ``(1, 1, S/4, S/4)`` low-resolution mask logits (None once dropped).
        object_score_logits: ``(1, 1)``.
    """

    maskmem_features: torch.Tensor | None
    maskmem_pos_enc: torch.Tensor | None
    obj_ptr: torch.Tensor
    pred_masks: torch.Tensor | None
    object_score_logits: torch.Tensor


class TrackedFrames:
    """Which frames an object has been tracked on, and in which direction: stored as runs of
    consecutive frames, so its size depends on the number of passes, not on the video length."""

    def __init__(self) -> None:
        self._runs: list[list[int]] = []  # sorted [start, end, reverse]

    def __len__(self) -> int:
        return len(self._runs)

    def _find(self, frame_idx: int) -> int:
        """Index of the run containing ``frame_idx``, or -1."""
        pos = bisect.bisect_right(self._runs, [frame_idx, float("inf"), 2]) - 1
        if pos >= 0 and self._runs[pos][0] <= frame_idx <= self._runs[pos][1]:
            return pos
        return -1

    def __contains__(self, frame_idx: int) -> bool:
        return self._find(frame_idx) >= 0

    def reverse_of(self, frame_idx: int) -> bool:
        """Direction of the pass that last tracked ``frame_idx`` (False if untracked)."""
        pos = self._find(frame_idx)
        return bool(self._runs[pos][2]) if pos >= 0 else False

    def discard(self, frame_idx: int) -> None:
        pos = self._find(frame_idx)
        if pos < 0:
            return
        start, end, rev = self._runs.pop(pos)
        pieces = [[s, e, rev] for s, e in ((start, frame_idx - 1), (frame_idx + 1, end)) if s <= e]
        self._runs[pos:pos] = pieces

    def add(self, frame_idx: int, reverse: bool) -> None:
        pos = self._find(frame_idx)
        if pos >= 0 and bool(self._runs[pos][2]) == reverse:
            return
        self.discard(frame_idx)
        bisect.insort(self._runs, [frame_idx, frame_idx, int(reverse)])
        self._merge_around(frame_idx)

    def _merge_around(self, frame_idx: int) -> None:
        pos = self._find(frame_idx)
        if pos + 1 < len(self._runs):
            nxt, cur = self._runs[pos + 1], self._runs[pos]
            if nxt[0] == cur[1] + 1 and nxt[2] == cur[2]:
                cur[1] = nxt[1]
                del self._runs[pos + 1]
        if pos > 0:
            prev, cur = self._runs[pos - 1], self._runs[pos]
            if prev[1] + 1 == cur[0] and prev[2] == cur[2]:
                prev[1] = cur[1]
                del self._runs[pos]

    def clear(self) -> None:
        self._runs.clear()


@dataclass
class ObjectTrack:
    """Everything known about one tracked object."""

    obj_id: int
    point_inputs: dict[int, PointPrompts] = field(default_factory=dict)
    mask_inputs: dict[int, torch.Tensor] = field(default_factory=dict)
    cond: dict[int, MemoryEntry] = field(default_factory=dict)  # conditioning frames (prompted)
    non_cond: dict[int, MemoryEntry] = field(default_factory=dict)  # recent tracked frames (bounded)
    temp_cond: dict[int, MemoryEntry] = field(default_factory=dict)  # prompted, memory not encoded yet
    temp_non_cond: dict[int, MemoryEntry] = field(default_factory=dict)  # corrections on tracked frames
    tracked: TrackedFrames = field(default_factory=TrackedFrames)

    def output_on(self, frame_idx: int, is_cond: bool | None = None) -> MemoryEntry | None:
        """The latest output of this object on a frame (pending prompts first), if any."""
        temps = (self.temp_cond, self.temp_non_cond) if is_cond is None else (
            (self.temp_cond,) if is_cond else (self.temp_non_cond,)
        )
        for table in (*temps, self.cond, self.non_cond):
            entry = table.get(frame_idx)
            if entry is not None:
                return entry
        return None

    def clear_prompts(self, frame_idx: int) -> None:
        """Forget the prompts on a frame; a conditioning output there becomes a tracked one."""
        for table in (self.point_inputs, self.mask_inputs, self.temp_cond, self.temp_non_cond):
            table.pop(frame_idx, None)
        entry = self.cond.pop(frame_idx, None)
        if entry is not None:
            self.non_cond[frame_idx] = entry
            self.tracked.discard(frame_idx)

    def clear(self) -> None:
        tables = (self.point_inputs, self.mask_inputs, self.cond, self.non_cond, self.temp_cond, self.temp_non_cond)
        for table in tables:
            table.clear()
        self.tracked.clear()

    def retained_entries(self) -> int:
        """Number of per-frame entries held (for bounded-memory checks)."""
        return (
            len(self.point_inputs) + len(self.mask_inputs) + len(self.cond) + len(self.non_cond)
            + len(self.temp_cond) + len(self.temp_non_cond) + len(self.tracked)
        )


@dataclass
class InferenceState:
    """A tracking session on one video (returned by ``VideoPredictor.init_state``).

    Attributes:
        frames: the lazy frame source (None: every frame's features are given with
            ``TrackingEngine.set_frame_features``, as a training loop does). num_frames /
            video_height / video_width: its size.
        objects: obj_id -> :class:`ObjectTrack`, in the order objects were added.
        keep_all_memories: keep every frame's memory (the reference's behaviour, memory grows).
        results_dir: where yielded frame results are written for :meth:`VideoPredictor.get_frame_masks`.
    """

    frames: object
    num_frames: int
    video_height: int
    video_width: int
    device: torch.device
    storage_device: torch.device
    keep_all_memories: bool = False
    results_dir: Path | None = None
    objects: dict[int, ObjectTrack] = field(default_factory=dict)
    # The features of the most recently used frame, shared by every object.
    cached_features: tuple[int, FrameFeatures] | None = None

    @property
    def obj_ids(self) -> list[int]:
        return list(self.objects)

    def check_frame(self, frame_idx: int) -> None:
        """Raises TypeError for a non-integer index, IndexError for one outside ``0..num_frames-1``."""
        if not isinstance(frame_idx, (int, np.integer)) or isinstance(frame_idx, bool):
            raise TypeError(f"frame_idx must be an int, got {type(frame_idx).__name__}")
        if not 0 <= frame_idx < self.num_frames:
            raise IndexError(
                f"frame index {frame_idx} is out of range for a video of {self.num_frames} frames "
                f"(valid: 0..{self.num_frames - 1})"
            )

    def add_object(self, obj_id: int) -> ObjectTrack:
        """The object ``obj_id``, added (last in order) if new. Raises TypeError for a non-int id."""
        if isinstance(obj_id, bool) or not isinstance(obj_id, (int, np.integer)):
            raise TypeError(f"obj_id must be an int, got {type(obj_id).__name__}")
        obj_id = int(obj_id)
        if obj_id not in self.objects:
            self.objects[obj_id] = ObjectTrack(obj_id)
        return self.objects[obj_id]

    def get_object(self, obj_id: int) -> ObjectTrack:
        """A known object. Raises KeyError naming the known ids."""
        try:
            return self.objects[obj_id]
        except KeyError:
            raise KeyError(f"unknown object id {obj_id!r}; known object ids: {self.obj_ids}") from None

    def retained_entries(self) -> int:
        """Total per-frame entries across objects (constant in video length unless keep_all_memories)."""
        return sum(track.retained_entries() for track in self.objects.values())


class StackedMemories(Mapping):
    """Read-only ``frame_idx -> entry`` view that stacks the entries of several objects along the
    batch axis, so the model can process objects with identical memory layouts as one batch."""

    def __init__(self, tables: list[Mapping[int, MemoryEntry]]) -> None:
        self._tables = tables
        self._stacked: dict[int, MemoryEntry] = {}

    def __getitem__(self, frame_idx: int) -> MemoryEntry:
        if frame_idx not in self._stacked:
            entries = [table[frame_idx] for table in self._tables]
            feats = [e.maskmem_features for e in entries]
            self._stacked[frame_idx] = MemoryEntry(
                maskmem_features=None if feats[0] is None else torch.cat(feats, dim=0),  # type: ignore[arg-type]
                maskmem_pos_enc=None
                if entries[0].maskmem_pos_enc is None
                else entries[0].maskmem_pos_enc.expand(len(entries), -1, -1, -1),
                obj_ptr=torch.cat([e.obj_ptr for e in entries], dim=0),
                pred_masks=None,
                object_score_logits=torch.cat([e.object_score_logits for e in entries], dim=0),
            )
        return self._stacked[frame_idx]

    def __iter__(self) -> Iterator[int]:
        return iter(self._tables[0])

    def __len__(self) -> int:
        return len(self._tables[0])

    def __contains__(self, frame_idx: object) -> bool:
        return frame_idx in self._tables[0]
