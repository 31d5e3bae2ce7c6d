"""Judge a checkpoint on labelled data: metrics, per-example predictions and the errors, from one pass.

:func:`evaluate_run` judges a freshly trained checkpoint on its validation split (what a run directory records);
:func:`evaluate_checkpoint` judges any checkpoint on a task split or labelled file (``textclf evaluate``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from textclf.data.loading import TaskData, load_eval_data
from textclf.errors import ConfigError
from textclf.evaluation.metrics import compute, majority_baseline, per_label_report, tune_threshold
from textclf.inference.predictor import Predictor, rows_to_texts
from textclf.modeling import predictions_from_logits
from textclf.tasks import MULTI_LABEL, REGRESSION


def validation_logits(predictor: Predictor, data: TaskData, split: str = "validation") -> np.ndarray:
    """The predictor's raw outputs on a split, (num_examples, num_labels) float32 in split order."""
    return predictor.logits(rows_to_texts(data.splits[split].to_dict(), data.text_columns))


def validation_report(predictor: Predictor, data: TaskData, split: str = "validation",
                      logits: np.ndarray | None = None) -> tuple[dict[str, float], list[dict], pd.DataFrame]:
    """Predict a labelled split once and derive the metrics, per-example predictions and errors from it.

    Multi-label predictions use ``predictor.threshold`` (the checkpoint's tuned threshold); gold labels are the
    multi-hot 0/1 vectors.

    Args:
        logits: (num_examples, num_labels) :func:`validation_logits` of this predictor and split, if the caller
            has them already; None predicts the split here.

    Returns:
        (metrics with ``eval_`` keys, one prediction dict per example in split order, the misclassified rows
        as a DataFrame: texts, gold, predicted, score; most confident errors first; for regression the
        examples whose absolute error is at least 1.0, largest first).
    """
    ds = data.splits[split]
    columns = ds.to_dict()
    if logits is None:
        logits = predictor.logits(rows_to_texts(columns, data.text_columns))
    labels = np.asarray(columns["label"])
    predicted = predictions_from_logits(logits, data.problem_type, predictor.threshold)
    metrics = {f"eval_{k}": v for k, v in compute(data.metrics, predicted, labels).items()}
    shown = predictor.format(logits)
    names = predictor.label_names

    def name(value: Any) -> Any:
        if data.problem_type == REGRESSION:
            return float(value)
        if data.problem_type == MULTI_LABEL:
            return [names[j] for j in np.flatnonzero(np.asarray(value) > 0.5)]
        return names[int(value)]

    rows = []
    for i, result in enumerate(shown):
        row = {c: columns[c][i] for c in data.text_columns}
        row["gold"] = name(labels[i])
        if data.problem_type == MULTI_LABEL:
            row["predicted"] = [r["label"] for r in result]
            row["scores"] = {r["label"]: round(r["score"], 6) for r in result}
        elif data.problem_type == REGRESSION:
            row["predicted"] = result["score"]
        else:
            row["predicted"], row["score"] = result["label"], result["score"]
        rows.append(row)
    table = pd.DataFrame(rows)
    if data.problem_type == REGRESSION:
        error = (table["predicted"] - table["gold"]).abs()
        errors = table[error >= 1.0].assign(abs_error=error).sort_values("abs_error", ascending=False)
    elif data.problem_type == MULTI_LABEL:
        wrong = [set(g) != set(p) for g, p in zip(table["gold"], table["predicted"])]
        errors = table[wrong]
    else:
        errors = table[table["gold"] != table["predicted"]].sort_values("score", ascending=False)
    return metrics, rows, errors


@dataclass
class RunEvaluation:
    """A checkpoint judged on its validation split.

    Attributes:
        metrics: ``eval_<metric>`` values.
        predictions: one dict per validation example (texts, gold, predicted, score(s)), in split order.
        errors: the misclassified examples (see :func:`validation_report`).
        per_label: precision, recall, F1 and support per class or label; None for regression.
        majority_baseline: ``eval_<metric>`` of always predicting the majority class (the mean for regression).
        threshold: the multi-label decision threshold used (tuned or given); None for other tasks.
    """

    metrics: dict[str, float]
    predictions: list[dict[str, Any]]
    errors: pd.DataFrame
    per_label: pd.DataFrame | None
    majority_baseline: dict[str, float]
    threshold: float | None


def evaluate_run(predictor: Predictor, data: TaskData, threshold: float | str = "auto") -> RunEvaluation:
    """Predict ``data``'s validation split once and derive everything a run directory records from it.

    Args:
        threshold: multi-label only: ``"auto"`` tunes the decision threshold on these logits
            (:func:`~textclf.evaluation.metrics.tune_threshold`, best micro F1), a number fixes it. ``predictor``
            is set to use it.
    """
    logits = validation_logits(predictor, data)  # (num_validation, num_labels), once for everything below
    labels = np.asarray(data.splits["validation"]["label"])
    if data.problem_type == MULTI_LABEL:
        predictor.threshold = float(tune_threshold(logits, labels) if threshold == "auto" else threshold)
    metrics, rows, errors = validation_report(predictor, data, logits=logits)
    per_label = None
    if data.problem_type != REGRESSION:
        predicted = predictions_from_logits(logits, data.problem_type, predictor.threshold)
        per_label = per_label_report(predicted, labels, data.label_names)
    floor = {f"eval_{k}": v for k, v in majority_baseline(data.metrics, labels, data.problem_type).items()}
    return RunEvaluation(metrics=metrics, predictions=rows, errors=errors, per_label=per_label,
                         majority_baseline=floor,
                         threshold=predictor.threshold if data.problem_type == MULTI_LABEL else None)


def parity_report(reference: Predictor, candidate: Predictor, data: TaskData, split: str = "validation",
                  reference_logits: np.ndarray | None = None,
                  candidate_logits: np.ndarray | None = None) -> dict[str, Any]:
    """How far a faster way of running a model (bf16, an ONNX export, int8 weights) moves its outputs and metrics.

    Both predictors score the same labelled split; the report compares their logits and the task's metrics.

    Args:
        reference: the model as trained (PyTorch, fp32).
        candidate: the same model run another way.
        reference_logits, candidate_logits: (num_examples, num_labels) :func:`validation_logits` of either predictor
            on ``split``, if the caller has them already (that pass is then not timed here: its seconds are None).

    Returns:
        ``{"examples": n, "max_abs_logit_diff": float, "mean_abs_logit_diff": float, "prediction_agreement":
        fraction in [0, 1] of examples given the same class(es) (None for regression), "metric": the task's main
        metric, "metrics_before": {"eval_<metric>": ...}, "metrics_after": {...}, "metric_change": after - before
        of the main metric (in its own unit: a fraction for accuracy), "seconds_before", "seconds_after": wall time
        of each prediction pass}``.
    """
    def timed(predictor: Predictor, given: np.ndarray | None) -> tuple[np.ndarray, float | None]:
        if given is not None:
            return given, None
        started = time.perf_counter()
        logits = validation_logits(predictor, data, split)
        return logits, round(time.perf_counter() - started, 3)

    before, seconds_before = timed(reference, reference_logits)
    after, seconds_after = timed(candidate, candidate_logits)
    labels = np.asarray(data.splits[split]["label"])
    threshold = reference.threshold
    predicted = [predictions_from_logits(x, data.problem_type, threshold) for x in (before, after)]
    metrics = [{f"eval_{k}": v for k, v in compute(data.metrics, p, labels).items()} for p in predicted]
    diff = np.abs(before.astype(np.float64) - after.astype(np.float64))
    agreement = None
    if data.problem_type != REGRESSION and len(labels):
        same = predicted[0] == predicted[1]
        agreement = float((same.all(axis=1) if same.ndim == 2 else same).mean())
    main = f"eval_{data.metric_for_best_model}"
    return {"examples": len(labels), "max_abs_logit_diff": float(diff.max()) if diff.size else 0.0,
            "mean_abs_logit_diff": float(diff.mean()) if diff.size else 0.0, "prediction_agreement": agreement,
            "metric": main, "metrics_before": metrics[0], "metrics_after": metrics[1],
            "metric_change": metrics[1][main] - metrics[0][main],
            "seconds_before": seconds_before, "seconds_after": seconds_after}


def load_labelled_split(predictor: Predictor, source: str, split: str | None = None, data_dir: str | None = None,
                        max_samples: int | None = None, label_column: str | None = None) -> TaskData:
    """The labelled data to judge ``predictor`` on, as the ``validation`` split of a :class:`TaskData`: a task split
    (default: the task's validation split) or a labelled file, mapped to the checkpoint's labels and text columns.

    Args:
        max_samples: keep a seeded random slice of this many examples (splits can be sorted by label: IMDb's test
            set is 12,500 neg, then 12,500 pos); None keeps them all.

    Raises:
        DataError: unknown task or split, missing columns, empty texts, labels the checkpoint does not know.
    """
    meta = getattr(predictor.model.config, "textclf", None) or {}
    data = load_eval_data(source, predictor.label_names if predictor.problem_type != REGRESSION else [],
                          predictor.problem_type, split=split, data_dir=data_dir,
                          text_columns=tuple(meta.get("text_columns", ())) or None, label_column=label_column)
    if max_samples is not None and max_samples < len(data.splits["validation"]):
        data.splits["validation"] = data.splits["validation"].shuffle(seed=42).select(range(max_samples))
    return data


def _parity_reference(model_dir: str | Path, predictor: Predictor, batch_size: int) -> Predictor:
    """The fp32 PyTorch model that ``predictor`` is a faster version of: the same checkpoint in fp32, or for an ONNX
    export the checkpoint it was exported from (recorded in its config as ``textclf.export.source``)."""
    if predictor.backend == "torch":
        if predictor.precision == "fp32":
            raise ConfigError("parity compares a faster way of running the model with fp32 PyTorch: give "
                              "--precision bf16, or an ONNX export (textclf export)")
        return Predictor.from_pretrained(model_dir, batch_size=batch_size)
    meta = getattr(predictor.model.config, "textclf", None) or {}
    source = (meta.get("export") or {}).get("source")
    if not source or not Path(source).is_dir():
        raise ConfigError(f"{model_dir}: parity needs the PyTorch checkpoint this export was made from, and "
                          f"{source or 'none'} is not there: see the parity.json that `textclf export` wrote")
    return Predictor.from_pretrained(source, batch_size=batch_size)


def evaluate_checkpoint(model_dir: str | Path, source: str, split: str | None = None, data_dir: str | None = None,
                        max_samples: int | None = None, batch_size: int = 64,
                        label_column: str | None = None, precision: str = "fp32",
                        parity: bool = False) -> dict[str, Any]:
    """Evaluate a checkpoint (or an ONNX export of one) on a task split (default: validation) or a labelled file.

    ``precision="bf16"`` runs the model in bfloat16 (see :class:`~textclf.inference.predictor.Predictor`): faster on
    long inputs, with metrics that may move by a few hundredths of a point; the result records the precision.

    Args:
        parity: also run the fp32 PyTorch model (the same checkpoint, or the one an ONNX export came from) and add
            ``"parity"``: :func:`parity_report` of this run against it.

    Returns:
        ``{"eval_<metric>": value, ..., "eval_examples": n, "majority_baseline": {...}, "source": ...,
        "precision": ..., "backend": "torch" or "onnx"}``, plus ``"parity"`` when asked.

    Raises:
        ModelError: not a checkpoint; DataError: bad data (labels unknown to the checkpoint, ...);
        ConfigError: parity with fp32 PyTorch (nothing to compare), or for an export whose source is gone.
    """
    predictor = Predictor.from_pretrained(model_dir, batch_size=batch_size, precision=precision)
    reference = _parity_reference(model_dir, predictor, batch_size) if parity else None
    data = load_labelled_split(predictor, source, split=split, data_dir=data_dir, max_samples=max_samples,
                               label_column=label_column)
    started = time.perf_counter()
    logits = validation_logits(predictor, data)
    seconds = round(time.perf_counter() - started, 3)
    metrics, _, _ = validation_report(predictor, data, logits=logits)
    labels = np.asarray(data.splits["validation"]["label"])
    result = {**metrics, "eval_examples": len(labels), "source": data.sources["validation"], "precision": precision,
              "backend": predictor.backend,
              "majority_baseline": {f"eval_{k}": v for k, v in
                                    majority_baseline(data.metrics, labels, data.problem_type).items()}}
    if reference is not None:
        result["parity"] = {**parity_report(reference, predictor, data, candidate_logits=logits),
                            "seconds_after": seconds}
    return result
