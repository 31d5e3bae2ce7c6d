"""Checks that every split passes before training or evaluation: texts present, labels a model can learn from.

Every check raises :class:`DataError` with one line naming the file (or task split), the row as a user finds it
(a line number in text files), and the fix. Labels leave :func:`normalise_labels` as one ``label`` column: int64
class ids (single-label), float32 scores (regression) or float32 multi-hot lists (multi-label).
"""

from __future__ import annotations

from typing import Any

import datasets
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from textclf.errors import DataError
from textclf.tasks import MULTI_LABEL, REGRESSION, SINGLE_LABEL


def row_name(source: str, index: int) -> str:
    """Where a row is, as a user finds it: a line in text files (header counted for CSV), else a row index."""
    if source.endswith((".csv", ".tsv")):
        return f"{source} line {index + 2}"
    if source.endswith((".jsonl", ".json")):
        return f"{source} line {index + 1}" if source.endswith(".jsonl") else f"{source} record {index}"
    return f"{source} row {index}"


def _first(mask: pa.Array) -> int | None:
    hits = np.flatnonzero(np.asarray(mask.to_numpy(zero_copy_only=False), dtype=bool))
    return int(hits[0]) if hits.size else None


def check_texts(ds: datasets.Dataset, text_columns: tuple[str, ...], source: str, offset: int = 0) -> None:
    """Fail on a missing text column or an empty/null text.

    Args:
        offset: the row index of ``ds``'s first row in ``source`` (a chunk of a file read piece by piece), so the
            error names the row where it is in the file.

    Raises:
        DataError: naming the column (and the columns found) or the first bad row, with the fix.
    """
    for column in text_columns:
        if column not in ds.column_names:
            raise DataError(f"{source}: no text column {column!r}; columns are {ds.column_names}: "
                            "set data.text_column=NAME (and data.text_pair_column=NAME for pairs)")
        values = ds.data.column(column)
        if not pa.types.is_string(values.type) and not pa.types.is_large_string(values.type):
            values = pc.cast(values, pa.string())
        empty = pc.or_kleene(pc.is_null(values), pc.equal(pc.utf8_length(pc.utf8_trim_whitespace(values)), 0))
        bad = _first(pc.fill_null(empty, True).combine_chunks())
        if bad is not None:
            raise DataError(f"{row_name(source, bad + offset)}: empty text in column {column!r}: "
                            "fill it in or drop the row")


def check_labels(ds: datasets.Dataset, problem_type: str, num_labels: int, source: str,
                 allow_unlabelled: bool = False) -> None:
    """Fail on labels a model cannot train or be judged on: null, -1 (unlabelled), or out of range.

    Args:
        ds: a split with a normalised ``label`` column.
        allow_unlabelled: True for test splits, whose labels may all be -1 (GLUE's hidden test labels).

    Raises:
        DataError: naming the first bad row and the fix.
    """
    if problem_type == MULTI_LABEL:
        return
    labels = np.asarray(ds.data.column("label").to_numpy(zero_copy_only=False), dtype=np.float64)
    if allow_unlabelled and labels.size and np.all(labels == -1):
        return
    if problem_type == REGRESSION:
        bad = np.flatnonzero(~np.isfinite(labels))
        if bad.size:
            raise DataError(f"{row_name(source, int(bad[0]))}: missing score in column 'label': fill it in")
        return
    bad_minus = np.flatnonzero(labels == -1)
    if bad_minus.size:
        raise DataError(f"{row_name(source, int(bad_minus[0]))}: label -1 (unlabelled, as in GLUE test splits) "
                        f"in a split used for training or evaluation: use a labelled split or drop those rows")
    bad = np.flatnonzero(~np.isfinite(labels) | (labels < 0) | (labels >= num_labels) | (labels != np.round(labels)))
    if bad.size:
        raise DataError(f"{row_name(source, int(bad[0]))}: label {labels[bad[0]]:g} is out of range: "
                        f"ids must be integers in 0..{num_labels - 1}")


def normalise_labels(ds: datasets.Dataset, column: str, problem_type: str, num_labels: int) -> datasets.Dataset:
    """Rename ``column`` to ``label`` and cast it: int64 ids, float32 scores, or float32 multi-hot vectors."""
    if column != "label":
        if "label" in ds.column_names:
            ds = ds.remove_columns("label")
        ds = ds.rename_column(column, "label")
    if problem_type == MULTI_LABEL:
        def to_multi_hot(batch: dict[str, list]) -> dict[str, list]:
            hot = np.zeros((len(batch["label"]), num_labels), dtype=np.float32)
            for row, ids in enumerate(batch["label"]):
                hot[row, list(ids)] = 1.0
            return {"label": hot.tolist()}
        features = ds.features.copy()
        features["label"] = datasets.Sequence(datasets.Value("float32"), length=num_labels)
        return ds.map(to_multi_hot, batched=True, features=features, desc="multi-hot labels")
    target = datasets.Value("float32" if problem_type == REGRESSION else "int64")
    if ds.features["label"] != target:
        ds = ds.cast_column("label", target)
    return ds


def infer_problem_type(values: pd.Series) -> str:
    """multi-label if the labels are lists, regression if they are non-integer numbers, else single-label."""
    present = values.dropna()
    if len(present) and isinstance(present.iloc[0], (list, tuple, np.ndarray)):
        return MULTI_LABEL
    if pd.api.types.is_float_dtype(present) and not np.all(np.mod(present.to_numpy(), 1) == 0):
        return REGRESSION
    return SINGLE_LABEL


def label_list(frames: dict[str, pd.DataFrame], problem_type: str) -> list[str]:
    """One sorted label list from the train frame's labels (numbers sorted as numbers), as strings."""
    values = frames["train"]["label"].dropna()
    if problem_type == MULTI_LABEL:
        values = pd.Series([v for row in values for v in row])
    unique = sorted(set(values.tolist()), key=lambda v: (isinstance(v, str), v))
    names = [_label_key(v) for v in unique]
    # -1 marks unlabelled rows (GLUE test splits): it is never a class; encode_labels reports the row.
    return list(dict.fromkeys(n for n in names if n != "-1"))


def _label_key(value: Any) -> str:
    """A label's name: whole-number floats (1.0, from a numeric column with gaps) read as integers ("1")."""
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value)


def encode_labels(frame: pd.DataFrame, label_names: list[str], problem_type: str, source: str) -> pd.DataFrame:
    """Map the ``label`` column's names (or numbers) to ids through ``label_names``.

    Raises:
        DataError: a missing label, or one not in ``label_names`` (with the row and the known labels).
    """
    if problem_type == REGRESSION:
        return frame
    label2id = {name: i for i, name in enumerate(label_names)}

    def lookup(value: Any, row: int) -> int:
        key = _label_key(value)
        if key not in label2id:
            if key == "-1":
                raise DataError(f"{row_name(source, row)}: label -1 (unlabelled) in a labelled split: "
                                "drop unlabelled rows or predict on them instead")
            shown = ", ".join(label_names[:20]) + (" ..." if len(label_names) > 20 else "")
            raise DataError(f"{row_name(source, row)}: unknown label {value!r}: known labels are {shown}")
        return label2id[key]

    frame = frame.copy()
    encoded = []
    for row, value in enumerate(frame["label"].tolist()):
        if problem_type == MULTI_LABEL:
            encoded.append([lookup(v, row) for v in value])
        elif value is None or (isinstance(value, float) and np.isnan(value)):
            raise DataError(f"{row_name(source, row)}: missing label: fill it in or drop the row")
        else:
            encoded.append(lookup(value, row))
    frame["label"] = encoded
    return frame
