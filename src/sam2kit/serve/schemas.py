"""Request bodies of the API (pydantic models; they make the OpenAPI schema)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "AutomaticRequest",
    "GazeMappingRequest",
    "ObjectPrompt",
    "OpenRecording",
    "OpenVideo",
    "PropagateRequest",
    "RenameObject",
    "VideoPrompt",
]

Coordinate = Annotated[float, Field(allow_inf_nan=False, ge=-1e6, le=1e6)]
Label = Literal[0, 1]
ObjectId = Annotated[int, Field(ge=0, le=1_000_000)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ObjectPrompt(_Body):
    """An object's whole prompt (sending it replaces the previous one; undo = send one click fewer).

    ``points``: ``[x, y, label]`` in pixels of the image (label 1 foreground, 0 background);
    ``box``: ``[x0, y0, x1, y1]`` pixels. No points and no box clears the object's mask.
    """

    points: list[tuple[Coordinate, Coordinate, Label]] = Field(default_factory=list, max_length=256)
    box: tuple[Coordinate, Coordinate, Coordinate, Coordinate] | None = None
    name: Annotated[str, Field(min_length=1, max_length=200)] | None = None


class VideoPrompt(ObjectPrompt):
    """An object's prompt on one frame of a video (replaces its earlier prompt on that frame)."""

    frame: Annotated[int, Field(ge=0)]
    obj_id: ObjectId


class RenameObject(_Body):
    name: Annotated[str, Field(min_length=1, max_length=200)]


class OpenVideo(_Body):
    """A video file or a folder of JPEG/PNG frames, relative to the server's media root."""

    path: Annotated[str, Field(min_length=1, max_length=4096)]


class PropagateRequest(_Body):
    """Track the prompted objects through the video from ``start_frame`` (default: the first
    prompted frame going forward, the last one going backward)."""

    direction: Literal["forward", "backward", "both"] = "forward"
    start_frame: Annotated[int, Field(ge=0)] | None = None


class AutomaticRequest(_Body):
    """Automatic masks (a grid of point prompts). With ``add_objects`` each mask becomes an object."""

    points_per_side: Annotated[int, Field(ge=1, le=64)] = 16
    pred_iou_thresh: Annotated[float, Field(ge=0.0, le=1.0)] = 0.8
    stability_score_thresh: Annotated[float, Field(ge=0.0, le=1.0)] = 0.9
    max_masks: Annotated[int, Field(ge=1, le=255)] = 64
    add_objects: bool = True


MediaPath = Annotated[str, Field(min_length=1, max_length=4096)]


class OpenRecording(_Body):
    """An eye-tracking recording folder (Pupil Cloud export, Pupil Player, Tobii Pro Glasses 3, native
    Neon; told by its content), relative to the server's media root."""

    path: MediaPath


class GazeMappingRequest(_Body):
    """Map the recording's gaze onto its AOIs: the session's prompted objects (tracked through the
    video first), or with ``aoi_masks`` a folder of palette PNGs under the media root (``00000.png``
    per scene frame, pixel value = AOI id; names from the JSON ``aoi_names``, ``{"1": "cup"}``).

    ``tolerance``: how near a mask the gaze may fall and still hit it: ``"20px"``, ``"1.5deg"``
    (needs the scene camera intrinsics) or a number of pixels.
    """

    tolerance: Annotated[str, Field(min_length=1, max_length=32)] = "0px"
    aoi_masks: MediaPath | None = None
    aoi_names: MediaPath | None = None
