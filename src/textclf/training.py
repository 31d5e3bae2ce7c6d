"""Fine-tune a classifier with ``transformers.Trainer`` and write a self-describing result directory.

``DIR/`` after :func:`train`::

    config.yaml         the resolved recipe (written first, so a resumed run knows what it was)
    checkpoints/        the Trainer's per-epoch checkpoints (for resume_from_checkpoint)
    model/              the best checkpoint: safetensors weights, tokenizer, id2label/label2id, problem_type
                        (multi-label: the decision threshold, textclf.threshold, tuned on validation), and
                        README.md, its model card (textclf.modelcard)
    metrics.json        final validation metrics (eval_* keys), train speed, the majority-class floor,
                        the threshold and class weights used, the hardware
    predictions.jsonl   one line per validation example: texts, gold, predicted label, score
    errors.csv          the misclassified examples, most confident first (regression: largest errors)
    per_label.csv       precision, recall, F1 and support of every class / label on validation (not regression)
    log_history.json    the Trainer's log history (losses and eval metrics per step/epoch)
    plots/, report.md   learning curves, confusion matrix, calibration or regression scatter, and a summary
                        (textclf.reporting; ``textclf report DIR`` rebuilds them)
    tensorboard/        TensorBoard event files when report_to names tensorboard (the default; textclf.tracking)

Every file is written atomically; data and config errors (an uninstalled tracker, push_to_hub without a token
included) are raised before ``DIR`` is touched. With ``push_to_hub=true``, ``model/`` is uploaded at the end.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import (
    DataCollatorWithPadding,
    EarlyStoppingCallback,
    Trainer,
    TrainerCallback,
    TrainingArguments,
    set_seed,
)
from transformers.trainer_utils import get_last_checkpoint

from textclf.config import Recipe, save_recipe
from textclf.data import TaskData, load_recipe_data, tokenize
from textclf.errors import ConfigError
from textclf.evaluation import validation_logits, validation_report
from textclf.files import atomic_path, atomic_write_text
from textclf.hardware import describe_machine, resolve_bf16
from textclf.inference import Predictor, write_jsonl
from textclf.losses import WeightedLoss, resolve_class_weights
from textclf.metrics import (
    majority_baseline,
    per_label_report,
    predictions_from_logits,
    trainer_metrics,
    tune_threshold,
)
from textclf.modeling import base_model_id, load_model, load_tokenizer, use_length_aware_attention
from textclf.reporting import build_report
from textclf.tasks import MULTI_LABEL, REGRESSION
from textclf.tracking import (
    check_hub_token,
    check_trackers,
    push_model,
    tensorboard_dir,
    tracking_callbacks,
    tracking_environment,
    trainer_report_to,
)

logger = logging.getLogger(__name__)
LOWER_IS_BETTER = ("mse", "loss")


@dataclass
class TrainResult:
    """What a training run produced.

    Attributes:
        output_dir: the run directory; ``model_dir`` the best checkpoint inside it.
        metrics: the contents of metrics.json (eval_* keys, train_runtime in seconds, ...).
    """

    output_dir: Path
    model_dir: Path
    metrics: dict[str, Any]


def training_arguments(recipe: Recipe, output_dir: Path, metric: str, bf16: bool) -> TrainingArguments:
    """Map a recipe onto ``TrainingArguments`` (transformers 5 names: ``eval_strategy``,
    ``train_sampling_strategy``, ``warmup_steps`` as a ratio when < 1). ``report_to`` holds the trackers the
    Trainer sets up itself: TensorBoard comes from :func:`textclf.tracking.tracking_callbacks` instead."""
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


_LAYER_INDEX = re.compile(r"\.layer\.(\d+)\.")  # encoder blocks: BERT/RoBERTa encoder.layer.N, DistilBERT transformer.layer.N


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


def _resume_path(recipe: Recipe, output_dir: Path) -> str | None:
    if recipe.resume_from_checkpoint in (None, "", "false"):
        return None
    if recipe.resume_from_checkpoint in ("last", "true"):
        found = get_last_checkpoint(str(output_dir / "checkpoints")) if (output_dir / "checkpoints").is_dir() else None
        if found is None:
            raise ConfigError(f"resume_from_checkpoint=last: no checkpoint in {output_dir / 'checkpoints'}: "
                             "run without it first, or give a checkpoint directory")
        return found
    if not Path(recipe.resume_from_checkpoint).is_dir():
        raise ConfigError(f"resume_from_checkpoint={recipe.resume_from_checkpoint}: no such checkpoint directory")
    return recipe.resume_from_checkpoint


def _store_threshold(predictor: Predictor, model_dir: Path, threshold: float) -> None:
    """Write the multi-label decision threshold into the checkpoint's config.json (``textclf.threshold``, which
    :class:`Predictor` reads), atomically, and make ``predictor`` use it."""
    path = model_dir / "config.json"
    config = json.loads(path.read_text(encoding="utf-8"))
    config["textclf"] = {**config.get("textclf", {}), "threshold": float(threshold)}
    atomic_write_text(path, json.dumps(config, indent=2, sort_keys=True) + "\n")  # PretrainedConfig's layout
    predictor.model.config.textclf = {**(getattr(predictor.model.config, "textclf", None) or {}),
                                      "threshold": float(threshold)}
    predictor.threshold = float(threshold)


def train(recipe: Recipe, output_dir: str | Path, *, callbacks: list[TrainerCallback] | None = None,
          data: TaskData | None = None) -> TrainResult:
    """Fine-tune ``recipe.model`` on ``recipe``'s data and write the run directory (see module docstring).

    Args:
        recipe: a validated recipe (:func:`textclf.config.load_recipe`).
        output_dir: the run directory; created if needed. An existing run there is overwritten file by file
            (each atomically), or resumed with ``resume_from_checkpoint=last``.
        callbacks: extra ``TrainerCallback``s (textclf.search reports each evaluation to its trial with one); an
            exception raised by one (e.g. ``optuna.TrialPruned``) ends training and propagates.
        data: already loaded data to train on, instead of ``load_recipe_data(recipe)`` (whose sample caps and
            seeded splits it then replaces): textclf.search gives every trial the same seeded subset.

    Returns:
        A :class:`TrainResult`; ``metrics["eval_<metric>"]`` holds the best checkpoint's validation scores.

    Raises:
        DataError, ConfigError, ModelError (all ``TextclfError``): bad data, recipe or model, raised before
            anything is written to ``output_dir``.
    """
    output_dir = Path(output_dir)
    if recipe.torch_num_threads:
        torch.set_num_threads(recipe.torch_num_threads)
    bf16 = resolve_bf16(recipe.bf16)
    data = load_recipe_data(recipe) if data is None else data
    metric = recipe.metric_for_best_model or data.metric_for_best_model
    if metric not in data.metrics and metric != "loss":
        raise ConfigError(f"metric_for_best_model={metric!r} is not computed for this task: use one of "
                          f"{', '.join(data.metrics)}")
    if recipe.threshold != "auto" and data.problem_type != MULTI_LABEL:
        raise ConfigError(f"threshold={recipe.threshold} applies to multi-label tasks only, and this one is "
                          f"{data.problem_type}: remove it (or use threshold=auto)")
    class_weights = resolve_class_weights(recipe.class_weights, np.asarray(data.splits["train"]["label"]),
                                          data.label_names, data.problem_type)
    resume = _resume_path(recipe, output_dir)
    check_trackers(recipe.report_to)
    hub_token = check_hub_token() if recipe.push_to_hub else None
    tokenizer = load_tokenizer(recipe.model)
    set_seed(recipe.seed)  # the classification head's initialisation follows the recipe's seed
    model = load_model(recipe.model, data.label_names, data.problem_type, recipe.freeze_base,
                       freeze_embeddings=recipe.freeze_embeddings, attention_dropout=recipe.attention_dropout,
                       hidden_dropout=recipe.hidden_dropout,
                       attn_implementation=None if recipe.attn_implementation == "auto" else recipe.attn_implementation,
                       extra_config={"textclf": {"task": data.name, "text_columns": list(data.text_columns),
                                                 "max_seq_length": recipe.max_seq_length,
                                                 "truncation": recipe.truncation, "head_tokens": recipe.head_tokens,
                                                 "stride": recipe.stride,
                                                 "base_model": base_model_id(recipe.model)}})
    # truncation=chunks trains on every window (each with its document's label). The Trainer's own evaluation, which
    # picks the best checkpoint and drives early stopping, needs one row per document and cannot pool windows, so it
    # scores each validation document's first window (head truncation, i.e. the document's first chunk); the final
    # metrics.json comes from Predictor (validation_report), which averages all windows' logits per document.
    truncations = {"train": recipe.truncation,
                   "validation": "head" if recipe.truncation == "chunks" else recipe.truncation}
    encoded = {role: tokenize(data.splits[role], tokenizer, data.text_columns, recipe.max_seq_length,
                              truncation=truncations[role], head_tokens=recipe.head_tokens, stride=recipe.stride)
               for role in ("train", "validation")}

    save_recipe(recipe, output_dir / "config.yaml")
    if resume is None:  # a fresh run's event files replace an earlier run's; a resumed run adds to them
        shutil.rmtree(tensorboard_dir(output_dir), ignore_errors=True)
    args = training_arguments(recipe, output_dir, metric, bf16)
    callbacks = list(callbacks or []) + tracking_callbacks(recipe.report_to, output_dir)
    if recipe.early_stopping_patience:
        callbacks.append(EarlyStoppingCallback(early_stopping_patience=recipe.early_stopping_patience))
    loss_func = None if class_weights is None else WeightedLoss(  # weights on the device the Trainer puts the model
        torch.tensor(class_weights, dtype=torch.float32, device=args.device), data.problem_type)
    optimizers: tuple[Any, Any] = (None, None)
    if recipe.layerwise_lr_decay is not None and recipe.layerwise_lr_decay != 1.0:
        optimizer_cls, optimizer_kwargs = Trainer.get_optimizer_cls_and_kwargs(args, model)  # honours recipe.optim
        groups = layerwise_parameter_groups(model, recipe.learning_rate, recipe.layerwise_lr_decay,
                                            recipe.weight_decay)
        optimizers = (optimizer_cls(groups, **optimizer_kwargs), None)  # the Trainer still builds the scheduler
    trainer = Trainer(model=model, args=args, train_dataset=encoded["train"], eval_dataset=encoded["validation"],
                      optimizers=optimizers,
                      processing_class=tokenizer, data_collator=DataCollatorWithPadding(tokenizer),
                      compute_metrics=trainer_metrics(data.metrics, data.problem_type), callbacks=callbacks,
                      compute_loss_func=loss_func)
    logger.info("training %s on %d examples (validation %d), bf16=%s", data.name, len(encoded["train"]),
                len(encoded["validation"]), bf16)
    hook = None
    if recipe.attn_implementation == "auto" and not torch.cuda.is_available():
        hook = use_length_aware_attention(model)
    started = time.perf_counter()
    with tracking_environment(recipe.report_to, output_dir):
        train_output = trainer.train(resume_from_checkpoint=resume)
    wall = time.perf_counter() - started
    if hook is not None:
        hook.remove()
        trainer.model.set_attn_implementation("sdpa")

    model_dir = output_dir / "model"
    with atomic_path(model_dir) as tmp:  # weights, config and tokenizer only: no pickled training_args.bin
        trainer.model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    # Judge the saved checkpoint, not the in-memory model: accelerate wraps the latter's forward in the
    # training autocast, and the numbers here must be the ones `textclf evaluate` reproduces.
    predictor = Predictor.from_pretrained(model_dir, batch_size=recipe.per_device_eval_batch_size)
    logits = validation_logits(predictor, data)  # (num_validation, num_labels), once for everything below
    if data.problem_type == MULTI_LABEL:
        threshold = recipe.threshold if recipe.threshold != "auto" else tune_threshold(
            logits, np.asarray(data.splits["validation"]["label"]))
        _store_threshold(predictor, model_dir, threshold)
    eval_metrics, rows, errors = validation_report(predictor, data, logits=logits)
    labels = np.asarray(data.splits["validation"]["label"])
    lengths = np.asarray([len(ids) for ids in encoded["train"]["input_ids"]])
    examples_seen = min(trainer.state.global_step * args.train_batch_size * args.gradient_accumulation_steps,
                        round(len(lengths) * float(trainer.state.epoch or 0)))
    real_tokens = float(lengths.mean()) * examples_seen if len(lengths) else 0.0
    padded_tokens = trainer.state.num_input_tokens_seen
    metrics: dict[str, Any] = {
        "task": data.name,
        **eval_metrics,
        "metric_for_best_model": f"eval_{metric}",
        "majority_baseline": {f"eval_{k}": v for k, v in
                              majority_baseline(data.metrics, labels, data.problem_type).items()},
        "train_examples": len(encoded["train"]),
        "eval_examples": len(encoded["validation"]),
        "epoch": trainer.state.epoch,
        "global_step": trainer.state.global_step,
        "train_loss": train_output.training_loss,
        "train_runtime": round(wall, 2),
        "train_samples_per_second": round(train_output.metrics.get("train_samples_per_second", 0.0), 3),
        "train_real_tokens": round(real_tokens),  # non-pad tokens: mean length x examples seen
        "train_padded_tokens": padded_tokens,  # tokens fed to the model, padding included
        "train_padding_fraction": round(1 - real_tokens / padded_tokens, 4) if padded_tokens else None,
        "best_checkpoint": trainer.state.best_model_checkpoint,
        "bf16": bf16,
        "hardware": describe_machine(),
        "threshold": predictor.threshold if data.problem_type == MULTI_LABEL else None,
        "threshold_tuned": data.problem_type == MULTI_LABEL and recipe.threshold == "auto",
        "class_weights": None if class_weights is None else dict(zip(data.label_names, class_weights)),
        "data_sources": data.sources,
    }
    atomic_write_text(output_dir / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    write_jsonl(output_dir / "predictions.jsonl", rows)
    with atomic_path(output_dir / "errors.csv") as tmp:
        errors.to_csv(tmp, index=False)
    if data.problem_type != REGRESSION:
        predicted = predictions_from_logits(logits, data.problem_type, predictor.threshold)
        with atomic_path(output_dir / "per_label.csv") as tmp:
            per_label_report(predicted, labels, data.label_names).to_csv(tmp, index=False)
    atomic_write_text(output_dir / "log_history.json", json.dumps(trainer.state.log_history, indent=1) + "\n")
    build_report(output_dir)  # plots/, report.md, model/README.md
    if recipe.push_to_hub:
        push_model(output_dir, recipe.hub_model_id or output_dir.resolve().name, hub_token)
    return TrainResult(output_dir=output_dir, model_dir=model_dir, metrics=metrics)
