"""Ray Tune backend of :func:`textclf.training.search.search`, through ``Trainer.hyperparameter_search(backend="ray")``.

Ray is an extra (``pip install 'textclf[ray]'``), imported only here. The Trainer's integration sets each sampled
value on ``TrainingArguments``, so only keys that are TrainingArguments fields can be searched (``warmup_ratio``
maps to ``warmup_steps``, which transformers 5 reads as a ratio below 1); the model is rebuilt per trial through
``model_init``. Ray keeps its own experiment under ``OUTPUT/ray`` (no resume across runs of textclf; use the
Optuna backend for that). Pruning: ``median`` is Ray's MedianStoppingRule, ``successive_halving`` its ASHAScheduler.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from transformers import TrainingArguments

from textclf.config import ParamSpec, Recipe
from textclf.data.loading import TaskData
from textclf.errors import ConfigError
from textclf.training.run import resolve_lengths
from textclf.training.trainer import build_trainer, new_model

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


def ray_trainer(recipe: Recipe, data: TaskData, output_dir: Path, metric: str) -> Any:
    """The Trainer that ``hyperparameter_search`` drives: :func:`~textclf.training.trainer.build_trainer` with
    ``model_init`` (a fresh model per trial) and no checkpoints of its own (Ray keeps them).

    Raises:
        ConfigError: recipe settings this path does not support (layerwise_lr_decay needs its own optimizer, which
            ``model_init`` excludes).
    """
    recipe, _ = resolve_lengths(recipe, data, "finetune")  # max_seq_length=auto made concrete before tokenizing

    def model_init(trial: Any = None) -> Any:
        return new_model(recipe, data)

    return build_trainer(recipe, data, output_dir, metric, model_init=model_init, save_strategy="no",
                         load_best_model_at_end=False)


def ray_search(recipe: Recipe, specs: list[ParamSpec], data: TaskData, metric: str, direction: str,
               output_dir: Path, study_name: str, workers: int) -> tuple[list[dict[str, Any]], Any]:
    """Run the search with Ray Tune, ``workers`` trials at a time.

    Returns:
        (trial rows as in trials.csv, ``(best params by recipe key, best value, best trial id)`` or None).
    """
    require_ray()
    from ray.tune.schedulers import ASHAScheduler, MedianStoppingRule

    trainer = ray_trainer(recipe, data, output_dir / "ray", metric)
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
