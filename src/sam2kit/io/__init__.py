"""Input / output: video and frame sources, mask file formats, video writing.

PyAV (video) and pycocotools (COCO RLE) are optional and imported only when used.
"""

from sam2kit.io.atomic import JsonlWriter, atomic_path, atomic_write, save_json
from sam2kit.io.frames import (
    ArraySource,
    FrameSource,
    ImageFolderSource,
    ImageListSource,
    LiveStream,
    StreamError,
    VideoFileSource,
    VideoReadError,
    open_frames,
    open_stream,
    write_frames_to_folder,
)
from sam2kit.io.masks import (
    CocoWriter,
    coco_rle_to_mask,
    davis_palette,
    decode_rle,
    encode_rle,
    load_mask_png,
    load_palette_png,
    mask_to_box_xywh,
    masks_to_uncompressed_rle,
    rle_area,
    save_coco_json,
    save_mask_png,
    save_palette_png,
    to_coco_rle,
    uncompressed_to_coco_rle,
)
from sam2kit.io.overlay import object_color, overlay_masks
from sam2kit.io.video_writer import VideoWriter

__all__ = [
    "ArraySource",
    "CocoWriter",
    "FrameSource",
    "ImageFolderSource",
    "ImageListSource",
    "JsonlWriter",
    "LiveStream",
    "StreamError",
    "VideoFileSource",
    "VideoReadError",
    "VideoWriter",
    "atomic_path",
    "atomic_write",
    "coco_rle_to_mask",
    "davis_palette",
    "decode_rle",
    "encode_rle",
    "load_mask_png",
    "load_palette_png",
    "mask_to_box_xywh",
    "masks_to_uncompressed_rle",
    "object_color",
    "open_frames",
    "open_stream",
    "overlay_masks",
    "rle_area",
    "save_coco_json",
    "save_json",
    "save_mask_png",
    "save_palette_png",
    "to_coco_rle",
    "uncompressed_to_coco_rle",
    "write_frames_to_folder",
]
