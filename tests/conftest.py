"""Shared test helpers: the reference package, seeded model pairs (reference + sam2kit on the same
random weights), real test photographs, and parity tolerances.

Use from a test module either through the fixtures (``sam2_reference``, ``model_pair_factory``,
``test_image``) or by importing the helpers at module level (``from conftest import make_model_pair``;
pytest puts ``tests/`` on ``sys.path``, and `pytest_collectstart` below makes ``conftest`` name the
nearest conftest.py of the module being imported, since several folders have one).

Parity model pairs: the reference is built with ``sam2.build_sam`` on its random init after
``torch.manual_seed(seed)``, every parameter gets seeded noise (``+ 0.01 * randn``) so that no mask
decision sits on a knife edge, the state dict is saved in the official checkpoint layout
(``{"model": state_dict}``) and our model is built from that file with strict key checks.
Pairs are cached per argument tuple, so a session builds each only once.
"""

from __future__ import annotations

import atexit
import hashlib
import importlib.metadata
import importlib.util
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml


# ----------------------------------------------------------------------------- `from conftest import`
def pytest_collectstart(collector: pytest.Collector) -> None:
    """Before a test module is imported, point ``sys.modules["conftest"]`` at the conftest.py
    nearest to it: several test folders have one and pytest leaves the last one loaded there."""
    if not isinstance(collector, pytest.Module):
        return
    loaded = {}
    for plugin in collector.config.pluginmanager.get_plugins():
        path = getattr(plugin, "__file__", None)
        if path and Path(path).name == "conftest.py":
            loaded[Path(path).resolve().parent] = plugin
    for folder in Path(collector.path).resolve().parents:
        if folder in loaded:
            sys.modules["conftest"] = loaded[folder]
            return


# ----------------------------------------------------------------------------- tolerances (fp32)
#: max |Δ| of mask logits (low-res and upsampled).
LOGIT_ATOL = 1e-3
#: max |Δ| of predicted IoUs (and other scores in [0, 1]).
IOU_ATOL = 1e-4
#: largest fraction of binarised mask pixels allowed to differ.
MASK_MISMATCH_FRACTION = 1e-4

REFERENCE_VERSION = "1.1.0"
REFERENCE_MISSING = (
    "reference package sam2==1.1.0 is not installed (pip install 'sam2==1.1.0'; "
    "SAM2_BUILD_CUDA=0 builds it without the CUDA extension)"
)

#: sam2kit preset size -> the size suffix of the official YAML file names.
_YAML_SIZE = {"tiny": "t", "small": "s", "base_plus": "b+", "large": "l"}


# ----------------------------------------------------------------------------- the reference
def _reference_version() -> str | None:
    if importlib.util.find_spec("sam2") is None:
        return None
    try:
        return importlib.metadata.version("sam2")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def reference_available() -> bool:
    """Whether the reference package ``sam2==1.1.0`` is installed (checked without importing it)."""
    return _reference_version() == REFERENCE_VERSION


def require_reference() -> Any:
    """Import and return ``sam2``; when it is missing (or another version), fail under CI (env
    ``CI`` set) and skip elsewhere."""
    version = _reference_version()
    if version != REFERENCE_VERSION:
        reason = REFERENCE_MISSING if version is None else f"{REFERENCE_MISSING}; found sam2 {version}"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    import sam2

    return sam2


@pytest.fixture(scope="module")
def one_torch_thread() -> Iterator[None]:
    """Small models run fastest on one intra-op thread (no oversubscription on busy CI machines):
    ``pytestmark = pytest.mark.usefixtures("one_torch_thread")`` in a module."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def sam2_reference() -> Any:
    """The reference package module ``sam2`` (skips, or fails under CI, when not installed)."""
    return require_reference()


def reference_yaml(config_name: str) -> str:
    """Our preset name (``"sam2.1_hiera_tiny"``) -> the reference's Hydra config name
    (``"configs/sam2.1/sam2.1_hiera_t.yaml"``)."""
    version, _, size = config_name.partition("_hiera_")
    if version not in ("sam2", "sam2.1") or size not in _YAML_SIZE:
        raise KeyError(f"not a preset name: {config_name!r}")
    return f"configs/{version}/{version}_hiera_{_YAML_SIZE[size]}.yaml"


# ----------------------------------------------------------------------------- model pairs
@dataclass
class ModelPair:
    """The reference and sam2kit on the same seeded random weights.

    Attributes:
        ref: reference ``SAM2Base`` (a ``SAM2VideoPredictor`` when built with ``video=True``), eval mode.
        ours: :class:`sam2kit.modeling.sam2.SAM2Model` loaded from ``checkpoint``, eval mode.
        checkpoint: the official-format ``.pt`` file (``{"model": state_dict}``) both share.
        config: our :class:`sam2kit.config.SAM2Config` (with the ``image_size`` override).
    """

    ref: Any
    ours: Any
    checkpoint: Path
    config: Any


_TMP_DIR: Path | None = None


def _tmp_dir() -> Path:
    """A per-process temporary folder for checkpoints, removed at exit."""
    global _TMP_DIR
    if _TMP_DIR is None:
        _TMP_DIR = Path(tempfile.mkdtemp(prefix="sam2kit-tests-"))
        atexit.register(shutil.rmtree, _TMP_DIR, True)
    return _TMP_DIR


@cache
def make_model_pair(
    config_name: str,
    image_size: int,
    seed: int = 0,
    obj_score_bias: float = 0.0,
    video: bool = False,
    reference_overrides: tuple[str, ...] = (),
) -> ModelPair:
    """Build (once per argument tuple) the reference and sam2kit models on the same weights.

    Args:
        config_name: our preset name, e.g. ``"sam2.1_hiera_tiny"`` or ``"sam2_hiera_small"``.
        image_size: model input size on both sides (a multiple of 32; 1024 is the official one).
        seed: seeds both the reference's random init and the added parameter noise.
        obj_score_bias: added to ``sam_mask_decoder.pred_obj_score_head.layers.2.bias`` so that
            objects reliably "appear" (random weights give object scores ~0, a knife edge).
        video: build the reference with ``build_sam2_video_predictor`` (hole filling off).
        reference_overrides: more Hydra overrides of the reference (``"++model.NAME=VALUE"``); the
            ``model.NAME`` ones that are config fields of ours are set on our side too.
    """
    require_reference()
    from sam2.build_sam import build_sam2, build_sam2_video_predictor

    from sam2kit.build import build_model
    from sam2kit.config import get_config

    overrides = [f"++model.image_size={image_size}", *reference_overrides]
    torch.manual_seed(seed)
    if video:
        ref = build_sam2_video_predictor(
            reference_yaml(config_name),
            None,
            device="cpu",
            hydra_overrides_extra=overrides + ["++model.fill_hole_area=0"],
        )
    else:
        ref = build_sam2(reference_yaml(config_name), None, device="cpu", hydra_overrides_extra=overrides)
    generator = torch.Generator().manual_seed(seed + 1_000_003)
    with torch.no_grad():
        for param in ref.parameters():
            param.add_(0.01 * torch.randn(param.shape, generator=generator, dtype=param.dtype))
        if obj_score_bias:
            ref.sam_mask_decoder.pred_obj_score_head.layers[2].bias.add_(obj_score_bias)
    ref.eval()
    tag = f"{config_name}-{image_size}-{seed}-{obj_score_bias:g}-{'video' if video else 'image'}"
    if reference_overrides:
        tag += "-" + hashlib.sha1("|".join(reference_overrides).encode()).hexdigest()[:8]
    checkpoint = _tmp_dir() / f"{tag}.pt"
    torch.save({"model": ref.state_dict()}, checkpoint)
    config = get_config(config_name).replace(image_size=image_size)
    for override in reference_overrides:
        name, _, value = override.removeprefix("++model.").partition("=")
        if hasattr(config, name):
            config = config.replace(**{name: yaml.safe_load(value)})
    ours = build_model(config, checkpoint=checkpoint, device="cpu")
    return ModelPair(ref=ref, ours=ours, checkpoint=checkpoint, config=config)


@pytest.fixture(scope="session")
def model_pair_factory(sam2_reference: Any) -> Callable[..., ModelPair]:
    """:func:`make_model_pair` (cached), for tests that prefer fixtures to imports."""
    return make_model_pair


# ----------------------------------------------------------------------------- images
@cache
def _photo(name: str) -> np.ndarray:
    skimage_data = pytest.importorskip("skimage.data", reason="scikit-image provides the test photographs")
    image = getattr(skimage_data, name)()
    image.setflags(write=False)
    return image


def make_test_image(height: int, width: int) -> np.ndarray:
    """A real photograph (scikit-image's astronaut, or coffee for wide images) scaled to cover
    ``height x width`` and centre-cropped: ``(height, width, 3)`` uint8 RGB."""
    from PIL import Image

    source = _photo("coffee" if width > 1.2 * height else "astronaut")
    src_h, src_w = source.shape[:2]
    scale = max(height / src_h, width / src_w)
    new_h, new_w = max(height, round(src_h * scale)), max(width, round(src_w * scale))
    resized = np.asarray(Image.fromarray(source).resize((new_w, new_h), Image.BICUBIC))
    top, left = (new_h - height) // 2, (new_w - width) // 2
    return np.ascontiguousarray(resized[top : top + height, left : left + width])


@pytest.fixture
def test_image() -> np.ndarray:
    """scikit-image's astronaut: (512, 512, 3) uint8 RGB (a fresh copy per test)."""
    return _photo("astronaut").copy()


# ----------------------------------------------------------------------------- comparisons
def _np(value: Any) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu()
        return value.numpy() if value.dtype == torch.bool else value.float().numpy()
    return np.asarray(value)


def max_abs_diff(ref: Any, ours: Any) -> float:
    """max |ref - ours| after checking that the shapes agree."""
    ref_arr, ours_arr = _np(ref).astype(np.float64), _np(ours).astype(np.float64)
    assert ref_arr.shape == ours_arr.shape, f"shape {ours_arr.shape} != reference {ref_arr.shape}"
    return float(np.abs(ref_arr - ours_arr).max()) if ref_arr.size else 0.0


def mask_mismatch_fraction(ref: Any, ours: Any, threshold: float = 0.0) -> float:
    """Fraction of pixels where binarised masks differ (float inputs are thresholded at ``> threshold``)."""
    ref_arr, ours_arr = _np(ref), _np(ours)
    assert ref_arr.shape == ours_arr.shape, f"shape {ours_arr.shape} != reference {ref_arr.shape}"
    ref_bin = ref_arr if ref_arr.dtype == bool else ref_arr > threshold
    ours_bin = ours_arr if ours_arr.dtype == bool else ours_arr > threshold
    return float((ref_bin != ours_bin).mean()) if ref_bin.size else 0.0


#: Worst deltas seen in this session, per quantity (printed in the terminal summary).
MEASURED: dict[str, float] = {}


def _record(kind: str, value: float) -> None:
    MEASURED[kind] = max(MEASURED.get(kind, 0.0), value)


def assert_logits_close(ref: Any, ours: Any, what: str = "logits", atol: float = LOGIT_ATOL) -> float:
    delta = max_abs_diff(ref, ours)
    _record("logits max|Δ|", delta)
    assert delta <= atol, f"{what}: max |Δ| {delta:.3g} > {atol:g}"
    return delta


def assert_scores_close(ref: Any, ours: Any, what: str = "IoU predictions", atol: float = IOU_ATOL) -> float:
    delta = max_abs_diff(ref, ours)
    _record("IoU max|Δ|", delta)
    assert delta <= atol, f"{what}: max |Δ| {delta:.3g} > {atol:g}"
    return delta


def assert_masks_match(ref: Any, ours: Any, what: str = "masks", max_fraction: float = MASK_MISMATCH_FRACTION) -> float:
    fraction = mask_mismatch_fraction(ref, ours)
    _record("mask mismatch fraction", fraction)
    assert fraction <= max_fraction, f"{what}: {fraction:.3%} of pixels differ (> {max_fraction:.3%})"
    return fraction


def assert_features_close(ref: Any, ours: Any, what: str = "features", atol: float = LOGIT_ATOL) -> float:
    """Feature maps / embeddings: same absolute tolerance as logits."""
    delta = max_abs_diff(ref, ours)
    _record("features max|Δ|", delta)
    assert delta <= atol, f"{what}: max |Δ| {delta:.3g} > {atol:g}"
    return delta


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if MEASURED:
        terminalreporter.write_sep("-", "worst parity deltas measured (fp32)")
        for kind, value in sorted(MEASURED.items()):
            terminalreporter.write_line(f"{kind}: {value:.3g}")


def scipy_connected_components(mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Stand-in for the reference's missing CUDA extension: 8-connected labels and per-pixel
    component areas of (N, 1, H, W) binary masks."""
    from scipy import ndimage

    binary = mask.to(torch.bool).cpu().numpy()
    labels = np.zeros(binary.shape, dtype=np.int32)
    areas = np.zeros(binary.shape, dtype=np.int32)
    for index in range(binary.shape[0]):
        label_map, _ = ndimage.label(binary[index, 0], structure=np.ones((3, 3), dtype=bool))
        counts = np.bincount(label_map.ravel())
        counts[0] = 0
        labels[index, 0], areas[index, 0] = label_map, counts[label_map]
    return torch.from_numpy(labels), torch.from_numpy(areas)
