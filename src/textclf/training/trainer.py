"""One Trainer builder for every path that trains: fine-tuning (:mod:`textclf.training.finetune`), search trials
(:mod:`textclf.training.search`) and the Ray Tune backend (:mod:`textclf.training.search_ray`).

:func:`build_trainer` maps a recipe and its data onto ``transformers.Trainer``: the tokenized splits (``chunks``
validation read as one window per document, see below), ``TrainingArguments`` in transformers 5 names, dynamic
padding (``DataCollatorWithPadding``), the task's metrics, class weights as ``compute_loss_func`` and layer-wise
learning-rate decay as the optimizer's parameter groups. Nothing here writes a file: the Trainer creates its
``checkpoints/`` directory when it is built, so call it once the data and recipe have been checked.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import DataCollatorWithPadding, PreTrainedModel, Trainer, TrainingArguments, set_seed

from textclf.config import Recipe
from textclf.data.loading import TaskData
from textclf.data.tokenization import tokenize
from textclf.errors import ConfigError
from textclf.evaluation.metrics import trainer_metrics
from textclf.hardware import resolve_bf16
from textclf.modeling import base_model_id, load_model, load_tokenizer
from textclf.tasks import MULTI_LABEL
from textclf.training.checkpointing import ResumableTrainer
from textclf.training.distillation import HAS_LABEL, TEACHER_LOGITS, DistillationLoss, DistillationTrainer
from textclf.training.losses import WeightedLoss, resolve_class_weights
from textclf.training.tracking import trainer_report_to

LOWER_IS_BETTER = ("mse", "loss")


def best_model_metric(recipe: Recipe, data: TaskData) -> str:
    """The metric that picks the best checkpoint (and that a search optimises): the recipe's
    ``metric_for_best_model``, else the task's own (GLUE paper, Table 1: MCC for CoLA, Pearson for STS-B).

    Raises:
        ConfigError: the metric is not computed for this task; a threshold on a task that is not multi-label.
    """
    metric = recipe.metric_for_best_model or data.metric_for_best_model
    if metric not in data.metrics and metric != "loss":
        raise ConfigError(f"metric_for_best_model={metric!r} is not computed for this task: use one of "
                          f"{', '.join(data.metrics)}")
    if recipe.threshold != "auto" and data.problem_type != MULTI_LABEL:
        raise ConfigError(f"threshold={recipe.threshold} applies to multi-label tasks only, and this one is "
                          f"{data.problem_type}: remove it (or use threshold=auto)")
    return metric


def training_arguments(recipe: Recipe, output_dir: Path, metric: str, bf16: bool) -> TrainingArguments:
    """Map a recipe onto ``TrainingArguments`` (transformers 5 names: ``eval_strategy``,
    ``train_sampling_strategy``, ``warmup_steps`` as a ratio when < 1). ``report_to`` holds the trackers the
    Trainer sets up itself: TensorBoard comes from :func:`textclf.training.tracking.tracking_callbacks` instead."""
    evaluating = recipe.eval_strategy != "no"
    return TrainingArguments(
        output_dir=str(output_dir / "checkpoints"),
        learning_rate=recipe.learning_rate,
        num_train_epochs=recipe.num_train_epochs,
        max_steps=recipe.max_steps,
        per_device_train_batch_size=recipe.per_device_train_batch_size,
        per_device_eval_batch_size=recipe.per_device_eval_batch_size,
        gradient_accumulation_steps=recipe.gradient_accumulation_steps,
        weight_decay=recipe.weight_decay,
        warmup_steps=recipe.warmup_ratio,
        lr_scheduler_type=recipe.lr_scheduler_type,
        optim=recipe.optim,
        bf16=bf16,
        use_cpu=not torch.cuda.is_available(),
        train_sampling_strategy=recipe.train_sampling_strategy,
        eval_strategy=recipe.eval_strategy,
        eval_steps=recipe.eval_steps,
        save_strategy=recipe.eval_strategy if evaluating else "no",
        save_steps=recipe.eval_steps,
        save_total_limit=recipe.save_total_limit,
        load_best_model_at_end=evaluating,
        metric_for_best_model=metric if evaluating else None,
        greater_is_better=metric not in LOWER_IS_BETTER,
        logging_steps=recipe.logging_steps,
        seed=recipe.seed,
        data_seed=recipe.seed,
        report_to=trainer_report_to(recipe.report_to),
        dataloader_num_workers=recipe.dataloader_num_workers,
        include_num_input_tokens_seen="all",  # padded tokens per step, for the padding fraction
    )


# Encoder blocks: BERT/RoBERTa encoder.layer.N, DistilBERT transformer.layer.N.
_LAYER_INDEX = re.compile(r"\.layer\.(\d+)\.")


def layerwise_parameter_groups(model: torch.nn.Module, learning_rate: float, decay: float,
                               weight_decay: float) -> list[dict[str, Any]]:
    """Optimizer parameter groups with layer-wise learning-rate decay (Howard & Ruder 2018, ULMFiT's
    discriminative fine-tuning; Clark et al. 2020, ELECTRA, appendix A; Sun et al. 2019 found 0.95 best for BERT).

    The head (pooler, classifier: everything above the encoder blocks) trains at ``learning_rate``, encoder block
    ``i`` of ``L`` at ``learning_rate * decay ** (L - i)``, the embeddings at ``learning_rate * decay ** (L + 1)``.
    Weight decay applies to matrices (``ndim >= 2``), not to biases and LayerNorm weights (the Trainer's rule).
    Frozen parameters are left out.

    Returns:
        A list of ``{"params", "lr", "weight_decay"}`` dicts for any ``torch.optim`` optimizer; the learning-rate
        scheduler scales each group's ``lr``.
    """
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    depths = {}
    for name, _ in named:
        found = _LAYER_INDEX.search(name)
        depths[name] = int(found.group(1)) + 1 if found else (0 if "embeddings" in name else None)
    top = max([d for d in depths.values() if d is not None], default=0) + 1
    groups: dict[tuple[int, bool], dict[str, Any]] = {}
    for name, param in named:
        depth = top if depths[name] is None else depths[name]
        key = (depth, param.ndim >= 2)
        group = groups.setdefault(key, {"params": [], "lr": learning_rate * decay ** (top - depth),
                                        "weight_decay": weight_decay if key[1] else 0.0})
        group["params"].append(param)
    return [groups[k] for k in sorted(groups)]


def class_weights(recipe: Recipe, data: TaskData) -> list[float] | None:
    """The loss weights of ``recipe.class_weights`` for ``data``'s train labels (:mod:`textclf.training.losses`),
    one per label in id order, or None for the model's own loss.

    Raises:
        ConfigError: weights for regression, or a list of the wrong length.
    """
    return resolve_class_weights(recipe.class_weights, np.asarray(data.splits["train"]["label"]), data.label_names,
                                 data.problem_type)


def new_model(recipe: Recipe, data: TaskData) -> PreTrainedModel:
    """A fresh classifier for ``data`` from ``recipe.model``, its head initialised from ``recipe.seed``, with the
    recipe's freezing, dropout and attention settings and textclf's metadata (``config.textclf``: task, text
    columns, max_seq_length, truncation, base model), which inference reads back.

    Raises:
        ModelError: the model cannot be found locally or on the Hub.
    """
    set_seed(recipe.seed)  # the classification head's initialisation follows the recipe's seed
    return load_model(recipe.model, data.label_names, data.problem_type, recipe.freeze_base,
                      freeze_embeddings=recipe.freeze_embeddings, attention_dropout=recipe.attention_dropout,
                      hidden_dropout=recipe.hidden_dropout,
                      attn_implementation=None if recipe.attn_implementation == "auto" else recipe.attn_implementation,
                      extra_config={"textclf": {"task": data.name, "text_columns": list(data.text_columns),
                                                "max_seq_length": recipe.max_seq_length,
                                                "truncation": recipe.truncation, "head_tokens": recipe.head_tokens,
                                                "stride": recipe.stride, "base_model": base_model_id(recipe.model)}})


def build_trainer(recipe: Recipe, data: TaskData, output_dir: Path, metric: str, *,
                  model: PreTrainedModel | None = None, model_init: Callable[..., PreTrainedModel] | None = None,
                  callbacks: list[Any] | None = None, distillation: DistillationLoss | None = None,
                  **argument_overrides: Any) -> Trainer:
    """A ``Trainer`` for ``recipe`` on ``data``'s train and validation splits, checkpoints in ``OUTPUT/checkpoints``.

    ``truncation=chunks`` trains on every window (each with its document's label). The Trainer's own evaluation,
    which picks the best checkpoint and drives early stopping, needs one row per document and cannot pool windows,
    so it scores each validation document's first window (head truncation); a run's final metrics come from
    :class:`~textclf.inference.predictor.Predictor`, which averages all windows' logits per document.

    Args:
        model: the model to train (default :func:`new_model`); or ``model_init``, a function returning a fresh
            model per trial (``Trainer.hyperparameter_search``; layer-wise decay then cannot be used).
        callbacks: ``TrainerCallback``s, e.g. a search's pruning callback.
        distillation: train towards a teacher (:class:`~textclf.training.distillation.DistillationTrainer`): the
            train split must carry ``teacher_logits`` and ``has_label`` (:mod:`textclf.training.teacher`).
        argument_overrides: ``TrainingArguments`` fields replacing the recipe's (``save_strategy="no"``).

    Raises:
        ConfigError: bad truncation for these texts, class weights the task cannot take, layer-wise decay with
            ``model_init``; ModelError: the model or tokenizer cannot be loaded.
    """
    tokenizer = load_tokenizer(recipe.model)
    truncations = {"train": recipe.truncation,
                   "validation": "head" if recipe.truncation == "chunks" else recipe.truncation}
    keep = {"train": ("label", TEACHER_LOGITS, HAS_LABEL) if distillation else ("label",), "validation": ("label",)}
    encoded = {role: tokenize(data.splits[role], tokenizer, data.text_columns, recipe.max_seq_length,
                              keep_columns=keep[role], truncation=truncations[role], head_tokens=recipe.head_tokens,
                              stride=recipe.stride)
               for role in ("train", "validation")}
    weights = class_weights(recipe, data)
    if distillation is not None and weights is not None:
        raise ConfigError("class_weights with method=distill: the teacher's soft targets carry the class balance; "
                          "use class_weights=none")
    decay = recipe.layerwise_lr_decay not in (None, 1.0)
    if decay and model_init is not None:
        raise ConfigError("layerwise_lr_decay cannot be used with search.backend=ray: use backend=optuna")
    if model is None and model_init is None:
        model = new_model(recipe, data)
    args = training_arguments(recipe, output_dir, metric, resolve_bf16(recipe.bf16))
    schedule = small_data_schedule(recipe, len(encoded["train"]), data.validation_is_train)
    argument_overrides = {**schedule.pop("overrides"), **argument_overrides}
    if argument_overrides:
        args = dataclasses.replace(args, **argument_overrides)
    loss_func = None if weights is None else WeightedLoss(  # weights on the device the Trainer puts the model
        torch.tensor(weights, dtype=torch.float32, device=args.device), data.problem_type)
    optimizers: tuple[Any, Any] = (None, None)
    if decay:
        optimizer_cls, optimizer_kwargs = Trainer.get_optimizer_cls_and_kwargs(args, model)  # honours recipe.optim
        groups = layerwise_parameter_groups(model, args.learning_rate, recipe.layerwise_lr_decay,
                                            recipe.weight_decay)
        optimizers = (optimizer_cls(groups, **optimizer_kwargs), None)  # the Trainer still builds the scheduler
    trainer_cls, extra = ((DistillationTrainer, {"distillation": distillation}) if distillation is not None
                          else (ResumableTrainer, {}))
    trainer = trainer_cls(model=model, model_init=model_init, args=args, train_dataset=encoded["train"],
                          eval_dataset=encoded["validation"], optimizers=optimizers, processing_class=tokenizer,
                          data_collator=DataCollatorWithPadding(tokenizer),
                          compute_metrics=trainer_metrics(data.metrics, data.problem_type), callbacks=callbacks,
                          compute_loss_func=loss_func, **extra)
    trainer.schedule = schedule  # what small_data_schedule decided, for metrics.json
    return trainer


# min_train_steps holds for inputs up to this many tokens (it was measured on SST-2 sentences, cut at 128).
FLOOR_SEQ_LENGTH = 128
# Little data of long inputs (the floor applies and max_seq_length > FLOOR_SEQ_LENGTH): batches of at most this many
# examples, the learning rate scaled down with the batch (Goyal et al. 2017's linear scaling rule), the floor kept in
# tokens. On the reference exercise (500 IMDb reviews, 512-token chunks) batch 32 at lr 1e-4 scored 0.716 and 0.830
# on two data orders, batch 16 at 5e-5 (150 steps, the same tokens) 0.844 and 0.838: docs/results.md.
SMALL_DATA_LONG_BATCH = 16


def small_data_schedule(recipe: Recipe, train_rows: int, validation_is_train: bool) -> dict[str, Any]:
    """How a run on little data is scheduled: ``TrainingArguments`` overrides, and why.

    - Fewer optimizer steps than the floor (3 epochs of 128 examples at batch 32 are 12 steps): ``max_steps`` =
      the floor (the epochs scale up; warmup stays ``warmup_ratio`` of the steps), and an epoch-wise evaluation
      becomes one every floor / 10 steps. The floor is ``recipe.min_train_steps`` for inputs of up to
      :data:`FLOOR_SEQ_LENGTH` tokens and shrinks in proportion beyond (a step of 512-token reviews carries 4x the
      tokens): on the reference exercise's 500 IMDb reviews at 512 tokens, 68 steps (4 epochs) reached 0.848 test
      accuracy, where 300 steps would take 16 epochs (about 40 minutes on a 2-core CPU).
    - Long inputs under the floor: a batch above :data:`SMALL_DATA_LONG_BATCH` is cut to it, the learning rate by
      the same factor, and the floor grows by its inverse (the same tokens in twice the updates at 32 -> 16).
    - A validation split that is the training data (:data:`textclf.data.loading.MIN_HOLDOUT_TRAIN`): a fixed
      schedule, no evaluation during training, the last step's model (no checkpoint is chosen by training data).

    Returns:
        ``{"overrides": {...}, "planned_steps": n, "min_train_steps": n, "max_steps": n or None,
        "fixed_schedule": bool, "per_device_train_batch_size": n, "learning_rate": float}`` (the last two as
        trained).
    """
    devices = max(1, torch.cuda.device_count())
    per_step = recipe.per_device_train_batch_size * recipe.gradient_accumulation_steps * devices
    planned = recipe.max_steps if recipe.max_steps > 0 else math.ceil(
        math.ceil(train_rows / per_step) * recipe.num_train_epochs)
    length = recipe.max_seq_length if isinstance(recipe.max_seq_length, int) else FLOOR_SEQ_LENGTH  # auto: unresolved
    floor = math.ceil(recipe.min_train_steps * min(1.0, FLOOR_SEQ_LENGTH / length))
    overrides: dict[str, Any] = {}
    if recipe.max_steps <= 0 and planned < floor:
        batch = recipe.per_device_train_batch_size
        if length > FLOOR_SEQ_LENGTH and batch > SMALL_DATA_LONG_BATCH:
            scale = SMALL_DATA_LONG_BATCH / batch
            floor = math.ceil(floor / scale)
            overrides.update(per_device_train_batch_size=SMALL_DATA_LONG_BATCH,
                             learning_rate=recipe.learning_rate * scale)
        overrides["max_steps"] = floor
        logging.getLogger(__name__).info(
            "small data: %d planned optimizer steps < the floor of %d for %d-token inputs: training %d steps%s",
            planned, floor, length, floor, "" if "learning_rate" not in overrides else
            f" of batch {SMALL_DATA_LONG_BATCH} at learning_rate {overrides['learning_rate']:g}")
        if recipe.eval_strategy == "epoch":
            every = max(1, math.ceil(floor / 10))
            overrides.update(eval_strategy="steps", eval_steps=every, save_strategy="steps", save_steps=every)
    if validation_is_train:
        overrides.update(eval_strategy="no", save_strategy="no", load_best_model_at_end=False,
                         metric_for_best_model=None)
    return {"overrides": overrides, "planned_steps": planned, "min_train_steps": floor,
            "max_steps": overrides.get("max_steps"), "fixed_schedule": validation_is_train,
            "per_device_train_batch_size": overrides.get("per_device_train_batch_size",
                                                         recipe.per_device_train_batch_size),
            "learning_rate": overrides.get("learning_rate", recipe.learning_rate)}
