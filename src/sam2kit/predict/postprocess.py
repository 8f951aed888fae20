"""Mask post-processing on logits: connected components, hole filling, sprinkle removal.

Everything here is plain tensor code that runs unchanged on CPU and CUDA; no compiled extension.

Connectivity: the reference SAM 2 computes components with a CUDA kernel
(`csrc/connected_components.cu`, a block-based union-find on 2x2 pixel blocks) that joins pixels
that touch by an edge or a corner, i.e. **8-connectivity**; so do we. Its label of a component is
``1 + min`` over the component of the flat index of the top-left pixel of the 2x2 block holding each
pixel, and `connected_components` returns exactly those labels (for even H and W, the only sizes the
kernel accepts; the same rule extends to odd sizes).
"""

from __future__ import annotations

import torch

from ..modeling.tracking import apply_non_overlapping_constraints  # noqa: F401  (re-exported)

__all__ = [
    "connected_components",
    "find_small_components",
    "fill_holes",
    "remove_sprinkles",
    "postprocess_low_res_masks",
    "fill_holes_in_mask_scores",
    "apply_non_overlapping_constraints",
]

# How much a filled hole / removed sprinkle is pushed past the threshold (reference value).
_FILL_MARGIN = 10.0
# Score given to filled holes by the video predictor (reference value).
_VIDEO_HOLE_SCORE = 0.1


def _max_3x3(values: torch.Tensor) -> torch.Tensor:
    """Max over each pixel's 3x3 neighbourhood (edges clipped) of (B, H, W) integer values.

    Separable shifted maxima: cheaper than `max_pool2d` on CPU and valid for integer dtypes on
    every device.
    """
    rows = values.clone()
    torch.maximum(rows[..., 1:], values[..., :-1], out=rows[..., 1:])
    torch.maximum(rows[..., :-1], values[..., 1:], out=rows[..., :-1])
    out = rows.clone()
    torch.maximum(out[..., 1:, :], rows[..., :-1, :], out=out[..., 1:, :])
    torch.maximum(out[..., :-1, :], rows[..., 1:, :], out=out[..., :-1, :])
    return out


def _component_roots(
    foreground: torch.Tensor, height: int, width: int, check_every: int | None = None
) -> torch.Tensor:
    """For (B, H*W) bool `foreground`, the largest flat index within each pixel's 8-connected
    component, (B, H*W) int32 (background pixels point to themselves).

    A max-label variant of the FastSV algorithm (Zhang, Azad, Hu 2020): every step, each pixel
    takes the largest grandparent in its 3x3 foreground neighbourhood ("aggressive hooking"), the
    same value is also written into its parent ("stochastic hooking", which links whole trees at
    once), and each pointer jumps to its grandparent ("shortcutting"). Pointers only grow and stay
    inside their component; a step that changes nothing means every pixel points at the largest
    index of its component. Plain label propagation needs O(diameter) steps (~30k for a 256x256
    spiral); this needs about log(diameter): 10-20 steps at 256x256, spirals and mazes included.

    `check_every` is how many steps run between convergence checks, each a host sync; the
    default is 1 on CPU and 4 on other devices.
    """
    batch, num_pixels = foreground.shape
    device = foreground.device
    parent = torch.arange(num_pixels, device=device, dtype=torch.int32).expand(batch, num_pixels)
    parent = parent.contiguous()
    # Background never wins a neighbourhood max: every foreground pointer is >= 0.
    outside = torch.tensor(-1, dtype=torch.int32, device=device)
    if check_every is None:
        check_every = 1 if device.type == "cpu" else 4
    while True:
        previous = parent
        for _ in range(check_every):
            parent_index = parent.long()
            grandparent = torch.gather(parent, 1, parent_index)
            neighbour_max = _max_3x3(
                torch.where(foreground, grandparent, outside).view(batch, height, width)
            ).view(batch, num_pixels)
            neighbour_max = torch.where(foreground, neighbour_max, parent)
            updated = torch.maximum(neighbour_max, grandparent)
            updated.scatter_reduce_(1, parent_index, neighbour_max, reduce="amax")
            parent = updated
        # Pointers never decrease, so "unchanged over k steps" means "unchanged by the last step".
        if torch.equal(parent, previous):
            return parent


def connected_components(mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Label the 8-connected foreground components of a batch of binary masks.

    Mirrors the reference CUDA extension `sam2._C.get_connected_components`, on any device and for
    any H, W (the reference needs CUDA and even sizes).

    Args:
        mask: (N, 1, H, W) bool or integer tensor; nonzero pixels are foreground.

    Returns:
        labels: (N, 1, H, W) int32; 0 on background, a positive label per component, unique
            within its image. The label is 1 + the smallest flat index (row * W + col) of the
            top-left pixel of the 2x2 block (rows 2i..2i+1, cols 2j..2j+1) holding any pixel of the
            component, as the reference kernel numbers them; labels therefore rise in raster
            order of 2x2 blocks, the order OpenCV numbers components.
        areas: (N, 1, H, W) int32; at each foreground pixel the pixel count of its component,
            0 on background.

    Raises:
        ValueError: if `mask` is not (N, 1, H, W).
        TypeError: if `mask` is a floating-point or complex tensor.
    """
    if mask.ndim != 4 or mask.shape[1] != 1:
        raise ValueError(f"mask must have shape (N, 1, H, W), got {tuple(mask.shape)}")
    if mask.is_floating_point() or mask.is_complex():
        raise TypeError(f"mask must be a bool or integer tensor, got {mask.dtype}")
    batch, _, height, width = mask.shape
    num_pixels = height * width
    if num_pixels >= 2**31 - 1:
        raise ValueError(f"mask of {height}x{width} pixels is too large for int32 labels")
    foreground = (mask != 0).reshape(batch, num_pixels)
    labels = torch.zeros((batch, num_pixels), dtype=torch.int32, device=mask.device)
    areas = torch.zeros_like(labels)
    if labels.numel() == 0 or not bool(foreground.any()):
        return labels.view(mask.shape), areas.view(mask.shape)

    roots = _component_roots(foreground, height, width).long()  # (N, HW)
    areas.scatter_add_(1, roots, foreground.to(torch.int32))
    areas = torch.gather(areas, 1, roots) * foreground

    # Reference numbering: 1 + min over the component of its pixels' 2x2-block top-left index.
    rows = torch.arange(height, device=mask.device, dtype=torch.int32)
    cols = torch.arange(width, device=mask.device, dtype=torch.int32)
    block_corner = ((rows - rows % 2)[:, None] * width + (cols - cols % 2)[None, :]).view(1, -1)
    never = torch.tensor(num_pixels, dtype=torch.int32, device=mask.device)
    first_block = torch.full_like(labels, num_pixels)
    first_block.scatter_reduce_(1, roots, torch.where(foreground, block_corner, never), "amin")
    labels = torch.where(foreground, torch.gather(first_block, 1, roots) + 1, 0).to(torch.int32)
    return labels.view(mask.shape), areas.view(mask.shape)


def find_small_components(mask: torch.Tensor, max_area: float) -> torch.Tensor:
    """Pixels of foreground components whose area is at most `max_area` pixels.

    Args:
        mask: (..., H, W) bool tensor.
        max_area: area bound in pixels (inclusive).

    Returns:
        (..., H, W) bool tensor.
    """
    flat = mask.reshape(-1, 1, *mask.shape[-2:])
    labels, areas = connected_components(flat)
    return ((labels > 0) & (areas <= max_area)).view(mask.shape)


def fill_holes(
    mask_logits: torch.Tensor,
    max_hole_area: float,
    threshold: float = 0.0,
    fill_value: float | None = None,
) -> torch.Tensor:
    """Turn small background regions into foreground.

    A hole is an 8-connected component of pixels with logit <= `threshold` whose area is at most
    `max_hole_area` pixels; components touching the border count too (as in the reference).

    Args:
        mask_logits: (..., H, W) float logits; each (H, W) slice is processed on its own.
        max_hole_area: largest hole to fill, in pixels; <= 0 returns the input unchanged.
        threshold: the logit that separates foreground (>) from background (<=).
        fill_value: logit written into holes; default `threshold + 10.0`.

    Returns:
        Tensor of the shape and dtype of `mask_logits`.
    """
    if max_hole_area <= 0:
        return mask_logits
    if fill_value is None:
        fill_value = threshold + _FILL_MARGIN
    is_hole = find_small_components(mask_logits <= threshold, max_hole_area)
    return torch.where(is_hole, fill_value, mask_logits)


def remove_sprinkles(
    mask_logits: torch.Tensor,
    max_sprinkle_area: float,
    threshold: float = 0.0,
    fill_value: float | None = None,
) -> torch.Tensor:
    """Turn small foreground regions ("sprinkles") into background.

    A sprinkle is an 8-connected component of pixels with logit > `threshold` whose area is at
    most `max_sprinkle_area` pixels.

    Args:
        mask_logits: (..., H, W) float logits; each (H, W) slice is processed on its own.
        max_sprinkle_area: largest sprinkle to remove, in pixels; <= 0 returns the input unchanged.
        threshold: the logit that separates foreground (>) from background (<=).
        fill_value: logit written into sprinkles; default `threshold - 10.0`.

    Returns:
        Tensor of the shape and dtype of `mask_logits`.
    """
    if max_sprinkle_area <= 0:
        return mask_logits
    if fill_value is None:
        fill_value = threshold - _FILL_MARGIN
    is_sprinkle = find_small_components(mask_logits > threshold, max_sprinkle_area)
    return torch.where(is_sprinkle, fill_value, mask_logits)


def postprocess_low_res_masks(
    mask_logits: torch.Tensor,
    max_hole_area: float,
    max_sprinkle_area: float,
    mask_threshold: float = 0.0,
) -> torch.Tensor:
    """The image predictor's clean-up of low-resolution mask logits, before upsampling.

    Holes (background components of area <= `max_hole_area`) get `mask_threshold + 10`, then
    sprinkles (foreground components of area <= `max_sprinkle_area`) get `mask_threshold - 10`.
    As in the reference, both kinds of component are found on the *input* logits: filling holes
    does not change which regions count as sprinkles.

    Args:
        mask_logits: (N, C, H, W) logits (e.g. (B, 3, 256, 256) from the mask decoder).
        max_hole_area: in low-res pixels; <= 0 disables hole filling.
        max_sprinkle_area: in low-res pixels; <= 0 disables sprinkle removal.
        mask_threshold: logit threshold between background and foreground.

    Returns:
        (N, C, H, W) float32 logits.

    Raises:
        ValueError: if `mask_logits` is not 4-D.
    """
    if mask_logits.ndim != 4:
        raise ValueError(f"mask_logits must be (N, C, H, W), got {tuple(mask_logits.shape)}")
    masks = mask_logits.float()
    fill_holes_on = max_hole_area > 0
    remove_sprinkles_on = max_sprinkle_area > 0
    if not (fill_holes_on or remove_sprinkles_on):
        return masks
    flat = masks.flatten(0, 1).unsqueeze(1)  # (N*C, 1, H, W)
    # One labelling pass over both binary images: half the per-call overhead and host syncs.
    binaries = []
    if fill_holes_on:
        binaries.append(flat <= mask_threshold)
    if remove_sprinkles_on:
        binaries.append(flat > mask_threshold)
    labels, areas = connected_components(torch.cat(binaries))
    labels, areas = labels.split(flat.shape[0]), areas.split(flat.shape[0])
    if fill_holes_on:
        is_hole = (labels[0] > 0) & (areas[0] <= max_hole_area)
        masks = torch.where(is_hole.view_as(masks), mask_threshold + _FILL_MARGIN, masks)
    if remove_sprinkles_on:
        is_sprinkle = (labels[-1] > 0) & (areas[-1] <= max_sprinkle_area)
        masks = torch.where(is_sprinkle.view_as(masks), mask_threshold - _FILL_MARGIN, masks)
    return masks


def fill_holes_in_mask_scores(mask: torch.Tensor, max_area: float) -> torch.Tensor:
    """The video predictor's hole filling: background components (score <= 0) of area at most
    `max_area` pixels get the small positive score 0.1.

    Args:
        mask: (N, 1, H, W) mask scores (logits).
        max_area: largest hole to fill, in pixels.

    Returns:
        Tensor of the shape and dtype of `mask`.

    Raises:
        ValueError: if `max_area` is not positive.
    """
    if max_area <= 0:
        raise ValueError(f"max_area must be positive, got {max_area}")
    return fill_holes(mask, max_area, threshold=0.0, fill_value=_VIDEO_HOLE_SCORE)
