"""Checks that every split passes before training or evaluation: texts present, labels a model can learn from.

Every check raises :class:`DataError` with one line naming the file (or task split), the row as a user finds it
(a line number in text files), and the fix. Labels leave :func:`normalise_labels` as one ``label`` column: int64
class ids (single-label), float32 scores (regression) or float32 multi-hot lists (multi-label).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import datasets
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from textclf.data.tables import row_line
from textclf.errors import DataError
from textclf.tasks import MULTI_LABEL, REGRESSION, SINGLE_LABEL


def row_name(source: str, index: int) -> str:
    """Where a row is, as a user finds it: the line it starts on in a CSV, TSV or JSON Lines file (header, quoted
    texts over several lines and blank JSON Lines lines counted, :func:`textclf.data.tables.row_line`), the record
    (1-based) of a JSON array, else the row index (task splits, Parquet)."""
    suffix = Path(source).suffix.lower()
    if suffix in (".csv", ".tsv", ".jsonl"):
        line = row_line(source, index)
        return f"{source} line {line if line is not None else index + (1 if suffix == '.jsonl' else 2)}"
    if suffix == ".json":
        return f"{source} record {index + 1}"
    return f"{source} row {index}"


def _first(mask: pa.Array) -> int | None:
    hits = np.flatnonzero(np.asarray(mask.to_numpy(zero_copy_only=False), dtype=bool))
    return int(hits[0]) if hits.size else None


def first_empty_text(values: pa.Array | pa.ChunkedArray) -> int | None:
    """The index of the first missing (null) or blank (empty or whitespace-only) text in ``values``, else None;
    values that are not strings are cast to strings first."""
    if not pa.types.is_string(values.type) and not pa.types.is_large_string(values.type):
        values = pc.cast(values, pa.string())
    empty = pc.or_kleene(pc.is_null(values), pc.equal(pc.utf8_length(pc.utf8_trim_whitespace(values)), 0))
    if isinstance(empty, pa.ChunkedArray):
        empty = empty.combine_chunks()
    return _first(pc.fill_null(empty, True))


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
        bad = first_empty_text(ds.data.column(column))
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
    """multi-label if the labels are lists, regression if they are numbers not all whole (or not all finite: the
    row is then reported by :func:`encode_labels`), else single-label."""
    present = values.dropna()
    if len(present) and isinstance(present.iloc[0], (list, tuple, np.ndarray)):
        return MULTI_LABEL
    if pd.api.types.is_float_dtype(present):
        numbers = present.to_numpy(dtype=np.float64)
        finite = numbers[np.isfinite(numbers)]
        if finite.size < numbers.size or not np.all(np.mod(finite, 1) == 0):
            return REGRESSION
    return SINGLE_LABEL


def _is_list(value: Any) -> bool:
    return isinstance(value, (list, tuple, np.ndarray))


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, (float, np.floating)) and np.isnan(value))


def label_list(frames: dict[str, pd.DataFrame], problem_type: str) -> list[str]:
    """One sorted label list from the train frame's labels (numbers sorted as numbers, then names), as strings.

    Labels that are one name apart (1, 1.0 and True are "1" and "True"; see :func:`_label_key`) are one label. Values
    that cannot be labels (a list in a single-label file, an object) are left out here; :func:`encode_labels`
    reports their row."""
    values = frames["train"]["label"].dropna().tolist()
    if problem_type == MULTI_LABEL:
        values = [v for row in values if _is_list(row) for v in row]
    unique: dict[str, Any] = {}
    for value in values:
        if not _is_list(value) and not isinstance(value, dict) and not _is_missing(value):
            unique.setdefault(_label_key(value), value)
    order = sorted(unique.items(), key=lambda item: _sort_key(item[1], item[0]))
    # -1 marks unlabelled rows (GLUE test splits): it is never a class; encode_labels reports the row.
    return [name for name, _ in order if name != "-1"]


def _sort_key(value: Any, name: str) -> tuple[int, float, str]:
    """Numbers (booleans among them) first, by value; then names, alphabetically."""
    if isinstance(value, (bool, int, float, np.integer, np.floating, np.bool_)):
        return 0, float(value), name
    return 1, 0.0, name


def _label_key(value: Any) -> str:
    """A label's name: whole-number floats (1.0, from a numeric column with gaps) read as integers ("1")."""
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value)


def _shown(value: Any) -> str:
    text = repr(value.tolist() if isinstance(value, np.ndarray) else value)
    return text if len(text) <= 60 else text[:57] + "..."


def _check_scores(frame: pd.DataFrame, source: str) -> pd.DataFrame:
    """Regression labels as float scores; a missing, non-numeric or infinite one is refused with its row."""
    raw = frame["label"].tolist()
    scores = pd.to_numeric(frame["label"].map(lambda v: np.nan if _is_list(v) or isinstance(v, (dict, bool))
                                              else v), errors="coerce").to_numpy(dtype=np.float64)
    bad = np.flatnonzero(~np.isfinite(scores))
    if bad.size:
        row = int(bad[0])
        value = raw[row]
        if _is_missing(value):
            raise DataError(f"{row_name(source, row)}: missing score in column 'label': fill it in or drop the row")
        number = isinstance(value, (int, float, np.number)) and not isinstance(value, (bool, np.bool_))
        what = "is not a finite number" if number else "is not a number"
        raise DataError(f"{row_name(source, row)}: score {_shown(value)} {what}: a regression label is one "
                        "finite number per row")
    frame = frame.copy()
    frame["label"] = scores
    return frame


def encode_labels(frame: pd.DataFrame, label_names: list[str], problem_type: str, source: str) -> pd.DataFrame:
    """Map the ``label`` column's names (or numbers) to ids through ``label_names``; regression: check the scores.

    Raises:
        DataError: naming the row: a missing label, one not in ``label_names`` (with the known labels), a value that
            cannot be a label (a list in a single-label file, a name where a multi-label file has lists, an object),
            or a regression score that is missing, not a number or not finite.
    """
    if problem_type == REGRESSION:
        return _check_scores(frame, source)
    label2id = {name: i for i, name in enumerate(label_names)}

    def lookup(value: Any, row: int) -> int:
        if _is_list(value) or isinstance(value, dict):
            kind = "an object" if isinstance(value, dict) else "a list"
            raise DataError(f"{row_name(source, row)}: label {_shown(value)} is {kind}: a label is one name or "
                            "number" + (" (several labels per row: give every row a list of names)"
                                        if problem_type == SINGLE_LABEL else ""))
        key = _label_key(value)
        if key not in label2id:
            if key == "-1":
                raise DataError(f"{row_name(source, row)}: label -1 (unlabelled) in a labelled split: "
                                "drop unlabelled rows or predict on them instead")
            shown = ", ".join(label_names[:20]) + (" ..." if len(label_names) > 20 else "")
            raise DataError(f"{row_name(source, row)}: unknown label {_shown(value)}: known labels are {shown}")
        return label2id[key]

    frame = frame.copy()
    encoded = []
    for row, value in enumerate(frame["label"].tolist()):
        if problem_type == MULTI_LABEL:
            if _is_missing(value):
                raise DataError(f"{row_name(source, row)}: missing labels: give a list of labels, [] for none")
            if not _is_list(value):
                raise DataError(f"{row_name(source, row)}: label {_shown(value)} is not a list: a multi-label file "
                                "gives every row a list of labels, e.g. [\"joy\"] ([] for none)")
            encoded.append([lookup(v, row) for v in value])
        elif _is_missing(value):
            raise DataError(f"{row_name(source, row)}: missing label: fill it in or drop the row")
        else:
            encoded.append(lookup(value, row))
    frame["label"] = encoded
    return frame
