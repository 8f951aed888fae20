"""Tests for sam2kit.predict.postprocess: connected components and logit clean-up.

Connected components are checked against scipy.ndimage (8-connectivity) and against the numbering
rule of the reference CUDA kernel. The clean-up functions are parity-tested against the reference
`sam2` functions, whose CUDA-only `get_connected_components` is replaced by a scipy labelling.
"""

from __future__ import annotations

import importlib
import os

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from sam2kit.predict import postprocess
from sam2kit.predict.postprocess import (
    apply_non_overlapping_constraints,
    connected_components,
    fill_holes,
    fill_holes_in_mask_scores,
    find_small_components,
    postprocess_low_res_masks,
    remove_sprinkles,
)


def import_reference(module: str):
    """Import a test-only dependency (the reference `sam2`, scipy); under CI a missing one fails
    the test instead of skipping it."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        if os.environ.get("CI"):
            pytest.fail(
                f"parity tests need {module}: {error}; install the dev extras and "
                "SAM2_BUILD_CUDA=0 pip install sam2==1.1.0",
                pytrace=False,
            )
        return pytest.importorskip(module)


ndimage = import_reference("scipy.ndimage")
EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)


# ---------------------------------------------------------------------------------------------
# expected values from scipy


def expected_components(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Labels numbered like the reference CUDA kernel, and areas, for one (H, W) bool mask."""
    scipy_labels, count = ndimage.label(mask, structure=EIGHT_CONNECTED)
    sizes = np.bincount(scipy_labels.ravel(), minlength=count + 1)
    areas = np.where(scipy_labels > 0, sizes[scipy_labels], 0)
    height, width = mask.shape
    rows, cols = np.indices(mask.shape)
    block_corner = (rows - rows % 2) * width + (cols - cols % 2)
    first_block = np.full(count + 1, height * width)
    np.minimum.at(first_block, scipy_labels.ravel(), block_corner.ravel())
    labels = np.where(scipy_labels > 0, first_block[scipy_labels] + 1, 0)
    return labels, areas


def assert_matches_scipy(masks: torch.Tensor) -> None:
    labels, areas = connected_components(masks)
    assert labels.shape == areas.shape == masks.shape
    assert labels.dtype == areas.dtype == torch.int32
    for image, image_labels, image_areas in zip(masks, labels, areas, strict=True):
        want_labels, want_areas = expected_components(image[0].numpy().astype(bool))
        np.testing.assert_array_equal(image_areas[0].numpy(), want_areas)
        np.testing.assert_array_equal(image_labels[0].numpy(), want_labels)


def spiral(size: int) -> np.ndarray:
    """A one-pixel-wide square spiral: one component whose path length is ~size**2 / 2."""
    mask = np.zeros((size, size), dtype=bool)
    lo, hi = 0, size - 1
    while hi - lo >= 2:
        mask[lo, lo : hi + 1] = True
        mask[lo : hi + 1, hi] = True
        mask[hi, lo : hi + 1] = True
        mask[lo + 2 : hi + 1, lo] = True
        mask[lo + 2, lo : lo + 3] = True
        lo, hi = lo + 2, hi - 2
    return mask


def maze(cells: int, seed: int) -> np.ndarray:
    """A random spanning-tree maze (2 * cells px a side): one long, branching component."""
    rng = np.random.default_rng(seed)
    mask = np.zeros((2 * cells, 2 * cells), dtype=bool)
    seen = np.zeros((cells, cells), dtype=bool)
    stack = [(0, 0)]
    seen[0, 0] = mask[0, 0] = True
    while stack:
        row, col = stack[-1]
        options = [
            (row + dr, col + dc)
            for dr, dc in ((0, 1), (1, 0), (0, -1), (-1, 0))
            if 0 <= row + dr < cells and 0 <= col + dc < cells and not seen[row + dr, col + dc]
        ]
        if not options:
            stack.pop()
            continue
        nxt = options[rng.integers(len(options))]
        seen[nxt] = mask[2 * nxt[0], 2 * nxt[1]] = True
        mask[row + nxt[0], col + nxt[1]] = True
        stack.append(nxt)
    return mask


def smooth_logits(shape: tuple[int, ...], seed: int, speckle: float = 0.05) -> torch.Tensor:
    """Blobby logits with isolated flipped pixels: components of many sizes, holes, sprinkles."""
    generator = torch.Generator().manual_seed(seed)
    *lead, height, width = shape
    coarse = torch.randn(int(np.prod(lead)), 1, height // 8, width // 8, generator=generator)
    logits = F.interpolate(coarse, size=(height, width), mode="bilinear").view(shape)
    flip = torch.rand(shape, generator=generator) < speckle
    return torch.where(flip, -logits, logits) + 0.1 * torch.randn(shape, generator=generator)


# ---------------------------------------------------------------------------------------------
# connected_components


@pytest.mark.parametrize("density", [0.1, 0.3, 0.5, 0.7, 0.95])
@pytest.mark.parametrize(
    "shape", [(3, 1, 64, 64), (2, 1, 37, 23), (3, 1, 1, 50), (3, 1, 50, 1), (1, 1, 256, 256)]
)
def test_connected_components_random(shape: tuple[int, ...], density: float) -> None:
    generator = torch.Generator().manual_seed(int(density * 100) + shape[2])
    assert_matches_scipy(torch.rand(shape, generator=generator) < density)


@pytest.mark.parametrize(
    "image", [spiral(256), spiral(255).T.copy(), maze(128, 0), maze(64, 1)[::-1].copy()],
    ids=["spiral", "spiral-odd", "maze", "maze-flipped"],
)
def test_connected_components_long_components(image: np.ndarray) -> None:
    masks = torch.from_numpy(np.stack([image, ~image]))[:, None]
    assert_matches_scipy(masks)
    labels, areas = connected_components(masks)
    assert torch.unique(labels[0][masks[0]]).numel() == 1
    assert int(areas[0].max()) == int(image.sum())


def test_connected_components_empty_and_full() -> None:
    masks = torch.zeros(3, 1, 16, 20, dtype=torch.bool)
    masks[1] = True
    labels, areas = connected_components(masks)
    assert not labels[0].any() and not areas[0].any() and not labels[2].any()
    assert (labels[1] == 1).all() and (areas[1] == 16 * 20).all()
    labels, areas = connected_components(torch.zeros(0, 1, 8, 8, dtype=torch.bool))
    assert labels.shape == (0, 1, 8, 8)


def test_connected_components_batch_is_per_image() -> None:
    generator = torch.Generator().manual_seed(0)
    masks = torch.rand(6, 1, 40, 30, generator=generator) < 0.5
    labels, areas = connected_components(masks)
    for i in range(len(masks)):
        alone_labels, alone_areas = connected_components(masks[i : i + 1])
        assert torch.equal(labels[i : i + 1], alone_labels)
        assert torch.equal(areas[i : i + 1], alone_areas)


def test_connected_components_uint8_and_diagonals() -> None:
    checker = (torch.arange(6)[:, None] + torch.arange(6)[None, :]) % 2 == 0
    labels, areas = connected_components(checker.to(torch.uint8)[None, None] * 3)
    assert (areas[0, 0][checker] == 18).all()  # diagonal neighbours join: 8-connectivity
    assert torch.unique(labels[0, 0][checker]).tolist() == [1]


def test_connected_components_sparse_convergence_check() -> None:
    """The every-4-steps convergence check used on GPUs gives the same answer."""
    image = torch.from_numpy(maze(32, 3)).view(1, -1)
    every_step = postprocess._component_roots(image, 64, 64, check_every=1)
    every_four = postprocess._component_roots(image, 64, 64, check_every=4)
    assert torch.equal(every_step, every_four)


def test_connected_components_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="N, 1, H, W"):
        connected_components(torch.zeros(2, 8, 8, dtype=torch.bool))
    with pytest.raises(ValueError, match="N, 1, H, W"):
        connected_components(torch.zeros(2, 3, 8, 8, dtype=torch.bool))
    with pytest.raises(TypeError, match="bool or integer"):
        connected_components(torch.zeros(1, 1, 8, 8))


@settings(max_examples=40, deadline=None)
@given(
    arrays(
        dtype=bool,
        shape=st.tuples(st.integers(1, 3), st.just(1), st.integers(1, 24), st.integers(1, 24)),
    )
)
def test_connected_components_property(masks: np.ndarray) -> None:
    assert_matches_scipy(torch.from_numpy(masks))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_connected_components_cuda_matches_cpu() -> None:
    generator = torch.Generator().manual_seed(0)
    masks = torch.cat([torch.rand(8, 1, 256, 256, generator=generator) < 0.5,
                       torch.from_numpy(spiral(256))[None, None]])
    labels, areas = connected_components(masks)
    cuda_labels, cuda_areas = connected_components(masks.cuda())
    assert torch.equal(cuda_labels.cpu(), labels) and torch.equal(cuda_areas.cpu(), areas)


# ---------------------------------------------------------------------------------------------
# hole filling and sprinkle removal


def test_fill_holes_and_remove_sprinkles_by_hand() -> None:
    logits = torch.full((1, 1, 12, 12), -1.0)
    logits[0, 0, 1:8, 1:8] = 2.0
    logits[0, 0, 3:5, 3:5] = -3.0  # a 4-pixel hole
    logits[0, 0, 10, 10] = 1.0  # a 1-pixel sprinkle
    filled = fill_holes(logits, max_hole_area=4)
    assert (filled[0, 0, 3:5, 3:5] == 10.0).all()
    assert torch.equal(fill_holes(logits, max_hole_area=3), logits)
    cleaned = remove_sprinkles(logits, max_sprinkle_area=1, threshold=0.5)
    assert cleaned[0, 0, 10, 10] == 0.5 - 10.0
    assert torch.equal(torch.where(cleaned != logits, 1, 0).sum(), torch.tensor(1))
    small = find_small_components(logits > 0, 1)
    assert small.sum() == 1 and small[0, 0, 10, 10]
    assert torch.equal(fill_holes(logits, 0), logits)


def scipy_get_connected_components(mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Stand-in for the reference's CUDA-only kernel: (labels, areas), 8-connectivity."""
    labels, areas = [], []
    for image in mask.to(torch.uint8).cpu().numpy():
        image_labels, count = ndimage.label(image[0], structure=EIGHT_CONNECTED)
        sizes = np.bincount(image_labels.ravel(), minlength=count + 1)
        labels.append(image_labels[None])
        areas.append(np.where(image_labels > 0, sizes[image_labels], 0)[None])
    return (torch.from_numpy(np.stack(labels)).int(), torch.from_numpy(np.stack(areas)).int())


@pytest.fixture
def reference_misc(monkeypatch: pytest.MonkeyPatch):
    misc = import_reference("sam2.utils.misc")
    monkeypatch.setattr(misc, "get_connected_components", scipy_get_connected_components)
    return misc


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:FutureWarning")
@pytest.mark.parametrize(
    "max_hole_area, max_sprinkle_area, threshold",
    [(8.0, 0.0, 0.0), (0.0, 8.0, 0.0), (8.0, 8.0, 0.0), (40.0, 5.0, 0.3), (1e4, 1e4, -0.2),
     (0.0, 0.0, 0.0)],
)
def test_postprocess_low_res_masks_parity(
    reference_misc, max_hole_area: float, max_sprinkle_area: float, threshold: float
) -> None:
    transforms = import_reference("sam2.utils.transforms")
    reference = transforms.SAM2Transforms(
        resolution=1024, mask_threshold=threshold, max_hole_area=max_hole_area,
        max_sprinkle_area=max_sprinkle_area,
    )
    logits = smooth_logits((2, 3, 64, 64), seed=int(max_hole_area + max_sprinkle_area))
    ours = postprocess_low_res_masks(logits, max_hole_area, max_sprinkle_area, threshold)
    # Same output size: the reference's bilinear resize is the identity.
    want = reference.postprocess_masks(logits, (64, 64))
    assert ours.dtype == torch.float32
    torch.testing.assert_close(ours, want, rtol=0, atol=0)
    want_large = reference.postprocess_masks(logits, (100, 90))
    torch.testing.assert_close(
        F.interpolate(ours, (100, 90), mode="bilinear", align_corners=False), want_large,
        rtol=0, atol=0,
    )
    if max_hole_area > 0 or max_sprinkle_area > 0:
        assert not torch.equal(ours, logits)


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:FutureWarning")
def test_postprocess_low_res_masks_finds_sprinkles_before_filling_holes(reference_misc) -> None:
    """A small ring around a one-pixel hole: the hole is filled, yet the ring (small on the input
    logits) is still removed, leaving the filled pixel alone, as in the reference."""
    transforms = import_reference("sam2.utils.transforms")
    logits = torch.full((1, 1, 10, 10), -2.0)
    logits[0, 0, 3:6, 3:6] = 1.5
    logits[0, 0, 4, 4] = -1.0
    reference = transforms.SAM2Transforms(1024, 0.0, max_hole_area=1, max_sprinkle_area=8)
    want = reference.postprocess_masks(logits, (10, 10))
    ours = postprocess_low_res_masks(logits, 1, 8)
    torch.testing.assert_close(ours, want, rtol=0, atol=0)
    assert ours[0, 0, 4, 4] == 10.0 and ours[0, 0, 3, 3] == -10.0
    assert torch.equal(ours > 0, logits == -1.0)


def test_postprocess_low_res_masks_rejects_3d() -> None:
    with pytest.raises(ValueError, match="N, C, H, W"):
        postprocess_low_res_masks(torch.zeros(3, 8, 8), 1.0, 1.0)


@pytest.mark.parametrize("max_area", [1, 8, 50])
def test_fill_holes_in_mask_scores_parity(reference_misc, max_area: int) -> None:
    logits = smooth_logits((4, 1, 48, 64), seed=max_area)
    want = reference_misc.fill_holes_in_mask_scores(logits, max_area)
    ours = fill_holes_in_mask_scores(logits, max_area)
    torch.testing.assert_close(ours, want, rtol=0, atol=0)
    assert not torch.equal(ours, logits)
    with pytest.raises(ValueError, match="positive"):
        fill_holes_in_mask_scores(logits, 0)


# ---------------------------------------------------------------------------------------------
# non-overlapping constraints


@pytest.mark.parametrize("num_objects", [1, 2, 5])
def test_apply_non_overlapping_constraints_parity(num_objects: int) -> None:
    sam2_base = import_reference("sam2.modeling.sam2_base")
    generator = torch.Generator().manual_seed(num_objects)
    # Small integers give many ties, which must go to the same object as in the reference.
    logits = torch.randint(-12, 4, (num_objects, 1, 32, 32), generator=generator).float()
    logits[:, :, :4] = torch.randn(num_objects, 1, 4, 32, generator=generator) * 20
    want = sam2_base.SAM2Base._apply_non_overlapping_constraints(None, logits)
    ours = apply_non_overlapping_constraints(logits)
    torch.testing.assert_close(ours, want, rtol=0, atol=0)
    if num_objects == 1:
        assert ours is logits
