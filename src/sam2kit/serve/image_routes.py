"""Image sessions: upload, prompt objects with points and boxes, automatic masks, masks, exports."""

from __future__ import annotations

from pathlib import PurePath
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, File, Path, Query, UploadFile
from fastapi.responses import Response

from .app import ServeContext
from .deps import ERROR_RESPONSES, Context, export_response, locked, png_response, user_errors
from .exports import Annotations, FrameMasks, build_export
from .schemas import AutomaticRequest, ObjectPrompt, RenameObject
from .sessions import ImageObject, ImageSession
from .uploads import ApiError, decode_image, read_upload

__all__ = ["router"]

router = APIRouter(prefix="/v1/images", tags=["images"], responses=ERROR_RESPONSES)

ObjectIdPath = Path(ge=0, le=1_000_000, description="the object's id (the client chooses it)")
ExportFormat = Path(pattern="^(coco|davis|yolo|boxes|overlay)$",
                    description="coco (JSON), davis (zip of palette PNGs), yolo (zip of labels), boxes (JSON), "
                    "overlay (PNG)")


def safe_name(name: str | None, default: str) -> str:
    """The last part of an uploaded file's name (no folders), at most 200 characters."""
    base = PurePath((name or "").replace("\\", "/")).name.strip()
    return base[:200] or default


def _session(ctx: ServeContext, session_id: str) -> ImageSession:
    session = ctx.store.get(session_id, "image")
    assert isinstance(session, ImageSession)
    return session


@router.post("", status_code=201, summary="Upload an image (PNG, JPEG or WebP) and compute its embedding")
def create_image_session(file: Annotated[UploadFile, File()], ctx: Context) -> dict[str, Any]:
    """Checks the type by content and the size against the limits, embeds the image once (later
    prompts reuse the embedding), and returns the new session."""
    from ..predict.image import ImagePredictor

    data = read_upload(file, ctx.settings.max_upload_bytes)
    image = decode_image(data, ctx.settings.max_image_pixels)
    del data
    predictor = ImagePredictor(ctx.worker.loaded.model)
    with ctx.worker.inference():
        predictor.set_image(image)
    session = ImageSession(session_id=ctx.store.new_id(), file_name=safe_name(file.filename, "image.png"),
                           width=image.shape[1], height=image.shape[0], image=image, predictor=predictor)
    ctx.store.add(session)
    return session.to_json()


@router.get("/{session_id}", summary="An image session: size and objects with their masks (COCO RLE)")
def get_image_session(session_id: str, ctx: Context) -> dict[str, Any]:
    return _session(ctx, session_id).to_json()


@router.delete("/{session_id}", status_code=204, summary="Close an image session (its memory is returned)")
def delete_image_session(session_id: str, ctx: Context) -> Response:
    _session(ctx, session_id)
    ctx.store.remove(session_id)
    return Response(status_code=204)


def _predict(ctx: ServeContext, session: ImageSession, prompt: ObjectPrompt) -> tuple[np.ndarray | None, float | None]:
    """The best mask ((H, W) bool) of the prompt and its score; (None, None) for an empty prompt."""
    if not prompt.points and prompt.box is None:
        return None, None
    assert session.predictor is not None
    coords = np.array([p[:2] for p in prompt.points], dtype=np.float32) if prompt.points else None
    labels = np.array([p[2] for p in prompt.points], dtype=np.int64) if prompt.points else None
    box = np.array(prompt.box, dtype=np.float32) if prompt.box is not None else None
    multimask = len(prompt.points) == 1 and box is None  # one click is ambiguous: best of three
    with user_errors(), ctx.worker.inference():
        masks, scores, _ = session.predictor.predict(point_coords=coords, point_labels=labels, box=box,
                                                     multimask_output=multimask)
    best = int(np.argmax(scores))
    return np.ascontiguousarray(masks[best].astype(bool)), float(scores[best])


@router.put("/{session_id}/objects/{obj_id}", summary="Set an object's prompt (points and/or a box); returns its mask")
def prompt_image_object(
    session_id: str, prompt: ObjectPrompt, obj_id: Annotated[int, ObjectIdPath], ctx: Context
) -> dict[str, Any]:
    """The prompt replaces the object's previous one (a new ``obj_id`` adds an object). The mask
    comes back as COCO RLE (``mask``), with its score, box ``[x, y, w, h]`` and area in pixels."""
    session = _session(ctx, session_id)
    with locked(session):
        if obj_id not in session.objects and len(session.objects) >= ctx.settings.max_objects:
            raise ApiError(413, "too_many_objects", f"a session holds at most {ctx.settings.max_objects} objects "
                           "(max_objects)")
        mask, score = _predict(ctx, session, prompt)
        obj = session.objects.get(obj_id) or ImageObject(obj_id, name=prompt.name or f"object {obj_id}")
        obj.points = [list(p) for p in prompt.points]
        obj.box = list(prompt.box) if prompt.box is not None else None
        obj.set_mask(mask, score)
        if prompt.name:
            obj.name = prompt.name
        session.objects[obj_id] = obj
        return obj.to_json()


@router.patch("/{session_id}/objects/{obj_id}", summary="Rename an object")
def rename_image_object(
    session_id: str, body: RenameObject, obj_id: Annotated[int, ObjectIdPath], ctx: Context
) -> dict[str, Any]:
    session = _session(ctx, session_id)
    with locked(session):
        obj = _object(session, obj_id)
        obj.name = body.name
        return obj.to_json()


@router.delete("/{session_id}/objects/{obj_id}", status_code=204, summary="Delete an object")
def delete_image_object(session_id: str, obj_id: Annotated[int, ObjectIdPath], ctx: Context) -> Response:
    session = _session(ctx, session_id)
    with locked(session):
        _object(session, obj_id)
        del session.objects[obj_id]
    return Response(status_code=204)


def _object(session: ImageSession, obj_id: int) -> ImageObject:
    if obj_id not in session.objects:
        raise ApiError(404, "unknown_object", f"no object {obj_id} in this session; objects: {list(session.objects)}")
    return session.objects[obj_id]


@router.get("/{session_id}/objects/{obj_id}/mask.png", summary="An object's mask as a PNG (0 / 255)",
            response_class=Response, responses={200: {"content": {"image/png": {}}}})
def image_object_png(session_id: str, obj_id: Annotated[int, ObjectIdPath], ctx: Context) -> Response:
    from ..io.masks import coco_rle_to_mask

    session = _session(ctx, session_id)
    obj = _object(session, obj_id)
    if obj.rle is None:
        return png_response(np.zeros((session.height, session.width), dtype=bool))
    return png_response(coco_rle_to_mask(obj.rle))


@router.post("/{session_id}/automatic", summary="Automatic masks of everything in the image")
def automatic_masks(
    session_id: str, body: AutomaticRequest, ctx: Context
) -> dict[str, Any]:
    """Runs the automatic mask generator; the masks (best predicted IoU first, at most
    ``max_masks``) come back as COCO RLE and, with ``add_objects``, become new objects."""
    from ..predict.automatic import MaskGenerator

    session = _session(ctx, session_id)
    with locked(session):
        generator = MaskGenerator(ctx.worker.loaded.model, points_per_side=body.points_per_side,
                                  pred_iou_thresh=body.pred_iou_thresh,
                                  stability_score_thresh=body.stability_score_thresh)
        with ctx.worker.inference():
            records = generator.generate(session.image)
        records.sort(key=lambda r: -r["predicted_iou"])
        room = ctx.settings.max_objects - len(session.objects) if body.add_objects else body.max_masks
        records = records[: max(0, min(body.max_masks, room))]
        next_id = max(session.objects, default=-1) + 1
        masks = []
        for offset, record in enumerate(records):
            obj = ImageObject(next_id + offset, f"auto {next_id + offset}")
            obj.set_mask(np.ascontiguousarray(record["segmentation"]), float(record["predicted_iou"]))
            item = {key: value for key, value in obj.to_json().items() if key in ("mask", "score", "area", "bbox")}
            if body.add_objects:
                session.objects[obj.obj_id] = obj
                item["obj_id"] = obj.obj_id
            masks.append(item)
        return {"masks": masks}


def session_annotations(session: ImageSession) -> Annotations:
    """The session's masks as an export snapshot."""
    image = session.image
    assert image is not None
    masks = {obj.obj_id: obj.rle for obj in session.objects.values() if obj.rle is not None}
    frame = FrameMasks(session.file_name, session.height, session.width, masks)
    names = {obj.obj_id: obj.name for obj in session.objects.values()}
    return Annotations([frame], names, is_video=False, read_frame=lambda index: image,
                       stem=PurePath(session.file_name).stem or "image")


@router.get("/{session_id}/export/{fmt}", summary="Export the masks (coco, davis, yolo, boxes, overlay)",
            response_class=Response)
def export_image(session_id: str, fmt: Annotated[str, ExportFormat], ctx: Context,
                 download: Annotated[bool, Query(description="send as an attachment")] = True) -> Response:
    session = _session(ctx, session_id)
    with locked(session):
        content, media_type, file_name = build_export(session_annotations(session), fmt)
    if not download:
        return Response(content, media_type=media_type)
    return export_response(content, media_type, file_name)
