"""Exports of a session's masks: COCO JSON, DAVIS palette PNGs, YOLO segmentation labels, boxes,
and overlays (a PNG for an image, an MP4 for a video).

Every builder takes a :class:`Annotations` snapshot (frames with their masks as COCO RLE, object
names), so images and videos share one code path; a video frame is named ``00000.jpg``, ...
"""

from __future__ import annotations

import io
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["EXPORT_FORMATS", "Annotations", "FrameMasks", "build_export", "mask_polygons"]

#: format -> (media type, file extension); "overlay" is a PNG for images, an MP4 for videos.
EXPORT_FORMATS = ("coco", "davis", "yolo", "boxes", "overlay")


@dataclass
class FrameMasks:
    """One image or video frame: its name, size and ``{obj_id: COCO RLE}``."""

    file_name: str
    height: int
    width: int
    masks: dict[int, dict[str, Any]]


@dataclass
class Annotations:
    """What an export needs from a session: its frames and object names (in object order).

    ``read_frame(i)`` returns frame ``i`` as ``(H, W, 3)`` uint8 (for overlays); ``fps`` for videos.
    """

    frames: list[FrameMasks]
    names: dict[int, str]
    is_video: bool
    read_frame: Callable[[int], np.ndarray]
    fps: float | None = None
    stem: str = "export"


def _decode(rle: dict[str, Any]) -> np.ndarray:
    from ..io.masks import coco_rle_to_mask

    return coco_rle_to_mask(rle)


def coco(data: Annotations) -> dict[str, Any]:
    """COCO instance segmentation; each annotation carries ``object_id`` and ``object_name`` (and
    each image ``frame_index`` for a video). Empty masks are left out."""
    from ..io.masks import CocoWriter

    writer = CocoWriter(categories=("object",))
    for index, frame in enumerate(data.frames):
        image_id = writer.add_image(frame.file_name, frame.height, frame.width, image_id=index + 1)
        if data.is_video:
            writer.images[-1]["frame_index"] = index
        for obj_id, rle in frame.masks.items():
            mask = _decode(rle)
            if not mask.any() or obj_id not in data.names:
                continue
            (ann_id,) = writer.add_masks(image_id, mask)
            annotation = writer.annotations[ann_id - 1]
            annotation["object_id"] = obj_id
            annotation["object_name"] = data.names[obj_id]
    return writer.to_dict()


def boxes(data: Annotations) -> dict[str, Any]:
    """Per frame, each object's tight box as ``[x, y, w, h]`` and ``[x0, y0, x1, y1]`` (pixels;
    x1/y1 exclusive)."""
    from ..io.masks import mask_to_box_xywh

    frames = []
    for frame in data.frames:
        items = []
        for obj_id, rle in frame.masks.items():
            mask = _decode(rle)
            if not mask.any() or obj_id not in data.names:
                continue
            x, y, w, h = mask_to_box_xywh(mask)
            items.append({"object_id": obj_id, "object_name": data.names[obj_id],
                          "bbox_xywh": [x, y, w, h], "bbox_xyxy": [x, y, x + w, y + h]})
        frames.append({"file_name": frame.file_name, "width": frame.width, "height": frame.height, "boxes": items})
    return {"frames": frames}


def davis_zip(data: Annotations) -> bytes:
    """A zip of DAVIS palette PNGs (``00000.png``, ...): pixel value = the object's position in the
    object list + 1 (0 background; a later object wins where masks overlap), plus ``objects.json``."""
    import json

    from ..io.masks import save_palette_png

    labels = {obj_id: position + 1 for position, obj_id in enumerate(data.names)}
    buffer = io.BytesIO()
    with tempfile.TemporaryDirectory() as folder, zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for frame in data.frames:
            label_map = np.zeros((frame.height, frame.width), dtype=np.uint8)
            for obj_id, rle in frame.masks.items():
                if obj_id in labels:
                    label_map[_decode(rle)] = labels[obj_id]
            path = save_palette_png(Path(folder) / "frame.png", label_map)
            archive.write(path, Path(frame.file_name).with_suffix(".png").name)
        objects = [{"label": labels[obj_id], "object_id": obj_id, "name": name} for obj_id, name in data.names.items()]
        archive.writestr("objects.json", json.dumps(objects, indent=2))
    return buffer.getvalue()


def mask_polygons(mask: np.ndarray, min_area: float = 4.0) -> list[list[tuple[int, int]]]:
    """Outer boundaries of a mask's regions as polygons of pixel-corner vertices ``(x, y)``.

    The boundary edges between foreground and background pixels are chained into closed loops
    (foreground on the right, so outer loops run clockwise on screen); holes and loops enclosing
    less than ``min_area`` pixels are dropped; only the corners of each loop are kept.
    """
    padded = np.pad(mask.astype(bool), 1)
    inner = padded[1:-1, 1:-1]
    starts: dict[tuple[int, int], list[tuple[int, int]]] = {}
    # (neighbour offset, edge start corner, edge end corner) for top, right, bottom, left sides
    sides = (((-1, 0), (0, 0), (1, 0)), ((0, 1), (1, 0), (1, 1)), ((1, 0), (1, 1), (0, 1)), ((0, -1), (0, 1), (0, 0)))
    height, width = mask.shape
    for (dy, dx), (sx, sy), (ex, ey) in sides:
        neighbour = padded[1 + dy : 1 + dy + height, 1 + dx : 1 + dx + width]
        ys, xs = np.nonzero(inner & ~neighbour)
        for y, x in zip(ys.tolist(), xs.tolist(), strict=True):
            starts.setdefault((x + sx, y + sy), []).append((x + ex, y + ey))
    polygons = []
    while starts:
        first = next(iter(starts))
        loop = [first]
        vertex = first
        while True:
            ends = starts[vertex]
            nxt = ends.pop()
            if not ends:
                del starts[vertex]
            if nxt == first:
                break
            loop.append(nxt)
            vertex = nxt
        xs_arr = np.array([p[0] for p in loop], dtype=np.float64)
        ys_arr = np.array([p[1] for p in loop], dtype=np.float64)
        area = 0.5 * float(np.sum(xs_arr * np.roll(ys_arr, -1) - np.roll(xs_arr, -1) * ys_arr))
        if area < min_area:  # a hole (negative) or a speck
            continue
        corners = [p for i, p in enumerate(loop) if not _collinear(loop[i - 1], p, loop[(i + 1) % len(loop)])]
        polygons.append(corners)
    return polygons


def _collinear(a: tuple[int, int], b: tuple[int, int], c: tuple[int, int]) -> bool:
    return (b[0] - a[0]) * (c[1] - b[1]) == (b[1] - a[1]) * (c[0] - b[0])


def yolo_zip(data: Annotations) -> bytes:
    """A zip of YOLO segmentation labels: ``labels/<frame>.txt`` with one line per region,
    ``CLASS x1 y1 x2 y2 ...`` (normalised to [0, 1]; class = position in the object list) and
    ``classes.txt`` (one object name per line)."""
    classes = {obj_id: position for position, obj_id in enumerate(data.names)}
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for frame in data.frames:
            lines = []
            for obj_id, rle in frame.masks.items():
                if obj_id not in classes:
                    continue
                for polygon in mask_polygons(_decode(rle)):
                    coords = " ".join(f"{x / frame.width:.6f} {y / frame.height:.6f}" for x, y in polygon)
                    lines.append(f"{classes[obj_id]} {coords}")
            name = Path(frame.file_name).with_suffix(".txt").name
            archive.writestr(f"labels/{name}", "\n".join(lines) + ("\n" if lines else ""))
        archive.writestr("classes.txt", "".join(f"{name}\n" for name in data.names.values()))
    return buffer.getvalue()


def _overlay(data: Annotations, index: int) -> np.ndarray:
    from ..io.overlay import overlay_masks

    frame = data.frames[index]
    ids = [obj_id for obj_id in frame.masks if obj_id in data.names]
    image = data.read_frame(index)
    if not ids:
        return image
    masks = np.stack([_decode(frame.masks[obj_id]) for obj_id in ids])
    return overlay_masks(image, masks, object_ids=[list(data.names).index(i) for i in ids])


def overlay(data: Annotations) -> bytes:
    """The image with its masks as a PNG, or the video with its masks as an MP4."""
    if not data.is_video:
        from PIL import Image

        buffer = io.BytesIO()
        Image.fromarray(_overlay(data, 0)).save(buffer, format="PNG")
        return buffer.getvalue()
    from ..io.video_writer import VideoWriter

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "overlay.mp4"
        with VideoWriter(path, fps=data.fps or 10.0) as writer:
            for index in range(len(data.frames)):
                writer.write(_overlay(data, index))
        return path.read_bytes()


def build_export(data: Annotations, fmt: str) -> tuple[bytes, str, str]:
    """``(content, media type, file name)`` of export ``fmt`` (one of :data:`EXPORT_FORMATS`)."""
    import json

    if fmt == "coco":
        return json.dumps(coco(data)).encode(), "application/json", f"{data.stem}_coco.json"
    if fmt == "boxes":
        return json.dumps(boxes(data)).encode(), "application/json", f"{data.stem}_boxes.json"
    if fmt == "davis":
        return davis_zip(data), "application/zip", f"{data.stem}_davis.zip"
    if fmt == "yolo":
        return yolo_zip(data), "application/zip", f"{data.stem}_yolo.zip"
    if fmt == "overlay":
        if data.is_video:
            return overlay(data), "video/mp4", f"{data.stem}_overlay.mp4"
        return overlay(data), "image/png", f"{data.stem}_overlay.png"
    raise ValueError(f"unknown export format {fmt!r}; accepted: {', '.join(EXPORT_FORMATS)}")
