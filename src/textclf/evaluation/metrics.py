"""Task metrics with scikit-learn and scipy (``evaluate.load`` needs the Hub; these do not).

Definitions follow GLUE (Wang et al. 2019): accuracy; F1 of the positive class (id 1) for MRPC/QQP;
Matthews correlation for CoLA; Pearson and Spearman correlation for STS-B. ``f1_macro`` (unweighted mean
of per-class F1) is reported for every classification task; multi-label tasks report micro and macro F1
over the multi-hot labels at a decision threshold, which :func:`tune_threshold` picks on the validation split.
:func:`per_label_report` gives precision, recall, F1 and support per class (per label for multi-label).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import (
    accuracy_score,
    f1_score,
    matthews_corrcoef,
    mean_squared_error,
    precision_recall_fscore_support,
)

from textclf.modeling import predictions_from_logits
from textclf.tasks import MULTI_LABEL, REGRESSION

METRICS = ("accuracy", "f1", "f1_macro", "f1_micro", "matthews_correlation", "pearson", "spearmanr", "mse")
# Multi-label decision thresholds tried by tune_threshold: 0.05, 0.10, ..., 0.95 (rounded, so 0.15 is stored as 0.15).
THRESHOLD_GRID = tuple(round(0.05 * i, 2) for i in range(1, 20))


def compute(names: tuple[str, ...] | list[str], predictions: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Compute the named metrics.

    Args:
        names: metric names from :data:`METRICS`.
        predictions: (n,) int class ids, (n,) float scores, or (n, num_labels) 0/1 for multi-label.
        labels: the gold labels, same shape as ``predictions``.

    Returns:
        ``{name: value}`` as Python floats; a correlation of a constant prediction is reported as 0.0.

    Raises:
        ValueError: an unknown metric name.
    """
    predictions, labels = np.asarray(predictions), np.asarray(labels)
    out: dict[str, float] = {}
    for name in names:
        if name == "accuracy":
            value = accuracy_score(labels, predictions)
        elif name == "f1":
            value = f1_score(labels, predictions, average="binary", pos_label=1, zero_division=0)
        elif name in ("f1_macro", "f1_micro"):
            value = f1_score(labels.astype(int), predictions.astype(int), average=name[3:], zero_division=0)
        elif name == "matthews_correlation":
            value = matthews_corrcoef(labels, predictions)
        elif name in ("pearson", "spearmanr"):
            if np.ptp(predictions) == 0 or np.ptp(labels) == 0:  # constant: correlation undefined
                value = 0.0
            else:
                value = (pearsonr if name == "pearson" else spearmanr)(predictions, labels)[0]
        elif name == "mse":
            value = mean_squared_error(labels, predictions)
        else:
            raise ValueError(f"unknown metric {name!r}: known metrics are {', '.join(METRICS)}")
        out[name] = float(value)
    return out


def trainer_metrics(names: tuple[str, ...], problem_type: str, threshold: float = 0.5) -> Callable:
    """A ``compute_metrics`` function for ``transformers.Trainer``: EvalPrediction -> {name: value}.

    The Trainer prefixes the keys with ``eval_`` (``eval_accuracy``, ``eval_matthews_correlation``, ...).
    """
    def compute_metrics(eval_pred) -> dict[str, float]:
        logits, labels = eval_pred.predictions, eval_pred.label_ids
        if isinstance(logits, tuple):
            logits = logits[0]
        predictions = predictions_from_logits(logits, problem_type, threshold)
        if problem_type == REGRESSION:
            labels = np.asarray(labels).reshape(-1)
        return compute(names, predictions, np.asarray(labels))

    return compute_metrics


def majority_baseline(names: tuple[str, ...], labels: np.ndarray, problem_type: str) -> dict[str, float]:
    """Metrics of always predicting the most frequent class (mean score for regression): the floor to beat."""
    labels = np.asarray(labels)
    if problem_type == REGRESSION:
        constant = np.full(labels.shape, labels.mean())
    elif problem_type == MULTI_LABEL:
        constant = np.tile((labels.mean(axis=0) >= 0.5).astype(int), (len(labels), 1))
    else:
        constant = np.full(labels.shape, np.bincount(labels.astype(int)).argmax())
    return compute(names, constant, labels)


def tune_threshold(logits: np.ndarray, labels: np.ndarray, grid: tuple[float, ...] = THRESHOLD_GRID) -> float:
    """The multi-label decision threshold in ``grid`` that maximises micro F1 of ``logits`` against ``labels``.

    One global threshold on the sigmoid probabilities (a label is predicted when ``sigmoid(logit) >= t``, as in
    :func:`predictions_from_logits`); micro F1 = 2 TP / (2 TP + FP + FN) over all (example, label) cells, as
    ``f1_score(average="micro")`` computes it. Ties go to the threshold closest to 0.5 (the untuned default),
    then to the lower one. Tuned and scored on the same split, the reported F1 is optimistic by the tuning
    gain; with 19 grid points and thousands of cells the bias is small.

    Args:
        logits: (num_examples, num_labels) float: the model's raw outputs.
        labels: (num_examples, num_labels) multi-hot 0/1 gold labels (any numeric dtype).
        grid: candidate thresholds in (0, 1).

    Returns:
        The chosen threshold, a Python float from ``grid``.

    Raises:
        ValueError: an empty grid, or ``logits`` and ``labels`` of different shapes.
    """
    logits, gold = np.asarray(logits), np.asarray(labels) > 0.5
    if not grid:
        raise ValueError("tune_threshold: the grid of thresholds is empty")
    if logits.shape != gold.shape:
        raise ValueError(f"tune_threshold: logits {logits.shape} and labels {gold.shape} differ in shape")

    def micro_f1(threshold: float) -> float:
        predicted = predictions_from_logits(logits, MULTI_LABEL, threshold).astype(bool)
        tp = np.sum(predicted & gold)
        wrong = np.sum(predicted != gold)  # FP + FN
        return 2 * tp / (2 * tp + wrong) if tp + wrong else 0.0

    scores = {float(t): micro_f1(t) for t in grid}
    return max(scores, key=lambda t: (scores[t], -abs(t - 0.5), -t))


def per_label_report(predictions: np.ndarray, labels: np.ndarray, label_names: list[str]) -> pd.DataFrame:
    """Precision, recall, F1 and support of every class (single-label) or label (multi-label).

    scikit-learn's ``precision_recall_fscore_support(average=None, zero_division=0)``: a class never predicted
    (or never gold) gets precision (recall) 0. The mean of the ``f1`` column is ``f1_macro``.

    Args:
        predictions: (n,) int class ids, or (n, num_labels) 0/1 for multi-label.
        labels: gold, the same shape as ``predictions`` (multi-hot float is fine).
        label_names: names in id order; every one gets a row, present in the data or not.

    Returns:
        One row per label in id order, columns ``label`` (name), ``precision``, ``recall``, ``f1`` (floats in
        [0, 1]) and ``support`` (int: gold examples of the class, or examples carrying the label).
    """
    predictions, labels = np.asarray(predictions).astype(int), np.asarray(labels).astype(int)
    precision, recall, f1, support = precision_recall_fscore_support(
        labels, predictions, labels=list(range(len(label_names))), average=None, zero_division=0)
    return pd.DataFrame({"label": list(label_names), "precision": precision, "recall": recall, "f1": f1,
                         "support": support.astype(np.int64)})
