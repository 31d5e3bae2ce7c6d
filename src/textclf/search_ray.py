"""Ray Tune backend of :func:`textclf.search.search`, through ``Trainer.hyperparameter_search(backend="ray")``.

Ray is an extra (``pip install 'textclf[ray]'``), imported only here. The Trainer's integration sets each sampled
value on ``TrainingArguments``, so only keys that are TrainingArguments fields can be searched (``warmup_ratio``
maps to ``warmup_steps``, which transformers 5 reads as a ratio below 1); the model is rebuilt per trial through
``model_init``. Ray keeps its own experiment under ``OUTPUT/ray`` (no resume across runs of textclf; use the
Optuna backend for that). Pruning: ``median`` is Ray's MedianStoppingRule, ``successive_halving`` its ASHAScheduler.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import DataCollatorWithPadding, Trainer, TrainingArguments

from textclf.config import ParamSpec, Recipe
from textclf.data import TaskData, tokenize
from textclf.errors import ConfigError
from textclf.hardware import resolve_bf16
from textclf.losses import WeightedLoss, resolve_class_weights
from textclf.metrics import trainer_metrics
from textclf.modeling import load_model, load_tokenizer
from textclf.training import training_arguments

RAY_HINT = "search.backend=ray needs Ray Tune: pip install 'textclf[ray]' (or use the default backend, optuna)"
ARGUMENT_NAMES = {"warmup_ratio": "warmup_steps"}  # recipe key -> TrainingArguments field, where they differ


def require_ray() -> None:
    """Raises ConfigError with the install hint when ``ray[tune]`` is not importable."""
    try:
        import ray.tune  # noqa: F401
    except ImportError:
        raise ConfigError(RAY_HINT) from None


def ray_space(specs: list[ParamSpec]) -> dict[str, Any]:
    """The search space as Ray Tune domains, keyed by TrainingArguments field.

    Raises:
        ConfigError: a searched key that is not a TrainingArguments field (model settings such as hidden_dropout).
    """
    fields = set(TrainingArguments.__dataclass_fields__)
    for spec in specs:  # before importing Ray: a space Ray cannot search fails the same way with or without it
        if ARGUMENT_NAMES.get(spec.name, spec.name) not in fields:
            raise ConfigError(f"search.space.{spec.name} is not a TrainingArguments setting, so backend=ray cannot "
                              "search it: use backend=optuna")
    from ray import tune

    space = {}
    for spec in specs:
        name = ARGUMENT_NAMES.get(spec.name, spec.name)
        if spec.kind == "categorical":
            space[name] = tune.choice(list(spec.choices))
        elif spec.kind == "int":
            space[name] = (tune.lograndint if spec.log else tune.randint)(int(spec.low), int(spec.high) + 1)
        elif spec.step:
            space[name] = tune.quniform(spec.low, spec.high, spec.step)
        else:
            space[name] = (tune.loguniform if spec.log else tune.uniform)(spec.low, spec.high)
    return space


def build_trainer(recipe: Recipe, data: TaskData, output_dir: Path, metric: str) -> Trainer:
    """A Trainer with ``model_init`` (a fresh model per trial) on ``data``, set up as textclf.training.train does.

    Raises:
        ConfigError: recipe settings this path does not support (layerwise_lr_decay needs its own optimizer, which
            ``model_init`` excludes).
    """
    if recipe.layerwise_lr_decay not in (None, 1.0):
        raise ConfigError("layerwise_lr_decay cannot be used with search.backend=ray: use backend=optuna")
    tokenizer = load_tokenizer(recipe.model)
    encoded = {role: tokenize(data.splits[role], tokenizer, data.text_columns, recipe.max_seq_length,
                              truncation="head" if role == "validation" and recipe.truncation == "chunks"
                              else recipe.truncation, head_tokens=recipe.head_tokens, stride=recipe.stride)
               for role in ("train", "validation")}
    args = dataclasses.replace(training_arguments(recipe, output_dir, metric, resolve_bf16(recipe.bf16)),
                               save_strategy="no", load_best_model_at_end=False)  # Ray keeps its own checkpoints

    def model_init(trial: Any = None) -> Any:
        return load_model(recipe.model, data.label_names, data.problem_type, recipe.freeze_base,
                          freeze_embeddings=recipe.freeze_embeddings, attention_dropout=recipe.attention_dropout,
                          hidden_dropout=recipe.hidden_dropout,
                          attn_implementation=None if recipe.attn_implementation == "auto"
                          else recipe.attn_implementation)

    weights = resolve_class_weights(recipe.class_weights, np.asarray(data.splits["train"]["label"]),
                                    data.label_names, data.problem_type)
    loss_func = None if weights is None else WeightedLoss(
        torch.tensor(weights, dtype=torch.float32, device=args.device), data.problem_type)
    return Trainer(model_init=model_init, args=args, train_dataset=encoded["train"],
                   eval_dataset=encoded["validation"], processing_class=tokenizer,
                   data_collator=DataCollatorWithPadding(tokenizer),
                   compute_metrics=trainer_metrics(data.metrics, data.problem_type), compute_loss_func=loss_func)


def ray_search(recipe: Recipe, specs: list[ParamSpec], data: TaskData, metric: str, direction: str,
               output_dir: Path, study_name: str, workers: int) -> tuple[list[dict[str, Any]], Any]:
    """Run the search with Ray Tune, ``workers`` trials at a time.

    Returns:
        (trial rows as in trials.csv, ``(best params by recipe key, best value, best trial id)`` or None).
    """
    require_ray()
    from ray.tune.schedulers import ASHAScheduler, MedianStoppingRule

    trainer = build_trainer(recipe, data, output_dir / "ray", metric)
    space = ray_space(specs)
    mode = direction[:3]
    schedulers = {"median": lambda: MedianStoppingRule(metric="objective", mode=mode),
                  "successive_halving": lambda: ASHAScheduler(metric="objective", mode=mode)}
    extra = {"scheduler": schedulers[recipe.search.pruner]()} if recipe.search.pruner in schedulers else {}
    resources = {"cpu": max(1, (os.cpu_count() or 1) // workers), **({"gpu": 1} if torch.cuda.is_available() else {})}
    best_run = trainer.hyperparameter_search(
        hp_space=lambda _: space, compute_objective=lambda metrics: metrics[f"eval_{metric}"],
        n_trials=recipe.search.n_trials, direction=direction, backend="ray", name=study_name,
        storage_path=str((output_dir / "ray").resolve()), resources_per_trial=resources,
        max_concurrent_trials=workers, **extra)
    back = {ARGUMENT_NAMES.get(s.name, s.name): s.name for s in specs}
    rows = []
    for number, trial in enumerate(best_run.run_summary.trials):
        result = trial.last_result or {}
        rows.append({"number": number, "state": trial.status, "value": result.get("objective"),
                     **{f"params_{back[k]}": v for k, v in trial.config.items() if k in back},
                     "duration_s": result.get("time_total_s"), "worker": trial.trial_id})
    params = {back[k]: v for k, v in best_run.hyperparameters.items() if k in back}
    return rows, (params, best_run.objective, best_run.run_id)
