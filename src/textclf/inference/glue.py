"""GLUE leaderboard files: predict an unlabelled test split and write ``<Task>.tsv`` as gluebenchmark.com takes it.

Format (the GLUE baseline's ``write_preds`` and ``transformers``' ``run_glue.py``): a header line
``index<TAB>prediction``, then one line per test example in the test file's order, ``index`` being the
example's ``idx``. Predictions are 0/1 for CoLA, SST-2, MRPC, QQP and WNLI (GLUE's own label ids), the label
name for MNLI, QNLI and RTE (``entailment`` ...), and the score as a float for STS-B. MNLI's matched and
mismatched test sets go to separate files (``MNLI-m.tsv``, ``MNLI-mm.tsv``).
"""

from __future__ import annotations

import csv
from pathlib import Path

import datasets
import pandas as pd

from textclf.data.loading import load_task_split
from textclf.data.tables import read_table
from textclf.data.validation import check_texts
from textclf.errors import DataError
from textclf.files import atomic_path
from textclf.inference.predictor import Predictor, rows_to_texts
from textclf.tasks import REGRESSION, TASKS, get_task


def _test_frame(task: str, input_file: str | None, data_dir: str | None) -> tuple[pd.DataFrame, str]:
    """The unlabelled test rows (texts and idx) from a file or the task's test split."""
    if input_file is not None:
        return read_table(input_file, get_task(task).text_columns), input_file
    spec = get_task(task)
    ds = load_task_split(spec, spec.test_split, data_dir)
    return ds.to_pandas(), f"{spec.name}/{spec.test_split}"


def glue_predictions(predictor: Predictor, task: str, frame: pd.DataFrame, source: str) -> pd.DataFrame:
    """Predict a GLUE test frame and return the ``index`` / ``prediction`` table GLUE takes.

    Args:
        predictor: a checkpoint trained on ``task`` (its label names must be the task's).
        frame: the test rows with the task's text columns and, ideally, ``idx`` (else row order is the index).
        source: the file or split name, for error messages.

    Raises:
        DataError: missing text columns, empty texts, or a checkpoint whose labels are not the task's.
    """
    spec = get_task(task)
    missing = [c for c in spec.text_columns if c not in frame.columns]
    if missing:
        raise DataError(f"{source}: no column(s) {missing} for {spec.name}; columns are {list(frame.columns)}")
    check_texts(datasets.Dataset.from_pandas(frame[list(spec.text_columns)], preserve_index=False),
                spec.text_columns, source)
    if (spec.problem_type == REGRESSION) != (predictor.problem_type == REGRESSION) or (
            spec.problem_type != REGRESSION and sorted(predictor.label_names) != sorted(spec.label_names)):
        raise DataError(f"the checkpoint's labels {predictor.label_names} are not {spec.name}'s "
                        f"{list(spec.label_names) or 'score'}: give a checkpoint trained on {spec.name}")
    results = predictor.predict(rows_to_texts({c: frame[c].tolist() for c in spec.text_columns}, spec.text_columns))
    if spec.problem_type == REGRESSION:
        predictions = [round(r["score"], 6) for r in results]
    elif spec.glue_named_labels:
        predictions = [r["label"] for r in results]
    else:
        predictions = [spec.label_names.index(r["label"]) for r in results]
    index = frame["idx"].tolist() if "idx" in frame.columns else list(range(len(frame)))
    return pd.DataFrame({"index": index, "prediction": predictions})


def write_glue_submission(model_dir: str | Path, task: str, output_dir: str | Path, input_file: str | None = None,
                          data_dir: str | None = None, batch_size: int = 64, precision: str = "fp32") -> list[Path]:
    """Write the GLUE leaderboard file(s) for ``task`` into ``output_dir`` (atomically).

    Args:
        model_dir: a checkpoint fine-tuned on the task.
        task: a GLUE task; ``mnli`` without ``input_file`` writes both MNLI-m.tsv and MNLI-mm.tsv.
        input_file: an unlabelled test file (CSV / TSV / JSONL / Parquet); default the task's test split
            from the mirror or the Hub.
        precision: "fp32" or "bf16" (see :class:`~textclf.inference.predictor.Predictor`).

    Returns:
        The files written.

    Raises:
        DataError: not a GLUE task, missing data or columns, or a checkpoint for another task.
    """
    name = get_task(task).name
    if get_task(name).glue_file is None:
        glue = [n for n, spec in TASKS.items() if spec.glue_file]
        raise DataError(f"{task} is not a GLUE task: GLUE files exist for {', '.join(glue)}")
    predictor = Predictor.from_pretrained(model_dir, batch_size=batch_size, precision=precision)
    targets = ["mnli", "mnli-mm"] if name == "mnli" and input_file is None else [name]
    frames = [(target, *_test_frame(target, input_file, data_dir)) for target in targets]  # fail before writing
    written = []
    for target, frame, source in frames:
        table = glue_predictions(predictor, target, frame, source)
        path = Path(output_dir) / f"{get_task(target).glue_file}.tsv"
        with atomic_path(path) as tmp:
            table.to_csv(tmp, sep="\t", index=False, quoting=csv.QUOTE_MINIMAL)
        written.append(path)
    return written
