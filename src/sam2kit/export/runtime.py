"""Running an export with onnxruntime alone: its sessions, and :class:`OnnxImagePredictor`.

:class:`OnnxImagePredictor` is :class:`~sam2kit.predict.image.ImagePredictor` over the exported
graphs: the predictor's own input checks, prompt assembly, resizing and mask post-processing run
unchanged on an :class:`OnnxModel`, which answers the few calls the predictor makes of its model
(the image features, the prompt encoder, the mask decoder) with onnxruntime. No torch module runs.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch

from ..modeling.mask_decoder import DecoderOutput
from ..modeling.sam2 import SAM2Model
from ..modeling.structures import FrameFeatures
from ..predict.image import ImagePredictor
from .manifest import read_manifest
from .onnx_export import require_onnx

__all__ = ["OnnxImagePredictor", "OnnxModel", "load_sessions"]

#: The padding point the model appends to prompts without a box: (0, 0), label -1.
PAD_LABEL = -1


def load_sessions(folder: str | os.PathLike, num_threads: int | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """The manifest of the export in ``folder`` and one onnxruntime CPU session per graph.

    ``num_threads``: intra-op threads of each session (default: onnxruntime's choice).
    Raises:
        MissingExportDependency: onnxruntime is not installed.
        FileNotFoundError / ValueError: not a readable export (see :func:`read_manifest`).
    """
    require_onnx("onnxruntime")
    import onnxruntime

    manifest = read_manifest(folder)
    options = onnxruntime.SessionOptions()
    if num_threads is not None:
        options.intra_op_num_threads = num_threads
        options.inter_op_num_threads = 1
    sessions = {
        name: onnxruntime.InferenceSession(
            str(Path(folder).expanduser() / entry["file"]), options, providers=["CPUExecutionProvider"]
        )
        for name, entry in manifest["graphs"].items()
    }
    return manifest, sessions


def _numpy(tensor: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(tensor.detach().cpu().numpy())


class _PromptTokens:
    """The prompt encoder's place in :class:`OnnxModel`: prompts stay raw (the decoder graph embeds
    them). ``sparse`` is ``(B, N, 3)`` rows (x, y, label) with the model's padding point appended;
    ``dense`` is the ``(B, 1, 4H, 4W)`` mask prompt, or ``(B, 0)`` for none."""

    def __init__(self, mask_input_size: tuple[int, int]) -> None:
        self.mask_input_size = mask_input_size

    def __call__(
        self, points: tuple[torch.Tensor, torch.Tensor] | None, boxes: torch.Tensor | None, masks: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if boxes is not None:
            raise ValueError("boxes enter as labelled corner points")
        batch = points[0].shape[0] if points is not None else masks.shape[0] if masks is not None else 1
        sparse = torch.zeros(batch, 0, 3)
        if points is not None:
            coords, labels = points
            rows = torch.cat([coords.float(), labels.float().unsqueeze(-1)], dim=-1)
            pad = torch.tensor([0.0, 0.0, PAD_LABEL]).expand(batch, 1, 3)
            sparse = torch.cat([rows.cpu(), pad], dim=1)
        dense = masks.float().cpu() if masks is not None else torch.zeros(batch, 0)
        return sparse, dense

    def get_dense_pe(self) -> None:
        """Inside the decoder graph."""
        return None


class _DecoderSession:
    """The mask decoder's place in :class:`OnnxModel`: runs the prompt decoder graph."""

    def __init__(self, session: Any, mask_input_size: tuple[int, int]) -> None:
        self.session = session
        self.mask_input_size = mask_input_size

    def __call__(
        self,
        image_embeddings: torch.Tensor,
        image_pe: None,
        sparse_prompt_embeddings: torch.Tensor,
        dense_prompt_embeddings: torch.Tensor,
        multimask_output: bool,
        repeat_image: bool,
        high_res_features: list[torch.Tensor],
    ) -> DecoderOutput:
        tokens, mask = sparse_prompt_embeddings, dense_prompt_embeddings
        batch = tokens.shape[0]
        has_mask = mask.numel() > 0
        if not has_mask:
            mask = torch.zeros(batch, 1, *self.mask_input_size)
        embed = image_embeddings.expand(batch, -1, -1, -1)
        feeds = {
            "image_embed": _numpy(embed),
            "high_res_feat0": _numpy(high_res_features[0]),
            "high_res_feat1": _numpy(high_res_features[1]),
            "point_coords": _numpy(tokens[..., :2]),
            "point_labels": _numpy(tokens[..., 2]).astype(np.int32),
            "mask_input": _numpy(mask),
            "has_mask_input": np.array([1.0 if has_mask else 0.0], dtype=np.float32),
        }
        masks, ious, multimasks, multi_ious, scores, _, _ = self.session.run(None, feeds)
        if multimask_output:
            masks, ious = multimasks, multi_ious
        empty = torch.zeros(batch, 0)
        return DecoderOutput(torch.from_numpy(masks), torch.from_numpy(ious), empty, torch.from_numpy(scores))


class OnnxModel:
    """What :class:`~sam2kit.predict.image.ImagePredictor` asks of a model, answered by the
    onnxruntime sessions of an export (see :func:`load_sessions`)."""

    device = torch.device("cpu")

    def __init__(self, manifest: dict[str, Any], sessions: dict[str, Any]) -> None:
        self.manifest = manifest
        self.sessions = sessions
        self.image_size = int(manifest["image_size"])
        grid = self.image_size // int(manifest["config"]["backbone_stride"])
        mask_input_size = (4 * grid, 4 * grid)
        self.sam_prompt_encoder = _PromptTokens(mask_input_size)
        self.sam_mask_decoder = _DecoderSession(sessions["prompt_decoder"], mask_input_size)
        self.no_mem_embed = torch.tensor(manifest["no_mem_embed"], dtype=torch.float32).reshape(1, -1, 1, 1)

    def eval(self) -> OnnxModel:
        return self

    def forward_image(self, images: torch.Tensor) -> FrameFeatures:
        """``(B, 3, S, S)`` normalised images -> their features (the graph runs one image at a time)."""
        outputs = [self.sessions["image_encoder"].run(None, {"image": _numpy(image[None])}) for image in images]
        levels = [torch.from_numpy(np.concatenate(level, axis=0)) for level in zip(*outputs, strict=True)]
        return FrameFeatures(
            vision_feats=[level.flatten(2).permute(2, 0, 1) for level in levels],
            vision_pos=[],
            feat_sizes=[(level.shape[-2], level.shape[-1]) for level in levels],
        )

    def image_embedding_without_memory(self, features: FrameFeatures) -> torch.Tensor:
        """The top level plus the no-memory embedding, ``(B, C, H, W)``, as the model computes it."""
        h, w = features.feat_sizes[-1]
        top = features.vision_feats[-1]
        embed = top.permute(1, 2, 0).reshape(top.shape[1], top.shape[2], h, w)
        if self.manifest["config"]["directly_add_no_mem_embed"]:
            embed = embed + self.no_mem_embed
        return embed


class OnnxImagePredictor(ImagePredictor):
    """:class:`~sam2kit.predict.image.ImagePredictor` run by onnxruntime on an export of
    ``sam2kit export onnx``: the same ``set_image`` / ``set_image_batch`` / ``predict`` /
    ``predict_batch``, arguments and results.

    Args:
        export_dir: the folder written by :func:`~sam2kit.export.export_onnx`.
        num_threads: onnxruntime intra-op threads (default: its choice).
        mask_threshold, max_hole_area, max_sprinkle_area: as for ``ImagePredictor``.

    Raises:
        MissingExportDependency: onnxruntime is not installed.
        FileNotFoundError / ValueError: ``export_dir`` holds no readable export, or one without
            the image encoder and prompt decoder.
    """

    def __init__(
        self,
        export_dir: str | os.PathLike,
        num_threads: int | None = None,
        mask_threshold: float = 0.0,
        max_hole_area: float = 0.0,
        max_sprinkle_area: float = 0.0,
    ) -> None:
        manifest, sessions = load_sessions(export_dir, num_threads)
        missing = [name for name in ("image_encoder", "prompt_decoder") if name not in sessions]
        if missing:
            raise ValueError(f"{export_dir} lacks the {' and '.join(missing)} graph(s) an image predictor needs")
        self.manifest = manifest
        model = cast(SAM2Model, OnnxModel(manifest, sessions))
        super().__init__(model, mask_threshold, max_hole_area, max_sprinkle_area)

    @classmethod
    def from_pretrained(cls, model_id: str = "", device: str | None = None, **kwargs: Any) -> OnnxImagePredictor:
        raise TypeError("an OnnxImagePredictor loads an export folder: OnnxImagePredictor(export_dir)")
