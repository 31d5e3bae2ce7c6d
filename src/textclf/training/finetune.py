"""Fine-tune a classifier with ``transformers.Trainer`` and write a self-describing result directory.

:func:`train` runs the stages in order: check the recipe and data (nothing is written before they pass), build the
Trainer (:func:`textclf.training.trainer.build_trainer`), train, save the best checkpoint, judge the saved checkpoint
(:func:`textclf.evaluation.checkpoint.evaluate_run`), write the run's files (:func:`textclf.reports.rundir.write_run`),
build the plots, report and model card (:func:`textclf.reports.summary.build_report`) and, if asked, push to the Hub.

``DIR/`` after :func:`train`::

    config.yaml         the resolved recipe (written first, so a resumed run knows what it was)
    checkpoints/        the Trainer's per-epoch checkpoints (for resume_from_checkpoint)
    model/              the best checkpoint: safetensors weights, tokenizer, id2label/label2id, problem_type
                        (multi-label: the decision threshold, textclf.threshold, tuned on validation), and
                        README.md, its model card (textclf.reports.modelcard)
    metrics.json        final validation metrics (eval_* keys), train speed, the majority-class floor,
                        the threshold and class weights used, the hardware
    predictions.jsonl   one line per validation example: texts, gold, predicted label, score
    errors.csv          the misclassified examples, most confident first (regression: largest errors)
    per_label.csv       precision, recall, F1 and support of every class / label on validation (not regression)
    log_history.json    the Trainer's log history (losses and eval metrics per step/epoch)
    plots/, report.md   learning curves, confusion matrix, calibration or regression scatter, and a summary
                        (textclf.reports; ``textclf report DIR`` rebuilds them)
    tensorboard/        TensorBoard event files when report_to names tensorboard (default; textclf.training.tracking)

Every file is written atomically; data and config errors (an uninstalled tracker, push_to_hub without a token
included) are raised before ``DIR`` is touched. With ``push_to_hub=true``, ``model/`` is uploaded at the end.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import EarlyStoppingCallback, Trainer, TrainerCallback
from transformers.trainer_utils import get_last_checkpoint

from textclf.config import Recipe, save_recipe
from textclf.data.loading import TaskData, load_recipe_data
from textclf.errors import ConfigError
from textclf.evaluation.checkpoint import RunEvaluation, evaluate_run
from textclf.files import atomic_path, atomic_write_text
from textclf.hardware import describe_machine
from textclf.hub import check_hub_token, push_model
from textclf.inference.predictor import Predictor
from textclf.modeling import use_length_aware_attention
from textclf.reports.modelcard import write_model_card
from textclf.reports.rundir import write_run
from textclf.reports.summary import build_report
from textclf.tasks import MULTI_LABEL
from textclf.training.tracking import check_trackers, tensorboard_dir, tracking_callbacks, tracking_environment
from textclf.training.trainer import best_model_metric, build_trainer, class_weights

logger = logging.getLogger(__name__)


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
    :class:`~textclf.inference.predictor.Predictor` reads), atomically."""
    path = model_dir / "config.json"
    config = json.loads(path.read_text(encoding="utf-8"))
    config["textclf"] = {**config.get("textclf", {}), "threshold": float(threshold)}
    atomic_write_text(path, json.dumps(config, indent=2, sort_keys=True) + "\n")  # PretrainedConfig's layout
    predictor.model.config.textclf = {**(getattr(predictor.model.config, "textclf", None) or {}),
                                      "threshold": float(threshold)}


def train(recipe: Recipe, output_dir: str | Path, *, callbacks: list[TrainerCallback] | None = None,
          data: TaskData | None = None) -> TrainResult:
    """Fine-tune ``recipe.model`` on ``recipe``'s data and write the run directory (see module docstring).

    Args:
        recipe: a validated recipe (:func:`textclf.config.load_recipe`).
        output_dir: the run directory; created if needed. An existing run there is overwritten file by file
            (each atomically), or resumed with ``resume_from_checkpoint=last``.
        callbacks: extra ``TrainerCallback``s (textclf.training.search reports each evaluation to its trial with one); an
            exception raised by one (e.g. ``optuna.TrialPruned``) ends training and propagates.
        data: already loaded data to train on, instead of ``load_recipe_data(recipe)`` (whose sample caps and
            seeded splits it then replaces): textclf.training.search gives every trial the same seeded subset.

    Returns:
        A :class:`TrainResult`; ``metrics["eval_<metric>"]`` holds the best checkpoint's validation scores.

    Raises:
        DataError, ConfigError, ModelError (all ``TextclfError``): bad data, recipe or model, raised before
            anything is written to ``output_dir``.
    """
    output_dir = Path(output_dir)
    if output_dir.exists() and not output_dir.is_dir():
        raise ConfigError(f"output directory {output_dir} is a file, not a directory: give --output-dir a "
                          "directory path (it is created if missing)")
    # Check everything that can fail on the user's input before anything is written.
    data = load_recipe_data(recipe) if data is None else data
    metric = best_model_metric(recipe, data)
    weights = class_weights(recipe, data)
    resume = _resume_path(recipe, output_dir)
    check_trackers(recipe.report_to)
    hub_token = check_hub_token() if recipe.push_to_hub else None
    trainer = build_trainer(recipe, data, output_dir, metric, callbacks=list(callbacks or []))

    save_recipe(recipe, output_dir / "config.yaml")
    if resume is None:  # a fresh run's event files replace an earlier run's; a resumed run adds to them
        shutil.rmtree(tensorboard_dir(output_dir), ignore_errors=True)
    for callback in tracking_callbacks(recipe.report_to, output_dir):
        trainer.add_callback(callback)
    if recipe.early_stopping_patience:
        trainer.add_callback(EarlyStoppingCallback(early_stopping_patience=recipe.early_stopping_patience))
    logger.info("training %s on %d examples (validation %d), bf16=%s", data.name, len(trainer.train_dataset),
                len(trainer.eval_dataset), trainer.args.bf16)
    started = time.perf_counter()
    train_output = _fit(trainer, recipe, output_dir, resume)
    wall = time.perf_counter() - started

    model_dir = output_dir / "model"
    with atomic_path(model_dir) as tmp:  # weights, config and tokenizer only: no pickled training_args.bin
        trainer.model.save_pretrained(tmp)
        trainer.processing_class.save_pretrained(tmp)
    # Judge the saved checkpoint, not the in-memory model: accelerate wraps the latter's forward in the
    # training autocast, and the numbers here must be the ones `textclf evaluate` reproduces.
    predictor = Predictor.from_pretrained(model_dir, batch_size=recipe.per_device_eval_batch_size)
    judged = evaluate_run(predictor, data, recipe.threshold)
    if judged.threshold is not None:
        _store_threshold(predictor, model_dir, judged.threshold)
    metrics = _run_metrics(data, recipe, trainer, train_output, wall, metric, judged, weights)
    write_run(output_dir, metrics, judged.predictions, judged.errors, judged.per_label, trainer.state.log_history)
    build_report(output_dir)  # plots/, report.md, model/README.md
    if recipe.push_to_hub:
        push_model(model_dir, recipe.hub_model_id or output_dir.resolve().name, hub_token,
                   prepare=lambda repo_id: write_model_card(output_dir, repo_id=repo_id))
    return TrainResult(output_dir=output_dir, model_dir=model_dir, metrics=metrics)


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


def _run_metrics(data: TaskData, recipe: Recipe, trainer: Trainer, train_output: Any, wall: float, metric: str,
                 judged: RunEvaluation, weights: list[float] | None) -> dict[str, Any]:
    """metrics.json: the validation metrics, the majority-class floor, and how the run went (steps, seconds, tokens
    seen with and without padding, hardware, threshold, class weights, data sources)."""
    args, state = trainer.args, trainer.state
    lengths = np.asarray([len(ids) for ids in trainer.train_dataset["input_ids"]])
    examples_seen = min(state.global_step * args.train_batch_size * args.gradient_accumulation_steps,
                        round(len(lengths) * float(state.epoch or 0)))
    real_tokens = float(lengths.mean()) * examples_seen if len(lengths) else 0.0
    padded_tokens = state.num_input_tokens_seen
    return {
        "task": data.name,
        **judged.metrics,
        "metric_for_best_model": f"eval_{metric}",
        "majority_baseline": judged.majority_baseline,
        "train_examples": len(trainer.train_dataset),
        "eval_examples": len(trainer.eval_dataset),
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
        "hardware": describe_machine(),
        "threshold": judged.threshold,
        "threshold_tuned": data.problem_type == MULTI_LABEL and recipe.threshold == "auto",
        "class_weights": None if weights is None else dict(zip(data.label_names, weights)),
        "data_sources": data.sources,
    }
