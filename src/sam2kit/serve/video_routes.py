"""Video sessions: upload or open by path, prompts on any frame, propagation with progress (SSE),
cancel, per-frame images and masks, exports."""

from __future__ import annotations

import asyncio
import io
import json
import shutil
from collections.abc import AsyncIterator
from pathlib import PurePath
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, File, Path, Query, Request, UploadFile
from fastapi.responses import Response, StreamingResponse

from .app import ServeContext
from .deps import ERROR_RESPONSES, Context, export_response, locked, png_response, user_errors
from .exports import Annotations, FrameMasks, build_export
from .image_routes import ExportFormat, ObjectIdPath, safe_name
from .propagation import PropagationJob, frame_masks_to_rle
from .schemas import OpenVideo, PropagateRequest, RenameObject, VideoPrompt
from .sessions import VideoSession
from .uploads import VIDEO_TYPES, ApiError, media_path, read_upload, sniff_image, sniff_video

__all__ = ["router"]

router = APIRouter(prefix="/v1/videos", tags=["videos"], responses=ERROR_RESPONSES)
FramePath = Path(ge=0, description="frame index, 0-based")


def _session(ctx: ServeContext, session_id: str) -> VideoSession:
    session = ctx.store.get(session_id, "video")
    assert isinstance(session, VideoSession)
    return session


def _open(ctx: ServeContext, source: Any, session_id: str, file_name: str, folder: Any) -> VideoSession:
    """A video session on ``source`` (a path), its length checked against the limit."""
    from ..io.frames import open_frames
    from ..predict.video import VideoPredictor

    try:
        frames = open_frames(source)
    except (ValueError, OSError, TypeError) as error:
        raise ApiError(400, "bad_video", f"cannot read the video: {error}") from None
    if len(frames) > ctx.settings.max_frames:
        frames.close()
        raise ApiError(413, "too_many_frames", f"the video has {len(frames)} frames; the limit is "
                       f"{ctx.settings.max_frames} (max_frames)")
    predictor = VideoPredictor(ctx.worker.loaded.model, show_progress=False)
    try:
        with ctx.worker.inference():
            state = predictor.init_state(frames)
    except (ValueError, OSError) as error:
        frames.close()
        raise ApiError(400, "bad_video", f"cannot read the video: {error}") from None
    return VideoSession(session_id=session_id, file_name=file_name, width=frames.width, height=frames.height,
                        num_frames=len(frames), fps=getattr(frames, "fps", None), folder=folder,
                        predictor=predictor, state=state)


@router.post("", status_code=201, summary="Upload a video (MP4/MOV, WebM/MKV or AVI, by content)")
def create_video_session(file: Annotated[UploadFile, File()], ctx: Context) -> dict[str, Any]:
    session_id = ctx.store.new_id()
    folder = ctx.work_dir / session_id
    folder.mkdir(parents=True)
    try:
        head = file.file.read(16)
        file.file.seek(0)
        kind = sniff_video(head)
        if kind is None:
            read_upload(file, ctx.settings.max_upload_bytes, folder / "probe")  # 413 / 400 come first
            raise ApiError(415, "unsupported_type", "not a video: accepted are MP4/MOV, WebM/MKV and AVI (by content)")
        path = folder / f"video{VIDEO_TYPES[kind]}"
        read_upload(file, ctx.settings.max_upload_bytes, path)
        session = _open(ctx, path, session_id, safe_name(file.filename, path.name), folder)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    ctx.store.add(session)
    return session.to_json()


@router.post("/open", status_code=201, summary="Open a video file or frame folder under the media root")
def open_video_session(body: OpenVideo, ctx: Context) -> dict[str, Any]:
    """``path`` is relative to ``--media-root``; anything resolving outside it is refused (403)."""
    path = media_path(ctx.settings.media_root, body.path)
    if path.is_file():
        with open(path, "rb") as handle:
            head = handle.read(16)
        if sniff_video(head) is None and sniff_image(head) is None:
            raise ApiError(415, "unsupported_type", "not a video: accepted are MP4/MOV, WebM/MKV, AVI, a "
                           "PNG/JPEG image or a folder of them (by content)")
    session = _open(ctx, path, ctx.store.new_id(), path.name, None)
    ctx.store.add(session)
    return session.to_json()


@router.get("/{session_id}", summary="A video session: size, objects, prompts, masked frames, propagation")
def get_video_session(session_id: str, ctx: Context) -> dict[str, Any]:
    return _session(ctx, session_id).to_json()


@router.delete("/{session_id}", status_code=204, summary="Close a video session (cancels its propagation)")
def delete_video_session(session_id: str, ctx: Context) -> Response:
    _session(ctx, session_id)
    ctx.store.remove(session_id)
    return Response(status_code=204)


def _check_frame(session: VideoSession, frame: int) -> None:
    if not 0 <= frame < session.num_frames:
        raise ApiError(404, "unknown_frame", f"frame {frame} is out of range: the video has frames "
                       f"0..{session.num_frames - 1}")


@router.get("/{session_id}/frames/{frame}/image", summary="A frame as JPEG", response_class=Response,
            responses={200: {"content": {"image/jpeg": {}}}})
def frame_image(session_id: str, frame: Annotated[int, FramePath], ctx: Context) -> Response:
    from PIL import Image

    session = _session(ctx, session_id)
    _check_frame(session, frame)
    try:
        pixels = session.state.frames[frame]  # type: ignore[union-attr,index]
    except (AttributeError, ValueError, OSError) as error:  # closed meanwhile, or an undecodable frame
        raise ApiError(404, "unknown_frame", f"frame {frame} cannot be read: {error}") from None
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=90)
    return Response(buffer.getvalue(), media_type="image/jpeg", headers={"Cache-Control": "private, max-age=3600"})


def _frame_json(session: VideoSession, frame: int) -> dict[str, Any]:
    masks = session.masks.get(frame, {})
    return {"frame": frame, "objects": [{"obj_id": obj_id, "name": session.names.get(obj_id, str(obj_id)),
                                         "mask": rle} for obj_id, rle in masks.items() if obj_id in session.names]}


@router.get("/{session_id}/frames/{frame}/masks", summary="A frame's masks: COCO RLE per object, or a palette PNG")
def frame_masks(
    session_id: str, frame: Annotated[int, FramePath], ctx: Context,
    format: Annotated[str, Query(pattern="^(json|png)$", description="json (COCO RLE per object) or png "
                                 "(DAVIS palette PNG, value = position in the object list + 1)")] = "json",
) -> Any:
    from ..io.masks import coco_rle_to_mask, davis_palette

    session = _session(ctx, session_id)
    _check_frame(session, frame)
    if format == "json":
        return _frame_json(session, frame)
    label_map = np.zeros((session.height, session.width), dtype=np.uint8)
    for position, obj_id in enumerate(session.names):
        rle = session.masks.get(frame, {}).get(obj_id)
        if rle is not None:
            label_map[coco_rle_to_mask(rle)] = position + 1
    return png_response(label_map, palette=davis_palette().tobytes())


@router.put("/{session_id}/prompts", summary="Set an object's prompt on a frame; returns that frame's masks")
def prompt_video(session_id: str, prompt: VideoPrompt, ctx: Context) -> dict[str, Any]:
    """Replaces the object's points/box on ``frame`` (a new ``obj_id`` adds an object); with no
    points and no box the object's prompt on that frame is removed. Frames tracked earlier keep
    their masks until the next propagation."""
    session = _session(ctx, session_id)
    _check_frame(session, prompt.frame)
    with locked(session):
        predictor, state = session.predictor, session.state
        assert predictor is not None and state is not None
        obj_id, frame = prompt.obj_id, prompt.frame
        if obj_id not in session.names and len(session.names) >= ctx.settings.max_objects:
            raise ApiError(413, "too_many_objects", f"a session holds at most {ctx.settings.max_objects} objects "
                           "(max_objects)")
        session.names.setdefault(obj_id, prompt.name or f"object {obj_id}")
        if prompt.name:
            session.names[obj_id] = prompt.name
        if not prompt.points and prompt.box is None:
            session.prompts.pop((frame, obj_id), None)
            _clear(ctx, session, frame, obj_id)
            return _frame_json(session, frame)
        points = np.array([p[:2] for p in prompt.points], dtype=np.float32) if prompt.points else None
        labels = np.array([p[2] for p in prompt.points], dtype=np.int64) if prompt.points else None
        box = np.array(prompt.box, dtype=np.float32) if prompt.box is not None else None
        with user_errors(), ctx.worker.inference():
            _, obj_ids, logits = predictor.add_new_points_or_box(state, frame, obj_id, points=points, labels=labels,
                                                                 clear_old_points=True, box=box)
        session.prompts[(frame, obj_id)] = {"points": [list(p) for p in prompt.points],
                                            "box": list(prompt.box) if prompt.box is not None else None}
        session.masks[frame] = frame_masks_to_rle(list(obj_ids), logits)
        return _frame_json(session, frame)


def _clear(ctx: ServeContext, session: VideoSession, frame: int, obj_id: int) -> None:
    """Remove an object's prompt on a frame (the object leaves the tracker when it has none left)."""
    predictor, state = session.predictor, session.state
    assert predictor is not None and state is not None
    if obj_id not in state.objects:
        return
    with ctx.worker.inference():
        if any(o == obj_id for _, o in session.prompts):
            result = predictor.clear_all_prompts_in_frame(state, frame, obj_id)
            if result is not None:
                session.masks[frame] = frame_masks_to_rle(list(result[1]), result[2])
            return
        _, updated = predictor.remove_object(state, obj_id)
    for masks in session.masks.values():
        masks.pop(obj_id, None)
    for t, logits in updated:
        session.masks[t] = frame_masks_to_rle(state.obj_ids, logits)


@router.patch("/{session_id}/objects/{obj_id}", summary="Rename an object")
def rename_video_object(
    session_id: str, body: RenameObject, obj_id: Annotated[int, ObjectIdPath], ctx: Context
) -> dict[str, Any]:
    session = _session(ctx, session_id)
    if obj_id not in session.names:
        raise ApiError(404, "unknown_object", f"no object {obj_id} in this session; objects: {list(session.names)}")
    session.names[obj_id] = body.name
    return {"obj_id": obj_id, "name": body.name}


@router.delete("/{session_id}/objects/{obj_id}", status_code=204, summary="Remove an object from every frame")
def delete_video_object(session_id: str, obj_id: Annotated[int, ObjectIdPath], ctx: Context) -> Response:
    session = _session(ctx, session_id)
    with locked(session):
        if obj_id not in session.names:
            raise ApiError(404, "unknown_object", f"no object {obj_id} in this session; objects: {list(session.names)}")
        for key in [k for k in session.prompts if k[1] == obj_id]:
            del session.prompts[key]
        _clear(ctx, session, 0, obj_id)
        for masks in session.masks.values():
            masks.pop(obj_id, None)
        del session.names[obj_id]
    return Response(status_code=204)


@router.post("/{session_id}/propagate", status_code=202, summary="Start tracking the objects through the video")
def start_propagation(session_id: str, body: PropagateRequest, ctx: Context) -> dict[str, Any]:
    """Runs in the background; follow it with ``GET .../propagate/events`` (server-sent events) or
    ``GET .../propagate``; stop it with ``POST .../propagate/cancel``. Masks of each tracked frame are
    kept as soon as they exist (``GET .../frames/{frame}/masks``)."""
    session = _session(ctx, session_id)
    with locked(session):
        prompted = sorted({frame for frame, _ in session.prompts})
        if not prompted:
            raise ApiError(400, "no_prompts", "nothing to propagate: add a prompt (PUT .../prompts) first")
        start = body.start_frame
        if start is None:
            start = prompted[-1] if body.direction == "backward" else prompted[0]
        _check_frame(session, start)
        job = PropagationJob(session, ctx.worker, body.direction, start)
        session.job = job
    job.start()
    return job.to_json()


def _job(session: VideoSession) -> PropagationJob:
    if session.job is None:
        raise ApiError(404, "no_propagation", "no propagation has been started on this session")
    return session.job


@router.get("/{session_id}/propagate", summary="The latest propagation's progress")
def propagation_status(session_id: str, ctx: Context) -> dict[str, Any]:
    return _job(_session(ctx, session_id)).to_json()


@router.post("/{session_id}/propagate/cancel", summary="Cancel the running propagation")
def cancel_propagation(session_id: str, ctx: Context) -> dict[str, Any]:
    """Frames tracked before the cancel keep their masks. Returns the final progress."""
    job = _job(_session(ctx, session_id))
    job.cancel()
    job.join(timeout=30.0)
    return job.to_json()


@router.get("/{session_id}/propagate/events", summary="Progress of the propagation as server-sent events",
            response_class=StreamingResponse, responses={200: {"content": {"text/event-stream": {}}}})
async def propagation_events(session_id: str, request: Request, ctx: Context) -> StreamingResponse:
    """``event: progress`` with the progress JSON whenever a frame is done, then ``event: end``
    with the final state. Disconnecting does not stop the propagation."""
    job = _job(_session(ctx, session_id))

    async def events() -> AsyncIterator[str]:
        last: tuple[int, str] | None = None
        while not await request.is_disconnected():
            snapshot = job.to_json()
            key = (snapshot["done"], snapshot["status"])
            if key != last:
                last = key
                yield f"event: progress\ndata: {json.dumps(snapshot)}\n\n"
            if not job.running:
                yield f"event: end\ndata: {json.dumps(snapshot)}\n\n"
                return
            await asyncio.sleep(0.05)

    return StreamingResponse(events(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


def session_annotations(session: VideoSession) -> Annotations:
    """The session's masks as an export snapshot (frames ``00000.jpg``, ...)."""
    state = session.state
    assert state is not None
    frames = [FrameMasks(f"{t:05d}.jpg", session.height, session.width, dict(session.masks.get(t, {})))
              for t in range(session.num_frames)]
    return Annotations(frames, dict(session.names), is_video=True, read_frame=lambda t: state.frames[t],  # type: ignore[index]
                       fps=session.fps, stem=PurePath(session.file_name).stem or "video")


@router.get("/{session_id}/export/{fmt}", summary="Export the masks (coco, davis, yolo, boxes, overlay MP4)",
            response_class=Response)
def export_video(session_id: str, fmt: Annotated[str, ExportFormat], ctx: Context,
                 download: Annotated[bool, Query(description="send as an attachment")] = True) -> Response:
    session = _session(ctx, session_id)
    with locked(session):
        content, media_type, file_name = build_export(session_annotations(session), fmt)
    if not download:
        return Response(content, media_type=media_type)
    return export_response(content, media_type, file_name)
