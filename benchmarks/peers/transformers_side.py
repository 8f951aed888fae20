"""The Hugging Face ``transformers`` peer: ``Sam2Model`` / ``Sam2VideoModel`` on an official checkpoint.

Builds the HF models from the same official-format checkpoint (``{"model": state_dict}``, the
reference's key names) that the other sides load, through our own key mapping
(:func:`hf_state_dict`: ``sam2kit.checkpoints.transformers_keys``, written from both models'
parameter names and shapes), and drives them the
way a transformers user would: ``Sam2Processor`` for images, ``Sam2VideoProcessor`` +
``init_video_session`` / ``add_inputs_to_inference_session`` / ``propagate_in_video_iterator`` for
video, ``post_process_masks`` for masks, fp32 under ``torch.inference_mode()``.

Equivalence with the reference (``sam2==1.1.0``), from reading ``transformers/models/sam2*/``:

* Config: transformers 5.24 has no switch for most SAM 2 options; it hard-codes the values all
  official presets use (``directly_add_no_mem_embed``, ``use_high_res_features_in_sam``,
  ``pred_obj_scores(_mlp)``, ``fixed_no_obj_ptr``, ``use_multimask_token_for_obj_ptr``,
  ``iou_prediction_use_sigmoid``, ``use_mask_input_as_output_without_sam``,
  ``only_obj_ptrs_in_the_past_for_eval``, binarised point masks for the memory encoder, memory
  stride 1, bf16-stored memories). SAM 2.1 vs 2: ``enable_occlusion_spatial_embedding`` =
  ``no_obj_embed_spatial``; ``enable_temporal_pos_encoding_for_object_pointers`` =
  ``add_tpos_enc_to_obj_ptrs`` and ``proj_tpos_enc_in_obj_ptrs`` together, with the *signed*
  temporal offset (``use_signed_tpos_enc_to_obj_ptrs``) always; every official preset sets these
  three flags alike, so all eight presets are representable.
* Image preprocessing: by default the HF processor resizes the uint8 image (output rounded to
  uint8) where the reference resizes the float image (both torchvision bilinear, antialiased), a
  difference of up to 0.0088 in normalised pixels. We pass the image as float in [0, 1] with
  ``do_rescale=False`` (``float_resize=True``), which makes the pixel values bit-identical.
* Video preprocessing: the reference resizes frames with PIL's default (bicubic) on uint8; the HF
  video processor uses torchvision, bilinear by default (0.52 max difference). We set
  ``resample=BICUBIC``: torchvision's antialiased uint8 bicubic then differs from PIL by one grey
  level on ~0.4 % of pixels (0.0175 normalised), the only source of video differences we know of.
* Hole filling: the reference skips it without ``sam2._C`` (note: ``build_sam2_video_predictor``
  appends its own ``fill_hole_area=8`` after our ``=0``, so it tries, warns and skips); HF's
  ``post_process_masks`` ignores ``max_hole_area`` / ``max_sprinkle_area`` (a TODO in its source).
  Both: none.
* Re-clicking an object on a frame that already has an output: the reference feeds the previous
  low-res logits back as a mask prompt (``prev_sam_mask_logits``); ``Sam2VideoModel.forward``
  never does, and ``clear_old_inputs`` replaces the frame's points like the reference's default
  ``clear_old_points=True``. So only the first click per (object, frame) is equivalent.
* Measured (``verify()``, sam2.1 tiny, CPU fp32): image embeddings, click and box masks and scores
  bit-identical at 1024; video masks 99.97-99.98 % of pixels at 1024 and 99.995 % at 512, all from
  the frame-resize difference above (100 % when HF is handed the reference's frame tensors).
* Sizes: any ``image_size`` that is a multiple of 32 works (we set ``backbone_feature_sizes``,
  the prompt encoder size, the processors' size and the memory-attention RoPE grid
  ``memory_attention_rope_feat_sizes`` to match; the reference recomputes its RoPE grid itself).
"""

from __future__ import annotations

import json
import re
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

if __package__ in (None, ""):  # run as a file: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks.protocol import Side  # noqa: E402

#: Hiera presets: embed dim, heads, blocks per stage, global-attention blocks, window per stage,
#: window pos-embed background size (from the reference's YAMLs and ``Hiera`` defaults).
_HIERA: dict[str, tuple[int, int, list[int], list[int], list[int], list[int]]] = {
    "tiny": (96, 1, [1, 2, 7, 2], [5, 7, 9], [8, 4, 14, 7], [7, 7]),
    "small": (96, 1, [1, 2, 11, 2], [7, 10, 13], [8, 4, 14, 7], [7, 7]),
    "base_plus": (112, 2, [2, 3, 16, 3], [12, 16, 20], [8, 4, 14, 7], [14, 14]),
    "large": (144, 2, [2, 6, 36, 4], [23, 33, 43], [8, 4, 16, 8], [7, 7]),
}

#: HF keys that only ``Sam2VideoModel`` has (``Sam2Model`` is the image-only subset).
_VIDEO_ONLY = re.compile(r"^(memory_|mask_downsample\.|object_pointer_proj\.|temporal_positional_encoding_"
                         r"|no_memory_positional_encoding|no_object_pointer|occlusion_spatial_embedding)")


def _parse(config_name: str) -> tuple[str, str]:
    version, _, size = config_name.partition("_hiera_")
    if version not in ("sam2", "sam2.1") or size not in _HIERA:
        raise ValueError(f"unknown config {config_name!r}; expected sam2[.1]_hiera_{{{','.join(_HIERA)}}}")
    return version, size


def hf_config(config_name: str, image_size: int = 1024, video: bool = False) -> Any:
    """The transformers config equivalent to an official preset: ``Sam2Config`` (image model) or,
    with ``video=True``, ``Sam2VideoConfig`` (a separate class in transformers 5.24)."""
    from transformers import Sam2Config, Sam2HieraDetConfig, Sam2VideoConfig, Sam2VisionConfig

    version, size = _parse(config_name)
    if image_size % 32:
        raise ValueError(f"image_size must be a multiple of 32 (Hiera windows, FPN), got {image_size}")
    embed, heads, stages, global_blocks, windows, background = _HIERA[size]
    dims = [embed * 2**i for i in range(4)]
    backbone = Sam2HieraDetConfig(
        hidden_size=embed, num_attention_heads=heads, image_size=[image_size, image_size],
        blocks_per_stage=stages, embed_dim_per_stage=dims,
        num_attention_heads_per_stage=[heads * 2**i for i in range(4)],
        window_size_per_stage=windows, global_attention_blocks=global_blocks,
        window_positional_embedding_background_size=background, num_query_pool_stages=3, query_stride=[2, 2])
    vision = Sam2VisionConfig(
        backbone_config=backbone, backbone_channel_list=dims[::-1], fpn_hidden_size=256, fpn_top_down_levels=[2, 3],
        backbone_feature_sizes=[[image_size // s] * 2 for s in (4, 8, 16)], num_feature_levels=3)
    prompt = {"hidden_size": 256, "image_size": image_size, "patch_size": 16, "mask_input_channels": 16}
    decoder = {"hidden_size": 256, "num_multimask_outputs": 3, "dynamic_multimask_via_stability": True,
               "dynamic_multimask_stability_delta": 0.05, "dynamic_multimask_stability_thresh": 0.98}
    if not video:
        return Sam2Config(vision_config=vision, prompt_encoder_config=prompt, mask_decoder_config=decoder)
    is_21 = version == "sam2.1"
    return Sam2VideoConfig(
        vision_config=vision, prompt_encoder_config=prompt, mask_decoder_config=decoder, image_size=image_size,
        num_maskmem=7, sigmoid_scale_for_mem_enc=20.0, sigmoid_bias_for_mem_enc=-10.0,
        enable_occlusion_spatial_embedding=is_21, enable_temporal_pos_encoding_for_object_pointers=is_21,
        multimask_output_in_sam=True, multimask_min_pt_num=0, multimask_max_pt_num=1,
        multimask_output_for_tracking=True, max_object_pointers_in_encoder=16, max_cond_frame_num=-1,
        memory_attention_num_layers=4, memory_attention_rope_feat_sizes=[image_size // 16] * 2,
        rope_parameters={"rope_type": "axial", "rope_theta": 10000.0}, memory_encoder_output_channels=64)


def hf_state_dict(official: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Official SAM 2 state dict -> ``Sam2VideoModel`` state dict (``Sam2Model`` takes the subset
    without memory / pointer keys), through sam2kit's one key map
    (:func:`sam2kit.checkpoints.to_transformers`, which documents the renaming)."""
    from sam2kit.checkpoints import to_transformers

    return to_transformers(official)


def load_strict(model: torch.nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Load ``state`` into ``model`` (``assign=True``: the tensors become the parameters, not
    copied): every HF key must be filled and every given key used (keys that only the video model
    has are dropped for ``Sam2Model``)."""
    expected = model.state_dict().keys()
    if not any(k.startswith("memory_attention.") for k in expected):
        state = {k: v for k, v in state.items() if not _VIDEO_ONLY.match(k)}
    missing, unexpected = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    if missing or unexpected:
        raise KeyError(f"{type(model).__name__}: HF keys not filled: {missing}; keys left over: {unexpected}")
    model.load_state_dict(state, strict=True, assign=True)


class TransformersSide(Side):
    """SAM 2 through ``transformers``: images (``Sam2Model``) and video (``Sam2VideoModel``); no
    automatic mask generator.

    Images are ``(H, W, 3)`` uint8 RGB; coordinates are pixels of the original image / frame.
    """

    def __init__(self, config: str, checkpoint: str | Path, image_size: int = 1024, device: str = "cpu",
                 *, float_resize: bool = True) -> None:
        from transformers import (
            Sam2ImageProcessor,
            Sam2Model,
            Sam2Processor,
            Sam2VideoModel,
            Sam2VideoProcessor,
            Sam2VideoVideoProcessor,
        )
        from transformers.image_utils import PILImageResampling
        from transformers.initialization import no_init_weights

        self.device, self.image_size, self.float_resize = torch.device(device), image_size, float_resize
        official = torch.load(checkpoint, map_location="cpu", weights_only=True)["model"]
        state = {k: v.to(self.device) for k, v in hf_state_dict(official).items()}
        # as from_pretrained does: no random init; both models then share the one copy of the weights
        with no_init_weights():
            self.video_model = Sam2VideoModel(hf_config(config, image_size, video=True))
        load_strict(self.video_model, state)
        with no_init_weights():
            self.model = Sam2Model(hf_config(config, image_size))
        load_strict(self.model, state)
        self.model.to(self.device).eval()
        self.video_model.to(self.device).eval()
        size = {"height": image_size, "width": image_size}
        images = Sam2ImageProcessor(size=size, mask_size={"height": image_size // 4, "width": image_size // 4})
        self.processor = Sam2Processor(images, target_size=image_size)
        # bicubic: PIL's default, which the reference's frame loader uses
        frames = Sam2VideoVideoProcessor(size=size, resample=PILImageResampling.BICUBIC)
        self.video_processor = Sam2VideoProcessor(images, frames, target_size=image_size)
        self._embeddings: list[torch.Tensor] | None = None
        self._image_hw: tuple[int, int] = (0, 0)
        self._video_hw: tuple[int, int] = (0, 0)
        self._session: Any = None
        self.last_video_logits: torch.Tensor | None = None

    # ------------------------------------------------------------------------------------ images
    @torch.inference_mode()
    def set_image(self, image: np.ndarray) -> None:
        """Compute and keep the image embeddings: ``[(1, 32, S/4, S/4), (1, 64, S/8, S/8), (1, 256, S/16, S/16)]``."""
        if self.float_resize:
            inputs = self.processor(images=image.astype(np.float32) / 255.0, do_rescale=False, return_tensors="pt")
        else:
            inputs = self.processor(images=image, return_tensors="pt")
        self._image_hw = (int(inputs["original_sizes"][0][0]), int(inputs["original_sizes"][0][1]))
        self._embeddings = self.model.get_image_embeddings(inputs["pixel_values"].to(self.device))

    def _predict(self, multimask: bool, **prompts: Any) -> tuple[np.ndarray, np.ndarray]:
        if self._embeddings is None:
            raise RuntimeError("call set_image first")
        inputs = self.processor(original_sizes=[list(self._image_hw)], return_tensors="pt", **prompts)
        tensors = {k: inputs[k].to(self.device) for k in ("input_points", "input_labels", "input_boxes") if k in inputs}
        out = self.model(image_embeddings=self._embeddings, multimask_output=multimask, **tensors)
        masks = self.processor.post_process_masks(out.pred_masks, [self._image_hw])[0]  # (P, M, H, W) bool
        return masks.cpu().numpy(), out.iou_scores[0].float().cpu().numpy()  # scores (P, M)

    @torch.inference_mode()
    def predict_click(self, xy: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
        """One positive click, multimask: masks ``(3, H, W)`` bool, scores ``(3,)``."""
        masks, scores = self._predict(True, input_points=[[[[float(xy[0]), float(xy[1])]]]], input_labels=[[[1]]])
        return masks[0], scores[0]

    @torch.inference_mode()
    def predict_boxes(self, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(N, 4)`` XYXY boxes, one mask each: masks ``(N, 1, H, W)`` bool, scores ``(N, 1)``."""
        return self._predict(False, input_boxes=[np.asarray(boxes, dtype=np.float32).tolist()])

    # ------------------------------------------------------------------------------------- video
    @torch.inference_mode()
    def video_open(self, frames_dir: str) -> None:
        """Load a folder of JPEG frames (``00000.jpg`` ...) into a new inference session."""
        from PIL import Image

        paths = sorted(Path(frames_dir).glob("*.jp*g"), key=lambda p: int(p.stem) if p.stem.isdigit() else p.stem)
        frames = [np.array(Image.open(p).convert("RGB")) for p in paths]
        self._session = self.video_processor.init_video_session(
            video=np.stack(frames), inference_device=self.device, dtype=torch.float32)
        self._video_hw = (int(self._session.video_height), int(self._session.video_width))

    def _video_masks(self, pred_masks: torch.Tensor) -> np.ndarray:
        """``(num_objects, 1, S/4, S/4)`` logits -> ``(num_objects, H, W)`` bool at the video's size (the
        logits at that size are kept in ``last_video_logits``)."""
        logits = self.video_processor.post_process_masks([pred_masks.float()], [self._video_hw], binarize=False)[0]
        self.last_video_logits = logits[:, 0]
        return (self.last_video_logits > 0.0).cpu().numpy()

    @torch.inference_mode()
    def video_click(self, frame_idx: int, obj_id: int, xy: tuple[float, float]) -> np.ndarray:
        """One positive click for ``obj_id`` on ``frame_idx``; bool masks ``(num_objects, H, W)`` of that frame."""
        self.video_processor.add_inputs_to_inference_session(
            self._session, frame_idx=frame_idx, obj_ids=obj_id,
            input_points=[[[[float(xy[0]), float(xy[1])]]]], input_labels=[[[1]]])
        out = self.video_model(inference_session=self._session, frame_idx=frame_idx)
        return self._video_masks(out.pred_masks)

    def video_propagate(self) -> Iterator[tuple[int, np.ndarray]]:
        """Track forward from the first prompted frame; yields ``(frame_idx, (num_objects, H, W) bool)`` lazily."""
        for out in self.video_model.propagate_in_video_iterator(self._session):  # runs in inference mode
            with torch.inference_mode():
                masks = self._video_masks(out.pred_masks)
            yield int(out.frame_idx), masks

    def video_close(self) -> None:
        self._session = None

    @torch.inference_mode()
    def forward_image(self, batch: torch.Tensor) -> list[torch.Tensor]:
        """The image encoder (Hiera + FPN + the decoder's high-resolution convs) on ``(1, 3, S, S)``."""
        return self.model.get_image_embeddings(batch)

    def stage_modules(self) -> dict[str, list[torch.nn.Module]]:
        """The video model's stages under the names of :data:`benchmarks.hardware.STAGES`."""
        model = self.video_model
        return {"image encoder": [model.vision_encoder], "memory attention": [model.memory_attention],
                "memory encoder": [model.memory_encoder],
                "prompt encoder + mask decoder": [model.prompt_encoder, model.mask_decoder]}


# ---------------------------------------------------------------------------------------- verify
def _agreement(a: np.ndarray, b: np.ndarray) -> float:
    return float((np.asarray(a, bool) == np.asarray(b, bool)).mean())


def _write_test_video(folder: Path, image: np.ndarray, frames: int, hw: tuple[int, int]) -> None:
    """``frames`` JPEGs ``(h, w)``: crops of ``image`` sliding 12 px per frame, resized to ``hw``."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for i in range(frames):
        crop = image[60 + 6 * i: 660 + 6 * i, 100 + 12 * i: 900 + 12 * i]
        Image.fromarray(crop).resize((hw[1], hw[0]), Image.BILINEAR).save(folder / f"{i:05d}.jpg", quality=95)


def verify(config: str = "sam2.1_hiera_tiny", image_size: int = 1024, video_image_size: int | None = None,
           video_frames: int = 4, checkpoint: str | Path | None = None) -> dict[str, Any]:
    """Reference vs transformers on one seeded checkpoint: embeddings, click / box masks and scores
    on the benchmark image, and per-frame mask agreement over a short 240x320 video with one click
    (plus per-frame max |delta| of the video-resolution logits and of the internal object-score
    logits / object pointers). ``video_image_size`` defaults to ``image_size``."""
    from sam2.build_sam import build_sam2_video_predictor
    from sam2.sam2_image_predictor import SAM2ImagePredictor

    from benchmarks.common import (
        bench_image,
        build_reference_model,
        patch_reference_dtype,
        reference_config_file,
        seeded_checkpoint,
    )

    checkpoint = checkpoint or seeded_checkpoint(config, Path(tempfile.gettempdir()) / "hfpeer" / "weights")
    video_image_size = video_image_size or image_size
    report: dict[str, Any] = {"config": config, "image_size": image_size, "video_image_size": video_image_size}
    image = bench_image()
    click = (460.0, 180.0)  # the astronaut's face
    rng = np.random.default_rng(0)
    sizes = rng.uniform(64, 400, size=(4, 2))
    corners = rng.uniform(0, 1, size=(4, 2)) * (np.array([image.shape[1], image.shape[0]]) - sizes)
    boxes = np.concatenate([corners, corners + sizes], axis=1).astype(np.float32)

    started = time.perf_counter()
    side = TransformersSide(config, checkpoint, image_size)
    report["hf_build_s"] = time.perf_counter() - started
    reference = SAM2ImagePredictor(build_reference_model(config, checkpoint, image_size, "cpu"))
    reference._bb_feat_sizes = [(image_size // s, image_size // s) for s in (4, 8, 16)]  # it hard-codes 1024's
    with torch.inference_mode():
        reference.set_image(image)
        started = time.perf_counter()
        side.set_image(image)
        report["hf_set_image_s"] = time.perf_counter() - started
        ref_feats = [*reference._features["high_res_feats"], reference._features["image_embed"]]
        report["embedding_max_abs_diff"] = [
            float((a - b).abs().max()) for a, b in zip(ref_feats, side._embeddings, strict=True)
        ]
        ref_masks, ref_scores, _ = reference.predict(point_coords=np.array([click], np.float32),
                                                     point_labels=np.array([1], np.int32), multimask_output=True)
        masks, scores = side.predict_click(click)
        report["click_mask_agreement"] = _agreement(ref_masks, masks)
        report["click_max_score_diff"] = float(np.abs(ref_scores - scores).max())
        ref_masks, ref_scores, _ = reference.predict(box=boxes, multimask_output=False)
        masks, scores = side.predict_boxes(boxes)
        report["box_mask_agreement"] = _agreement(ref_masks, masks)
        report["box_max_score_diff"] = float(np.abs(ref_scores - scores).max())
    del reference
    if video_image_size != image_size:
        side = TransformersSide(config, checkpoint, video_image_size)

    with tempfile.TemporaryDirectory() as folder:
        _write_test_video(Path(folder), image, video_frames, (240, 320))
        predictor = build_sam2_video_predictor(
            reference_config_file(config), str(checkpoint), device="cpu",
            hydra_overrides_extra=[f"++model.image_size={video_image_size}", "++model.fill_hole_area=0"])
        patch_reference_dtype(predictor)
        with torch.inference_mode():
            state = predictor.init_state(video_path=folder)
            # random weights: the first click (the face first) whose mask is not empty, so the check means something
            for video_click in ((150.0, 60.0), (160.0, 120.0), (120.0, 90.0), (100.0, 180.0), (240.0, 100.0)):
                predictor.reset_state(state)
                _, _, logits = predictor.add_new_points_or_box(
                    state, 0, 1, points=np.array([video_click], np.float32), labels=np.array([1], np.int32))
                ref_click = (logits[:, 0] > 0).numpy()
                if ref_click.any():
                    break
            report["video_click_xy"] = video_click
            ref_frames, ref_logits, ref_seconds, last = {}, {}, [], time.perf_counter()
            for index, _, frame_logits in predictor.propagate_in_video(state):
                ref_frames[index], ref_logits[index] = (frame_logits[:, 0] > 0).numpy(), frame_logits[:, 0].clone()
                ref_seconds.append(time.perf_counter() - last)
                last = time.perf_counter()
        side.video_open(folder)
        report["video_click_agreement"] = _agreement(ref_click, side.video_click(0, 1, video_click))
        seconds, frames, logits_gap = [], {}, {}
        last = time.perf_counter()
        for index, masks in side.video_propagate():
            frames[index] = masks
            logits_gap[index] = float((side.last_video_logits - ref_logits[index]).abs().max())
            seconds.append(time.perf_counter() - last)
            last = time.perf_counter()
        # internals of both sides, per frame: object-score logits and object pointers (the tracking state)
        internal: dict[int, float] = {}
        for key in ("cond_frame_outputs", "non_cond_frame_outputs"):
            for index, out in state["output_dict_per_obj"][0][key].items():
                mine = side._session.output_dict_per_obj[0][key][index]
                internal[index] = max(
                    float((out["object_score_logits"].flatten() - mine["object_score_logits"].flatten()).abs().max()),
                    float((out["obj_ptr"].flatten() - mine["object_pointer"].flatten()).abs().max()))
        report["video_score_and_pointer_max_abs_diff"] = [internal[i] for i in sorted(internal)]
        side.video_close()
    report["video_frame_agreement"] = [_agreement(ref_frames[i], frames[i]) for i in sorted(ref_frames)]
    report["video_logits_max_abs_diff"] = [logits_gap[i] for i in sorted(logits_gap)]
    report["video_frames_compared"] = sorted(set(ref_frames) & set(frames))
    report["video_mask_pixels"] = [int(frames[i].sum()) for i in sorted(frames)]
    report["propagate_s_per_frame"] = {"hf": seconds[1:], "reference": ref_seconds[1:]}
    return report


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="sam2.1_hiera_tiny")
    parser.add_argument("--image-size", type=int, default=1024)
    parser.add_argument("--video-image-size", type=int, default=None)
    parser.add_argument("--video-frames", type=int, default=4)
    args = parser.parse_args()
    print(json.dumps(verify(args.config, args.image_size, args.video_image_size, args.video_frames), indent=2))
