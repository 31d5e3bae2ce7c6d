"""Load labelled text data: registry tasks (the local mirror, else the Hub) and the user's own files.

Every split that leaves this module has the text column(s) it was given and one ``label`` column:
int64 class ids (single-label), float32 scores (regression) or float32 multi-hot lists (multi-label).
Files are read by the one table reader (:mod:`textclf.data.tables`: texts are always strings) and checked by
:mod:`textclf.data.validation`; bad input raises :class:`DataError` with one line naming the file or split, the row
or column, and the fix.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import datasets
import numpy as np
import pandas as pd

from textclf.config import DATA_FILE_SUFFIXES, DataConfig, Recipe
from textclf.data.tables import read_table
from textclf.data.validation import (
    check_labels,
    check_texts,
    encode_labels,
    infer_problem_type,
    label_list,
    normalise_labels,
)
from textclf.errors import DataError
from textclf.tasks import MULTI_LABEL, REGRESSION, SINGLE_LABEL, TaskSpec, default_metrics, get_task, num_labels

DATA_DIR_ENV = "TEXTCLF_DATA_DIR"
# Below this many training examples a user file without a validation file is not split: the run trains on all of them
# with a fixed schedule (the last step's model) and reports its scores on the training data, flagged as such
# (TaskData.validation_is_train). A 10% hold-out of fewer than 1,000 texts is under 100 of them (a binomial standard
# error of about 4-5 accuracy points), too few to choose a checkpoint by, and the texts are worth more in training:
# fine-tuning on all 512 texts of SST-2 at 256 per class scored 0.789 / 0.771 / 0.786 (mean 0.782) on three seeds
# against 0.767 / 0.736 / 0.806 (0.770) with the hold-out, and the IMDb reference exercise (500 reviews) 0.866 /
# 0.828 against 0.844 / 0.838 on two data orders, where the checkpoint the hold-out chose scored no better on the
# test reviews than the last one (docs/results.md, 2026-12-06).
MIN_HOLDOUT_TRAIN = 1000


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
        sources: where each split came from (file, task split, or the hold-out that made it).
        validation_is_train: the validation split is the training data itself (a small file without a validation
            file, see :data:`MIN_HOLDOUT_TRAIN`): scores on it are optimistic, and no checkpoint is chosen by it.
    """

    name: str
    splits: dict[str, datasets.Dataset]
    text_columns: tuple[str, ...]
    label_names: list[str]
    problem_type: str
    metrics: tuple[str, ...]
    metric_for_best_model: str
    sources: dict[str, str] = field(default_factory=dict)
    validation_is_train: bool = False

    @property
    def num_labels(self) -> int:
        """Model outputs: 1 for regression, else the number of classes."""
        return num_labels(self.problem_type, self.label_names)


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
    ds = normalise_labels(ds, spec.label_column, spec.problem_type, spec.num_labels)
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
    if len(chosen) == 2 and chosen[0] == chosen[1]:
        raise DataError(f"{source}: data.text_column and data.text_pair_column are both {chosen[0]!r}: set "
                        "data.text_pair_column to the column of the second texts, or leave it out")
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


def check_has_rows(frame: pd.DataFrame, source: str) -> None:
    """Fail on a file without data rows (empty, or a header only).

    Raises:
        DataError: naming the file and the columns it has, if any.
    """
    if len(frame) == 0:
        header = f" (only a header: {', '.join(map(str, frame.columns))})" if len(frame.columns) else ""
        raise DataError(f"{source}: no data rows{header}: add one row per example")


def _file_split(frame: pd.DataFrame, source: str, text_columns: tuple[str, ...], label_names: list[str],
                problem_type: str) -> datasets.Dataset:
    """One validated split from a user file's frame (``label`` column renamed already; absent = unlabelled)."""
    unlabelled = "label" not in frame.columns
    if unlabelled:
        frame = frame.assign(label=-1 if problem_type != REGRESSION else np.nan)
    else:
        frame = encode_labels(frame, label_names, problem_type, source)
    ds = datasets.Dataset.from_pandas(frame.reset_index(drop=True), preserve_index=False)
    check_texts(ds, text_columns, source)
    return ds if unlabelled else normalise_labels(ds, "label", problem_type, num_labels(problem_type, label_names))


def load_files(cfg: DataConfig, seed: int = 42, label_names: list[str] | None = None,
               problem_type: str | None = None, min_holdout_train: int | None = None) -> TaskData:
    """Load the user's own train (and optional validation/test) files.

    Label names are one sorted list built from train (``label_names``, when given, e.g. from a checkpoint,
    is used instead); when there is no validation file a seeded ``cfg.validation_fraction`` of train is held out,
    unless train has fewer than ``min_holdout_train`` examples (None: :data:`MIN_HOLDOUT_TRAIN`; 0 always holds
    out, as a hyperparameter search must): then the validation split is the training data itself
    (``validation_is_train``).

    Raises:
        DataError: a file that cannot be read (:mod:`textclf.data.tables`: with its line and the fix), has no data
            rows, lacks a column or names the label column as a text column; empty texts, or labels that are
            missing, unknown, not one kind (a list among names) or fewer than a classifier needs; each naming the
            file and the row's line.
    """
    if cfg.train_file is None:
        raise DataError("no training file: set data.train_file=PATH")
    paths = {"train": cfg.train_file, "validation": cfg.validation_file, "test": cfg.test_file}
    train_source = str(paths["train"])
    frames = {"train": read_table(train_source, lambda columns: infer_text_columns(columns, cfg, train_source))}
    check_has_rows(frames["train"], train_source)
    text_columns = infer_text_columns(list(frames["train"].columns), cfg, train_source)
    frames.update({role: read_table(path, text_columns) for role, path in paths.items() if path and role != "train"})
    label_column = cfg.label_column or "label"
    if label_column in text_columns:
        raise DataError(f"{train_source}: column {label_column!r} is both a text column and the label column: set "
                        "data.label_column (or data.text_column) to another column")
    for role, frame in frames.items():
        check_has_rows(frame, str(paths[role]))
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
    outputs = num_labels(problem_type, label_names)
    if problem_type == SINGLE_LABEL and outputs < 2:
        encode_labels(frames["train"], label_names, problem_type, train_source)  # a row that cannot be a label first
        raise DataError(f"{train_source}: column {label_column!r} has {outputs} distinct label(s); "
                        "a classifier needs at least 2")
    if problem_type == MULTI_LABEL and outputs < 1:
        encode_labels(frames["train"], label_names, problem_type, train_source)  # a row that is not a list first
        raise DataError(f"{train_source}: column {label_column!r} holds only empty lists: a multi-label file needs "
                        "at least one label in some row (e.g. [\"joy\"])")
    splits, sources = {}, {}
    for role, frame in frames.items():
        splits[role] = _file_split(frame, str(paths[role]), text_columns, label_names, problem_type)
        sources[role] = str(paths[role])
    min_holdout_train = MIN_HOLDOUT_TRAIN if min_holdout_train is None else min_holdout_train
    small = "validation" not in splits and len(splits["train"]) < min_holdout_train
    if small:
        splits["validation"] = splits["train"]
        sources["validation"] = (f"the training data itself ({len(splits['train'])} examples, fewer than "
                                 f"{min_holdout_train}: no hold-out; give data.validation_file for a fair score)")
    _hold_out_validation(splits, sources, cfg.validation_fraction, seed)
    metrics, best = default_metrics(problem_type, outputs)
    return TaskData(name=Path(train_source).stem, splits=splits, text_columns=text_columns,
                    label_names=label_names, problem_type=problem_type, metrics=metrics,
                    metric_for_best_model=best, sources=sources, validation_is_train=small)


def load_recipe_data(recipe: Recipe, with_test: bool = False, min_holdout_train: int | None = None) -> TaskData:
    """Load the data a recipe names (a registry task or the user's files) and apply the sample caps;
    ``min_holdout_train`` as in :func:`load_files`."""
    if recipe.data.train_file:
        data = load_files(recipe.data, seed=recipe.seed, min_holdout_train=min_holdout_train)
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
        DataError: unknown task or split; a file that cannot be read, has no data rows, lacks a column or names the
            label column as a text column; empty texts or bad labels (naming the row's line).
    """
    if Path(source).suffix.lower() in DATA_FILE_SUFFIXES:
        frame = read_table(source, lambda found: choose_text_columns(found, text_columns, DataConfig(), source))
        check_has_rows(frame, source)
        columns = choose_text_columns(list(frame.columns), text_columns, DataConfig(), source)
        column = label_column or "label"
        if column in columns:
            raise DataError(f"{source}: column {column!r} is both a text column and the label column: set "
                            "--label-column to the column that holds the labels")
        if column not in frame.columns:
            raise DataError(f"{source}: no label column {column!r}; columns are {list(frame.columns)}: "
                            "set --label-column NAME, or use `textclf predict` for unlabelled data")
        frame = frame[[*columns, column]].rename(columns={column: "label"})
        ds = _file_split(frame, source, columns, label_names, problem_type)
        metrics, best = default_metrics(problem_type, num_labels(problem_type, label_names))
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
