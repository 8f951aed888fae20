"""``train(options)``: the training loop of ``sam2kit train``, for one process or under ``torchrun``.

Per optimizer step: this process's ``accumulate`` micro-batches are loaded (:mod:`.loader`), the
objects of the whole step are counted over every process (the loss normaliser, so that P processes
with batch B equal one with batch P x B: DDP averages gradients, each process divides by the global
count / P), each micro-batch's loss is backpropagated (gradients synchronised on the last one), the
gradients are unscaled (fp16) and clipped, and AdamW steps at the warm-up + cosine rate.

Files in ``options.out``: ``log.csv`` and ``run.json`` from the start, ``last.ckpt`` every
``save_every`` steps, at a stop and at the end, ``model.pt`` (official layout, LoRA merged) at the
end. Validation every epoch (or ``eval_every`` steps) and at the end.
"""

from __future__ import annotations

import contextlib
import datetime
import math
import platform
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..build import resolve_precision
from ..errors import ArgumentError
from ..io.atomic import save_json
from .data import DataError
from .distributed import DistEnv, all_gather_objects, all_reduce_sum, barrier, init_distributed, shutdown
from .features import FeatureCache
from .loader import DataOrder, ShardedSteps, make_loader
from .lora import merged_state_dict
from .losses import LossWeights, SAM2Loss
from .model_setup import TrainingModel, build_training_model, resolve_training_config
from .objective import TERM_NAMES, TrainingObjective, num_objects_of
from .optim import build_optimizer, lr_factor, parameter_groups, set_learning_rates, trainable_parameters
from .options import TrainOptions, image_steps_before
from .prompts import PromptOptions
from .run_files import (
    CHECKPOINT_FORMAT,
    FINAL_MODEL,
    LAST_CHECKPOINT,
    LOG_FILE,
    RUN_FILE,
    LogWriter,
    RunConfigError,
    StopSignals,
    load_last,
    rng_state,
    save_torch,
    set_rng_state,
)
from .sources import TrainingData, open_image_data, open_training_data
from .validate import validate_images, validate_videos

__all__ = ["TrainResult", "train"]


@dataclass
class TrainResult:
    """How a run ended.

    Attributes:
        status: ``"finished"`` (all steps; ``model.pt`` written), ``"stopped"`` (``stop_after``
            reached) or ``"interrupted"`` (SIGINT / SIGTERM; ``signal`` names it).
        step: optimizer steps done in all; steps: the run's total.
        out_dir: the run folder; model_path: ``model.pt`` when finished.
        validation: the latest validation figures.
        rank: this process's rank (0 without torchrun): only rank 0 reports.
    """

    status: str
    step: int
    steps: int
    out_dir: Path
    model_path: Path | None
    validation: dict[str, float] = field(default_factory=dict)
    signal: str | None = None
    rank: int = 0


def train(options: TrainOptions) -> TrainResult:
    """Run (or, with ``options.resume``, continue) the training that ``options`` describe.

    Raises:
        DataError: unusable training data (one line naming the file and what is expected).
        RunConfigError: ``out`` holds another run, or a resume without / from another run's ``last.ckpt``.
        sam2kit.errors.ArgumentError: a precision the device cannot run (fp16 on a CPU).
        sam2kit.model_spec.ModelSpecError, sam2kit.checkpoints.CheckpointError: an unusable model.
        KeyboardInterrupt: a second SIGINT / SIGTERM during a step.
    """
    env = init_distributed(options.device)
    try:
        return _Run(options, env).run()
    finally:
        shutdown()


def prompt_options(options: TrainOptions) -> PromptOptions:
    """How the run's samples are prompted: the recipe's simulation with the run's counts and odds."""
    return PromptOptions(
        prob_point_input=options.point_prob,
        prob_box_input=options.box_prob,
        prob_interior_click=options.center_click_prob,
        num_init_cond_frames=options.init_frames,
        num_frames_to_correct=options.correct_frames,
        num_correction_points=options.corrections,
    )


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    import numpy

    try:
        sam2kit_version = version("sam2kit")
    except PackageNotFoundError:
        sam2kit_version = "0+unknown"
    return {"sam2kit": sam2kit_version, "torch": torch.__version__, "numpy": numpy.__version__,
            "python": platform.python_version(), "platform": platform.platform()}


class _Run:
    def __init__(self, options: TrainOptions, env: DistEnv) -> None:
        self.options, self.env = options, env
        self.out = Path(options.out).expanduser()
        self.last_path = self.out / LAST_CHECKPOINT
        self.validation: dict[str, float] = {}
        self.started = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")

    # ------------------------------------------------------------------ set-up
    def _setup(self) -> None:
        options, env = self.options, self.env
        try:
            resolve_precision(options.precision, env.device)  # fp16 on a CPU: refused; bf16 there: may warn
        except ValueError as error:
            raise ArgumentError(f"precision {options.precision}: {error}", argument="precision") from None
        if not options.resume and self.last_path.exists():
            raise RunConfigError(
                f"{self.last_path}: this folder already holds a run; pass --resume to continue it, or another --out"
            )
        # The data first: its errors come before a checkpoint is loaded.
        image_size = resolve_training_config(options).image_size
        self.data: TrainingData = open_training_data(options, image_size)
        self.image_data: TrainingData | None = open_image_data(options, image_size)
        if self.image_data is not None and self.data.kind != "video":
            raise DataError(f"{options.data}: --image-data mixes still images into a video run; --data must be videos")
        self.setup: TrainingModel = build_training_model(options, env.device)
        self.model = self.setup.model
        self.run_config = options.run_config(env.world_size)
        groups = parameter_groups(
            self.model, lr=options.peak_lr, encoder_lr=options.peak_encoder_lr,
            layer_decay=options.layer_decay, weight_decay=options.weight_decay,
        )
        self.optimizer = build_optimizer(groups)
        self.params = trainable_parameters(groups)
        self.encoder_groups = [
            i for i, group in enumerate(groups) if all(n.startswith("image_encoder.") for n in group["names"])
        ]
        self.scaler = torch.amp.GradScaler(env.device.type, enabled=options.precision == "fp16")
        self.start_step = 0
        if options.resume:
            state = load_last(self.last_path, self.run_config, env.device, defaults=TrainOptions.defaults())
            self.model.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
            if state.get("grad_scaler"):
                self.scaler.load_state_dict(state["grad_scaler"])
            set_rng_state(state["rng"][env.rank], env.device)
            self.start_step = int(state["step"])
            self.validation = dict(state.get("validation", {}))
        cache = None
        if options.uses_cache:
            cache = FeatureCache(self.model, "disk" if options.cache == "disk" else "memory", self.out / "cache")
        self.objective = TrainingObjective(
            self.model, kind=self.data.kind, prompts=prompt_options(options),
            loss_fn=SAM2Loss(LossWeights(*options.loss_weights), object_score=self.setup.config.pred_obj_scores),
            encoder_trains=options.encoder_trains,
            cache=cache, seed=options.seed,
        )
        self.forward: torch.nn.Module = self.objective
        if env.distributed:
            # Prompts decide which weights a sample uses (a box never touches the point
            # embeddings, a mask prompt skips the decoder): unused parameters are normal.
            self.forward = torch.nn.parallel.DistributedDataParallel(self.objective, find_unused_parameters=True)
        # A mixed run's video and image steps each read their own stream, from where it stands.
        share = options.image_share if self.image_data is not None else 0.0
        images_done = image_steps_before(self.start_step, share)
        images_total = image_steps_before(options.steps, share)
        self.sampler = ShardedSteps(
            batch_size=options.batch_size, accumulate=options.accumulate, rank=env.rank,
            world_size=env.world_size, start_step=self.start_step - images_done, steps=options.steps - images_total,
        )
        self.order = DataOrder(len(self.data.train), options.seed)  # type: ignore[arg-type]
        self.image_sampler = ShardedSteps(
            batch_size=options.images_batch, accumulate=options.accumulate, rank=env.rank,
            world_size=env.world_size, start_step=images_done, steps=images_total,
        )
        self.steps_per_epoch = max(1, math.ceil(len(self.data.train) / self.sampler.global_batch))  # type: ignore[arg-type]

    def _autocast(self) -> contextlib.AbstractContextManager:
        precision = self.options.precision
        if precision == "fp32":
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if precision == "bf16" else torch.float16
        return torch.autocast(self.env.device.type, dtype=dtype)

    # ------------------------------------------------------------------ files
    def _run_json(self, status: str, step: int, seconds: float) -> None:
        if not self.env.is_main:
            return
        summary = {k: v for k, v in self.data.summary.items() if not k.endswith("_names")}
        save_json(self.out / RUN_FILE, {
            "command": "sam2kit train",
            "status": status,
            "step": step,
            "started": self.started,
            "updated": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "seconds_this_invocation": round(seconds, 2),
            "options": asdict(self.options),
            "run_config": self.run_config,
            "model": {
                "config": asdict(self.setup.config),
                "checkpoint": self.options.checkpoint,
                "parameters": self.setup.num_parameters,
                "trainable_parameters": self.setup.num_trainable,
                "lora_layers": len(self.setup.lora_layers),
            },
            "data": {**summary, "train_names": self.data.summary["train_names"][:1000],
                     "val_names": self.data.summary["val_names"][:1000]},
            "image_data": None if self.image_data is None else {
                **{k: v for k, v in self.image_data.summary.items() if not k.endswith("_names")},
                "share_of_steps": self.options.image_share, "batch_size": self.options.images_batch,
            },
            "schedule": {"global_batch": self.sampler.global_batch, "steps_per_epoch": self.steps_per_epoch,
                         "lr": self.options.peak_lr, "encoder_lr": self.options.peak_encoder_lr,
                         "warmup_steps": self.options.warmup_steps},
            "processes": self.env.world_size,
            "device": str(self.env.device),
            "seed": self.options.seed,
            "versions": _versions(),
            "validation": self.validation,
            "outputs": {"model": FINAL_MODEL, "last_checkpoint": LAST_CHECKPOINT, "log": LOG_FILE},
        })

    def _save_last(self, step: int) -> None:
        rng = all_gather_objects(rng_state(self.env.device))  # every process's random streams
        if self.env.is_main:
            save_torch(self.last_path, {
                "format": CHECKPOINT_FORMAT,
                "run_config": self.run_config,
                "step": step,
                "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "grad_scaler": self.scaler.state_dict() if self.scaler.is_enabled() else None,
                "rng": rng,
                "validation": self.validation,
            })
        barrier()

    def _save_model(self) -> Path:
        path = self.out / FINAL_MODEL
        if self.env.is_main:
            save_torch(path, {"model": merged_state_dict(self.model)})
        barrier()
        return path

    # ------------------------------------------------------------------ steps
    def _validate(self, step: int, log: LogWriter | None) -> None:
        if self.options.val_max > 0 and self.env.is_main:
            figures: dict[str, float] = {}
            for data in (self.data, self.image_data):
                if data is not None and data.val is not None:
                    run = validate_images if data.kind == "images" else validate_videos
                    figures.update(run(self.model, data.val, max_items=self.options.val_max, seed=self.options.seed))
            if figures:
                self.validation = {"step": step, **figures}
                if log is not None:
                    log.write({"kind": "val", "step": step, "epoch": step / self.steps_per_epoch, **figures})
        barrier()

    def _step(self, step: int, micro_batches: list[list[Any]]) -> dict[str, float]:
        options, env = self.options, self.env
        for items in micro_batches:
            for item in items:
                if item.error is not None:
                    raise DataError(item.error)
        local_objects = sum(num_objects_of(item) for items in micro_batches for item in items)
        local_samples = sum(len(items) for items in micro_batches)
        global_objects, global_samples = all_reduce_sum([local_objects, local_samples], env.device)
        normaliser = max(global_objects / env.world_size, 1.0)
        rates = set_learning_rates(
            self.optimizer, lr_factor(step, options.steps, options.warmup_steps, options.min_lr_ratio)
        )
        self.optimizer.zero_grad(set_to_none=True)
        terms = torch.zeros(len(TERM_NAMES), dtype=torch.float64)
        for index, items in enumerate(micro_batches):
            last = index == len(micro_batches) - 1
            sync = contextlib.nullcontext() if last or not env.distributed else self.forward.no_sync()  # type: ignore[operator]
            with sync:
                with self._autocast():
                    total, parts = self.forward(items, normaliser)
                self.scaler.scale(total).backward()
            terms += parts.detach().double().cpu()
        self.scaler.unscale_(self.optimizer)
        grads = [param for param in self.params if param.grad is not None]
        max_norm = options.clip if options.clip > 0 else math.inf
        grad_norm = float(torch.nn.utils.clip_grad_norm_(grads, max_norm)) if grads else 0.0
        self.scaler.step(self.optimizer)
        self.scaler.update()
        reduced = all_reduce_sum(terms.tolist(), env.device)
        row: dict[str, Any] = {name: value / env.world_size for name, value in zip(TERM_NAMES, reduced, strict=True)}
        encoder_rates = [rates[i] for i in self.encoder_groups]
        row.update({
            "kind": "train", "step": step + 1, "epoch": (step + 1) / self.steps_per_epoch,
            "lr": max(rates), "encoder_lr": max(encoder_rates) if encoder_rates else None,
            "grad_norm": grad_norm, "objects": int(global_objects), "samples": int(global_samples),
        })
        return row

    def run(self) -> TrainResult:
        options, env = self.options, self.env
        began = time.perf_counter()
        if env.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
        self._setup()
        log = None
        if env.is_main:
            log = LogWriter(self.out / LOG_FILE, resume_at=self.start_step if options.resume else None)
        self._run_json("running", self.start_step, 0.0)
        loader = iter(make_loader(self.data.train, self.order, self.sampler, options.workers))
        image_loader = None
        if self.image_data is not None:
            image_order = DataOrder(len(self.image_data.train), options.seed)  # type: ignore[arg-type]
            image_loader = iter(make_loader(self.image_data.train, image_order, self.image_sampler, options.workers))
        progress = _progress(options, env, self.start_step)
        step, status, signal_name = self.start_step, "finished", None
        try:
            with StopSignals() as signals:
                while step < options.steps:
                    if options.stop_after is not None and step - self.start_step >= options.stop_after:
                        status = "stopped"
                        break
                    tick = time.perf_counter()
                    source = image_loader if image_loader is not None and options.is_image_step(step) else loader
                    micro_batches = [next(source) for _ in range(options.accumulate)]
                    row = self._step(step, micro_batches)
                    step += 1
                    row["samples_per_s"] = row.pop("samples") / max(time.perf_counter() - tick, 1e-9)
                    if log is not None:
                        log.write(row)
                    if progress is not None:
                        progress.update(1)
                        progress.set_postfix(loss=f"{row['loss']:.4f}", samples_per_s=f"{row['samples_per_s']:.2f}")
                    stop = all_reduce_sum([1.0 if signals.requested else 0.0], env.device)[0] > 0
                    every = options.eval_every or self.steps_per_epoch
                    if step % every == 0 and step < options.steps:
                        self._validate(step, log)
                    if stop or step % options.save_every == 0:
                        self._save_last(step)
                    if stop:
                        status, signal_name = "interrupted", signals.requested or "signal"
                        break
                model_path = None
                if status == "finished":
                    self._validate(step, log)
                    self._save_last(step)
                    model_path = self._save_model()
                elif status == "stopped":
                    self._save_last(step)
        finally:
            if progress is not None:
                progress.close()
            if log is not None:
                log.close()
        self._run_json(status, step, time.perf_counter() - began)
        return TrainResult(status, step, options.steps, self.out, model_path, dict(self.validation), signal_name,
                           env.rank)


def _progress(options: TrainOptions, env: DistEnv, start: int) -> Any:
    """A tqdm bar on stderr (main process only, and only with ``options.progress``)."""
    if not (options.progress and env.is_main):
        return None
    from tqdm import tqdm

    return tqdm(total=options.steps, initial=start, unit="step", file=sys.stderr, dynamic_ncols=True, leave=False)
