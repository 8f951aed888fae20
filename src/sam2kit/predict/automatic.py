"""MaskGenerator ("segment everything"): masks for a grid of point prompts over the whole image,
filtered by predicted quality and stability, de-duplicated by box NMS.

It gives the masks of the reference ``SAM2AutomaticMaskGenerator`` (same parameters, defaults and
records) with less work:

- the decoder runs on single-click prompts through :class:`_GridPointDecoder`, an exact
  re-association of the mask decoder's algebra for a batch of prompts on one image (the first
  layer's image-side projections are shared by all prompts; the other image-sized projections are
  folded into the few prompt tokens), about half the arithmetic of the plain decoder;
- the predicted-IoU filter runs before anything is upsampled: only surviving prompts go through the
  output upscaling, only surviving masks are upsampled to the image;
- survivors are kept as low-resolution logits; full-resolution masks are rebuilt (the same bilinear
  upsampling, so the same pixels) only for the masks that survive NMS, then encoded in one batch.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..modeling.sam2 import SAM2Model
from ..modeling.transformer import TwoWayTransformer
from .amg_utils import (
    batch_iterator,
    batched_mask_to_box,
    build_all_layer_point_grids,
    calculate_stability_score,
    generate_crop_boxes,
    is_box_near_crop_edge,
    remove_small_regions_batched,
)
from .postprocess import postprocess_low_res_masks
from .transforms import image_to_tensor, preprocess_image

__all__ = ["MaskGenerator", "SAM2AutomaticMaskGenerator", "OUTPUT_MODES"]

#: Accepted values of ``output_mode``.
OUTPUT_MODES = ("binary_mask", "uncompressed_rle", "coco_rle")
#: Low-resolution logits handed to the mask-to-mask refinement are clamped to this range.
_LOW_RES_CLAMP = 32.0
#: Elements of one chunk of full-resolution float logits (64 MiB): bounds the peak memory.
_UPSAMPLE_CHUNK_ELEMENTS = 1 << 24
#: Prompts per output-upscaling chunk (each holds (4h*4w, C/8) floats: 8 MiB at 1024 px).
_UPSCALE_CHUNK_PROMPTS = 16


def _batched_nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    try:
        from torchvision.ops import batched_nms
    except ImportError as error:  # pragma: no cover - torchvision is a dependency of the extra
        raise ImportError("MaskGenerator needs torchvision for NMS: pip install 'sam2kit[coco]'") from error
    categories = torch.zeros(boxes.shape[0], dtype=torch.int64, device=boxes.device)
    return batched_nms(boxes.float(), scores, categories, iou_threshold=iou_threshold)


@dataclass
class _Candidates:
    """Masks that passed the filters, still in their crop's frame.

    Attributes:
        low_res: ``(K, h4, w4)`` mask logits (after hole / speck clean-up); upsampled to the crop
            and thresholded they give the mask.
        iou_preds: ``(K,)`` predicted IoU. stability: ``(K,)`` stability score.
        points: ``(K, 2)`` float32 (x, y) prompt of each mask, crop pixels.
        boxes: ``(K, 4)`` int64 XYXY box of each mask, crop pixels.
    """

    low_res: torch.Tensor
    iou_preds: torch.Tensor
    stability: torch.Tensor
    points: torch.Tensor
    boxes: torch.Tensor

    def select(self, index: torch.Tensor) -> "_Candidates":
        return _Candidates(*(getattr(self, name)[index] for name in self.__dataclass_fields__))

    @staticmethod
    def cat(parts: Sequence["_Candidates"]) -> "_Candidates":
        return _Candidates(
            *(torch.cat([getattr(p, name) for p in parts]) for name in _Candidates.__dataclass_fields__)
        )


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
            self.point_grids = _check_point_grids(point_grids, self.crop_n_layers)
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
        self._fast_decoder = _GridPointDecoder.supports(model)

    @classmethod
    def from_pretrained(
        cls,
        model_id: str = "facebook/sam2.1-hiera-tiny",
        *,
        device: str | torch.device | None = None,
        cache_dir: str | None = None,
        local_files_only: bool = False,
        **kwargs: Any,
    ) -> "MaskGenerator":
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

            segmentations = to_coco_rle(masks.cpu().numpy()) if masks.shape[0] else []
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
    def postprocess_small_regions(masks: torch.Tensor, min_area: float, nms_thresh: float) -> tuple[torch.Tensor, torch.Tensor]:
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
        keep = _batched_nms(batched_mask_to_box(cleaned), scores, nms_thresh)
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
                for crop_box, layer in zip(crop_boxes, layer_idxs)
            ]
        finally:
            if progress is not None:
                progress.close()
        device = self.model.device
        crop_index = torch.cat([
            torch.full((len(c.iou_preds),), i, dtype=torch.int64, device=device) for i, c in enumerate(per_crop)
        ])
        data = _Candidates.cat(per_crop)
        crops = torch.tensor(crop_boxes, dtype=torch.int64, device=device)[crop_index]  # (K, 4)
        offsets = crops[:, :2]
        boxes = data.boxes + offsets.repeat(1, 2)  # to image coordinates
        points = data.points + offsets
        order = torch.arange(len(data.iou_preds), device=device)
        if len(crop_boxes) > 1:
            # Prefer masks from smaller crops.
            scores = 1 / ((crops[:, 2] - crops[:, 0]) * (crops[:, 3] - crops[:, 1]))
            order = _batched_nms(boxes, scores, self.crop_nms_thresh)
        masks = torch.zeros((len(order), height, width), dtype=torch.bool, device=device)
        chosen_crop = crop_index[order]
        for index, crop_box in enumerate(crop_boxes):
            rows = (chosen_crop == index).nonzero().flatten()
            if len(rows) == 0:
                continue
            x0, y0, x1, y1 = crop_box
            for chunk in _chunks(rows, (y1 - y0) * (x1 - x0)):
                logits = _upsample(data.low_res[order[chunk]], (y1 - y0, x1 - x0))
                masks[chunk, y0:y1, x0:x1] = logits > self.mask_threshold
        fields = {
            "boxes": boxes[order],
            "crop_boxes": crops[order],
            "iou_preds": data.iou_preds[order],
            "stability": data.stability[order],
            "points": points[order],
        }
        return masks, fields

    def _process_crop(
        self,
        pixels: torch.Tensor,
        crop_box: list[int],
        layer: int,
        orig_hw: tuple[int, int],
        progress: Any,
    ) -> _Candidates:
        """Candidates of one crop after the filters and the in-crop NMS (crop coordinates)."""
        x0, y0, x1, y1 = crop_box
        crop = pixels[:, y0:y1, x0:x1]
        crop_hw = (int(crop.shape[1]), int(crop.shape[2]))
        image_embed, high_res = self._embed(crop)
        decoder = _GridPointDecoder(self.model, image_embed, high_res) if self._use_fast_path() else None
        # Grid points in crop pixels: float64, then float32 tensors as the reference.
        points_for_crop = self.point_grids[layer] * np.array(crop_hw[::-1])[None]
        parts = []
        for (points,) in batch_iterator(self.points_per_batch, points_for_crop):
            points_t = torch.as_tensor(points, dtype=torch.float32, device=self.model.device)
            parts.append(self._process_batch(points_t, crop_hw, crop_box, orig_hw, image_embed, high_res, decoder))
            if progress is not None:
                progress.update(1)
        data = _Candidates.cat(parts)
        keep = _batched_nms(data.boxes, data.iou_preds, self.box_nms_thresh)
        return data.select(keep)

    def _use_fast_path(self) -> bool:
        return self._fast_decoder and self.multimask_output and not self.use_m2m

    def _embed(self, crop: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """(3, h, w) crop in [0, 1] -> image embedding (1, C, S/16, S/16) and skip features."""
        model = self.model
        batch = preprocess_image(crop.to(model.device), model.image_size)[None]
        features = model.forward_image(batch)
        return model.image_embedding_without_memory(features), features.high_res_features()

    def _process_batch(
        self,
        points: torch.Tensor,
        crop_hw: tuple[int, int],
        crop_box: list[int],
        orig_hw: tuple[int, int],
        image_embed: torch.Tensor,
        high_res: list[torch.Tensor],
        decoder: "_GridPointDecoder | None",
    ) -> _Candidates:
        """Decode ``points`` ``(P, 2)`` (crop pixels, float32) and keep the masks that pass the
        IoU, stability and crop-edge filters."""
        crop_h, crop_w = crop_hw
        size = self.model.image_size
        in_points = points / torch.tensor([crop_w, crop_h], dtype=points.dtype, device=points.device) * size
        if decoder is not None:
            iou_preds, low_res_of = decoder.decode(in_points)  # (P*3,), lazy low-res logits
        else:
            iou_preds, low_res_all = self._decode_with_model(in_points, image_embed, high_res)
            low_res_of = low_res_all.__getitem__
        num_masks = iou_preds.shape[0] // points.shape[0]
        point_of_mask = points.repeat_interleave(num_masks, dim=0)  # (P*M, 2)

        index = torch.arange(iou_preds.shape[0], device=iou_preds.device)
        if self.pred_iou_thresh > 0.0:
            index = index[iou_preds > self.pred_iou_thresh]
        low_res = low_res_of(index)  # (K, h4, w4)
        if self.min_mask_region_area > 0:
            # The reference predictor's clean-up, with its own (default) threshold 0.
            area = self.min_mask_region_area
            low_res = postprocess_low_res_masks(low_res[:, None], area, area, mask_threshold=0.0)[:, 0]

        kept, stability, boxes = [], [], []
        for chunk in _chunks(torch.arange(len(index), device=index.device), crop_h * crop_w):
            logits = _upsample(low_res[chunk], crop_hw)  # (k, h, w)
            scores = calculate_stability_score(logits, self.mask_threshold, self.stability_score_offset)
            if self.stability_score_thresh > 0.0:
                passed = scores >= self.stability_score_thresh
                chunk, scores, logits = chunk[passed], scores[passed], logits[passed]
            chunk_boxes = _boxes_above(logits, self.mask_threshold)
            kept.append(chunk)
            stability.append(scores)
            boxes.append(chunk_boxes.to(torch.int64))
        if kept:
            kept_t, stability_t, boxes_t = torch.cat(kept), torch.cat(stability), torch.cat(boxes)
        else:
            device = iou_preds.device
            kept_t = torch.zeros(0, dtype=torch.int64, device=device)
            stability_t = torch.zeros(0, device=device)
            boxes_t = torch.zeros((0, 4), dtype=torch.int64, device=device)
        orig_h, orig_w = orig_hw
        inside = ~is_box_near_crop_edge(boxes_t, crop_box, [0, 0, orig_w, orig_h])
        kept_t, stability_t, boxes_t = kept_t[inside], stability_t[inside], boxes_t[inside]
        mask_index = index[kept_t]
        return _Candidates(
            low_res=low_res[kept_t],
            iou_preds=iou_preds[mask_index],
            stability=stability_t,
            points=point_of_mask[mask_index],
            boxes=boxes_t,
        )

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
        mask_prompts = low_res.flatten(0, 1).clamp(-_LOW_RES_CLAMP, _LOW_RES_CLAMP)[:, None]
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


# ---------------------------------------------------------------------------- the grid decoder
class _GridPointDecoder:
    """The mask decoder for a batch of single-click prompts on one image, re-associated.

    Same function as ``MaskDecoder`` with ``multimask_output=True`` and no mask prompt, computed
    with fewer operations on the image-sized ``(N = h*w, C)`` token maps:

    - Layer 0: the image tokens are still the same for every prompt (image embedding plus the
      no-mask embedding), so their key / value / query projections are computed once per image.
    - Token-to-image attention: ``softmax(Q (X Wk' + bk)') (X Wv' + bv)`` is evaluated as
      ``softmax((Q Wk) X' + Q bk) X Wv' + bv`` (attention rows sum to 1): (heads x tokens) rows
      against X instead of projecting all N image tokens.
    - Image-to-token attention: queries ``X Wq' + bq`` against keys K become ``X (Wq' K') + bq K'``
      and the output projection is folded into the values, ``P (V Wo')``.
    - Output upscaling: both stride-2 transposed convolutions are per-pixel matmuls; their outputs
      stay in a blocked layout ``(i, j, di, dj[, ei, ej], C)`` (the skip features are permuted into
      it once per image), and only the final ``(M, 4h, 4w)`` logits are put in raster order.

    Results equal the plain decoder's up to float rounding (~1e-6 of the logits).
    """

    def __init__(self, model: SAM2Model, image_embed: torch.Tensor, high_res: list[torch.Tensor]) -> None:
        decoder = model.sam_mask_decoder
        prompt_encoder = model.sam_prompt_encoder
        self.decoder = decoder
        self.prompt_encoder = prompt_encoder
        self.transformer: TwoWayTransformer = decoder.transformer
        channels, self.h, self.w = image_embed.shape[1:]
        no_mask = prompt_encoder.no_mask_embed.weight.reshape(1, channels)
        self.image = image_embed[0].flatten(1).t() + no_mask  # (N, C), as the plain decoder's src
        self.image_pe = prompt_encoder.get_dense_pe()[0].flatten(1).t()  # (N, C)
        image_with_pe = self.image + self.image_pe
        first = self.transformer.layers[0]
        token_to_image = first.cross_attn_token_to_image
        self.shared_k = _split_heads(token_to_image.k_proj(image_with_pe), token_to_image.num_heads)  # (H, N, d)
        self.shared_v = _split_heads(token_to_image.v_proj(self.image), token_to_image.num_heads)
        image_to_token = first.cross_attn_image_to_token
        self.shared_q = _split_heads(image_to_token.q_proj(image_with_pe), image_to_token.num_heads)

        deconv1, self.norm1, self.act1, deconv2, self.act2 = decoder.output_upscaling
        self.c1, self.c2 = deconv1.out_channels, deconv2.out_channels
        # (C_in, C_out, 2, 2) -> (C_in, (di, dj, C_out)): a stride-2 2x2 transposed conv is a matmul.
        self.deconv1 = deconv1.weight.permute(0, 2, 3, 1).reshape(deconv1.in_channels, 4 * self.c1)
        self.deconv2 = deconv2.weight.permute(0, 2, 3, 1).reshape(deconv2.in_channels, 4 * self.c2)
        h, w = self.h, self.w
        if decoder.use_high_res_features:
            feat_s0, feat_s1 = high_res  # (1, c2, 4h, 4w), (1, c1, 2h, 2w)
            skip1 = feat_s1[0] + deconv1.bias[:, None, None]
            skip0 = feat_s0[0] + deconv2.bias[:, None, None]
            # Raster rows 2i+di (and 4i+2di+ei) -> the blocked layout of the matmul outputs.
            self.skip1 = skip1.view(self.c1, h, 2, w, 2).permute(1, 3, 2, 4, 0).reshape(h * w * 4, self.c1)
            self.skip0 = skip0.view(self.c2, h, 2, 2, w, 2, 2).permute(1, 4, 2, 5, 3, 6, 0).reshape(-1, self.c2)
        else:
            self.skip1 = deconv1.bias.expand(h * w * 4, self.c1)
            self.skip0 = deconv2.bias.expand(h * w * 16, self.c2)

    @staticmethod
    def supports(model: SAM2Model) -> bool:
        """Whether the model's decoder has the structure this class re-associates."""
        from ..modeling.common import LayerNorm2d

        decoder = getattr(model, "sam_mask_decoder", None)
        transformer = getattr(decoder, "transformer", None)
        if not isinstance(transformer, TwoWayTransformer) or len(transformer.layers) < 1:
            return False
        upscaling = list(decoder.output_upscaling)
        if len(upscaling) != 5 or not isinstance(upscaling[1], LayerNorm2d):
            return False
        deconvs = [upscaling[0], upscaling[3]]
        return all(
            isinstance(d, torch.nn.ConvTranspose2d) and d.kernel_size == (2, 2) and d.stride == (2, 2)
            and d.padding == (0, 0) and d.bias is not None
            for d in deconvs
        )

    def decode(self, in_points: torch.Tensor) -> tuple[torch.Tensor, Any]:
        """Clicks ``(P, 2)`` in model-input pixels -> IoU predictions ``(P*3,)`` (point-major) and
        a function from mask indices ``(K,)`` to their low-res logits ``(K, 4h, 4w)``."""
        labels = torch.ones((in_points.shape[0], 1), dtype=torch.int32, device=in_points.device)
        sparse, _ = self.prompt_encoder(points=(in_points[:, None], labels), boxes=None, masks=None)
        decoder = self.decoder
        weights = [decoder.iou_token.weight, decoder.mask_tokens.weight]
        if decoder.pred_obj_scores:
            weights.insert(0, decoder.obj_score_token.weight)
        first = 1 if decoder.pred_obj_scores else 0
        output_tokens = torch.cat(weights).unsqueeze(0).expand(sparse.shape[0], -1, -1)
        tokens, image = self._transformer(torch.cat([output_tokens, sparse], dim=1))
        iou_preds = decoder.iou_prediction_head(tokens[:, first])[:, 1:]  # (P, 3)
        mask_tokens = tokens[:, first + 1 : first + 1 + decoder.num_mask_tokens]
        hyper = torch.stack(
            [mlp(mask_tokens[:, i]) for i, mlp in enumerate(decoder.output_hypernetworks_mlps)], dim=1
        )[:, 1:]  # (P, 3, c2)
        num_masks = hyper.shape[1]

        def low_res_of(index: torch.Tensor) -> torch.Tensor:
            prompts, inverse = torch.unique(index // num_masks, return_inverse=True)
            out = torch.empty((len(index), 4 * self.h, 4 * self.w), device=image.device)
            for start in range(0, len(prompts), _UPSCALE_CHUNK_PROMPTS):
                chunk = prompts[start : start + _UPSCALE_CHUNK_PROMPTS]
                first_prompt, last_prompt = int(chunk[0]), int(chunk[-1])
                if last_prompt - first_prompt + 1 == len(chunk):  # a view instead of a gather
                    chunk = slice(first_prompt, last_prompt + 1)
                rows = ((inverse >= start) & (inverse < start + _UPSCALE_CHUNK_PROMPTS)).nonzero().flatten()
                out[rows] = self._upscale(image[chunk], hyper[chunk], inverse[rows] - start, index[rows] % num_masks)
            return out

        return iou_preds.flatten(), low_res_of

    # ---- transformer
    def _transformer(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(B, T, C)`` prompt tokens -> tokens ``(B, T, C)`` and image tokens ``(B, N, C)``."""
        transformer = self.transformer
        token_pe = tokens
        layers = list(transformer.layers)
        block = layers[0]
        if block.skip_first_layer_pe:
            queries = block.self_attn(tokens, tokens, tokens)
        else:
            queries = tokens + block.self_attn(tokens + token_pe, tokens + token_pe, tokens)
        queries = block.norm1(queries)
        queries = block.norm2(queries + self._token_to_shared_image(block.cross_attn_token_to_image, queries + token_pe))
        queries = block.norm3(queries + block.mlp(queries))
        attended = self._shared_image_to_token(block.cross_attn_image_to_token, queries + token_pe, queries)
        image = block.norm4(attended.add_(self.image))
        for block in layers[1:]:
            q = queries + token_pe
            queries = block.norm1(queries + block.self_attn(q, q, queries))
            image_with_pe = image + self.image_pe
            attended = _token_to_image(block.cross_attn_token_to_image, queries + token_pe, image, image_with_pe)
            queries = block.norm2(queries + attended)
            queries = block.norm3(queries + block.mlp(queries))
            attended = _image_to_token(block.cross_attn_image_to_token, image_with_pe, queries + token_pe, queries)
            image = block.norm4(attended.add_(image))
        image_with_pe = image + self.image_pe
        attended = _token_to_image(transformer.final_attn_token_to_image, queries + token_pe, image, image_with_pe)
        return transformer.norm_final_attn(queries + attended), image

    def _token_to_shared_image(self, attn: Any, q: torch.Tensor) -> torch.Tensor:
        """Tokens ``(B, T, C)`` attend to the shared layer-0 image keys / values."""
        batch, num_tokens, _ = q.shape
        heads = attn.num_heads
        query = attn.q_proj(q).view(batch * num_tokens, heads, -1).transpose(0, 1)  # (H, BT, d)
        out = F.scaled_dot_product_attention(query[None], self.shared_k[None], self.shared_v[None])[0]
        return attn.out_proj(out.transpose(0, 1).reshape(batch, num_tokens, -1))

    def _shared_image_to_token(self, attn: Any, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """The shared layer-0 image queries attend to each prompt's tokens: ``(B, N, C)``."""
        batch, num_tokens, _ = k.shape
        heads = attn.num_heads
        keys = attn.k_proj(k).view(batch, num_tokens, heads, -1)
        head_dim = keys.shape[-1]
        keys = keys.permute(2, 0, 1, 3).reshape(heads, batch * num_tokens, head_dim) * head_dim**-0.5
        scores = torch.bmm(keys, self.shared_q.transpose(1, 2))  # (H, BT, N)
        probs = scores.view(heads, batch, num_tokens, -1).softmax(dim=2)  # over the tokens
        probs = probs.transpose(0, 1).reshape(batch, heads * num_tokens, -1)  # (B, HT, N)
        return torch.bmm(probs.transpose(1, 2), _values_through_out_proj(attn, v))

    # ---- upscaling
    def _upscale(
        self, image: torch.Tensor, hyper: torch.Tensor, prompt: torch.Tensor, mask: torch.Tensor
    ) -> torch.Tensor:
        """Image tokens ``(B, N, C)`` and hypernetwork outputs ``(B, M, c2)`` -> the logits
        ``(K, 4h, 4w)`` of masks ``mask[k]`` of prompts ``prompt[k]`` (both ``(K,)``)."""
        batch, h, w = image.shape[0], self.h, self.w
        x = torch.matmul(image, self.deconv1).view(batch, h * w * 4, self.c1)
        # LayerNorm2d normalises over channels: the last axis here.
        x = self.act1(F.layer_norm(x.add_(self.skip1), (self.c1,), self.norm1.weight, self.norm1.bias, self.norm1.eps))
        x = torch.matmul(x, self.deconv2).view(batch, h * w * 16, self.c2)
        x = self.act2(x.add_(self.skip0))
        logits = torch.bmm(hyper, x.transpose(1, 2))  # (B, M, blocked pixels)
        logits = logits[prompt, mask].view(-1, h, w, 2, 2, 2, 2)  # (K, i, j, di, dj, ei, ej)
        return logits.permute(0, 1, 3, 5, 2, 4, 6).reshape(-1, 4 * h, 4 * w)


def _split_heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    """``(N, H*d)`` -> ``(H, N, d)``."""
    return x.view(x.shape[0], heads, -1).transpose(0, 1)


def _values_through_out_proj(attn: Any, v: torch.Tensor) -> torch.Tensor:
    """Per-head values times the matching block of the output projection, plus 1/H of its bias:
    ``(B, T, C)`` -> ``(B, H*T, C_out)``. Each head's attention weights sum to 1 over the tokens,
    so ``probs @ values`` carries the whole bias."""
    batch, num_tokens, _ = v.shape
    heads = attn.num_heads
    values = attn.v_proj(v).view(batch, num_tokens, heads, -1)
    out_weight = attn.out_proj.weight.view(attn.out_proj.weight.shape[0], heads, -1)  # (C_out, H, d)
    projected = torch.einsum("bthd,chd->bhtc", values, out_weight).reshape(batch, heads * num_tokens, -1)
    return projected + attn.out_proj.bias / heads


def _token_to_image(attn: Any, q: torch.Tensor, image: torch.Tensor, image_with_pe: torch.Tensor) -> torch.Tensor:
    """Tokens ``(B, T, C)`` attend to per-prompt image tokens ``(B, N, C)`` (keys with PE).

    The key bias adds ``q . b_k`` to a whole row of scores, which the softmax over the image
    ignores, so it is left out.
    """
    batch, num_tokens, _ = q.shape
    heads = attn.num_heads
    query = attn.q_proj(q).view(batch, num_tokens, heads, -1)
    head_dim = query.shape[-1]
    k_weight = attn.k_proj.weight.view(heads, head_dim, -1) * head_dim**-0.5  # (H, d, C)
    query_in_image = torch.einsum("bthd,hdc->bhtc", query, k_weight).reshape(batch, heads * num_tokens, -1)
    probs = torch.bmm(query_in_image, image_with_pe.transpose(1, 2)).softmax(dim=-1)  # (B, HT, N)
    mixed = torch.bmm(probs, image).view(batch, heads, num_tokens, -1)  # (B, H, T, C)
    v_weight = attn.v_proj.weight.view(heads, head_dim, -1)
    out = torch.einsum("bhtc,hdc->bthd", mixed, v_weight) + attn.v_proj.bias.view(heads, head_dim)
    return attn.out_proj(out.reshape(batch, num_tokens, -1))


def _image_to_token(attn: Any, image_with_pe: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Per-prompt image tokens ``(B, N, C)`` attend to the prompt's tokens: ``(B, N, C)``."""
    batch, num_tokens, _ = k.shape
    heads = attn.num_heads
    keys = attn.k_proj(k).view(batch, num_tokens, heads, -1)
    head_dim = keys.shape[-1]
    keys = keys * head_dim**-0.5
    q_weight = attn.q_proj.weight.view(heads, head_dim, -1)  # (H, d, C)
    q_bias = attn.q_proj.bias.view(heads, head_dim)
    keys_in_image = torch.einsum("hdc,bthd->bhtc", q_weight, keys).reshape(batch, heads * num_tokens, -1)
    key_bias = torch.einsum("hd,bthd->bht", q_bias, keys).reshape(batch, heads * num_tokens, 1)
    scores = torch.baddbmm(key_bias, keys_in_image, image_with_pe.transpose(1, 2))  # (B, HT, N)
    probs = scores.view(batch, heads, num_tokens, -1).softmax(dim=2).view(batch, heads * num_tokens, -1)
    return torch.bmm(probs.transpose(1, 2), _values_through_out_proj(attn, v))  # (B, N, C)


# ---------------------------------------------------------------------------- helpers
def _upsample(low_res: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``(K, h4, w4)`` logits -> ``(K, H, W)``, bilinear as the reference predictor."""
    return F.interpolate(low_res[:, None], size, mode="bilinear", align_corners=False)[:, 0]


def _boxes_above(logits: torch.Tensor, threshold: float) -> torch.Tensor:
    """XYXY int64 boxes ``(K, 4)`` of ``logits > threshold`` for ``(K, H, W)`` logits, as
    ``batched_mask_to_box`` gives them (empty masks: zeros), from row and column maxima."""
    rows_used = logits.amax(dim=-1) > threshold  # (K, H)
    cols_used = logits.amax(dim=-2) > threshold  # (K, W)
    height, width = logits.shape[-2:]
    rows = torch.arange(height, device=logits.device)
    cols = torch.arange(width, device=logits.device)
    top = torch.where(rows_used, rows, height).amin(dim=-1)
    bottom = torch.where(rows_used, rows, -1).amax(dim=-1)
    left = torch.where(cols_used, cols, width).amin(dim=-1)
    right = torch.where(cols_used, cols, -1).amax(dim=-1)
    boxes = torch.stack([left, top, right, bottom], dim=-1)
    return boxes.masked_fill(~rows_used.any(dim=-1, keepdim=True), 0)


def _chunks(index: torch.Tensor, pixels_per_mask: int) -> Iterator[torch.Tensor]:
    """Slices of ``index`` whose full-resolution float masks fit the chunk budget."""
    step = max(1, _UPSAMPLE_CHUNK_ELEMENTS // max(1, pixels_per_mask))
    for start in range(0, len(index), step):
        yield index[start : start + step]


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


def _check_point_grids(point_grids: Any, crop_n_layers: int) -> list[np.ndarray]:
    if isinstance(point_grids, np.ndarray) or not isinstance(point_grids, Sequence):
        raise TypeError("point_grids must be a list of (N, 2) arrays, one per crop layer")
    if len(point_grids) < crop_n_layers + 1:
        raise ValueError(
            f"point_grids has {len(point_grids)} grid(s) but crop_n_layers={crop_n_layers} needs "
            f"{crop_n_layers + 1} (one per layer, layer 0 = the whole image)"
        )
    grids = []
    for layer, grid in enumerate(point_grids):
        array = np.asarray(grid, dtype=np.float64)
        if array.ndim != 2 or array.shape[1] != 2 or array.shape[0] == 0:
            raise ValueError(f"point_grids[{layer}] must be a non-empty (N, 2) array of (x, y), got shape {array.shape}")
        if not np.isfinite(array).all() or array.min() < 0.0 or array.max() > 1.0:
            raise ValueError(f"point_grids[{layer}] must hold normalised coordinates in [0, 1]")
        grids.append(array)
    return grids
