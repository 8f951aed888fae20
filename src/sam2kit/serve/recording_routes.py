"""Recording mode: open an eye-tracking recording under the media root (a video session on its scene
video, with its gaze), map the gaze onto AOIs (tracked objects or a mask folder) in the background
with progress and cancel, and read the per-frame gaze, the per-AOI timeline, the metrics and the CSVs.

A recording session is a video session: prompts, frames, masks, propagation and the mask exports are
the ``/v1/videos/{session_id}/...`` routes; it is closed with ``DELETE /v1/videos/{session_id}``.
"""

from __future__ import annotations

import io
import os
import shutil
import zipfile
from pathlib import PurePath
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response, StreamingResponse

from . import video_routes
from .app import ServeContext
from .deps import ERROR_RESPONSES, Context, export_response, locked
from .gaze_mapping import GazeMappingJob, RecordingSession, aoi_timeline, frame_gaze, records
from .schemas import GazeMappingRequest, OpenRecording
from .uploads import ApiError, media_path

__all__ = ["router"]

router = APIRouter(prefix="/v1/recordings", tags=["recordings"], responses=ERROR_RESPONSES)
GazeTable = Path(pattern="^(samples|fixations|aoi_metrics|zip)$",
                 description="samples (gaze_samples.csv), fixations (fixations.csv), aoi_metrics (aoi_metrics.csv) "
                 "or zip (the three)")


def _session(ctx: ServeContext, session_id: str) -> RecordingSession:
    session = ctx.store.get(session_id, "video")
    if not isinstance(session, RecordingSession):
        raise ApiError(404, "unknown_session", f"session {session_id!r} is a video session without a recording; "
                       "open a recording with POST /v1/recordings/open")
    return session


def _mapped(session: RecordingSession) -> Any:
    if session.gaze is None:
        raise ApiError(404, "no_gaze_mapping", "the gaze has not been mapped yet: run POST .../mapping and wait "
                       "for it to finish")
    return session.gaze


def _relative(message: str, ctx: ServeContext) -> str:
    """A reader's message with the media root's server-side location taken out of its paths."""
    root = os.path.realpath(ctx.settings.media_root) if ctx.settings.media_root is not None else None
    return message.replace(root + os.sep, "").replace(root, ".") if root else message


def _read(ctx: ServeContext, relative: str) -> Any:
    """The recording in ``relative`` (under the media root). Raises ApiError 403/404 (path), 415 (no
    known format), 400 (a broken recording), 501 (a reader's optional package is missing)."""
    from ..io import VideoReadError
    from ..io.eyetracking import RecordingFormatError, detect_format, read_recording

    path = media_path(ctx.settings.media_root, relative)
    try:
        detect_format(path)
    except RecordingFormatError as error:
        raise ApiError(415, "unknown_recording_format", _relative(str(error), ctx)) from None
    try:
        return read_recording(path)
    except ImportError as error:
        raise ApiError(501, "missing_dependency", str(error)) from None
    except (RecordingFormatError, VideoReadError, OSError, ValueError) as error:
        raise ApiError(400, "bad_recording", f"cannot read the recording {relative!r}: "
                       f"{_relative(str(error), ctx)}") from None


@router.post("/open", status_code=201, summary="Open an eye-tracking recording folder under the media root")
def open_recording(body: OpenRecording, ctx: Context) -> dict[str, Any]:
    """Creates a video session on the recording's scene video (``/v1/videos/{session_id}/...`` works on
    it) that also holds the gaze; the reply has ``recording`` (format, samples, fixations, frame
    times). ``path`` is relative to ``--media-root``; anything resolving outside it is refused (403)."""
    recording = _read(ctx, body.path)
    session_id = ctx.store.new_id()
    folder = ctx.work_dir / session_id
    folder.mkdir(parents=True)
    try:
        video = video_routes._open(ctx, recording.video, session_id, PurePath(recording.path).name, folder)
        session = RecordingSession.from_video(video, recording, body.path)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    ctx.store.add(session)
    return session.to_json()


@router.get("/{session_id}", summary="A recording session: the video session, the recording, the latest mapping")
def get_recording(session_id: str, ctx: Context) -> dict[str, Any]:
    return _session(ctx, session_id).to_json()


@router.post("/{session_id}/mapping", status_code=202, summary="Start mapping the gaze onto the AOIs")
def start_mapping(session_id: str, body: GazeMappingRequest, ctx: Context) -> dict[str, Any]:
    """The AOIs are the session's prompted objects (AOI id = object id), tracked through the video
    first, or the palette PNGs of ``aoi_masks`` (then the session must have no prompts; the masks
    become its objects). Runs in the background: follow it with ``GET .../mapping/events``
    (server-sent events) or ``GET .../mapping``, stop it with ``POST .../mapping/cancel``; when done,
    read ``.../gaze``, ``.../timeline``, ``.../metrics`` and ``.../export/{table}``."""
    from ..errors import ArgumentError
    from ..gaze import MaskFolderAOIs, load_names, parse_tolerance

    session = _session(ctx, session_id)
    assert session.recording is not None
    try:
        tolerance = parse_tolerance(body.tolerance)
        tolerance_px = tolerance.pixels(session.recording.camera)
    except ArgumentError as error:
        raise ApiError(400, "bad_tolerance", str(error)) from None
    with locked(session):
        aoi_masks = None
        if body.aoi_masks is not None:
            if session.prompts:
                raise ApiError(400, "aoi_conflict", "this session has clicked AOIs (prompts); map either the "
                               "clicked objects (leave out aoi_masks) or a mask folder (delete the objects first)")
            folder = media_path(ctx.settings.media_root, body.aoi_masks)
            try:
                names = load_names(media_path(ctx.settings.media_root, body.aoi_names) if body.aoi_names else None)
                aoi_masks = MaskFolderAOIs(folder, names)
                camera = session.recording.camera
                aoi_masks.check(session.recording.num_frames, (camera.height, camera.width))
            except (ArgumentError, OSError) as error:
                raise ApiError(400, "bad_aoi_masks", _relative(str(error), ctx)) from None
        elif not session.prompts:
            raise ApiError(400, "no_aois", "no AOIs to map onto: click objects on the video (PUT "
                           "/v1/videos/{session_id}/prompts) or give aoi_masks, a folder of palette PNGs")
        job = GazeMappingJob(session, ctx.worker, tolerance, tolerance_px, aoi_masks)
        session.job = job
    job.start()
    return job.to_json()


def _mapping_job(ctx: ServeContext, session_id: str) -> GazeMappingJob:
    job = _session(ctx, session_id).job
    if not isinstance(job, GazeMappingJob):
        raise ApiError(404, "no_gaze_mapping", "no gaze mapping has been started on this session "
                       "(POST .../mapping)")
    return job


@router.get("/{session_id}/mapping", summary="The latest gaze mapping's progress")
def mapping_status(session_id: str, ctx: Context) -> dict[str, Any]:
    return _mapping_job(ctx, session_id).to_json()


@router.post("/{session_id}/mapping/cancel", summary="Cancel the running gaze mapping")
def cancel_mapping(session_id: str, ctx: Context) -> dict[str, Any]:
    """The previous mapping's results (if any) stay. Returns the final progress."""
    _mapping_job(ctx, session_id)
    return video_routes.cancel_propagation(session_id, ctx)


@router.get("/{session_id}/mapping/events", summary="Progress of the gaze mapping as server-sent events",
            response_class=StreamingResponse, responses={200: {"content": {"text/event-stream": {}}}})
async def mapping_events(session_id: str, request: Request, ctx: Context) -> StreamingResponse:
    """``event: progress`` with the progress JSON (``phase``: tracking, then analysing) whenever a
    frame is done, then ``event: end`` with the final state. Disconnecting does not stop the job."""
    _mapping_job(ctx, session_id)
    return await video_routes.propagation_events(session_id, request, ctx)


@router.get("/{session_id}/gaze", summary="The gaze point on each scene frame (with its AOIs once mapped)")
def gaze_points(
    session_id: str, ctx: Context,
    start: Annotated[int, Query(ge=0, description="first frame")] = 0,
    stop: Annotated[int | None, Query(ge=0, description="frame after the last (default: the end)")] = None,
) -> dict[str, Any]:
    """For each frame in ``[start, stop)`` that has samples: the valid sample nearest the frame's
    time (else the nearest sample): ``x``, ``y`` (scene pixels, origin top left; null without gaze),
    ``valid``, ``reason`` (why not valid), ``fixation_id``, ``samples`` (how many fall on the frame),
    ``aois`` (AOI ids hit; null before the mapping). ``tolerance_px``: the mapping's tolerance."""
    session = _session(ctx, session_id)
    recording = session.recording
    assert recording is not None
    end = recording.num_frames if stop is None else min(stop, recording.num_frames)
    return {"num_frames": recording.num_frames, "start": start, "stop": end,
            "tolerance_px": session.gaze.tables.tolerance_px if session.gaze is not None else None,
            "frames": frame_gaze(session, start, end) if start < end else []}


@router.get("/{session_id}/timeline", summary="Per AOI: the frames where it is visible and where the gaze hits it")
def timeline(session_id: str, ctx: Context) -> dict[str, Any]:
    """``aois``: ``[{aoi, name, visible, looked}]``, each of ``visible`` / ``looked`` a list of
    ``[first, last]`` frame runs (inclusive); ``valid``: the runs of frames with valid gaze."""
    session = _session(ctx, session_id)
    _mapped(session)
    return aoi_timeline(session)


@router.get("/{session_id}/metrics", summary="The AOI metrics table of the latest mapping")
def metrics(session_id: str, ctx: Context) -> dict[str, Any]:
    """``columns`` (as ``aoi_metrics.csv``) and one row per AOI; undefined values are null. Times in
    seconds (definitions: README, "Gaze and AOIs")."""
    gaze = _mapped(_session(ctx, session_id))
    tables = gaze.tables
    return {"columns": list(tables.aoi_metrics.columns), "rows": records(tables.aoi_metrics),
            "tolerance_px": tables.tolerance_px, "fixations_source": tables.fixations_source,
            "aoi_source": gaze.aoi_source}


@router.get("/{session_id}/export/{table}", summary="The mapping's tables as CSV (or the three in a zip)",
            response_class=Response,
            responses={200: {"content": {"text/csv": {}, "application/zip": {}}}})
def export_tables(session_id: str, table: Annotated[str, GazeTable], ctx: Context,
                  download: Annotated[bool, Query(description="send as an attachment")] = True) -> Response:
    """The CSV files the mapping wrote (each atomically) into the session's folder, as ``sam2kit gaze``
    writes them: ``gaze_samples.csv``, ``fixations.csv``, ``aoi_metrics.csv``."""
    session = _session(ctx, session_id)
    gaze = _mapped(session)
    stem = PurePath(session.file_name).stem or "recording"
    try:
        if table == "zip":
            buffer = io.BytesIO()
            with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
                for path in gaze.files.values():
                    archive.writestr(path.name, path.read_bytes())
            content, media_type, file_name = buffer.getvalue(), "application/zip", f"{stem}_gaze.zip"
        else:
            path = gaze.files[table]  # the keys of sam2kit.gaze.FILES
            content, media_type, file_name = path.read_bytes(), "text/csv", f"{stem}_{path.name}"
    except OSError as error:  # the session was closed meanwhile
        raise ApiError(404, "no_gaze_mapping", f"the mapping's files are gone: {error}") from None
    if not download:
        return Response(content, media_type=media_type)
    return export_response(content, media_type, file_name)
