"""Judge a checkpoint on labelled data: metrics, per-example predictions and the errors, from one pass."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from textclf.data import TaskData, load_eval_data
from textclf.inference import Predictor, rows_to_texts
from textclf.metrics import compute, majority_baseline, predictions_from_logits
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



def evaluate_checkpoint(model_dir: str | Path, source: str, split: str | None = None, data_dir: str | None = None,
                        max_samples: int | None = None, batch_size: int = 64,
                        label_column: str | None = None, precision: str = "fp32") -> dict[str, Any]:
    """Evaluate a checkpoint on a task split (default: validation) or on a labelled data file.

    ``precision="bf16"`` runs the model in bfloat16 (see :class:`~textclf.inference.Predictor`): much faster on
    long inputs, with metrics that may move by a few hundredths of a point; the result records the precision.

    Returns:
        ``{"eval_<metric>": value, ..., "eval_examples": n, "majority_baseline": {...}, "source": ...}``.

    Raises:
        ModelError: not a checkpoint; DataError: bad data (labels unknown to the checkpoint, ...).
    """
    predictor = Predictor.from_pretrained(model_dir, batch_size=batch_size, precision=precision)
    meta = getattr(predictor.model.config, "textclf", None) or {}
    data = load_eval_data(source, predictor.label_names if predictor.problem_type != REGRESSION else [],
                          predictor.problem_type, split=split, data_dir=data_dir,
                          text_columns=tuple(meta.get("text_columns", ())) or None, label_column=label_column)
    if max_samples is not None and max_samples < len(data.splits["validation"]):  # a seeded random slice: splits
        # can be sorted by label (IMDb's test set is 12,500 neg, then 12,500 pos)
        data.splits["validation"] = data.splits["validation"].shuffle(seed=42).select(range(max_samples))
    metrics, _, _ = validation_report(predictor, data)
    labels = np.asarray(data.splits["validation"]["label"])
    return {**metrics, "eval_examples": len(labels), "source": data.sources["validation"], "precision": precision,
            "majority_baseline": {f"eval_{k}": v for k, v in
                                  majority_baseline(data.metrics, labels, data.problem_type).items()}}
