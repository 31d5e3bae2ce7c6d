"""Hyperparameter search over a recipe's ``search.space``: Optuna (TPE, pruning, persistent study) or Ray Tune.

``OUTPUT/`` after :func:`search`::

    study.log              the Optuna study (a JournalStorage file), unless ``storage`` names another one
    trials/<number>/       each trial's config.yaml, metrics.json and log_history.json (weights are deleted)
    trials.csv, .json      every trial: number, state, value, params_<key>, start, end, duration_s, worker
    best_recipe.yaml       the recipe with the best trial's values, for ``textclf train best_recipe.yaml``
    best/                  that recipe trained on the full training data (textclf.training.run's run directory)
    optimization_history.png, param_importances.png
    search.json            summary: study, storage, metric, direction, trials per state, best trial, best/ scores

Trials train with :func:`textclf.training.train` on one seeded ``search.fraction`` of the training data (the
reference notebook searches on 1/10 of train) and the full validation split, and are scored by the task's own
metric (MCC for CoLA, Pearson for STS-B), maximised except for loss/mse. Every finished trial lives in the study's
storage at once, so an interrupted search (Ctrl-C, a killed worker) loses only its running trials, and running the
same command again resumes the study: it runs trials until ``n_trials`` are finished (completed or pruned),
never redoing one. Several processes share one study: ``workers=N`` on this machine, or the same command on
several machines against one database (``storage=postgresql://...``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import math
import multiprocessing
import os
import shutil
import socket
import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
from transformers import TrainerCallback

from textclf.config import ParamSpec, Recipe, load_recipe, save_recipe
from textclf.data.loading import TaskData, load_recipe_data
from textclf.errors import ConfigError
from textclf.files import atomic_write_text
from textclf.hub import check_hub_token
from textclf.training.checkpointing import last_complete_checkpoint
from textclf.training.run import choose_method, train
from textclf.training.study import (
    ClaimLock,
    fail_dead_local_trials,
    load_study,
    open_slots,
    suggest,
    trial_rows,
    write_plots,
    write_trials,
)
from textclf.training.trainer import LOWER_IS_BETTER, best_model_metric

logger = logging.getLogger(__name__)
STUDY_FILE = "study.log"


class WorkerError(RuntimeError):
    """A worker process of a parallel search failed or was killed (the study keeps every finished trial)."""


@dataclass
class SearchResult:
    """What a search produced.

    Attributes:
        output_dir: the search directory (module docstring); ``storage`` and ``study_name`` locate the study.
        metric: the optimised metric (``matthews_correlation``); ``direction``: maximize or minimize.
        trials: one row per trial, as in trials.csv.
        best_params: the best completed trial's values by recipe key (None if no trial completed);
            ``best_value`` its metric on the search subset.
        best_recipe: path of best_recipe.yaml; ``best_metrics``: metrics.json of ``best/`` (None without retrain).
    """

    output_dir: Path
    storage: str
    study_name: str
    metric: str
    direction: str
    trials: list[dict[str, Any]]
    best_params: dict[str, Any] | None = None
    best_value: float | None = None
    best_recipe: Path | None = None
    best_metrics: dict[str, Any] | None = None


def objective_metric(recipe: Recipe, data: TaskData) -> tuple[str, str]:
    """The metric a search optimises and its direction: ``(metric, "maximize" | "minimize")``.

    The recipe's ``metric_for_best_model``, else the task's (GLUE paper, Table 1: MCC for CoLA, Pearson for STS-B);
    ``search.direction=auto`` maximises all but loss and mse.

    Raises:
        ConfigError: the metric is not computed for this task, or loss without evaluation during training.
    """
    metric = best_model_metric(recipe, data)
    if metric == "loss" and recipe.eval_strategy == "no":
        raise ConfigError("metric_for_best_model=loss is only logged by evaluations during training: "
                          "set eval_strategy=epoch")
    direction = recipe.search.direction
    if direction == "auto":
        direction = "minimize" if metric in LOWER_IS_BETTER else "maximize"
    return metric, direction


def default_study_name(recipe: Recipe) -> str:
    """``<task or train-file stem>-<8 hex digits>``: a digest of the recipe without the settings that do not change
    what a trial measures (n_trials, retrain, thread counts, logging, the data mirror's location), so the same
    search resumes when only those change."""
    plain = recipe.to_dict()
    for key in ("torch_num_threads", "dataloader_num_workers", "report_to", "logging_steps", "push_to_hub",
                "hub_model_id"):
        plain.pop(key)
    plain["data"].pop("data_dir")
    for key in ("n_trials", "retrain"):
        plain["search"].pop(key)
    digest = hashlib.sha256(json.dumps(plain, sort_keys=True, default=str).encode()).hexdigest()[:8]
    return f"{recipe.task or Path(recipe.data.train_file or 'run').stem}-{digest}"


def apply_params(recipe: Recipe, params: dict[str, Any]) -> Recipe:
    """``recipe`` with ``params`` (recipe keys to values) substituted, validated.

    Raises:
        ConfigError: a value the recipe does not accept (a key that is not a recipe field, a value out of range).
    """
    unknown = sorted(set(params) - {f.name for f in dataclasses.fields(Recipe)})
    if unknown:
        raise ConfigError(f"search parameter {unknown[0]!r} is not a recipe key")
    updated = dataclasses.replace(recipe, **params)
    updated.validate()
    return updated


def search_subset(data: TaskData, fraction: float, seed: int) -> TaskData:
    """``data`` with its train split cut to a seeded random ``fraction`` (at least one row); validation unchanged."""
    train_split = data.splits["train"]
    size = max(1, round(fraction * len(train_split)))
    if size >= len(train_split):
        return data
    subset = train_split.shuffle(seed=seed).select(range(size)).flatten_indices()
    return dataclasses.replace(data, splits={**data.splits, "train": subset},
                               sources={**data.sources,
                                        "train": f"{size} of {data.sources.get('train')} (seed {seed})"})


class PruningCallback(TrainerCallback):
    """Reports each evaluation's ``eval_<metric>`` to an Optuna trial and stops training with ``optuna.TrialPruned``
    when the trial's pruner says so (what ``Trainer.hyperparameter_search`` does inside the Trainer).

    The reported step is the epoch number with ``eval_strategy=epoch`` (so trials with different batch sizes are
    compared after the same amount of data), the optimizer step otherwise. A pruned trial records
    ``pruned_at_step`` and ``planned_steps`` (optimizer steps) in its user attributes.
    """

    def __init__(self, trial: Any, metric: str) -> None:
        self.trial = trial
        self.metric = metric

    def on_evaluate(self, args: Any, state: Any, control: Any, metrics: dict[str, float] | None = None,
                    **kwargs: Any) -> None:
        value = (metrics or {}).get(f"eval_{self.metric}")
        if value is None:
            return
        step = round(state.epoch or 0) if args.eval_strategy == "epoch" else state.global_step
        self.trial.report(float(value), step)
        if self.trial.should_prune():
            import optuna

            self.trial.set_user_attr("pruned_at_step", state.global_step)
            self.trial.set_user_attr("planned_steps", state.max_steps)
            raise optuna.TrialPruned(f"eval_{self.metric}={value:.4g} at step {step}")


def trial_value(metrics: dict[str, Any], run_dir: Path, metric: str, direction: str) -> float:
    """A trial's score: ``eval_<metric>`` of its best checkpoint (metrics.json), or, for a metric only the Trainer
    logs (loss), the best value its evaluations logged (log_history.json)."""
    key = f"eval_{metric}"
    if key in metrics:
        return float(metrics[key])
    history = json.loads((run_dir / "log_history.json").read_text(encoding="utf-8"))
    logged = [float(entry[key]) for entry in history if key in entry]
    if not logged:
        raise ConfigError(f"{key} was never logged: evaluate during training (eval_strategy=epoch)")
    return min(logged) if direction == "minimize" else max(logged)


@dataclass
class _Objective:
    """One trial: suggest values, train on the search subset into ``trials/<number>/``, return the metric."""

    recipe: Recipe
    specs: list[ParamSpec]
    data: TaskData
    metric: str
    direction: str
    output_dir: Path
    claim: ClaimLock | None = None  # released once the trial exists in the storage

    def __call__(self, trial: Any) -> float:
        if self.claim is not None:
            self.claim.release()
        trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")  # first: see fail_dead_local_trials
        # Trials log no event files and push nothing; and keep their own epochs: the small-data step floor would give
        # every epoch count of a 10% subset the same number of steps.
        trial_recipe = dataclasses.replace(apply_params(self.recipe, suggest(trial, self.specs)), report_to="none",
                                           push_to_hub=False, min_train_steps=0)
        resumes = trial.user_attrs.get(RESUMES)
        # A trial continuing an interrupted one trains in that one's directory, from its newest complete checkpoint
        # (the checkpoints there name their directory), after replaying its reports to the pruner.
        run_dir = self.output_dir / "trials" / str(trial.number if resumes is None else resumes)
        if resumes is not None:
            trial_recipe = dataclasses.replace(trial_recipe, resume_from_checkpoint="last")
            for step, value in trial.study.trials[resumes].intermediate_values.items():
                trial.report(value, step)
            logger.info("trial %d continues interrupted trial %d from its last checkpoint", trial.number, resumes)
        pruning = [PruningCallback(trial, self.metric)] if self.recipe.eval_strategy != "no" else []
        try:
            result = train(trial_recipe, run_dir, callbacks=pruning, data=self.data)
        except KeyboardInterrupt:  # keep the checkpoints: the next run of the search continues this trial
            raise
        except BaseException:
            _drop_weights(run_dir)
            raise
        _drop_weights(run_dir)  # keep the small files (a search of 20 trials would keep 20 models)
        value = trial_value(result.metrics, run_dir, self.metric, self.direction)
        trial.set_user_attr("metrics", {k: v for k, v in result.metrics.items()
                                        if k.startswith("eval_") and isinstance(v, (int, float))})
        return value


def _drop_weights(run_dir: Path) -> None:
    """Delete a trial's checkpoints and model, keeping its config, metrics and logs."""
    for name in ("checkpoints", "model"):
        shutil.rmtree(run_dir / name, ignore_errors=True)


# The user attribute of a trial that continues an interrupted trial: that trial's number.
RESUMES = "resumes_trial"


def requeue_interrupted(study: Any, output_dir: Path) -> list[int]:
    """Queue a continuation (same parameters, user attribute :data:`RESUMES`) of every failed trial that left a
    complete checkpoint in ``OUTPUT/trials/<number>/checkpoints`` (a killed worker, Ctrl-C) and has none yet;
    return their numbers. Call it under the study's :class:`ClaimLock`. Optuna runs queued trials first
    (``Study.enqueue_trial``), so a resumed search finishes interrupted trials instead of losing their work."""
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    continued = {t.user_attrs.get(RESUMES) for t in trials}
    queued = []
    for trial in trials:
        if trial.state != TrialState.FAIL or trial.number in continued or RESUMES in trial.user_attrs:
            continue
        if last_complete_checkpoint(output_dir / "trials" / str(trial.number) / "checkpoints",
                                    remove_incomplete=False) is None:
            continue
        study.enqueue_trial(trial.params, user_attrs={RESUMES: trial.number})
        queued.append(trial.number)
    if queued:
        logger.info("interrupted trials %s left checkpoints: queued to continue from them", queued)
    return queued


@dataclass
class _Job:
    """Everything a worker process needs (pickled to it by multiprocessing's spawn): the objective (without its
    claim lock, which each worker makes for itself) and the study's coordinates."""

    objective: _Objective
    storage: str
    study_name: str
    pruner: Any = None
    log_level: int = logging.INFO


def _optimize(job: _Job, worker: int) -> None:
    """Run trials in this process until the study has ``n_trials`` finished or running ones."""
    from optuna.trial import TrialState

    claim = ClaimLock(job.storage, job.study_name)
    objective = dataclasses.replace(job.objective, claim=claim)
    study = load_study(objective.recipe, job.storage, job.study_name, objective.direction, worker, job.pruner)
    failures, states = 0, []
    while True:
        claim.acquire()
        try:
            slots = open_slots(study, objective.recipe.search.n_trials)  # fails trials of dead workers first
            requeue_interrupted(study, objective.output_dir)  # queued trials do not count as open or taken
            if slots <= 0:
                break
            states.clear()
            study.optimize(objective, n_trials=1, callbacks=[lambda _, trial: states.append(trial.state)],
                           gc_after_trial=True)
        finally:
            claim.release()
        failures = failures + 1 if states and states[-1] == TrialState.FAIL else 0
        if failures >= 3:  # a metric that keeps coming out NaN: stop rather than loop
            raise RuntimeError("three trials in a row failed (see the log above); fix the recipe and run again")


def _worker_main(job: _Job, worker: int) -> None:
    """Entry point of a spawned worker process: its own logging and torch thread count, Trainer output to stderr,
    quiet on Ctrl-C (process-wide settings are this entry point's, as they are ``textclf.cli.main``'s)."""
    import torch
    from transformers.utils import logging as hf_logging

    if job.objective.recipe.torch_num_threads:
        torch.set_num_threads(job.objective.recipe.torch_num_threads)
    logging.basicConfig(level=job.log_level, stream=sys.stderr,
                        format=f"%(asctime)s %(levelname)s worker-{worker} %(name)s: %(message)s")
    hf_logging.set_verbosity_error()
    try:
        with contextlib.redirect_stdout(sys.stderr):
            _optimize(job, worker)
    except KeyboardInterrupt:
        sys.exit(130)


def _run_workers(job: _Job, workers: int) -> dict[str, int]:
    """Run ``workers`` spawned processes on one study, each with ``cpu_count // workers`` torch threads; return the
    exit codes of those that failed or were killed, by process name."""
    recipe = job.objective.recipe
    if recipe.torch_num_threads is None:
        job = dataclasses.replace(job, objective=dataclasses.replace(job.objective, recipe=dataclasses.replace(
            recipe, torch_num_threads=max(1, (os.cpu_count() or 1) // workers))))
    context = multiprocessing.get_context("spawn")  # no fork: torch and tokenizers threads do not survive it
    processes = [context.Process(target=_worker_main, args=(job, worker), name=f"textclf-search-{worker}")
                 for worker in range(workers)]
    for process in processes:
        process.start()
    try:
        for process in processes:
            process.join()
    except KeyboardInterrupt:  # the workers got the same SIGINT: each marks its running trial FAIL and exits
        for process in processes:
            process.join(timeout=30)
            if process.is_alive():  # its trial stays RUNNING until fail_dead_local_trials sees the process gone
                process.terminate()
                process.join()
        raise
    return {p.name: p.exitcode for p in processes if p.exitcode != 0}


def _retrain(best_recipe: Recipe, best_dir: Path) -> dict[str, Any]:
    """Train ``best_recipe`` on the full data into ``best_dir``, unless a finished run of it is already there."""
    metrics_file, config_file = best_dir / "metrics.json", best_dir / "config.yaml"
    if metrics_file.is_file() and config_file.is_file() and load_recipe(str(config_file)) == best_recipe:
        logger.info("%s already holds the best configuration: not retrained", best_dir)
        return json.loads(metrics_file.read_text(encoding="utf-8"))
    logger.info("retraining the best configuration on the full training data into %s", best_dir)
    return train(best_recipe, best_dir).metrics


def search(recipe: Recipe, output_dir: str | Path, *, storage: str | None = None, study_name: str | None = None,
           workers: int = 1, pruner: Any = None) -> SearchResult:
    """Search ``recipe.search.space`` for the best ``recipe.search.n_trials`` trials (see module docstring).

    Args:
        recipe: a validated recipe; its ``search`` section says what to search and how.
        output_dir: the search directory; running again with the same one (or storage) resumes the study.
        storage: a SQLAlchemy URL or a JournalStorage file path (default ``output_dir/study.log``).
        study_name: default :func:`default_study_name` (give one to share a study whose recipes differ in paths).
        workers: processes on this machine running trials at the same time, each with cpu_count / workers torch
            threads (unless the recipe sets torch_num_threads). ``n_trials`` is the total, not per worker.
        pruner: an ``optuna.pruners.BasePruner`` instead of ``recipe.search.pruner`` (Python callers only).

    Returns:
        A :class:`SearchResult`; without a completed trial, ``best_params`` is None and nothing is retrained.

    Raises:
        ConfigError, DataError (``TextclfError``): a bad recipe, data or storage, before any trial runs;
            ConfigError also when ``search.backend=ray`` and Ray is not installed, and when the retrained best is to
            be pushed (``push_to_hub=true``) and there is no Hugging Face token.
        WorkerError: a worker process failed or was killed (finished trials are kept: run again to resume).
    """
    if workers < 1:
        raise ConfigError(f"workers={workers} must be a positive integer")
    cfg = recipe.search
    output_dir = Path(output_dir)
    if cfg.backend == "ray":
        from textclf.training.search_ray import require_ray

        require_ray()
    if recipe.push_to_hub and cfg.retrain:  # only the retrained best is pushed: fail now, not after the trials
        check_hub_token()
    specs = recipe.search_space()
    if not specs:
        raise ConfigError("search.space is empty: give at least one recipe key to search, or leave space out "
                          "for the default space")
    full = load_recipe_data(recipe, min_holdout_train=0)  # trials are scored on held-out texts, however few
    if recipe.method == "auto":  # every trial and the retrained best use the method the full data calls for
        method, reason = choose_method(recipe, full)
        logger.info("method %s for every trial: %s", method, reason)
        recipe = dataclasses.replace(recipe, method=method)
    metric, direction = objective_metric(recipe, full)
    data = search_subset(full, cfg.fraction, cfg.seed)
    study_name = study_name or default_study_name(recipe)
    logger.info("searching %s: %d trials on %d of %d training examples, %s %s", study_name, cfg.n_trials,
                len(data.splits["train"]), len(full.splits["train"]), direction, metric)
    if cfg.backend == "ray":
        from textclf.training.search_ray import ray_search

        rows, best = ray_search(recipe, specs, data, metric, direction, output_dir, study_name, workers)
        storage = str(output_dir / "ray")
        write_trials(rows, output_dir)
        return _finish(recipe, output_dir, storage, study_name, metric, direction, rows, best)

    storage = storage or str(output_dir / STUDY_FILE)
    job = _Job(_Objective(recipe, specs, data, metric, direction, output_dir), storage, study_name, pruner,
               logging.getLogger().getEffectiveLevel())
    study = load_study(recipe, storage, study_name, direction, 0, pruner)
    try:
        if workers == 1:
            _optimize(job, 0)
        else:
            failed = _run_workers(job, workers)
            if failed and open_slots(study, cfg.n_trials) > 0:
                raise WorkerError(f"search workers failed (exit codes {failed}; their log is above): finished "
                                  "trials are kept, run the same command again to resume")
            if failed:  # the other workers took over its trials
                logger.warning("search workers failed (exit codes %s), the others finished the study", failed)
    finally:  # interrupted or not, the table shows every trial the study holds
        fail_dead_local_trials(study)
        write_trials(trial_rows(study), output_dir)
    write_plots(study, output_dir)
    from optuna.trial import TrialState

    completed = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    best = None
    if completed:
        best = (study.best_trial.params, study.best_trial.value, study.best_trial.number)
    return _finish(recipe, output_dir, storage, study_name, metric, direction, trial_rows(study), best)


def _finish(recipe: Recipe, output_dir: Path, storage: str, study_name: str, metric: str, direction: str,
            rows: list[dict[str, Any]], best: tuple[dict[str, Any], float, Any] | None) -> SearchResult:
    """Write best_recipe.yaml, retrain into best/, write search.json."""
    result = SearchResult(output_dir, storage, study_name, metric, direction, rows)
    states = pd.Series([row["state"] for row in rows], dtype=object).value_counts().to_dict()
    summary: dict[str, Any] = {"study_name": study_name, "storage": storage, "metric": f"eval_{metric}",
                               "direction": direction, "trials": len(rows), "states": states}
    if best is None:
        logger.warning("no trial completed: no best recipe (see %s)", output_dir / "trials.csv")
    else:
        params, value, number = best
        best_recipe = apply_params(recipe, params)
        save_recipe(best_recipe, output_dir / "best_recipe.yaml")
        result.best_params, result.best_value = params, value
        result.best_recipe = output_dir / "best_recipe.yaml"
        summary.update(best_trial=number, best_value=value, best_params=params,
                       best_recipe=str(result.best_recipe))
        if recipe.search.retrain:
            result.best_metrics = _retrain(best_recipe, output_dir / "best")
            summary["best_dir"] = str(output_dir / "best")
            summary["best_validation"] = {k: v for k, v in result.best_metrics.items()
                                          if k.startswith("eval_") and isinstance(v, (int, float))
                                          and not (isinstance(v, float) and math.isnan(v))}
    summary["finished"] = datetime.now().astimezone().isoformat(timespec="seconds")
    atomic_write_text(output_dir / "search.json", json.dumps(summary, indent=2, default=str) + "\n")
    return result
