"""sam2kit: SAM 2 (Segment Anything in Images and Videos), from scratch, in PyTorch."""

from .build import build_model, from_pretrained
from .predict.automatic import MaskGenerator, SAM2AutomaticMaskGenerator
from .predict.image import ImagePredictor
from .predict.stream import CameraPredictor, StreamPredictor
from .predict.video import VideoPredictor

__version__ = "0.1.0"

__all__ = [
    "build_model",
    "from_pretrained",
    "ImagePredictor",
    "VideoPredictor",
    "StreamPredictor",
    "CameraPredictor",
    "MaskGenerator",
    "SAM2AutomaticMaskGenerator",
    "__version__",
]
