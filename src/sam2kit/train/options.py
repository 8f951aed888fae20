"""What a training run is told: :class:`TrainOptions`, one frozen dataclass shared by ``sam2kit train``
(its flags), a YAML run file (the same names) and Python callers of :func:`sam2kit.train.trainer.train`.

Defaults follow the official fine-tuning recipe (``sam2.1_hiera_b+_MOSE_finetune.yaml``) where it has
one: AdamW, weight decay 0.1 (0 on biases and LayerNorms), image-encoder learning rate below the
heads' (3e-6 vs 5e-6) with layer-wise decay 0.9, cosine schedule to a tenth, gradient clipping at
0.1, 7 correction clicks, 8-frame clips of at most 3 objects, drop path 0.1 when the trunk trains.
From scratch (no ``checkpoint``) the default learning rates are 1e-3 and 5e-4 instead.

:meth:`TrainOptions.run_config` is what must not change across ``--resume``: the options that shape
the weights (model, data, schedule, seeds), not where or how fast the run goes.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, NoReturn

from ..errors import ArgumentError

__all__ = [
    "TRAIN_PARTS",
    "DATA_FORMATS",
    "CACHE_MODES",
    "PRECISIONS",
    "TrainOptions",
    "RUN_CONFIG_EXCLUDED",
    "image_steps_before",
]

#: What ``--train`` accepts: the SAM heads; the heads plus the memory; everything.
TRAIN_PARTS = ("decoder", "memory", "all")
DATA_FORMATS = ("auto", "images", "coco", "video")
#: Where frozen-encoder features are kept: in RAM, in ``OUT/cache/``, or recomputed every step.
CACHE_MODES = ("memory", "disk", "off")
PRECISIONS = ("fp32", "bf16", "fp16")

#: Options that do not change the trained weights, so ``--resume`` may change them.
RUN_CONFIG_EXCLUDED = frozenset(
    {"out", "resume", "stop_after", "eval_every", "val_max", "save_every", "workers", "device", "progress", "act_ckpt"}
)


def image_steps_before(step: int, share: float) -> int:
    """Image steps among steps ``0 .. step - 1`` of a run mixing a ``share`` of image steps."""
    return math.floor(step * share)


def _fail(name: str, problem: str) -> NoReturn:
    raise ArgumentError(f"{name} {problem}", argument=name)


@dataclass(frozen=True)
class TrainOptions:
    """Options of one training run (the ``sam2kit train`` flags, underscores for dashes).

    Attributes:
        data: an image folder (``DIR/images`` + ``DIR/masks``), a COCO JSON file (or a folder with
            one), or a DAVIS / SA-V folder (``DIR/JPEGImages`` + ``DIR/Annotations``).
        out: the run folder (``model.pt``, ``last.ckpt``, ``log.csv``, ``run.json``).
        checkpoint: weights to start from (official ``.pt`` / ``.safetensors`` or a hub id);
            None: random weights of ``config`` (training from scratch).
        config: a preset name, an official YAML, or ``"sam2kit-mini"``; None: told from the checkpoint.
        image_size: the model's input size, overriding the config's.
        train: ``"decoder"`` (prompt encoder + mask decoder), ``"memory"`` (plus memory attention,
            memory encoder and the small tracking parameters) or ``"all"``.
        lora: rank of LoRA adapters on the image encoder's attention (qkv, proj), 0: none; the
            adapters train with ``lr`` and are merged into the weights on save.
        lora_alpha: adapter scale numerator (scale = alpha / rank); None: the rank (scale 1).
        steps: optimizer steps in all; batch_size: samples per process and micro-batch;
            accumulate: micro-batches per step (global batch = batch_size x processes x accumulate).
        lr / encoder_lr: peak learning rates of the trained weights and of the image encoder's.
        layer_decay: the encoder's block i of n learns at ``encoder_lr * layer_decay ** (n - i)``.
        weight_decay: AdamW's, on everything but biases and LayerNorm weights.
        warmup: linear warm-up steps (None: 5 % of ``steps``); min_lr_ratio: where the cosine ends.
        clip: max global gradient norm (0: off).
        precision: ``"fp32"``, or autocast ``"bf16"`` / ``"fp16"`` (fp16 with loss scaling; GPUs).
        act_ckpt: recompute the Hiera blocks and memory-attention layers in backward (less memory).
        drop_path: the trunk's stochastic depth when it trains (None: 0.1 with ``train="all"``).
        corrections: correction clicks per corrected frame (the recipe's 7).
        point_prob: on clips, probability that the first prompt is a click or a box rather than the
            ground-truth mask (the recipe's 0.5; still images are always clicked or boxed).
        box_prob: probability of a box rather than a click, given a click-or-box prompt (0.5).
        center_click_prob: probability that a first click lands on the object's most interior pixel
            (where a person clicks, and where the held-out figures click) rather than uniformly
            inside it (the recipe: 0, always uniform).
        init_frames: at most this many frames get the first prompt, frame 0 and random others, the
            number drawn in 1..init_frames (the recipe's 2).
        correct_frames: at most this many frames get correction clicks, the prompted ones first, the
            number drawn between them and correct_frames (the recipe's 2).
        loss_weights: weights of the focal, dice, IoU and object-score terms (the recipe's
            20, 1, 1, 1).
        seed: seeds the weights of a fresh model, the data order, augmentations and prompts.
        eval_every: validate every N steps (0: once per epoch) and at the end.
        val_max: at most this many validation items (images or videos) per validation.
        save_every: write ``last.ckpt`` every N steps (and on SIGINT / SIGTERM and at the end).
        stop_after: stop after N steps of this invocation (``last.ckpt`` written; continue with
            ``resume``), for time-limited jobs.
        resume: continue the run in ``out`` from its ``last.ckpt``.
        data_format: ``"auto"`` or the layout of ``data``; coco_images: the COCO images folder
            (default: ``images/`` beside the JSON, else the JSON's folder).
        image_data: still images (an image folder or COCO) mixed into a video run (``data`` videos,
            ``train`` memory or all), as SAM 2 trains on SA-1B images beside SA-V videos: a share
            ``image_share`` of the steps are image steps of ``image_batch_size`` images (None:
            ``batch_size``), spread evenly (step s is an image step when
            ``floor((s + 1) * share) > floor(s * share)``). Validation scores both.
        val_fraction: share of the items (videos) held out for validation.
        num_frames: frames per training clip; max_objects: objects per sample (a random choice).
        augment: flip / affine / colour augmentation (not with cached features: see ``cache``).
        cache: with a frozen image encoder (``decoder`` / ``memory`` without ``lora``), each frame's
            features are computed once and kept (``"memory"``, ``"disk"``); cached features are of
            the un-augmented image, so augmentation is off then. ``"off"``: the frozen encoder runs
            every step on augmented frames.
        workers: data-loading processes (0: in the training process).
        device: ``cpu``, ``cuda``, ...; None: the best available (under torchrun: the local GPU).
        progress: a progress bar on stderr.
    """

    data: str
    out: str
    checkpoint: str | None = None
    config: str | None = None
    image_size: int | None = None
    train: str = "decoder"
    lora: int = 0
    lora_alpha: float | None = None
    steps: int = 1000
    batch_size: int = 1
    accumulate: int = 1
    lr: float | None = None
    encoder_lr: float | None = None
    layer_decay: float = 0.9
    weight_decay: float = 0.1
    warmup: int | None = None
    min_lr_ratio: float = 0.1
    clip: float = 0.1
    precision: str = "fp32"
    act_ckpt: bool = False
    drop_path: float | None = None
    corrections: int = 7
    point_prob: float = 0.5
    box_prob: float = 0.5
    center_click_prob: float = 0.0
    init_frames: int = 2
    correct_frames: int = 2
    loss_weights: tuple[float, float, float, float] = (20.0, 1.0, 1.0, 1.0)
    seed: int = 0
    eval_every: int = 0
    val_max: int = 50
    save_every: int = 100
    stop_after: int | None = None
    resume: bool = False
    data_format: str = "auto"
    coco_images: str | None = None
    image_data: str | None = None
    image_share: float = 0.5
    image_batch_size: int | None = None
    val_fraction: float = 0.1
    num_frames: int = 8
    max_objects: int = 3
    augment: bool = True
    cache: str = "memory"
    workers: int = 0
    device: str | None = None
    progress: bool = True

    def __post_init__(self) -> None:
        """Raises :class:`~sam2kit.errors.ArgumentError` (a ValueError) naming the option at fault."""
        choices = {"train": TRAIN_PARTS, "data_format": DATA_FORMATS, "cache": CACHE_MODES, "precision": PRECISIONS}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                _fail(name, f"must be one of {', '.join(allowed)}, got {getattr(self, name)!r}")
        at_least = {"steps": 1, "batch_size": 1, "accumulate": 1, "save_every": 1, "num_frames": 1,
                    "max_objects": 1, "lora": 0, "corrections": 0, "eval_every": 0, "val_max": 0, "workers": 0,
                    "init_frames": 1, "correct_frames": 0}
        for name, minimum in at_least.items():
            if getattr(self, name) < minimum:
                _fail(name, f"must be >= {minimum}, got {getattr(self, name)}")
        for name in ("lr", "encoder_lr", "lora_alpha"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                _fail(name, f"must be > 0, got {value}")
        for name in ("weight_decay", "clip"):
            if not getattr(self, name) >= 0:
                _fail(name, f"must be >= 0, got {getattr(self, name)}")
        if not 0 < self.layer_decay <= 1:
            _fail("layer_decay", f"must be in (0, 1], got {self.layer_decay}")
        if not 0 <= self.min_lr_ratio <= 1:
            _fail("min_lr_ratio", f"must be in [0, 1], got {self.min_lr_ratio}")
        if self.warmup is not None and self.warmup < 0:
            _fail("warmup", f"must be >= 0, got {self.warmup}")
        if self.stop_after is not None and self.stop_after < 1:
            _fail("stop_after", f"must be >= 1, got {self.stop_after}")
        if self.drop_path is not None and not 0 <= self.drop_path < 1:
            _fail("drop_path", f"must be in [0, 1), got {self.drop_path}")
        for name in ("point_prob", "box_prob", "center_click_prob"):
            if not 0 <= getattr(self, name) <= 1:
                _fail(name, f"must be a probability in [0, 1], got {getattr(self, name)}")
        weights = tuple(self.loss_weights)
        if len(weights) != 4 or not all(math.isfinite(w) and w >= 0 for w in weights) or not any(weights):
            problem = f"must be 4 finite weights >= 0 (focal, dice, IoU, object score), not all 0; got {weights}"
            _fail("loss_weights", problem)
        object.__setattr__(self, "loss_weights", tuple(float(w) for w in weights))
        if not 0 < self.image_share < 1:
            _fail("image_share", f"must be in (0, 1), got {self.image_share}")
        if self.image_batch_size is not None and self.image_batch_size < 1:
            _fail("image_batch_size", f"must be >= 1, got {self.image_batch_size}")
        if self.image_data is not None and self.train == "decoder":
            _fail("image_data", "mixes still images into video training: use it with train 'memory' or 'all'")
        if not 0 <= self.val_fraction < 1:
            _fail("val_fraction", f"must be in [0, 1), got {self.val_fraction}")
        if self.checkpoint is None and self.config is None:
            _fail("config", "needed: without a checkpoint (training from scratch) it names the model to build")
        if self.lora and self.train == "all":
            _fail("lora", "adapts a frozen image encoder: use it with train 'decoder' or 'memory', not 'all'")

    # ------------------------------------------------------------------ resolved values
    @property
    def encoder_trains(self) -> bool:
        """Whether gradients reach the image encoder (full training or LoRA adapters)."""
        return self.train == "all" or self.lora > 0

    @property
    def uses_cache(self) -> bool:
        """Whether frame features are computed once and kept (frozen encoder, cache on)."""
        return not self.encoder_trains and self.cache != "off"

    @property
    def augments(self) -> bool:
        """Whether samples are augmented (never from cached features, which are of the plain image)."""
        return self.augment and not self.uses_cache

    @property
    def peak_lr(self) -> float:
        if self.lr is not None:
            return self.lr
        return 5e-6 if self.checkpoint is not None else 1e-3

    @property
    def peak_encoder_lr(self) -> float:
        if self.encoder_lr is not None:
            return self.encoder_lr
        return 3e-6 if self.checkpoint is not None else 5e-4

    @property
    def warmup_steps(self) -> int:
        return self.warmup if self.warmup is not None else round(0.05 * self.steps)

    @property
    def drop_path_rate(self) -> float:
        """The trunk's stochastic depth: only where the trunk's own weights train."""
        if self.train != "all":
            return 0.0
        return 0.1 if self.drop_path is None else self.drop_path

    def run_config(self, world_size: int) -> dict[str, Any]:
        """The options that shape the weights, plus the number of processes: a resumed run must
        have the same (see :data:`RUN_CONFIG_EXCLUDED` for what may change)."""
        values = {k: v for k, v in dataclasses.asdict(self).items() if k not in RUN_CONFIG_EXCLUDED}
        values["world_size"] = world_size
        return values

    @staticmethod
    def defaults() -> dict[str, Any]:
        """Each option's default value (the options without one left out)."""
        return {f.name: f.default for f in dataclasses.fields(TrainOptions) if f.default is not dataclasses.MISSING}

    @property
    def images_batch(self) -> int:
        """Images per micro-batch of an image step (mixed runs)."""
        return self.image_batch_size if self.image_batch_size is not None else self.batch_size

    def is_image_step(self, step: int) -> bool:
        """Whether step ``step`` (from 0) of a mixed run trains on still images."""
        return self.image_data is not None and image_steps_before(step + 1, self.image_share) > image_steps_before(
            step, self.image_share
        )

    def replace(self, **changes: Any) -> TrainOptions:
        return dataclasses.replace(self, **changes)
