"""Load, validate and tokenize labelled text data: registry tasks (local mirror or the Hub) and user files.

Every split that leaves this module has the text column(s) it was given and one ``label`` column:
int64 class ids (single-label), float32 scores (regression) or float32 multi-hot lists (multi-label).
Bad input raises :class:`DataError` with one line naming the file or split, the row or column, and the fix.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from textclf.config import DATA_FILE_SUFFIXES, DataConfig, Recipe
from textclf.errors import DataError
from textclf.longdoc import DEFAULT_HEAD_TOKENS, DEFAULT_STRIDE, SAMPLE_MAPPING, encode_texts
from textclf.tasks import MULTI_LABEL, REGRESSION, SINGLE_LABEL, TaskSpec, get_task

DATA_DIR_ENV = "TEXTCLF_DATA_DIR"


@dataclass
class TaskData:
    """Validated splits of one task, ready for tokenization.

    Attributes:
        name: the registry task name or the train file's stem.
        splits: ``train``, ``validation`` and optionally ``test`` (which may be unlabelled).
        text_columns: one column or two (sentence pair), in model input order.
        label_names: class names in id order (empty for regression).
        problem_type: single_label_classification, multi_label_classification or regression.
        metrics: metric names to report; metric_for_best_model: the one that picks the checkpoint.
    """

    name: str
    splits: dict[str, datasets.Dataset]
    text_columns: tuple[str, ...]
    label_names: list[str]
    problem_type: str
    metrics: tuple[str, ...]
    metric_for_best_model: str
    sources: dict[str, str] = field(default_factory=dict)

    @property
    def num_labels(self) -> int:
        """Model outputs: 1 for regression, else the number of classes."""
        return 1 if self.problem_type == REGRESSION else len(self.label_names)


def resolve_data_dir(data_dir: str | None = None) -> Path | None:
    """The local dataset mirror: ``data_dir`` if given, else ``$TEXTCLF_DATA_DIR``, else None (the Hub)."""
    value = data_dir or os.environ.get(DATA_DIR_ENV)
    return Path(value).expanduser() if value else None


def load_task_split(spec: TaskSpec, split: str, data_dir: str | None = None) -> datasets.Dataset:
    """Load one split of a registry task: from the mirror's ``<mirror_name>/<split>.parquet`` when it has
    it, else from the Hugging Face Hub with ``datasets.load_dataset`` (as the reference workflow does).

    Raises:
        DataError: the split is neither in the mirror nor reachable on the Hub; the message says how to fix it.
    """
    mirror = resolve_data_dir(data_dir)
    where = "no local mirror is set"
    if mirror is not None:
        path = mirror / spec.mirror_name / f"{split}.parquet"
        if path.is_file():
            return datasets.load_dataset("parquet", data_files={split: str(path)}, split=split)
        where = f"{path} does not exist" if mirror.is_dir() else f"the mirror {mirror} does not exist"
    hub = f"{spec.hub_path}" + (f" ({spec.hub_config})" if spec.hub_config else "")
    try:
        return datasets.load_dataset(spec.hub_path, spec.hub_config, split=split)
    except Exception as err:  # noqa: BLE001 - the Hub raises many types (ConnectionError, HfHubHTTPError, ...)
        reason = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
        raise DataError(
            f"{spec.name}: split {split!r} is not available: {where}, and the Hub copy {hub} could not be "
            f"loaded ({reason}). Fix: point {DATA_DIR_ENV} or --data-dir at a mirror holding "
            f"{spec.mirror_name}/{split}.parquet (e.g. ../shared/data), or connect to the Hub"
        ) from None


def _check_utf8(path: Path) -> None:
    raw = path.read_bytes()
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise DataError(f"{path}: line {line} is not valid UTF-8 (byte {err.start}): re-save the file as UTF-8, "
                        f"e.g. `iconv -f latin1 -t utf-8 {path.name} > fixed{path.suffix}`") from None


def check_data_file(path: str | Path) -> Path:
    """The path of an existing data file with a supported suffix (CSV, TSV, JSON Lines, JSON, Parquet).

    Raises:
        DataError: an unsupported suffix, or no such file (the message gives the working directory).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in DATA_FILE_SUFFIXES:
        raise DataError(f"{path}: unsupported file type {suffix!r}: use one of {', '.join(DATA_FILE_SUFFIXES)}")
    if not path.is_file():
        raise DataError(f"{path}: file not found (working directory {Path.cwd()}): check the path")
    return path


def read_table(path: str | Path) -> pd.DataFrame:
    """Read a CSV, TSV, JSON Lines, JSON or Parquet file into a DataFrame.

    Raises:
        DataError: the file is missing, has an unsupported suffix, is not UTF-8 (with the line), or
            cannot be parsed.
    """
    path = check_data_file(path)
    suffix = path.suffix.lower()
    try:
        if suffix == ".parquet":
            return pd.read_parquet(path)
        _check_utf8(path)
        if suffix in (".csv", ".tsv"):
            return pd.read_csv(path, sep="\t" if suffix == ".tsv" else ",", encoding="utf-8",
                               skip_blank_lines=False)
        return pd.read_json(path, lines=suffix == ".jsonl", encoding="utf-8")
    except DataError:
        raise
    except Exception as err:  # noqa: BLE001 - pandas/pyarrow parse errors come in many types
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise DataError(f"{path}: cannot be read as {suffix[1:]}: {first}") from None


def _row_name(source: str, index: int) -> str:
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
            raise DataError(f"{_row_name(source, bad + offset)}: empty text in column {column!r}: "
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
            raise DataError(f"{_row_name(source, int(bad[0]))}: missing score in column 'label': fill it in")
        return
    bad_minus = np.flatnonzero(labels == -1)
    if bad_minus.size:
        raise DataError(f"{_row_name(source, int(bad_minus[0]))}: label -1 (unlabelled, as in GLUE test splits) "
                        f"in a split used for training or evaluation: use a labelled split or drop those rows")
    bad = np.flatnonzero(~np.isfinite(labels) | (labels < 0) | (labels >= num_labels) | (labels != np.round(labels)))
    if bad.size:
        raise DataError(f"{_row_name(source, int(bad[0]))}: label {labels[bad[0]]:g} is out of range: "
                        f"ids must be integers in 0..{num_labels - 1}")


def _with_label_column(ds: datasets.Dataset, column: str, problem_type: str, num_labels: int) -> datasets.Dataset:
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


def load_checked_split(spec: TaskSpec, split: str, data_dir: str | None = None,
                       allow_unlabelled: bool = False) -> datasets.Dataset:
    """One split of a registry task with its text columns and a normalised ``label`` column, validated.

    Raises:
        DataError: the split is unavailable, or has empty texts or bad labels.
    """
    ds = load_task_split(spec, split, data_dir)
    source = f"{spec.name}/{split}"
    check_texts(ds, spec.text_columns, source)
    keep = [*spec.text_columns, spec.label_column]
    ds = ds.remove_columns([c for c in ds.column_names if c not in keep])
    ds = _with_label_column(ds, spec.label_column, spec.problem_type, spec.num_labels)
    check_labels(ds, spec.problem_type, spec.num_labels, source, allow_unlabelled=allow_unlabelled)
    return ds


def _hold_out_validation(splits: dict[str, datasets.Dataset], sources: dict[str, str], fraction: float,
                         seed: int) -> None:
    """Carve a seeded ``fraction`` of train into the validation split, in place, when there is none."""
    if "validation" in splits:
        return
    held = splits["train"].train_test_split(test_size=fraction, seed=seed)
    splits["train"], splits["validation"] = held["train"], held["test"]
    sources["validation"] = f"{fraction:g} of {sources['train']} (seed {seed})"


def load_task(spec: TaskSpec, data_dir: str | None = None, with_test: bool = False,
              seed: int = 42, validation_fraction: float = 0.1) -> TaskData:
    """Load and validate a registry task's train and validation splits (and test, if asked).

    A task without a validation split (IMDb) gets a seeded ``validation_fraction`` of train held out.

    Raises:
        DataError: a split is unavailable, or has empty texts or bad labels.
    """
    splits: dict[str, datasets.Dataset] = {}
    sources: dict[str, str] = {}
    wanted = [("train", spec.train_split)]
    if spec.validation_split:
        wanted.append(("validation", spec.validation_split))
    if with_test and spec.test_split:
        wanted.append(("test", spec.test_split))
    for role, split in wanted:
        splits[role] = load_checked_split(spec, split, data_dir, allow_unlabelled=role == "test")
        sources[role] = f"{spec.name}/{split}"
    _hold_out_validation(splits, sources, validation_fraction, seed)
    return TaskData(name=spec.name, splits=splits, text_columns=spec.text_columns,
                    label_names=list(spec.label_names), problem_type=spec.problem_type, metrics=spec.metrics,
                    metric_for_best_model=spec.metric_for_best_model, sources=sources)


def infer_text_columns(columns: list[str], cfg: DataConfig, source: str) -> tuple[str, ...]:
    """The text column(s) of a user file: as configured, else ``text``, ``sentence1``+``sentence2`` or
    ``sentence``.

    Raises:
        DataError: a configured column is missing, or none of the defaults is present.
    """
    if cfg.text_column:
        chosen = (cfg.text_column, cfg.text_pair_column) if cfg.text_pair_column else (cfg.text_column,)
    elif "text" in columns:
        chosen = ("text", cfg.text_pair_column) if cfg.text_pair_column else ("text",)
    elif "sentence1" in columns and "sentence2" in columns:
        chosen = ("sentence1", "sentence2")
    elif "sentence" in columns:
        chosen = ("sentence",)
    else:
        raise DataError(f"{source}: no text column found among {columns}: set data.text_column=NAME "
                        "(and data.text_pair_column=NAME for sentence pairs)")
    for column in chosen:
        if column not in columns:
            raise DataError(f"{source}: no column {column!r}; columns are {columns}: "
                            "set data.text_column / data.text_pair_column to one of them")
    return chosen


def choose_text_columns(columns: list[str], trained: tuple[str, ...] | list[str] | None, cfg: DataConfig,
                        source: str) -> tuple[str, ...]:
    """The text columns to read from a file for a checkpoint: ``cfg``'s when set, else the columns the checkpoint
    was trained on when the file has them all, else :func:`infer_text_columns`."""
    if not cfg.text_column and trained and all(c in columns for c in trained):
        return tuple(trained)
    return infer_text_columns(columns, cfg, source)


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
                raise DataError(f"{_row_name(source, row)}: label -1 (unlabelled) in a labelled split: "
                                "drop unlabelled rows or predict on them instead")
            shown = ", ".join(label_names[:20]) + (" ..." if len(label_names) > 20 else "")
            raise DataError(f"{_row_name(source, row)}: unknown label {value!r}: known labels are {shown}")
        return label2id[key]

    frame = frame.copy()
    encoded = []
    for row, value in enumerate(frame["label"].tolist()):
        if problem_type == MULTI_LABEL:
            encoded.append([lookup(v, row) for v in value])
        elif value is None or (isinstance(value, float) and np.isnan(value)):
            raise DataError(f"{_row_name(source, row)}: missing label: fill it in or drop the row")
        else:
            encoded.append(lookup(value, row))
    frame["label"] = encoded
    return frame


def default_metrics(problem_type: str, num_labels: int) -> tuple[tuple[str, ...], str]:
    """Metrics for a user's data set, and the one that picks the best checkpoint."""
    if problem_type == REGRESSION:
        return ("pearson", "spearmanr", "mse"), "pearson"
    if problem_type == MULTI_LABEL:
        return ("f1_micro", "f1_macro"), "f1_micro"
    return (("accuracy", "f1", "f1_macro") if num_labels == 2 else ("accuracy", "f1_macro")), "accuracy"


def _file_split(frame: pd.DataFrame, source: str, text_columns: tuple[str, ...], label_names: list[str],
                problem_type: str) -> datasets.Dataset:
    """One validated split from a user file's frame (``label`` column renamed already; absent = unlabelled)."""
    num_labels = 1 if problem_type == REGRESSION else len(label_names)
    unlabelled = "label" not in frame.columns
    if unlabelled:
        frame = frame.assign(label=-1 if problem_type != REGRESSION else np.nan)
    else:
        frame = encode_labels(frame, label_names, problem_type, source)
    ds = datasets.Dataset.from_pandas(frame.reset_index(drop=True), preserve_index=False)
    check_texts(ds, text_columns, source)
    return ds if unlabelled else _with_label_column(ds, "label", problem_type, num_labels)


def load_files(cfg: DataConfig, seed: int = 42, label_names: list[str] | None = None,
               problem_type: str | None = None) -> TaskData:
    """Load the user's own train (and optional validation/test) files.

    Label names are one sorted list built from train (``label_names``, when given, e.g. from a checkpoint,
    is used instead); when there is no validation file a seeded ``cfg.validation_fraction`` of train is held out.

    Raises:
        DataError: a missing file or column, non-UTF-8 text, empty texts, or unknown/missing labels.
    """
    if cfg.train_file is None:
        raise DataError("no training file: set data.train_file=PATH")
    paths = {"train": cfg.train_file, "validation": cfg.validation_file, "test": cfg.test_file}
    frames = {role: read_table(path) for role, path in paths.items() if path}
    train_source = str(paths["train"])
    columns = list(frames["train"].columns)
    text_columns = infer_text_columns(columns, cfg, train_source)
    label_column = cfg.label_column or "label"
    for role, frame in frames.items():
        missing = [c for c in (*text_columns, label_column) if c not in frame.columns]
        if missing and not (role == "test" and missing == [label_column]):
            raise DataError(f"{paths[role]}: no column {missing[0]!r}; columns are {list(frame.columns)}: "
                            f"set data.{'label_column' if missing[0] == label_column else 'text_column'}=NAME")
        frame = frame[[c for c in (*text_columns, label_column) if c in frame.columns]]
        frames[role] = frame.rename(columns={label_column: "label"})
    problem_type = problem_type or infer_problem_type(frames["train"]["label"])
    if label_names is None and problem_type != REGRESSION:
        label_names = label_list(frames, problem_type)
    label_names = label_names or []
    num_labels = 1 if problem_type == REGRESSION else len(label_names)
    if problem_type == SINGLE_LABEL and num_labels < 2:
        raise DataError(f"{train_source}: column {label_column!r} has {num_labels} distinct label(s); "
                        "a classifier needs at least 2")
    splits, sources = {}, {}
    for role, frame in frames.items():
        splits[role] = _file_split(frame, str(paths[role]), text_columns, label_names, problem_type)
        sources[role] = str(paths[role])
    _hold_out_validation(splits, sources, cfg.validation_fraction, seed)
    metrics, best = default_metrics(problem_type, num_labels)
    return TaskData(name=Path(train_source).stem, splits=splits, text_columns=text_columns,
                    label_names=label_names, problem_type=problem_type, metrics=metrics,
                    metric_for_best_model=best, sources=sources)


def load_recipe_data(recipe: Recipe, with_test: bool = False) -> TaskData:
    """Load the data a recipe names (a registry task or the user's files) and apply the sample caps."""
    if recipe.data.train_file:
        data = load_files(recipe.data, seed=recipe.seed)
    elif recipe.task is None:
        raise DataError("nothing to train on: give a task (sst2, cola, ...) or data.train_file=PATH")
    else:
        data = load_task(get_task(recipe.task), recipe.data.data_dir, with_test=with_test, seed=recipe.seed,
                         validation_fraction=recipe.data.validation_fraction)
    caps = {"train": recipe.max_train_samples, "validation": recipe.max_eval_samples}
    for role, cap in caps.items():
        if cap is not None and cap < len(data.splits[role]):
            data.splits[role] = data.splits[role].shuffle(seed=recipe.seed).select(range(cap)).flatten_indices()
    return data


def load_eval_data(source: str, label_names: list[str], problem_type: str, split: str | None = None,
                   data_dir: str | None = None, text_columns: tuple[str, ...] | None = None,
                   label_column: str | None = None) -> TaskData:
    """One labelled split to evaluate a checkpoint on, as the ``validation`` split of a :class:`TaskData`.

    Args:
        source: a registry task name or a data file (all of its rows are used).
        label_names, problem_type: the checkpoint's, so labels map to the ids the model was trained with.
        split: the task's split name (default its validation split); ignored for files.
        text_columns: for files, the checkpoint's text columns when the file has them.

    Raises:
        DataError: unknown task or split, missing columns, empty texts or bad labels.
    """
    if Path(source).suffix.lower() in DATA_FILE_SUFFIXES:
        frame = read_table(source)
        columns = choose_text_columns(list(frame.columns), text_columns, DataConfig(), source)
        column = label_column or "label"
        if column not in frame.columns:
            raise DataError(f"{source}: no label column {column!r}; columns are {list(frame.columns)}: "
                            "set --label-column NAME, or use `textclf predict` for unlabelled data")
        frame = frame[[*columns, column]].rename(columns={column: "label"})
        ds = _file_split(frame, source, columns, label_names, problem_type)
        metrics, best = default_metrics(problem_type, 1 if problem_type == REGRESSION else len(label_names))
        return TaskData(name=Path(source).stem, splits={"validation": ds}, text_columns=columns,
                        label_names=label_names, problem_type=problem_type, metrics=metrics,
                        metric_for_best_model=best, sources={"validation": source})
    try:
        spec = get_task(source)
    except ValueError as err:
        raise DataError(str(err)) from None
    split = split or spec.validation_split
    if split is None:
        raise DataError(f"{spec.name} has no validation split: give --split {spec.test_split or 'train'}")
    ds = load_checked_split(spec, split, data_dir)
    return TaskData(name=spec.name, splits={"validation": ds}, text_columns=spec.text_columns,
                    label_names=list(spec.label_names), problem_type=spec.problem_type, metrics=spec.metrics,
                    metric_for_best_model=spec.metric_for_best_model,
                    sources={"validation": f"{spec.name}/{split}"})


def tokenize(ds: datasets.Dataset, tokenizer: Any, text_columns: tuple[str, ...], max_seq_length: int,
             keep_columns: tuple[str, ...] = ("label",), truncation: str = "head",
             head_tokens: int = DEFAULT_HEAD_TOKENS, stride: int = DEFAULT_STRIDE) -> datasets.Dataset:
    """Tokenize a split with a fast tokenizer in batches, to at most ``max_seq_length`` tokens per row.

    No padding here: the collator pads each batch to its own longest sequence (dynamic padding). ``truncation``
    (see :mod:`textclf.longdoc`): ``head`` keeps the first tokens (pairs longest-first), ``head_tail`` the first
    ``head_tokens`` and the last ones; both give one row per example. ``chunks`` gives one row per window of
    ``max_seq_length`` tokens (consecutive windows share ``stride`` tokens), each with its example's
    ``keep_columns`` values (its label), so the result can be longer than ``ds``.

    The result has ``input_ids``, ``attention_mask`` (and ``token_type_ids`` for BERT-style models) plus
    ``keep_columns`` with their original features; ``datasets`` caches it by fingerprint between runs (the
    strategy and its sizes are part of the fingerprint).

    Raises:
        ConfigError: a bad strategy or sizes, or ``head_tail``/``chunks`` on sentence pairs (:mod:`textclf.longdoc`).
    """
    keep = [c for c in keep_columns if c in ds.column_names]

    def encode(batch: dict[str, list]) -> dict[str, list]:
        pairs = batch[text_columns[1]] if len(text_columns) > 1 else None
        features = encode_texts(tokenizer, batch[text_columns[0]], pairs, max_seq_length, truncation=truncation,
                                head_tokens=head_tokens, stride=stride)
        rows = features.pop(SAMPLE_MAPPING)
        if truncation == "chunks":  # every window carries its document's label (and other kept columns)
            features.update({c: [batch[c][i] for i in rows] for c in keep})
        return features

    # Check the strategy (and pairs) once here, so a bad one fails before `map` and on an empty split too.
    encode_texts(tokenizer, ["x"], ["x"] if len(text_columns) > 1 else None, max_seq_length, truncation=truncation,
                 head_tokens=head_tokens, stride=stride)
    if truncation != "chunks":
        drop = [c for c in ds.column_names if c not in keep_columns]
        return ds.map(encode, batched=True, remove_columns=drop, desc="tokenize")
    # The row count changes, so every input column goes and the kept ones come back, cast to their own features
    # (e.g. float32 regression scores, which Python floats would turn into float64).
    out = ds.map(encode, batched=True, remove_columns=ds.column_names, desc="tokenize (chunks)")
    changed = {c: ds.features[c] for c in keep if c in out.features and out.features[c] != ds.features[c]}
    return out.cast(datasets.Features({**out.features, **changed})) if changed else out


def random_examples(data: TaskData, n: int = 10, split: str = "train", seed: int | None = None) -> list[dict]:
    """``n`` random labelled examples with label names, like the reference notebook's show_random_elements."""
    ds = data.splits[split]
    rng = np.random.default_rng(seed)
    picks = rng.choice(len(ds), size=min(n, len(ds)), replace=False)
    rows = []
    for i in picks.tolist():
        row = ds[i]
        label = row["label"]
        if data.problem_type == SINGLE_LABEL and label >= 0:
            label = data.label_names[label]
        elif data.problem_type == MULTI_LABEL:
            label = [data.label_names[j] for j, v in enumerate(label) if v > 0.5]
        rows.append({**{c: row[c] for c in data.text_columns}, "label": label})
    return rows
