"""The entry points of Meta's ``sam2`` package, over sam2kit's own builder and predictors.

Code written against the official package runs with its imports changed::

    from sam2kit.compat import build_sam2, build_sam2_video_predictor, SAM2ImagePredictor
    from sam2kit.compat import SAM2AutomaticMaskGenerator, SAM2VideoPredictor

The builders take the official arguments: ``config_file`` an official config name (any of the
eight, ``configs/sam2.1/sam2.1_hiera_l.yaml``, ``sam2_hiera_t.yaml`` ...), an official YAML file or
a sam2kit preset; ``hydra_overrides_extra`` ``++model.<option>=<value>`` for the model's and the
video predictor's options; ``apply_postprocessing`` sets what it sets officially, after the
overrides. They return sam2kit's objects: a :class:`SAM2Model`, or thin subclasses of the
predictors with the official ``from_pretrained(model_id, **kwargs)``. Unsupported options raise.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import build
from .config import HUB_IDS, SAM2Config
from .modeling.sam2 import SAM2Model
from .predict.automatic import MaskGenerator
from .predict.image import ImagePredictor
from .predict.video import VideoPredictor
from .predict.video_state import InferenceState

__all__ = ["build_sam2", "build_sam2_video_predictor", "build_sam2_hf", "build_sam2_video_predictor_hf",
           "SAM2ImagePredictor", "SAM2VideoPredictor", "SAM2AutomaticMaskGenerator", "official_config"]

#: The video predictor's options (which official configs and overrides keep under ``model``) and
#: the official predictor's defaults for them.
VIDEO_OPTIONS: dict[str, Any] = {"fill_hole_area": 0, "non_overlap_masks": False,
                                 "clear_non_cond_mem_around_input": False, "add_all_frames_to_correct_as_cond": False}
#: Config fields that official YAMLs set inside sub-sections (trunk, neck, memory attention /
#: encoder), not as ``model.<name>``: an override cannot reach them by that name.
_NESTED_FIELDS = {"name", "trunk", "d_model", "mem_dim", "fpn_top_down_levels", "scalp", "memory_attention_layers",
                  "memory_attention_heads", "memory_attention_ffn_dim", "rope_theta", "memory_attention_dropout"}
#: Speed options of the official builders (torch.compile); sam2kit runs its own fast paths instead.
_IGNORED_OPTIONS = {"compile_image_encoder"}
#: What ``apply_postprocessing=True`` sets (after the user's overrides, as the official builders).
_POSTPROCESSING = {"dynamic_multimask_via_stability": True, "dynamic_multimask_stability_delta": 0.05,
                   "dynamic_multimask_stability_thresh": 0.98}
_VIDEO_POSTPROCESSING = {"binarize_mask_from_pts_for_mem_enc": True, "fill_hole_area": 8}
#: The official model class defaults of those options (what a config without them gives).
_WITHOUT_POSTPROCESSING = {"dynamic_multimask_via_stability": False}
_VIDEO_WITHOUT_POSTPROCESSING = {"binarize_mask_from_pts_for_mem_enc": False, "fill_hole_area": 0}
_BUILD_ARGS = ("device", "mode", "hydra_overrides_extra", "apply_postprocessing")


# ----------------------------------------------------------------------------- configs
def official_config(
    config_file: str | Path | SAM2Config,
    hydra_overrides_extra: Sequence[str] = (),
    apply_postprocessing: bool = True,
    video: bool = False,
) -> tuple[SAM2Config, dict[str, Any]]:
    """The model config and video-predictor options that the official builder would give.

    Returns:
        ``(config, video_options)``; ``video_options`` is empty unless ``video``.
    Raises:
        ValueError: an unknown config, or an override that is malformed, names an unknown option, or
            gives it a value of the wrong type.
    """
    try:
        config = build.resolve_config(config_file)
    except (KeyError, FileNotFoundError):
        raise ValueError(
            f"unknown config_file {str(config_file)!r}: give an official config (configs/sam2.1/sam2.1_hiera_l.yaml, "
            "sam2_hiera_t.yaml ...: sam2 or sam2.1, t / s / b+ / l), an existing YAML file, or a sam2kit preset"
        ) from None
    changes: dict[str, Any] = dict(_WITHOUT_POSTPROCESSING) if not apply_postprocessing else {}
    options: dict[str, Any] = {}
    if video:
        options.update(VIDEO_OPTIONS)
        if not apply_postprocessing:
            _split(_VIDEO_WITHOUT_POSTPROCESSING, changes, options)
    if isinstance(hydra_overrides_extra, str):
        raise ValueError("hydra_overrides_extra must be a list of strings such as ['++model.image_size=512']")
    for override in hydra_overrides_extra:
        name, value = _parse_override(override)
        if name in _IGNORED_OPTIONS:
            continue
        if name in VIDEO_OPTIONS:
            if not video:
                raise ValueError(f"override {override!r}: {name} is an option of the video predictor "
                                 "(build_sam2_video_predictor), not of build_sam2")
            options[name] = _checked(name, value, VIDEO_OPTIONS[name], override)
        else:
            changes[name] = _checked(name, value, getattr(config, name), override)
    if apply_postprocessing:
        changes.update(_POSTPROCESSING)
        if video:
            _split(_VIDEO_POSTPROCESSING, changes, options)
    try:
        return config.replace(**changes), options
    except ValueError as error:
        raise ValueError(f"hydra_overrides_extra: {error}") from None


def _split(values: dict[str, Any], changes: dict[str, Any], options: dict[str, Any]) -> None:
    for name, value in values.items():
        (options if name in VIDEO_OPTIONS else changes)[name] = value


def _override_names() -> list[str]:
    fields = [f.name for f in dataclasses.fields(SAM2Config) if f.name not in _NESTED_FIELDS]
    return sorted(fields + list(VIDEO_OPTIONS))


def _parse_override(override: Any) -> tuple[str, Any]:
    """``"++model.image_size=512"`` (also ``+model.`` / ``model.``, and
    ``model.sam_mask_decoder_extra_args.<name>``) -> ``("image_size", 512)``."""
    import yaml

    text = str(override).strip()
    key, sep, raw = text.partition("=")
    key = key.strip().lstrip("+")
    if not sep or not key.startswith("model."):
        raise ValueError(f"override {text!r}: sam2kit.compat accepts overrides of the form ++model.<option>=<value>")
    name = key.removeprefix("model.").removeprefix("sam_mask_decoder_extra_args.")
    if name not in _override_names() and name not in _IGNORED_OPTIONS:
        raise ValueError(
            f"override {text!r}: unsupported option {name!r}; sam2kit.compat can set model.<option> for "
            f"{', '.join(_override_names())}"
        )
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        raise ValueError(f"override {text!r}: cannot read the value {raw!r}") from None
    return name, value


def _checked(name: str, value: Any, current: Any, override: str) -> Any:
    """``value`` if it has the type of the option's ``current`` value (lists become tuples)."""
    if isinstance(current, tuple) and isinstance(value, list):
        value = tuple(value)
    if isinstance(current, bool):
        valid = isinstance(value, bool)
    elif isinstance(current, int):
        valid = isinstance(value, int) and not isinstance(value, bool)
    elif isinstance(current, float):
        valid = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if valid else value
    else:
        valid = isinstance(value, type(current))
    if not valid:
        raise ValueError(f"override {override!r}: {name} takes a {type(current).__name__}, got {value!r}")
    return value


# ----------------------------------------------------------------------------- builders
def build_sam2(
    config_file: str | Path | SAM2Config,
    ckpt_path: str | Path | None = None,
    device: str | torch.device = "cuda",
    mode: str = "eval",
    hydra_overrides_extra: Sequence[str] = (),
    apply_postprocessing: bool = True,
    **kwargs: Any,
) -> SAM2Model:
    """The official ``build_sam2``: a :class:`SAM2Model` for ``SAM2ImagePredictor`` /
    ``SAM2AutomaticMaskGenerator``.

    Args:
        config_file: official config name or YAML file, or a sam2kit preset (see the module docstring).
        ckpt_path: official checkpoint; without it, random weights.
        device: as the official default, ``"cuda"``; ``"cpu"``, ``"mps"`` ...
        mode: ``"eval"`` or ``"train"``.
        hydra_overrides_extra: ``++model.<option>=<value>`` strings.
        apply_postprocessing: dynamic multimask fallback via stability (the official default).
    Raises:
        ValueError: unknown config, bad override, mode or device. TypeError: an unsupported keyword.
        sam2kit's checkpoint errors: a checkpoint that does not fit the config.
    """
    _reject_extra("build_sam2", kwargs)
    _check_mode(mode)
    config, _ = official_config(config_file, hydra_overrides_extra, apply_postprocessing)
    return _with_mode(build.build_model(config, checkpoint=ckpt_path, device=device), mode)


def build_sam2_video_predictor(
    config_file: str | Path | SAM2Config,
    ckpt_path: str | Path | None = None,
    device: str | torch.device = "cuda",
    mode: str = "eval",
    hydra_overrides_extra: Sequence[str] = (),
    apply_postprocessing: bool = True,
    vos_optimized: bool = False,
    **kwargs: Any,
) -> SAM2VideoPredictor:
    """The official ``build_sam2_video_predictor``: a :class:`SAM2VideoPredictor`.

    Arguments as :func:`build_sam2`; ``apply_postprocessing`` also binarises click masks for the
    memory encoder and fills holes up to 8 pixels (sam2kit fills them on CPU too). ``vos_optimized``
    (the official torch.compile'd predictor, same results) is accepted and needs nothing here:
    sam2kit's predictor batches objects and keeps memory bounded on its own.
    Only ``mode="eval"`` is supported (a predictor does inference).
    """
    _reject_extra("build_sam2_video_predictor", kwargs)
    if mode != "eval":
        raise ValueError(f"mode {mode!r}: the video predictor runs in eval mode only (train with `sam2kit train`)")
    config, options = official_config(config_file, hydra_overrides_extra, apply_postprocessing, video=True)
    model = build.build_model(config, checkpoint=ckpt_path, device=device)
    return SAM2VideoPredictor(model, **options)


def build_sam2_hf(model_id: str, **kwargs: Any) -> SAM2Model:
    """The official ``build_sam2_hf``: :func:`build_sam2` on a Hugging Face hub id
    (``"facebook/sam2.1-hiera-large"`` ...), whose checkpoint is downloaded once and cached.
    ``kwargs``: those of :func:`build_sam2` but ``config_file`` / ``ckpt_path``."""
    _reject_extra("build_sam2_hf", {k: v for k, v in kwargs.items() if k not in _BUILD_ARGS})
    _check_mode(kwargs.get("mode", "eval"))
    config, _ = official_config(_hub_config(model_id), kwargs.get("hydra_overrides_extra", ()),
                                kwargs.get("apply_postprocessing", True))
    return _with_mode(_from_hub(model_id, config, kwargs.get("device", "cuda")), kwargs.get("mode", "eval"))


def build_sam2_video_predictor_hf(model_id: str, **kwargs: Any) -> SAM2VideoPredictor:
    """The official ``build_sam2_video_predictor_hf``: :func:`build_sam2_video_predictor` on a hub id."""
    _reject_extra("build_sam2_video_predictor_hf",
                  {k: v for k, v in kwargs.items() if k not in (*_BUILD_ARGS, "vos_optimized")})
    if kwargs.get("mode", "eval") != "eval":
        raise ValueError(f"mode {kwargs['mode']!r}: the video predictor runs in eval mode only")
    config, options = official_config(_hub_config(model_id), kwargs.get("hydra_overrides_extra", ()),
                                      kwargs.get("apply_postprocessing", True), video=True)
    return SAM2VideoPredictor(_from_hub(model_id, config, kwargs.get("device", "cuda")), **options)


def _hub_config(model_id: str) -> str:
    if model_id not in HUB_IDS:
        raise ValueError(f"unknown model_id {model_id!r}; the official ones: {', '.join(sorted(HUB_IDS))}")
    return HUB_IDS[model_id][0]


def _from_hub(model_id: str, config: SAM2Config, device: str | torch.device) -> SAM2Model:
    """The hub checkpoint of ``model_id`` in a model of ``config`` (built again only when
    overrides changed the preset's config)."""
    model = build.from_pretrained(model_id, device=device)
    if model.config == config:
        return model
    rebuilt = build.build_model(config, device=device)
    rebuilt.load_state_dict(model.state_dict())
    return rebuilt


def _check_mode(mode: str) -> None:
    if mode not in ("eval", "train"):
        raise ValueError(f"mode must be 'eval' or 'train', got {mode!r}")


def _with_mode(model: SAM2Model, mode: str) -> SAM2Model:
    return model.train() if mode == "train" else model.eval()


def _reject_extra(function: str, kwargs: dict[str, Any]) -> None:
    if kwargs:
        raise TypeError(f"{function}() got unsupported option(s) {', '.join(sorted(kwargs))} "
                        "(sam2kit.compat takes the official arguments that change results)")


def _split_kwargs(kwargs: dict[str, Any], own: Sequence[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Official ``from_pretrained`` kwargs -> (builder kwargs, the class's own kwargs)."""
    builder = {k: v for k, v in kwargs.items() if k in _BUILD_ARGS}
    mine = {k: v for k, v in kwargs.items() if k in own}
    _reject_extra("from_pretrained", {k: v for k, v in kwargs.items() if k not in builder and k not in mine})
    return builder, mine


# ----------------------------------------------------------------------------- predictors
class SAM2ImagePredictor(ImagePredictor):
    """sam2kit's :class:`ImagePredictor` under the official name, with the official
    ``from_pretrained(model_id, **kwargs)``; :meth:`predict` and :meth:`predict_batch` return
    binary masks as float32 0 / 1, as the official predictor does (sam2kit's own returns bool)."""

    def __init__(
        self,
        sam_model: SAM2Model,
        mask_threshold: float = 0.0,
        max_hole_area: float = 0.0,
        max_sprinkle_area: float = 0.0,
        **kwargs: Any,
    ) -> None:
        _reject_extra("SAM2ImagePredictor", kwargs)
        if not isinstance(sam_model, SAM2Model):
            raise TypeError(f"sam_model must be a sam2kit SAM2Model (from build_sam2), got {type(sam_model).__name__}")
        super().__init__(sam_model, mask_threshold, max_hole_area, max_sprinkle_area)

    @classmethod
    def from_pretrained(  # type: ignore[override]  # the official signature
        cls, model_id: str = "facebook/sam2.1-hiera-tiny", **kwargs: Any
    ) -> SAM2ImagePredictor:
        """The predictor on the official hub checkpoint ``model_id``; ``kwargs`` are
        :func:`build_sam2`'s (``device`` defaults to ``"cuda"`` there) and the predictor's."""
        builder, mine = _split_kwargs(kwargs, ("mask_threshold", "max_hole_area", "max_sprinkle_area"))
        return cls(build_sam2_hf(model_id, **builder), **mine)

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
        """:meth:`ImagePredictor.predict` with the official output layout (see :func:`_official_layout`)."""
        return _official_layout(*super().predict(
            point_coords, point_labels, box, mask_input, multimask_output, return_logits, normalize_coords
        ))

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
        """:meth:`ImagePredictor.predict_batch` with the official output layout, per image."""
        outputs = super().predict_batch(point_coords_batch, point_labels_batch, box_batch, mask_input_batch,
                                        multimask_output, return_logits, normalize_coords)
        per_image = [_official_layout(*parts) for parts in zip(*outputs, strict=True)]
        return [o[0] for o in per_image], [o[1] for o in per_image], [o[2] for o in per_image]


def _official_layout(
    masks: np.ndarray, scores: np.ndarray, logits: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The official predictor's outputs: binary masks as float32 0 / 1, and the prompt batch axis
    dropped whenever it holds one prompt (one box given as ``(1, 4)`` gives ``(C, H, W)`` masks)."""
    if masks.dtype == bool:
        masks = masks.astype(np.float32)
    if masks.ndim == 4 and masks.shape[0] == 1:
        masks, scores, logits = masks[0], scores[0], logits[0]
    return masks, scores, logits


class SAM2VideoPredictor(VideoPredictor):
    """sam2kit's :class:`VideoPredictor` under the official name: the official defaults of its
    options (no hole filling unless the builder's post-processing asks for it), the official
    ``from_pretrained(model_id, **kwargs)`` and ``propagate_in_video_preflight``."""

    def __init__(
        self,
        model: SAM2Model,
        fill_hole_area: int = 0,
        non_overlap_masks: bool = False,
        clear_non_cond_mem_around_input: bool = False,
        add_all_frames_to_correct_as_cond: bool = False,
        show_progress: bool = True,
    ) -> None:
        super().__init__(model, fill_hole_area, non_overlap_masks, clear_non_cond_mem_around_input,
                         add_all_frames_to_correct_as_cond, show_progress)

    @classmethod
    def from_pretrained(  # type: ignore[override]  # the official signature
        cls, model_id: str = "facebook/sam2.1-hiera-tiny", **kwargs: Any
    ) -> SAM2VideoPredictor:
        """:func:`build_sam2_video_predictor_hf` (``kwargs`` are its own)."""
        return build_sam2_video_predictor_hf(model_id, **kwargs)

    @torch.inference_mode()
    def propagate_in_video_preflight(self, inference_state: InferenceState) -> None:
        """Turn the prompts given so far into memories (``propagate_in_video`` does it too)."""
        self.engine.commit_prompts(inference_state)


class SAM2AutomaticMaskGenerator(MaskGenerator):
    """sam2kit's :class:`MaskGenerator` under the official name, with the official
    ``from_pretrained(model_id, **kwargs)``."""

    @classmethod
    def from_pretrained(
        cls, model_id: str = "facebook/sam2.1-hiera-tiny", **kwargs: Any
    ) -> SAM2AutomaticMaskGenerator:
        """The generator on the official hub checkpoint ``model_id``; ``kwargs`` are
        :func:`build_sam2`'s and the generator's parameters."""
        import inspect

        own = [name for name in inspect.signature(MaskGenerator.__init__).parameters if name not in ("self", "model")]
        builder, mine = _split_kwargs(kwargs, own)
        return cls(build_sam2_hf(model_id, **builder), **mine)
