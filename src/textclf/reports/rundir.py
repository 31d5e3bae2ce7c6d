"""The run directory's files: written once by :func:`write_run`, read back by :func:`read_run` for reports and
model cards (the layout is in :mod:`textclf.training.run`).

Everything is rebuilt from the files alone, so older runs and search trials (whose ``model/`` was removed) can be
reported on too: a file a run does not have is None here. Every file is written atomically (a temporary file, then
a rename), so a killed run never leaves a half-written one.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from textclf.config import yaml_load
from textclf.errors import DataError
from textclf.files import atomic_path, atomic_write_text
from textclf.tasks import MULTI_LABEL, REGRESSION, SINGLE_LABEL


@dataclass
class RunFiles:
    """The files of one run directory, parsed.

    Attributes:
        run_dir: the directory.
        metrics: metrics.json (eval_* keys, majority_baseline, train_runtime in seconds, hardware, ...).
        config: config.yaml as plain data (the resolved recipe), or {} when absent.
        model_config: model/config.json (id2label, problem_type, textclf.*), or None without a checkpoint.
        predictions: predictions.jsonl, one dict per validation example (texts, gold, predicted, score/scores).
        log_history: log_history.json (the Trainer's log entries), or None.
        per_label: per_label.csv (label, precision, recall, f1, support), or None (regression).
        errors: errors.csv, or None.
        problem_type: single_label_classification, multi_label_classification or regression.
        label_names: class names in id order (empty for regression).
    """

    run_dir: Path
    metrics: dict[str, Any]
    config: dict[str, Any]
    model_config: dict[str, Any] | None
    predictions: list[dict[str, Any]]
    log_history: list[dict[str, Any]] | None
    per_label: pd.DataFrame | None
    errors: pd.DataFrame | None
    problem_type: str
    label_names: list[str]

    @property
    def model_dir(self) -> Path:
        """The run's checkpoint directory, ``DIR/model`` (it may be absent: see ``model_config``)."""
        return self.run_dir / "model"


def _json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def _csv(path: Path) -> pd.DataFrame | None:
    if not path.is_file():
        return None
    try:
        return pd.read_csv(path)
    except pd.errors.EmptyDataError:  # errors.csv of a run without errors may hold only a header, or nothing
        return pd.DataFrame()


def _problem_type(model_config: dict[str, Any] | None, predictions: list[dict[str, Any]]) -> str:
    if model_config and model_config.get("problem_type"):
        return model_config["problem_type"]
    gold = predictions[0]["gold"] if predictions else None
    if isinstance(gold, list):
        return MULTI_LABEL
    return REGRESSION if isinstance(gold, float) else SINGLE_LABEL


def as_run(run: str | Path | RunFiles) -> RunFiles:
    """``run`` itself when already read, else :func:`read_run` of that directory (so several reports built from
    one run read its files once)."""
    return run if isinstance(run, RunFiles) else read_run(run)


def read_run(run_dir: str | Path) -> RunFiles:
    """Parse a run directory written by :func:`textclf.training.train`.

    Raises:
        DataError: ``run_dir`` lacks metrics.json or predictions.jsonl (it is not a finished run).
    """
    run_dir = Path(run_dir)
    for name in ("metrics.json", "predictions.jsonl"):
        if not (run_dir / name).is_file():
            raise DataError(f"{run_dir} is not a finished textclf run (no {name}): give the --output-dir of a "
                            "`textclf train` run that completed")
    # "\n" only: str.splitlines() also splits at U+2028, U+0085, ..., which json.dumps leaves inside texts (IMDb
    # has them)
    lines = (run_dir / "predictions.jsonl").read_text(encoding="utf-8").split("\n")
    predictions = [json.loads(line) for line in lines if line.strip()]
    config_file = run_dir / "config.yaml"
    config = (yaml_load(config_file.read_text(encoding="utf-8")) or {}) if config_file.is_file() else {}
    model_config = _json(run_dir / "model" / "config.json")
    problem_type = _problem_type(model_config, predictions)
    per_label = _csv(run_dir / "per_label.csv")
    if problem_type == REGRESSION:
        names: list[str] = []
    elif model_config and model_config.get("id2label"):
        names = [model_config["id2label"][k] for k in sorted(model_config["id2label"], key=int)]
    elif per_label is not None and "label" in per_label:
        names = [str(n) for n in per_label["label"]]
    else:  # neither a checkpoint nor per_label.csv: the labels seen, sorted
        seen = {n for row in predictions for key in ("gold", "predicted")
                for n in (row[key] if isinstance(row[key], list) else [row[key]])}
        names = sorted(map(str, seen))
    return RunFiles(run_dir=run_dir, metrics=_json(run_dir / "metrics.json"), config=config,
                    model_config=model_config, predictions=predictions,
                    log_history=_json(run_dir / "log_history.json"), per_label=per_label,
                    errors=_csv(run_dir / "errors.csv"), problem_type=problem_type, label_names=names)


def write_jsonl(path: Path, rows: Sequence[Any]) -> None:
    """Write one JSON value per line (UTF-8, non-ASCII kept), atomically."""
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as fh:
        fh.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)


def write_run(run_dir: str | Path, metrics: dict[str, Any], predictions: Sequence[dict[str, Any]],
              errors: pd.DataFrame, per_label: pd.DataFrame | None, log_history: list[dict[str, Any]]) -> None:
    """Write a finished run's files into ``run_dir``, each atomically: metrics.json, predictions.jsonl (one line per
    validation example), errors.csv, per_label.csv (when not None: regression has none) and log_history.json."""
    run_dir = Path(run_dir)
    atomic_write_text(run_dir / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    write_jsonl(run_dir / "predictions.jsonl", predictions)
    with atomic_path(run_dir / "errors.csv") as tmp:
        errors.to_csv(tmp, index=False)
    if per_label is not None:
        with atomic_path(run_dir / "per_label.csv") as tmp:
            per_label.to_csv(tmp, index=False)
    atomic_write_text(run_dir / "log_history.json", json.dumps(log_history, indent=1) + "\n")

