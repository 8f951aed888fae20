"""ImagePredictor: prompt-based segmentation of still images (points, boxes, mask prompts)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..modeling.sam2 import LOW_RES_CLAMP, SAM2Model
from .transforms import (
    as_float_tensor,
    batch_of,
    check_boxes,
    check_points,
    image_to_tensor,
    preprocess_image,
    to_model_coords,
)

#: Prompts decoded together on the CPU (see :meth:`ImagePredictor.predict_torch`).
PROMPTS_PER_DECODE = 1


class ImagePredictor:
    """Computes an image embedding once, then predicts masks for any number of prompts.

    Args:
        model: a :class:`SAM2Model` (from :func:`sam2kit.build_model`).
        mask_threshold: logit threshold for binary masks.
        max_hole_area: fill background holes up to this area (pixels of the 1/4-resolution mask).
        max_sprinkle_area: remove foreground specks up to this area (same units).

    Example::

        predictor = ImagePredictor(build_model("sam2.1_hiera_tiny", checkpoint="sam2.1_hiera_tiny.pt"))
        predictor.set_image(image)                           # (H, W, 3) uint8
        masks, scores, logits = predictor.predict(point_coords=[[500, 375]], point_labels=[1])
    """

    def __init__(
        self,
        model: SAM2Model,
        mask_threshold: float = 0.0,
        max_hole_area: float = 0.0,
        max_sprinkle_area: float = 0.0,
    ) -> None:
        self.model = model.eval()
        self.mask_threshold = mask_threshold
        self.max_hole_area = max_hole_area
        self.max_sprinkle_area = max_sprinkle_area
        self.reset_predictor()

    @classmethod
    def from_pretrained(
        cls, model_id: str = "facebook/sam2.1-hiera-tiny", device: str | None = None, **kwargs: Any
    ) -> ImagePredictor:
        """Predictor for an official hub checkpoint (see :func:`sam2kit.from_pretrained`)."""
        from ..build import from_pretrained

        return cls(from_pretrained(model_id, device=device), **kwargs)

    @property
    def device(self) -> torch.device:
        return self.model.device

    def reset_predictor(self) -> None:
        """Forget the current image(s)."""
        self._image_embed: torch.Tensor | None = None  # (B, C, H/16, W/16)
        self._high_res_feats: list[torch.Tensor] = []  # [(B, C/8, S/4, S/4), (B, C/4, S/8, S/8)]
        self._orig_hw: list[tuple[int, int]] = []
        self._is_batch = False

    @property
    def is_image_set(self) -> bool:
        return self._image_embed is not None

    # ------------------------------------------------------------------ images
    @torch.inference_mode()
    def set_image(self, image: Any) -> None:
        """Compute the embedding of one image.

        Args:
            image: RGB ``(H, W, 3)`` uint8 numpy array, PIL image, or ``(3, H, W)`` tensor (uint8, or
                float in [0, 1]). Any size and aspect ratio.
        Raises:
            TypeError / ValueError: unsupported type, dtype, shape or an empty image.
        """
        tensor = image_to_tensor(image)
        self.reset_predictor()
        self._embed([tensor])

    @torch.inference_mode()
    def set_image_batch(self, images: Sequence[Any] | None = None, *, image_list: Sequence[Any] | None = None) -> None:
        """Compute the embeddings of several images at once (for :meth:`predict_batch`);
        ``image_list`` is the official name of ``images`` (give one of the two)."""
        if images is not None and image_list is not None:
            raise TypeError("set_image_batch takes the images once: images= or image_list= (its official name)")
        images = images if images is not None else image_list
        if isinstance(images, (np.ndarray, torch.Tensor)) or not isinstance(images, Sequence) or len(images) == 0:
            raise TypeError("set_image_batch expects a non-empty list of images")
        tensors = [image_to_tensor(img, name=f"images[{i}]") for i, img in enumerate(images)]
        self.reset_predictor()
        self._embed(tensors)
        self._is_batch = True

    def _embed(self, images: list[torch.Tensor]) -> None:
        size = self.model.image_size
        batch = torch.stack([preprocess_image(img.to(self.device), size) for img in images])
        features = self.model.forward_image(batch)
        self._image_embed = self.model.image_embedding_without_memory(features)
        self._high_res_feats = features.high_res_features()
        self._orig_hw = [(int(img.shape[1]), int(img.shape[2])) for img in images]

    def get_image_embedding(self) -> torch.Tensor:
        """The embedding of the current image: ``(1, 256, S/16, S/16)`` (``(B, ...)`` after a batch)."""
        self._require_image()
        return self._image_embed  # type: ignore[return-value]

    def _require_image(self) -> None:
        if self._image_embed is None:
            raise RuntimeError("no image is set: call set_image(image) (or set_image_batch) before predicting")

    # ------------------------------------------------------------------ prediction
    def predict(
        self,
        point_coords: Any = None,
        point_labels: Any = None,
        box: Any = None,
        mask_input: Any = None,
        multimask_output: bool = True,
        return_logits: bool = False,
        normalize_coords: bool = True,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Predict masks for prompts on the current image.

        Args:
            point_coords: ``(N, 2)`` (x, y) points, or ``(B, N, 2)`` for B prompts at once.
            point_labels: ``(N,)`` / ``(B, N)``: 1 foreground, 0 background.
            box: ``(4,)`` XYXY box, or ``(B, 4)`` boxes (one mask set per box).
            mask_input: ``(1, 256, 256)`` / ``(B, 1, 256, 256)`` low-res logits from a previous call.
            multimask_output: return 3 candidate masks (best for a single ambiguous click).
            return_logits: return float logits instead of boolean masks.
            normalize_coords: coordinates are pixels of the original image (True, the usual case)
                or already normalised to [0, 1] (False).
        Returns:
            masks ``(C, H, W)`` (``(B, C, H, W)`` for batched prompts) at the image's resolution,
            IoU predictions ``(C,)`` / ``(B, C)``, low-res logits ``(C, 256, 256)`` / ``(B, C, 256, 256)``;
            C = 3 with multimask output, else 1.
        Raises:
            RuntimeError: no image set. ValueError: invalid prompts (shapes, labels, outside the image).
        """
        self._require_image()
        masks, ious, low_res = self.predict_torch(
            point_coords, point_labels, box, mask_input, multimask_output, return_logits, normalize_coords, img_idx=0
        )
        batched = _is_batched(point_coords, box, mask_input)
        if not batched:
            masks, ious, low_res = masks[0], ious[0], low_res[0]
        return _to_numpy(masks), _to_numpy(ious), _to_numpy(low_res)

    def predict_batch(
        self,
        point_coords_batch: Sequence[Any] | None = None,
        point_labels_batch: Sequence[Any] | None = None,
        box_batch: Sequence[Any] | None = None,
        mask_input_batch: Sequence[Any] | None = None,
        multimask_output: bool = True,
        return_logits: bool = False,
        normalize_coords: bool = True,
    ) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]]:
        """:meth:`predict` for each image set by :meth:`set_image_batch`; lists of per-image results."""
        self._require_image()
        if not self._is_batch:
            raise RuntimeError("predict_batch needs images set with set_image_batch(...)")
        count = len(self._orig_hw)
        prompts = zip(
            batch_of(point_coords_batch, count, "point_coords_batch"),
            batch_of(point_labels_batch, count, "point_labels_batch"),
            batch_of(box_batch, count, "box_batch"),
            batch_of(mask_input_batch, count, "mask_input_batch"),
            strict=True,
        )
        all_masks, all_ious, all_low = [], [], []
        for idx, (coords, labels, box, mask) in enumerate(prompts):
            masks, ious, low_res = self.predict_torch(
                coords, labels, box, mask, multimask_output, return_logits, normalize_coords, img_idx=idx
            )
            if not _is_batched(coords, box, mask):
                masks, ious, low_res = masks[0], ious[0], low_res[0]
            all_masks.append(_to_numpy(masks))
            all_ious.append(_to_numpy(ious))
            all_low.append(_to_numpy(low_res))
        return all_masks, all_ious, all_low

    @torch.inference_mode()
    def predict_torch(
        self,
        point_coords: Any = None,
        point_labels: Any = None,
        box: Any = None,
        mask_input: Any = None,
        multimask_output: bool = True,
        return_logits: bool = False,
        normalize_coords: bool = True,
        img_idx: int = 0,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Tensor version of :meth:`predict`: always batched outputs on the model's device.

        Returns masks ``(B, C, H, W)`` (bool, or float logits), IoU ``(B, C)``, low-res logits
        ``(B, C, S/4, S/4)``.
        """
        self._require_image()
        if not 0 <= img_idx < len(self._orig_hw):
            raise IndexError(f"img_idx {img_idx} out of range for {len(self._orig_hw)} image(s)")
        orig_hw = self._orig_hw[img_idx]
        size = self.model.image_size
        device = self.device
        coords: torch.Tensor | None = None
        labels: torch.Tensor | None = None
        boxes: torch.Tensor | None = None
        masks_in: torch.Tensor | None = None
        if point_coords is not None or point_labels is not None:
            if point_coords is None or point_labels is None:
                raise ValueError("point_coords and point_labels must be given together")
            coords = as_float_tensor(point_coords, "point_coords", device)
            labels = torch.as_tensor(
                np.asarray(point_labels) if not isinstance(point_labels, torch.Tensor) else point_labels, device=device
            )
            if labels.is_floating_point() and not torch.equal(labels, labels.round()):
                raise ValueError("point_labels must be integers (1 foreground, 0 background)")
            coords, labels = check_points(coords, labels.to(torch.int32), orig_hw, not normalize_coords)
            coords = to_model_coords(coords, orig_hw, size, not normalize_coords)
        if box is not None:
            boxes = check_boxes(as_float_tensor(box, "box", device), orig_hw, not normalize_coords)
            boxes = to_model_coords(boxes.reshape(-1, 2, 2), orig_hw, size, not normalize_coords)
        if mask_input is not None:
            masks_in = as_float_tensor(mask_input, "mask_input", device)
            given_shape = tuple(masks_in.shape)  # for messages
            if masks_in.ndim == 3:
                masks_in = masks_in[None]
            expected = self.model.sam_prompt_encoder.mask_input_size
            if masks_in.ndim != 4 or masks_in.shape[1] != 1 or tuple(masks_in.shape[-2:]) != expected:
                raise ValueError(
                    f"mask_input must be low-res logits of shape (1, {expected[0]}, {expected[1]}) or "
                    f"(B, 1, {expected[0]}, {expected[1]}) (e.g. the third output of a previous predict); "
                    f"got {given_shape}"
                )
        if coords is None and boxes is None and masks_in is None:
            raise ValueError("no prompt given: pass point_coords/point_labels, a box, or a mask_input")

        # Boxes enter the prompt encoder as two labelled corner points placed before the clicks.
        points: tuple[torch.Tensor, torch.Tensor] | None = None
        if boxes is not None:
            box_labels = torch.tensor([[2, 3]], dtype=torch.int32, device=device).expand(boxes.shape[0], -1)
            points = (boxes, box_labels)
        if coords is not None:
            assert labels is not None  # given together, checked above
            if points is None:
                points = (coords, labels)
            else:
                if coords.shape[0] not in (1, points[0].shape[0]) and points[0].shape[0] != 1:
                    raise ValueError(
                        f"{points[0].shape[0]} boxes and {coords.shape[0]} point sets: give one point set per box"
                    )
                batch = max(coords.shape[0], points[0].shape[0])
                points = (
                    torch.cat([points[0].expand(batch, -1, -1), coords.expand(batch, -1, -1)], dim=1),
                    torch.cat([points[1].expand(batch, -1), labels.expand(batch, -1)], dim=1),
                )
        prompt_batch = points[0].shape[0] if points is not None else masks_in.shape[0]  # type: ignore[union-attr]
        if masks_in is not None and masks_in.shape[0] not in (1, prompt_batch):
            raise ValueError(f"mask_input has {masks_in.shape[0]} masks for {prompt_batch} prompts")
        if masks_in is not None and masks_in.shape[0] != prompt_batch:
            masks_in = masks_in.expand(prompt_batch, -1, -1, -1)

        sparse, dense = self.model.sam_prompt_encoder(points=points, boxes=None, masks=masks_in)
        # On the CPU, prompts are decoded one at a time: the decoder's (prompts, HW, C) activations
        # then stay small enough to be reused from the allocator's free lists instead of being
        # mapped (and page-faulted) afresh, which makes 16 boxes about 2x faster. Each prompt's
        # decoding is independent, so the results are the same.
        chunk = PROMPTS_PER_DECODE if device.type == "cpu" else prompt_batch
        outputs = [
            self._decode(sparse[i : i + chunk], dense[i : i + chunk], img_idx, multimask_output, orig_hw, return_logits)
            for i in range(0, prompt_batch, chunk)
        ]
        masks, ious, low_res = (torch.cat(parts, dim=0) for parts in zip(*outputs, strict=True))
        return masks, ious, low_res

    def _decode(
        self,
        sparse: torch.Tensor,
        dense: torch.Tensor,
        img_idx: int,
        multimask_output: bool,
        orig_hw: tuple[int, int],
        return_logits: bool,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Decode prompt embeddings ``(P, N, C)`` / ``(P, C, h, w)`` -> masks ``(P, M, H, W)``,
        IoU ``(P, M)``, low-res logits ``(P, M, S/4, S/4)``."""
        decoded = self.model.sam_mask_decoder(
            image_embeddings=self._image_embed[img_idx : img_idx + 1],  # type: ignore[index]
            image_pe=self.model.sam_prompt_encoder.get_dense_pe(),
            sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense,
            multimask_output=multimask_output,
            repeat_image=sparse.shape[0] > 1,
            high_res_features=[feat[img_idx : img_idx + 1] for feat in self._high_res_feats],
        )
        low_res = decoded.masks.float()
        masks = self._postprocess(low_res, orig_hw)
        low_res = low_res.clamp(-LOW_RES_CLAMP, LOW_RES_CLAMP)
        if not return_logits:
            masks = masks > self.mask_threshold
        return masks, decoded.iou_pred, low_res

    def _postprocess(self, low_res: torch.Tensor, orig_hw: tuple[int, int]) -> torch.Tensor:
        """Optional hole / speck cleanup at low resolution, then bilinear upsampling to the image."""
        if self.max_hole_area > 0 or self.max_sprinkle_area > 0:
            from .postprocess import postprocess_low_res_masks

            low_res = postprocess_low_res_masks(
                low_res, self.max_hole_area, self.max_sprinkle_area, mask_threshold=self.mask_threshold
            )
        return F.interpolate(low_res, orig_hw, mode="bilinear", align_corners=False)


def _is_batched(point_coords: Any, box: Any, mask_input: Any) -> bool:
    """Whether the user passed batched prompts (B, ...) rather than one prompt."""
    if box is not None and np.ndim(box) == 2:
        return True
    if point_coords is not None and np.ndim(point_coords) == 3:
        return True
    return mask_input is not None and np.ndim(mask_input) == 4


def _to_numpy(tensor: torch.Tensor) -> np.ndarray:
    if tensor.dtype == torch.bool:
        return tensor.cpu().numpy()
    return tensor.float().cpu().numpy()
