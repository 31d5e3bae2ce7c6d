"""Fine-tuning with ``transformers.Trainer``: the ``method=finetune`` fit of a run (:mod:`textclf.training.run`)."""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import EarlyStoppingCallback, Trainer, TrainerCallback

from textclf.config import Recipe, save_recipe
from textclf.data.loading import TaskData
from textclf.modeling import use_length_aware_attention
from textclf.training.checkpointing import CheckpointCallback, resume_checkpoint
from textclf.training.distillation import DistillationLoss
from textclf.training.tracking import tensorboard_dir, tracking_callbacks, tracking_environment
from textclf.training.trainer import build_trainer

logger = logging.getLogger(__name__)


def resume_path(recipe: Recipe, output_dir: Path) -> str | None:
    """The checkpoint to resume from: None, the newest complete one in ``DIR/checkpoints`` (``last``), or the
    directory given (:func:`textclf.training.checkpointing.resume_checkpoint`).

    Raises:
        ConfigError: ``last`` without a complete checkpoint, or a directory that is missing or incomplete.
    """
    return resume_checkpoint(recipe.resume_from_checkpoint, output_dir / "checkpoints")


def fit_finetune(recipe: Recipe, data: TaskData, output_dir: Path, metric: str, *,
                 callbacks: list[TrainerCallback] | None = None, resume: str | None = None,
                 distillation: DistillationLoss | None = None) -> Trainer:
    """Build the Trainer (:func:`textclf.training.trainer.build_trainer`), write ``config.yaml``, set up tracking
    and early stopping, and train; the best checkpoint is loaded at the end (``load_best_model_at_end``).
    ``distillation`` trains towards the teacher logits on ``data``'s train split (``method=distill``).

    Returns:
        The trained ``Trainer``, with ``trainer.stats``: metrics.json's training facts (epoch, global_step,
        train_loss, train_runtime in seconds, samples per second, real and padded tokens, bf16, best checkpoint,
        and ``log_history``).

    Raises:
        ConfigError, ModelError: raised by build_trainer before anything is written.
    """
    saves = CheckpointCallback(recipe.save_minutes)  # resumable checkpoints mid-epoch, each with its manifest
    trainer = build_trainer(recipe, data, output_dir, metric, callbacks=[saves, *(callbacks or [])],
                            distillation=distillation)
    if trainer.is_world_process_zero():  # under torchrun the other processes write nothing
        save_recipe(recipe, output_dir / "config.yaml")
        if resume is None:  # a fresh run's event files replace an earlier run's; a resumed run adds to them
            shutil.rmtree(tensorboard_dir(output_dir), ignore_errors=True)
    for callback in tracking_callbacks(recipe.report_to, output_dir) if trainer.is_world_process_zero() else []:
        trainer.add_callback(callback)
    if recipe.early_stopping_patience and not data.validation_is_train:
        trainer.add_callback(EarlyStoppingCallback(early_stopping_patience=recipe.early_stopping_patience))
    logger.info("training %s on %d examples (validation %d), bf16=%s", data.name, len(trainer.train_dataset),
                len(trainer.eval_dataset), trainer.args.bf16)
    started = time.perf_counter()
    train_output = _fit(trainer, recipe, output_dir, resume)
    trainer.stats = _train_stats(trainer, train_output, time.perf_counter() - started)
    return trainer


def _fit(trainer: Trainer, recipe: Recipe, output_dir: Path, resume: str | None) -> Any:
    """``trainer.train()`` with the length-aware attention switch (CPU, ``attn_implementation=auto``) and the
    tracking environment; returns the Trainer's ``TrainOutput``."""
    hook = None
    if recipe.attn_implementation == "auto" and not torch.cuda.is_available():
        hook = use_length_aware_attention(trainer.model)
    with tracking_environment(recipe.report_to, output_dir):
        train_output = trainer.train(resume_from_checkpoint=resume)
    if hook is not None:
        hook.remove()
        trainer.model.set_attn_implementation("sdpa")
    return train_output


def _train_stats(trainer: Trainer, train_output: Any, wall: float) -> dict[str, Any]:
    """How the fit went: steps, seconds, tokens seen with and without padding, bf16, the best checkpoint."""
    args, state = trainer.args, trainer.state
    lengths = np.asarray([len(ids) for ids in trainer.train_dataset["input_ids"]])
    examples_seen = min(state.global_step * args.train_batch_size * args.gradient_accumulation_steps,
                        round(len(lengths) * float(state.epoch or 0)))
    real_tokens = float(lengths.mean()) * examples_seen if len(lengths) else 0.0
    padded_tokens = state.num_input_tokens_seen
    return {
        "train_examples": len(trainer.train_dataset),  # model inputs: examples, or windows with truncation=chunks
        "epoch": state.epoch,
        "global_step": state.global_step,
        "train_loss": train_output.training_loss,
        "train_runtime": round(wall, 2),
        "train_samples_per_second": round(train_output.metrics.get("train_samples_per_second", 0.0), 3),
        "train_real_tokens": round(real_tokens),  # non-pad tokens: mean length x examples seen
        "train_padded_tokens": padded_tokens,  # tokens fed to the model, padding included
        "train_padding_fraction": round(1 - real_tokens / padded_tokens, 4) if padded_tokens else None,
        "best_checkpoint": state.best_model_checkpoint,
        "bf16": args.bf16,
        "schedule": trainer.schedule,
        "log_history": state.log_history,
    }
