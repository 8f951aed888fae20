"""MaskGenerator ("segment everything"): masks for a grid of point prompts over the whole image,
filtered by predicted quality and stability, de-duplicated by box NMS.

It gives the masks of the reference ``SAM2AutomaticMaskGenerator`` (same parameters, defaults and
records) with less work: one-click prompts go through :class:`~.grid_decoder.GridPointDecoder` (the
decoder's algebra re-associated, about half the arithmetic), the predicted-IoU filter runs before
anything is upsampled, and full-resolution masks are rebuilt only for the survivors of NMS
(:mod:`.candidates`).

This module holds the public class and the prompting loop (crops -> batches of points -> decoder);
the point grids and crop plan are in :mod:`.amg_utils`, the filters and NMS in :mod:`.candidates`.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any, cast

import numpy as np
import torch

from ..modeling.sam2 import LOW_RES_CLAMP, SAM2Model
from .amg_utils import (
    batch_iterator,
    batched_mask_to_box,
    build_all_layer_point_grids,
    check_point_grids,
    generate_crop_boxes,
    remove_small_regions_batched,
)
from .candidates import Candidates, QualityFilter, batched_nms, merge_crops
from .grid_decoder import GridPointDecoder
from .transforms import image_to_tensor, preprocess_image

__all__ = ["MaskGenerator", "SAM2AutomaticMaskGenerator", "OUTPUT_MODES"]

#: Accepted values of ``output_mode``.
OUTPUT_MODES = ("binary_mask", "uncompressed_rle", "coco_rle")


class MaskGenerator:
    """Segment everything in an image: point-grid prompts, quality filters and NMS.

    Parameters and defaults are those of the reference ``SAM2AutomaticMaskGenerator``.

    Args:
        model: a :class:`~sam2kit.modeling.sam2.SAM2Model` (from :func:`sam2kit.build_model`).
        points_per_side: points along each side of the regular prompt grid (the grid has
            ``points_per_side**2`` points); None when ``point_grids`` is given.
        points_per_batch: prompts decoded at once (a memory knob; results do not depend on it).
        pred_iou_thresh: keep masks whose predicted IoU is above this (0 disables the filter).
        stability_score_thresh: keep masks whose stability score is at least this (0 disables it).
        stability_score_offset: logit offset of the stability score's two thresholds.
        mask_threshold: logit threshold of the binary masks.
        box_nms_thresh: box IoU above which NMS drops the lower-scoring mask, within a crop.
        crop_n_layers: extra layers of crops; layer i cuts the image into ``(2**i)**2`` crops.
        crop_nms_thresh: box IoU for the NMS between crops (masks from smaller crops win).
        crop_overlap_ratio: overlap of neighbouring crops, as a fraction of the image's short side
            (layer 1; deeper layers scale it down).
        crop_n_points_downscale_factor: layer i uses ``points_per_side / factor**i`` points a side.
        point_grids: explicit grids instead of ``points_per_side``: one ``(N_i, 2)`` array of
            (x, y) in [0, 1] per crop layer (at least ``crop_n_layers + 1``).
        min_mask_region_area: if > 0, holes and specks up to this area (pixels of the low-resolution
            mask) are filled / removed before upsampling, as the reference predictor does.
        output_mode: ``"binary_mask"`` ((H, W) bool arrays), ``"uncompressed_rle"`` or
            ``"coco_rle"`` (needs pycocotools).
        use_m2m: refine every mask once with its own low-resolution logits as a mask prompt.
        multimask_output: three masks per point (True) or one.
        show_progress: a tqdm progress bar over crops and batches on stderr.

    Raises:
        TypeError / ValueError: an invalid model or parameter (the message says what is accepted).

    Example::

        generator = MaskGenerator(build_model("sam2.1_hiera_tiny", checkpoint="sam2.1_hiera_tiny.pt"))
        records = generator.generate(image)         # (H, W, 3) uint8
        records[0]["segmentation"], records[0]["bbox"], records[0]["predicted_iou"]
    """

    def __init__(
        self,
        model: SAM2Model,
        points_per_side: int | None = 32,
        points_per_batch: int = 64,
        pred_iou_thresh: float = 0.8,
        stability_score_thresh: float = 0.95,
        stability_score_offset: float = 1.0,
        mask_threshold: float = 0.0,
        box_nms_thresh: float = 0.7,
        crop_n_layers: int = 0,
        crop_nms_thresh: float = 0.7,
        crop_overlap_ratio: float = 512 / 1500,
        crop_n_points_downscale_factor: int = 1,
        point_grids: Sequence[np.ndarray] | None = None,
        min_mask_region_area: int = 0,
        output_mode: str = "binary_mask",
        use_m2m: bool = False,
        multimask_output: bool = True,
        show_progress: bool = False,
    ) -> None:
        if not isinstance(model, SAM2Model):
            raise TypeError(f"model must be a sam2kit SAM2Model (from sam2kit.build_model), got {type(model).__name__}")
        self.crop_n_layers = _int_at_least(crop_n_layers, 0, "crop_n_layers")
        self.crop_n_points_downscale_factor = _int_at_least(
            crop_n_points_downscale_factor, 1, "crop_n_points_downscale_factor"
        )
        if (points_per_side is None) == (point_grids is None):
            raise ValueError("give exactly one of points_per_side and point_grids (the other must be None)")
        if points_per_side is not None:
            points_per_side = _int_at_least(points_per_side, 1, "points_per_side")
            deepest = int(points_per_side / self.crop_n_points_downscale_factor**self.crop_n_layers)
            if deepest < 1:
                raise ValueError(
                    f"points_per_side={points_per_side} leaves no points in crop layer {self.crop_n_layers} "
                    f"(divided by crop_n_points_downscale_factor**layer = "
                    f"{self.crop_n_points_downscale_factor**self.crop_n_layers}); use more points or fewer layers"
                )
            self.point_grids = build_all_layer_point_grids(
                points_per_side, self.crop_n_layers, self.crop_n_points_downscale_factor
            )
        else:
            self.point_grids = check_point_grids(point_grids, self.crop_n_layers)
        self.points_per_side = points_per_side
        if output_mode not in OUTPUT_MODES:
            raise ValueError(f"output_mode must be one of {', '.join(OUTPUT_MODES)}; got {output_mode!r}")
        if output_mode == "coco_rle":
            try:
                import pycocotools  # noqa: F401
            except ImportError as error:
                raise ImportError("output_mode='coco_rle' needs pycocotools: pip install pycocotools") from error
        self.model = model.eval()
        self.points_per_batch = _int_at_least(points_per_batch, 1, "points_per_batch")
        self.pred_iou_thresh = _finite(pred_iou_thresh, "pred_iou_thresh")
        self.stability_score_thresh = _finite(stability_score_thresh, "stability_score_thresh")
        self.stability_score_offset = _finite(stability_score_offset, "stability_score_offset")
        self.mask_threshold = _finite(mask_threshold, "mask_threshold")
        self.box_nms_thresh = _unit_interval(box_nms_thresh, "box_nms_thresh")
        self.crop_nms_thresh = _unit_interval(crop_nms_thresh, "crop_nms_thresh")
        self.crop_overlap_ratio = _finite(crop_overlap_ratio, "crop_overlap_ratio")
        if not 0.0 <= self.crop_overlap_ratio < 1.0:
            raise ValueError(f"crop_overlap_ratio must be in [0, 1), got {crop_overlap_ratio}")
        self.min_mask_region_area = _finite(min_mask_region_area, "min_mask_region_area")
        if self.min_mask_region_area < 0:
            raise ValueError(f"min_mask_region_area must be >= 0, got {min_mask_region_area}")
        self.output_mode = output_mode
        self.use_m2m = bool(use_m2m)
        self.multimask_output = bool(multimask_output)
        self.show_progress = bool(show_progress)
        # The re-associated decoder covers the common case; m2m refinement and single-mask output
        # (a stability-based choice between tokens) go through the model's own decoder.
        self._fast_decoder = GridPointDecoder.supports(model)

    @classmethod
    def from_pretrained(
        cls,
        model_id: str = "facebook/sam2.1-hiera-tiny",
        *,
        device: str | torch.device | None = None,
        cache_dir: str | None = None,
        local_files_only: bool = False,
        **kwargs: Any,
    ) -> MaskGenerator:
        """A generator on an official hub checkpoint (see :func:`sam2kit.from_pretrained`);
        ``kwargs`` are the generator's parameters."""
        from ..build import from_pretrained

        model = from_pretrained(model_id, device=device, cache_dir=cache_dir, local_files_only=local_files_only)
        return cls(model, **kwargs)

    # ------------------------------------------------------------------ public API
    @torch.inference_mode()
    def generate(self, image: Any) -> list[dict[str, Any]]:
        """Masks of everything in ``image``.

        Args:
            image: RGB ``(H, W, 3)`` uint8 array, PIL image, or ``(3, H, W)`` tensor (uint8, or float
                in [0, 1]).

        Returns:
            One record per mask, ordered as the reference orders them (by NMS score):
            ``segmentation`` ((H, W) bool array, or an RLE dict per ``output_mode``), ``area``
            (int, pixels), ``bbox`` (XYWH floats, w = x1 - x0 as the reference), ``predicted_iou``,
            ``point_coords`` ([[x, y]] in image pixels), ``stability_score``, ``crop_box`` (XYWH).

        Raises:
            TypeError / ValueError: an unsupported or empty image.
        """
        pixels = image_to_tensor(image)  # (3, H, W) float in [0, 1]
        masks, fields = self._generate(pixels)  # (K, H, W) bool
        if self.output_mode == "binary_mask":
            array = masks.cpu().numpy()
            segmentations: list[Any] = [array[i] for i in range(array.shape[0])]
        elif self.output_mode == "uncompressed_rle":
            from ..io.masks import masks_to_uncompressed_rle

            segmentations = masks_to_uncompressed_rle(masks.cpu())
        else:
            from ..io.masks import to_coco_rle

            segmentations = cast("list[Any]", to_coco_rle(masks.cpu().numpy())) if masks.shape[0] else []
        areas = masks.flatten(1).sum(1).tolist() if masks.shape[0] else []
        boxes = fields["boxes"].float()
        bbox = torch.cat([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], dim=1).tolist()
        crops = fields["crop_boxes"].float()
        crop_xywh = torch.cat([crops[:, :2], crops[:, 2:] - crops[:, :2]], dim=1).tolist()
        iou_preds = fields["iou_preds"].float().tolist()
        stability = fields["stability"].float().tolist()
        points = fields["points"].float().tolist()
        records = []
        for index, segmentation in enumerate(segmentations):
            records.append({
                "segmentation": segmentation,
                "area": int(areas[index]),
                "bbox": bbox[index],
                "predicted_iou": iou_preds[index],
                "point_coords": [points[index]],
                "stability_score": stability[index],
                "crop_box": crop_xywh[index],
            })
        return records

    @staticmethod
    def postprocess_small_regions(
        masks: torch.Tensor, min_area: float, nms_thresh: float
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Fill holes and remove islands smaller than ``min_area`` pixels, then NMS again.

        The reference's optional clean-up of final masks (its ``generate`` does not call it).
        Masks that needed no change win the NMS over changed ones.

        Args:
            masks: ``(K, H, W)`` bool masks.
            min_area: area bound in pixels (strict: regions with area < ``min_area``).
            nms_thresh: box IoU threshold of the NMS.

        Returns:
            The kept masks ``(K', H, W)`` (cleaned) and their indices ``(K',)`` into ``masks``.
        """
        if masks.ndim != 3:
            raise ValueError(f"masks must be (K, H, W), got {tuple(masks.shape)}")
        if masks.shape[0] == 0:
            return masks, torch.zeros(0, dtype=torch.int64, device=masks.device)
        filled, holes_changed = remove_small_regions_batched(masks, min_area, "holes")
        cleaned, islands_changed = remove_small_regions_batched(filled, min_area, "islands")
        scores = (~(holes_changed | islands_changed)).float()
        keep = batched_nms(batched_mask_to_box(cleaned), scores, nms_thresh)
        return cleaned[keep], keep

    # ------------------------------------------------------------------ pipeline
    def _generate(self, pixels: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """(3, H, W) image -> final (K, H, W) bool masks and their per-mask fields."""
        height, width = int(pixels.shape[1]), int(pixels.shape[2])
        crop_boxes, layer_idxs = generate_crop_boxes((height, width), self.crop_n_layers, self.crop_overlap_ratio)
        total = sum(math.ceil(len(self.point_grids[layer]) / self.points_per_batch) for layer in layer_idxs)
        progress = _progress(total, self.show_progress)
        try:
            per_crop = [
                self._process_crop(pixels, crop_box, layer, (height, width), progress)
                for crop_box, layer in zip(crop_boxes, layer_idxs, strict=True)
            ]
        finally:
            if progress is not None:
                progress.close()
        return merge_crops(
            per_crop, crop_boxes, (height, width), self.mask_threshold, self.crop_nms_thresh, self.model.device
        )

    def _process_crop(
        self,
        pixels: torch.Tensor,
        crop_box: list[int],
        layer: int,
        orig_hw: tuple[int, int],
        progress: Any,
    ) -> Candidates:
        """Candidates of one crop after the filters and the in-crop NMS (crop coordinates)."""
        x0, y0, x1, y1 = crop_box
        crop = pixels[:, y0:y1, x0:x1]
        crop_hw = (int(crop.shape[1]), int(crop.shape[2]))
        image_embed, high_res = self._embed(crop)
        decoder = GridPointDecoder(self.model, image_embed, high_res) if self._use_fast_path() else None
        quality = QualityFilter(
            pred_iou_thresh=self.pred_iou_thresh,
            stability_score_thresh=self.stability_score_thresh,
            stability_score_offset=self.stability_score_offset,
            mask_threshold=self.mask_threshold,
            min_mask_region_area=self.min_mask_region_area,
        )
        # Grid points in crop pixels: float64, then float32 tensors as the reference.
        points_for_crop = self.point_grids[layer] * np.array(crop_hw[::-1])[None]
        device = self.model.device
        crop_wh = torch.tensor(crop_hw[::-1], dtype=torch.float32, device=device)
        parts = []
        for (points,) in batch_iterator(self.points_per_batch, points_for_crop):
            points_t = torch.as_tensor(points, dtype=torch.float32, device=device)
            in_points = points_t / crop_wh * self.model.image_size  # model-input pixels
            if decoder is not None:
                iou_preds, low_res_of = decoder.decode(in_points)  # (P*3,), lazy low-res logits
            else:
                iou_preds, low_res_all = self._decode_with_model(in_points, image_embed, high_res)
                low_res_of = low_res_all.__getitem__
            parts.append(quality.apply(iou_preds, low_res_of, points_t, crop_box, orig_hw))
            if progress is not None:
                progress.update(1)
        data = Candidates.cat(parts)
        keep = batched_nms(data.boxes, data.iou_preds, self.box_nms_thresh)
        return data.select(keep)

    def _use_fast_path(self) -> bool:
        return self._fast_decoder and self.multimask_output and not self.use_m2m

    def _embed(self, crop: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """(3, h, w) crop in [0, 1] -> image embedding (1, C, S/16, S/16) and skip features."""
        model = self.model
        batch = preprocess_image(crop.to(model.device), model.image_size)[None]
        features = model.forward_image(batch)
        return model.image_embedding_without_memory(features), features.high_res_features()

    def _decode_with_model(
        self, in_points: torch.Tensor, image_embed: torch.Tensor, high_res: list[torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The model's own prompt encoder and decoder (plus the optional m2m refinement).

        Returns IoU predictions ``(P*M,)`` and low-res logits ``(P*M, h4, w4)``, point-major.
        """
        iou_preds, low_res = self._run_decoder(in_points, None, self.multimask_output, image_embed, high_res)
        if not self.use_m2m:
            return iou_preds.flatten(), low_res.flatten(0, 1)
        num_masks = iou_preds.shape[1]
        refine_points = in_points.repeat_interleave(num_masks, dim=0)
        mask_prompts = low_res.flatten(0, 1).clamp(-LOW_RES_CLAMP, LOW_RES_CLAMP)[:, None]
        refined_ious, refined = [], []
        for points, prompts in batch_iterator(self.points_per_batch, refine_points, mask_prompts):
            ious, logits = self._run_decoder(points, prompts, False, image_embed, high_res)
            refined_ious.append(ious[:, 0])
            refined.append(logits[:, 0])
        return torch.cat(refined_ious), torch.cat(refined)

    def _run_decoder(
        self,
        in_points: torch.Tensor,
        mask_input: torch.Tensor | None,
        multimask: bool,
        image_embed: torch.Tensor,
        high_res: list[torch.Tensor],
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One click per prompt (model-input pixels ``(P, 2)``) -> IoU ``(P, M)``, logits ``(P, M, h4, w4)``."""
        model = self.model
        labels = torch.ones((in_points.shape[0], 1), dtype=torch.int32, device=in_points.device)
        sparse, dense = model.sam_prompt_encoder(points=(in_points[:, None], labels), boxes=None, masks=mask_input)
        decoded = model.sam_mask_decoder(
            image_embeddings=image_embed,
            image_pe=model.sam_prompt_encoder.get_dense_pe(),
            sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense,
            multimask_output=multimask,
            repeat_image=in_points.shape[0] > 1,
            high_res_features=high_res,
        )
        return decoded.iou_pred, decoded.masks.float()


#: The reference's name.
SAM2AutomaticMaskGenerator = MaskGenerator


# ---------------------------------------------------------------------------- helpers
def _progress(total: int, enabled: bool) -> Any:
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="segmenting", unit="batch")


def _int_at_least(value: Any, minimum: int, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__} {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def _finite(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {type(value).__name__} {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    return float(value)


def _unit_interval(value: Any, name: str) -> float:
    number = _finite(value, name)
    if not 0.0 <= number <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {value}")
    return number
