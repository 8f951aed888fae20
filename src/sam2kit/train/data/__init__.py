"""Training data: image + mask folders, COCO instance JSON, DAVIS / SA-V videos, augmentations.

Every data set yields samples at the model's resolution, normalised like the predictors' inputs:
:class:`ImageSample` (``image`` ``(3, S, S)``, ``masks`` ``(N, S, S)`` bool) or :class:`ClipSample`
(``frames`` ``(T, 3, S, S)``, ``masks`` ``(T, N, S, S)``). Bad input raises :class:`DataError`
with a one-line message naming the file and what is expected.
"""

from .augment import AugmentOptions, augment_sample, resize_sample
from .coco import CocoDataset, decode_segmentation
from .common import ClipSample, DataError, ImageSample, split_names
from .image_folder import ImageFolderDataset
from .video_folder import VideoFolderDataset

__all__ = [
    "AugmentOptions",
    "ClipSample",
    "CocoDataset",
    "DataError",
    "ImageFolderDataset",
    "ImageSample",
    "VideoFolderDataset",
    "augment_sample",
    "decode_segmentation",
    "resize_sample",
    "split_names",
]
