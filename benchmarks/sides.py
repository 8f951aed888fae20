"""The implementations the benchmark suite compares ("sides"), and :func:`make_side` to build one.

Every side is built from the same official-format checkpoint and is driven the way its users drive
it (its own predictor classes and pre/post-processing), through the methods of
:class:`benchmarks.protocol.Side`, numpy in and out.

Sides: ``sam2kit`` (fp32), ``sam2kit-bf16`` (its opt-in reduced precision), ``reference``
(Meta's ``sam2==1.1.0``), ``reference-vos`` (its ``vos_optimized=True`` video predictor, which
``torch.compile``s the model: CUDA only), and ``transformers`` (Hugging Face ``Sam2Model`` /
``Sam2VideoModel``, see ``benchmarks/peers/transformers_side.py``). Hole filling is off on every
side: the reference skips it on the CPU (no CUDA extension), so the same work is compared.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks.common import build_reference_model, patch_reference_dtype, reference_config_file
from benchmarks.protocol import MaskGeneratingSide, Side

SIDE_NAMES = ("sam2kit", "sam2kit-bf16", "reference", "reference-vos", "transformers")

#: Automatic mask generator settings of every side (besides points_per_side): random weights give
#: weak, flat logits, so the defaults keep nothing; these keep a realistic share (about 20% of
#: the candidates reach NMS, as a trained model at the default thresholds does).
AMG_SETTINGS = dict(mask_threshold=0.3, stability_score_offset=0.02, pred_iou_thresh=0.5, stability_score_thresh=0.2)


def make_side(name: str, config: str, checkpoint: str | Path, image_size: int, device: str) -> Side:
    """Build the side called ``name`` (one of :data:`SIDE_NAMES`)."""
    if name in ("sam2kit", "sam2kit-bf16"):
        precision = "bf16" if name.endswith("bf16") else "fp32"
        return Sam2kitSide(config, checkpoint, image_size, device, precision=precision)
    if name in ("reference", "reference-vos"):
        return ReferenceSide(config, checkpoint, image_size, device, vos_optimized=name.endswith("vos"))
    if name == "transformers":
        from benchmarks.peers.transformers_side import TransformersSide

        return TransformersSide(config, checkpoint, image_size=image_size, device=device)
    raise ValueError(f"unknown side {name!r}; expected one of {', '.join(SIDE_NAMES)}")


def _bool_masks(logits: torch.Tensor) -> np.ndarray:
    """``(num_objects, 1, H, W)`` logits -> ``(num_objects, H, W)`` bool."""
    return (logits[:, 0] > 0).cpu().numpy()


class _VideoSession(MaskGeneratingSide):
    """The predictor-API video part shared by sam2kit and the reference (same method names)."""

    video: Any
    _state: Any = None

    def video_open(self, folder: str) -> None:
        self._state = self.video.init_state(str(folder))

    def video_click(self, frame_idx: int, obj_id: int, xy: tuple[float, float]) -> np.ndarray:
        _, _, logits = self.video.add_new_points_or_box(
            self._state, frame_idx, obj_id, points=np.array([xy], dtype=np.float32), labels=np.array([1], np.int32)
        )
        return _bool_masks(logits)

    def video_propagate(self) -> Iterator[tuple[int, np.ndarray]]:
        for frame_idx, _, logits in self.video.propagate_in_video(self._state):
            yield frame_idx, _bool_masks(logits)

    def video_close(self) -> None:
        self._state = None

    def stage_modules(self) -> dict[str, list[torch.nn.Module]]:
        from benchmarks.hardware import STAGES

        model = self.video_model
        return {stage: [getattr(model, name) for name in names] for stage, names in STAGES.items()}


class Sam2kitSide(_VideoSession):
    def __init__(
        self, config: str, checkpoint: str | Path, image_size: int, device: str, precision: str = "fp32"
    ) -> None:
        from sam2kit import ImagePredictor, MaskGenerator, VideoPredictor, build_model
        from sam2kit.config import get_config

        cfg = get_config(config).replace(image_size=image_size)
        self.model = build_model(cfg, checkpoint=checkpoint, device=device, precision=precision)
        self.image = ImagePredictor(self.model)
        self.video = VideoPredictor(self.model, fill_hole_area=0, show_progress=False)
        self.video_model = self.model
        self._generator_class = MaskGenerator

    def set_image(self, image: np.ndarray) -> None:
        self.image.set_image(image)

    def predict_click(self, xy: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
        masks, scores, _ = self.image.predict(point_coords=np.array([xy], np.float32),
                                              point_labels=np.array([1], np.int32),
                                              multimask_output=True)
        return masks, scores

    def predict_boxes(self, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        masks, scores, _ = self.image.predict(box=boxes, multimask_output=False)
        return masks, scores

    def generate_masks(self, image: np.ndarray, points_per_side: int) -> list[dict[str, Any]]:
        return self._generator_class(self.model, points_per_side=points_per_side, **AMG_SETTINGS).generate(image)

    def forward_image(self, batch: torch.Tensor) -> Any:
        with torch.inference_mode():
            return self.model.forward_image(batch)

    def stage_modules(self) -> dict[str, list[torch.nn.Module]]:
        # sam2kit runs the first memory-attention layer's self-attention once per frame, before the
        # memory attention's forward (MemoryAttention.encode_query): book it under memory attention,
        # where the reference's stage has it (nested calls are timed once).
        stages = super().stage_modules()
        stages["memory attention"].append(self.model.memory_attention.layers[0].self_attn)
        return stages


class ReferenceSide(_VideoSession):
    def __init__(
        self, config: str, checkpoint: str | Path, image_size: int, device: str, vos_optimized: bool = False
    ) -> None:
        from sam2.build_sam import build_sam2_video_predictor
        from sam2.sam2_image_predictor import SAM2ImagePredictor

        if vos_optimized and not device.startswith("cuda"):
            raise ValueError("reference-vos (vos_optimized=True, torch.compile of the whole model) runs on CUDA only")
        self.model = build_reference_model(config, checkpoint, image_size, device)
        self.image = SAM2ImagePredictor(self.model)
        # The reference hard-codes the feature sizes of a 1024 px model.
        self.image._bb_feat_sizes = [(image_size // 4,) * 2, (image_size // 8,) * 2, (image_size // 16,) * 2]
        self.video = build_sam2_video_predictor(
            reference_config_file(config), str(checkpoint), device=device, vos_optimized=vos_optimized,
            hydra_overrides_extra=[f"++model.image_size={image_size}", "++model.fill_hole_area=0"],
        )
        # Its builder appends fill_hole_area=8 after our override; hole filling is compared off.
        self.video.fill_hole_area = 0
        if not device.startswith("cuda"):
            patch_reference_dtype(self.video)
        self.video_model = self.video  # SAM2VideoPredictor is the model itself
        self.image_size = image_size

    def set_image(self, image: np.ndarray) -> None:
        self.image.set_image(image)

    def predict_click(self, xy: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
        masks, scores, _ = self.image.predict(point_coords=np.array([xy], np.float32),
                                              point_labels=np.array([1], np.int32),
                                              multimask_output=True)
        return masks.astype(bool), scores

    def predict_boxes(self, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        masks, scores, _ = self.image.predict(box=boxes, multimask_output=False)
        return masks.astype(bool), scores

    def generate_masks(self, image: np.ndarray, points_per_side: int) -> list[dict[str, Any]]:
        from sam2.automatic_mask_generator import SAM2AutomaticMaskGenerator

        generator = SAM2AutomaticMaskGenerator(self.model, points_per_side=points_per_side, **AMG_SETTINGS)
        size = self.image_size
        generator.predictor._bb_feat_sizes = [(size // 4,) * 2, (size // 8,) * 2, (size // 16,) * 2]
        with torch.inference_mode():
            return generator.generate(image)

    def forward_image(self, batch: torch.Tensor) -> Any:
        with torch.inference_mode():
            return self.model.forward_image(batch)
