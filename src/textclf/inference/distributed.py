"""Distributed batch prediction with Ray Data: many files, a pool of actors each holding one Predictor, Parquet parts.

``textclf predict CHECKPOINT --input 'DIR/*.parquet' --output OUT_DIR --engine ray`` reads a set of files with Ray
Data (``ray.data.read_parquet`` / ``read_csv`` / ``read_json``), cuts them into blocks of at most ``chunk_rows`` rows,
predicts every block in a fixed pool of actors (``Dataset.map_batches`` with a callable class and
``ray.data.ActorPoolStrategy``; each actor loads the checkpoint once and batches by tokens as
:class:`~textclf.inference.predictor.Predictor` does), and writes one Parquet part per block (``write_parquet``)
with the input's id column, ``label`` and ``score``. Rows come back in no particular order: the id column is what
ties a prediction to its input row. Sources: Ray Data's user guide, "End-to-end: Offline Batch Inference" and the
``map_batches`` / ``ActorPoolStrategy`` API reference (tested with Ray 2.60).

Ray is an extra (``pip install 'textclf[ray]'``), imported only inside :func:`predict_files_ray`. The
single-process path (:func:`textclf.inference.streaming.predict_file`) stays the default of ``textclf predict``.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from textclf.checkpoints import pickle_allowed, remote_code_trusted, validate_checkpoint
from textclf.config import DataConfig
from textclf.data.loading import choose_text_columns
from textclf.data.tables import as_text, file_columns, iter_table
from textclf.data.validation import first_empty_text
from textclf.errors import ConfigError, DataError, TextclfError
from textclf.files import atomic_path
from textclf.inference.predictor import MAX_BATCH_TOKENS, Predictor, rows_to_texts
from textclf.inference.streaming import DEFAULT_CHUNK_ROWS
from textclf.tasks import MULTI_LABEL

RAY_HINT = "--engine ray needs Ray Data: pip install 'textclf[ray]' (or leave out --engine for one process)"
# The input files Ray Data reads here, by suffix. A plain JSON file (one array) cannot be split: use JSON Lines.
RAY_SUFFIXES = (".parquet", ".csv", ".tsv", ".jsonl")
# The id column when --id-column is not given: the first of these that every input file has (GLUE's idx, then id).
ID_COLUMNS = ("idx", "id")
OUTPUT_COLUMNS = ("label", "score", "labels", "scores")
# Written last into the output directory: what was predicted, and the sign that the directory is textclf's (and may
# be replaced by the next run). Parquet readers skip names that start with "_" (pyarrow.dataset's ignore_prefixes).
MARKER = "_textclf_predict.json"
_GLOB = "*?["


@dataclass(frozen=True)
class RayPrediction:
    """What :func:`predict_files_ray` wrote.

    Attributes:
        output_dir: the directory of Parquet parts.
        files: the parts, sorted by name.
        rows: rows predicted (= rows written, over all parts).
        text_columns: the text column(s) read; id_column: the id column copied to the output (None: the text
            columns were copied instead).
        num_actors, threads_per_actor: the actor pool that ran.
    """

    output_dir: Path
    files: tuple[Path, ...]
    rows: int
    text_columns: tuple[str, ...]
    id_column: str | None
    num_actors: int
    threads_per_actor: int


def require_ray() -> Any:
    """The ``ray`` module with Ray Data loaded.

    Raises:
        ConfigError: Ray (or its ``data`` extra) is not installed, naming ``pip install 'textclf[ray]'``.
    """
    try:
        import ray
        import ray.data
    except ImportError:
        raise ConfigError(RAY_HINT) from None
    return ray


def plan_actors(cluster_cpus: float, num_actors: int | None = None,
                threads_per_actor: int | None = None) -> tuple[int, int, float]:
    """The actor pool for a Ray cluster with ``cluster_cpus`` CPUs: (actors, torch threads each, logical CPUs each
    actor reserves).

    By default one single-threaded actor per CPU; given ``num_actors``, each actor gets ``cluster_cpus //
    num_actors`` threads. Ray Data's listing, read and write tasks each need one logical CPU, so the actors together
    reserve at most ``cluster_cpus - 1`` (each at most its thread count): a pool holding every CPU would leave the
    reads waiting for ever. Ray floors fractional reservations to 0.0001 CPU.

    Raises:
        ConfigError: ``num_actors`` or ``threads_per_actor`` below 1.
    """
    if (num_actors is not None and num_actors < 1) or (threads_per_actor is not None and threads_per_actor < 1):
        raise ConfigError(f"num_actors={num_actors}, threads_per_actor={threads_per_actor}: both must be at least 1")
    cpus = max(1, int(cluster_cpus))
    if num_actors is None:
        threads = threads_per_actor or 1
        num_actors = max(1, cpus // threads)
    else:
        threads = threads_per_actor or max(1, cpus // num_actors)
    reserved = min(float(threads), max(float(cluster_cpus) - 1.0, 0.0) / num_actors)
    return num_actors, threads, math.floor(reserved * 10_000) / 10_000


def list_input_files(pattern: str | Path) -> tuple[Any, list[str], bool]:
    """The files an ``--input`` names: a file, a directory (the supported files directly in it) or a glob
    (``'DIR/*.parquet'``), on the local disk or at any fsspec URL (``s3://``, ``gs://``, ``hf://``, ...).

    Returns:
        (the fsspec filesystem, the file paths in it sorted, whether it is the local filesystem).

    Raises:
        DataError: nothing matches, or a named file has a suffix other than :data:`RAY_SUFFIXES`.
    """
    import fsspec
    from fsspec.implementations.local import LocalFileSystem

    text = str(pattern)
    fs, root = fsspec.core.url_to_fs(text)
    if any(c in root for c in _GLOB):
        infos = fs.glob(root, detail=True).values()
    elif fs.isdir(root):
        infos = [i for i in fs.ls(root, detail=True) if Path(i["name"]).suffix.lower() in RAY_SUFFIXES]
    else:
        infos = [fs.info(root)] if fs.exists(root) else []
    files = sorted(i["name"] for i in infos if i.get("type") == "file")
    if not files:
        where = f" (working directory {Path.cwd()})" if isinstance(fs, LocalFileSystem) else ""
        raise DataError(f"{text}: no input file matches{where}: give a file, a directory or a glob such as "
                        "'DIR/*.parquet' (in quotes, so that the shell leaves the * to textclf)")
    for path in files:
        if Path(path).suffix.lower() not in RAY_SUFFIXES:
            raise DataError(f"{path}: --engine ray reads {', '.join(RAY_SUFFIXES)} files, not "
                            f"{Path(path).suffix or 'files without a suffix'}: convert it (a JSON array to JSON "
                            "Lines), or leave it out of --input")
    return fs, files, isinstance(fs, LocalFileSystem)


def file_header(fs: Any, path: str, local: bool) -> list[str]:
    """The column names of one input file from its header, schema or first JSON Lines record (local files through
    :func:`textclf.data.tables.file_columns`, remote ones through fsspec), without reading its rows.

    Raises:
        DataError: the file cannot be read or parsed there (naming it).
    """
    suffix = Path(path).suffix.lower()
    try:
        if local:
            if suffix == ".jsonl":
                first = next(iter_table(path, 1), None)
                return [] if first is None else list(first.columns)
            return list(file_columns(path))
        if suffix == ".parquet":
            with fs.open(path, "rb") as fh:
                return list(pq.ParquetFile(fh).schema_arrow.names)
        with fs.open(path, "rb") as raw:
            fh = io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")
            if suffix == ".jsonl":
                line = next((line for line in fh if line.strip()), None)
                return [] if line is None else list(json.loads(line))
            return next(csv.reader(fh, delimiter="\t" if suffix == ".tsv" else ","), [])
    except DataError:
        raise
    except Exception as err:  # noqa: BLE001 - pandas, pyarrow, fsspec and json errors come in many types
        first_line = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise DataError(f"{path}: cannot read its header: {first_line}") from None


def resolve_columns(headers: dict[str, list[str]], trained: Sequence[str] | None, cfg: DataConfig,
                    id_column: str | None = None) -> tuple[tuple[str, ...], str | None]:
    """The text column(s) and id column for a set of files, each file's text columns chosen as ``textclf predict
    --input`` chooses them (:func:`textclf.data.loading.choose_text_columns`).

    Args:
        headers: {file: its column names}.
        trained: the text columns the checkpoint was trained on (``config.textclf["text_columns"]``).
        id_column: the id column to keep; None: the first of :data:`ID_COLUMNS` that the files have, else none.

    Returns:
        (text columns, id column or None).

    Raises:
        DataError: a file lacks the text column(s) or the id column (naming the file, the column and the columns it
            has), the files do not agree on the text columns, only some files have ``idx``/``id``, or the id column
            is named like an output column.
    """
    chosen = {path: choose_text_columns(header, trained, cfg, path) for path, header in headers.items()}
    first_path, text_columns = next(iter(chosen.items()))
    for path, columns in chosen.items():
        if columns != text_columns:
            raise DataError(f"the input files do not share their text columns: {first_path} has {list(text_columns)}, "
                            f"{path} has {list(columns)}: give --text-column (and --text-pair-column)")
    if id_column is None:
        present = [name for name in ID_COLUMNS if any(name in header for header in headers.values())]
        id_column = present[0] if present else None
        flag = f" (or --id-column NAME: {id_column!r} is taken by default)"
    else:
        flag = ""
    if id_column is not None:
        for path, header in headers.items():
            if id_column not in header:
                raise DataError(f"{path}: no id column {id_column!r}; columns are {header}: give every file the "
                                f"same id column{flag}")
        if id_column in OUTPUT_COLUMNS:
            raise DataError(f"the id column {id_column!r} has the name of an output column "
                            f"({', '.join(OUTPUT_COLUMNS)}): rename it in the input")
    return tuple(text_columns), id_column


class BatchPredictor:
    """The callable class of ``map_batches``: one :class:`Predictor` per Ray actor, loaded once, applied to each
    block.

    Args:
        model_dir: the checkpoint, at a path every Ray node can read.
        predictor_kwargs: :meth:`Predictor.from_pretrained` settings (batch_size, max_batch_tokens, precision, ...).
        text_columns: the text column(s) of the input.
        keep_columns: the input columns copied to the output (the id column, else the text columns).
        threads: torch threads of this actor.
    """

    def __init__(self, model_dir: str, predictor_kwargs: dict[str, Any], text_columns: tuple[str, ...],
                 keep_columns: tuple[str, ...], threads: int):
        import torch
        from transformers.utils import logging as hf_logging

        # The actor is a process of its own, and this its entry point: its thread count is set here (Ray sets
        # OMP_NUM_THREADS to the CPUs an actor reserves, which is fewer: plan_actors), and one weight-loading
        # progress bar per actor would only clutter the log. (Ray's per-actor runtime_env could set environment
        # variables instead, but cost ~6 s of worker start-up here.)
        torch.set_num_threads(threads)
        hf_logging.disable_progress_bar()
        self.predictor = Predictor.from_pretrained(model_dir, **predictor_kwargs)
        self.text_columns = text_columns
        self.keep_columns = keep_columns

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        """Predict one block.

        Args:
            batch: the text column(s), the kept columns and, when read with it, ``path`` (the file of each row).

        Returns:
            The kept columns, then ``label`` (str) and ``score`` (float64: the top class's probability, or the
            regression value); multi-label: ``labels`` and ``scores``, lists (highest score first).

        Raises:
            DataError: a missing or empty text (naming the file, and the row by its id when there is one column).
        """
        texts = {c: as_text(batch[c]) for c in self.text_columns}
        for column, values in texts.items():
            bad = first_empty_text(pa.array(values, type=pa.string(), from_pandas=True))
            if bad is not None:
                where = batch["path"].iloc[bad] if "path" in batch.columns else "an input file"
                row = (f"the row with {self.keep_columns[0]}={batch[self.keep_columns[0]].iloc[bad]!r}"
                       if self.keep_columns != self.text_columns else "a row (the input has no id column)")
                raise DataError(f"{where}: {row}: empty text in column {column!r}: fill it in or drop the row")
        results = self.predictor.predict(rows_to_texts({c: v.tolist() for c, v in texts.items()}, self.text_columns))
        out = pd.DataFrame({c: batch[c].to_numpy() for c in self.keep_columns})
        if self.predictor.problem_type == MULTI_LABEL:
            out["labels"] = [[r["label"] for r in result] for result in results]
            out["scores"] = [[float(r["score"]) for r in result] for result in results]
        else:
            out["label"] = [r["label"] for r in results]
            out["score"] = np.array([r["score"] for r in results], dtype=np.float64)
        return out


def _read(ray: Any, files: list[str], columns: list[str], text_columns: tuple[str, ...], filesystem: Any,
          include_paths: bool) -> Any:
    """One Ray Dataset over every file, one reader per suffix, only ``columns`` (and ``path``) read. CSV/TSV text
    columns are read as strings with only an empty field missing (textclf's NA policy, :mod:`textclf.data.tables`);
    Parquet and JSON Lines keep their types and texts are cast to strings in the actor."""
    import pyarrow.csv as pacsv

    common = {"filesystem": filesystem, "include_paths": include_paths, "file_extensions": None,
              "partitioning": None}
    selected = [*columns, *(["path"] if include_paths else [])]
    parts = []
    for suffix in RAY_SUFFIXES:
        paths = [p for p in files if Path(p).suffix.lower() == suffix]
        if not paths:
            continue
        if suffix == ".parquet":
            ds = ray.data.read_parquet(paths, **common)  # only the selected columns are read (projection pushdown)
        elif suffix in (".csv", ".tsv"):
            # newlines_in_values: a quoted text may span lines, as pandas reads it in the single-process path.
            parse = pacsv.ParseOptions(delimiter="\t" if suffix == ".tsv" else ",", newlines_in_values=True)
            convert = pacsv.ConvertOptions(include_columns=columns, null_values=[""], strings_can_be_null=True,
                                           column_types={c: pa.string() for c in text_columns})
            ds = ray.data.read_csv(paths, parse_options=parse, convert_options=convert, **common)
        else:  # Arrow's JSON reader: one object per line
            ds = ray.data.read_json(paths, **common)
        parts.append(ds.select_columns(selected))
    return parts[0].union(*parts[1:]) if len(parts) > 1 else parts[0]


def _original(err: BaseException, kinds: tuple[type[BaseException], ...]) -> BaseException | None:
    """The first exception of one of ``kinds`` inside an exception Ray raised for a failed task or actor, if any.

    Ray raises e.g. a ``RayTaskError(DataError)``, an instance of both whose ``cause`` is the original exception
    (with ``DataContext.raise_original_map_exception``; else a ``UserCodeException`` whose cause is lost): the
    original is returned, not the wrapper, whose message is the remote traceback."""
    seen, todo = set(), [err]
    while todo:
        current = todo.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        cause = getattr(current, "cause", None)
        if isinstance(current, kinds) and not isinstance(cause, BaseException):
            return current
        todo += [cause, current.__cause__, current.__context__]
    return None


# A reader's parse errors inside a Ray error: bad input (a DataError), not a bug.
_READ_ERRORS = (pa.ArrowInvalid, json.JSONDecodeError, UnicodeDecodeError)


def _check_output_dir(output_dir: str | Path) -> Path:
    """The output directory as a local path. One that exists is replaced only if it is empty or an earlier output
    (it holds :data:`MARKER`): never a directory of the user's own files.

    Raises:
        ConfigError: a URL; DataError: a file, or a directory without the marker that is not empty.
    """
    if "://" in str(output_dir):
        raise ConfigError(f"--output {output_dir}: --engine ray writes into a local directory (on a cluster: one on "
                          "storage every node mounts), renamed into place when complete; give a path")
    path = Path(output_dir)
    if path.is_file() or (path.is_dir() and any(path.iterdir()) and not (path / MARKER).is_file()):
        held = path.name if path.is_file() else min(p.name for p in path.iterdir())
        raise DataError(f"{path}: exists and holds {held!r}, and is not an earlier output of predict --engine ray "
                        f"(no {MARKER}): give a new directory for --output (it is replaced as a whole)")
    return path


def predict_files_ray(model_dir: str | Path, input: str | Path, output_dir: str | Path, *,
                      text_column: str | None = None, text_pair_column: str | None = None,
                      id_column: str | None = None, num_actors: int | None = None,
                      threads_per_actor: int | None = None, batch_size: int = 64,
                      max_batch_tokens: int | None = MAX_BATCH_TOKENS, precision: str = "fp32",
                      truncation: str | None = None, max_seq_length: int | None = None,
                      chunk_rows: int = DEFAULT_CHUNK_ROWS, allow_pickle: bool = False,
                      trust_remote_code: bool = False, progress: bool = True) -> RayPrediction:
    """Predict every row of a set of files with Ray Data and write Parquet parts (``textclf predict --engine ray``).

    Ray: with ``ray`` already initialised in this process, that instance is used (and left running); else with
    ``RAY_ADDRESS`` set, ``ray.init(address=...)`` connects to that cluster; else a local instance with one CPU per
    core this process may use is started (``ray.init(num_cpus=len(os.sched_getaffinity(0)))``, no dashboard).
    Instances started here are shut down at the end.
    On a cluster the checkpoint, a local ``output_dir`` and local input files must be at the same path on every
    node (shared storage), and textclf installed there.

    The text column(s) of each file are chosen as the single-process ``--input`` path chooses them
    (:func:`textclf.data.loading.choose_text_columns`): ``text_column`` (and ``text_pair_column``), else the
    checkpoint's own, else ``text``, ``sentence1`` + ``sentence2`` or ``sentence``; every file must agree.

    Args:
        model_dir: a checkpoint directory (PyTorch or an ONNX export), as :meth:`Predictor.from_pretrained` takes.
        input: a file, a directory or a glob (``'DIR/*.parquet'``), local or an fsspec URL the Ray workers can read
            (``s3://bucket/data/*.parquet``): Parquet, CSV, TSV or JSON Lines, mixed too. Texts are strings as in
            :mod:`textclf.data.tables` (CSV/TSV: every text field a string, only an empty field missing; Parquet
            and JSON numbers as their decimal text), except that JSON Lines go through Arrow's JSON reader, which
            refuses a column holding strings on some lines and numbers on others.
        output_dir: the directory of Parquet parts, one per block of at most ``chunk_rows`` rows, each with the id
            column, ``label`` (string) and ``score`` (float64), multi-label ``labels`` and ``scores`` (lists). It is
            written under a temporary sibling name and renamed when complete: on any error nothing is left there (an
            earlier output there is untouched, and parent directories made for it are removed again). Beside the
            parts, :data:`MARKER` (JSON: rows, parts, columns, input, checkpoint, pool; Parquet readers skip it). An
            existing directory is replaced only if it is empty or holds that marker (an earlier output).
        id_column: the input column that identifies a row, copied to the output (``idx`` or ``id`` when not given
            and the files have it). Without one, the text column(s) themselves are copied instead, so a prediction
            can still be joined to its row by its text; output rows are in no particular order either way.
        num_actors, threads_per_actor: the actor pool; by default one one-thread actor per CPU of the cluster, or
            ``CPUs // num_actors`` threads each (:func:`plan_actors`).
        batch_size, max_batch_tokens, precision, truncation, max_seq_length: the Predictor's settings in every actor:
            length-sorted batches of at most ``batch_size`` rows and ``max_batch_tokens`` padded tokens.
        chunk_rows: rows per block (Ray Data's ``repartition(target_num_rows_per_block=...)``): one Predictor
            call and one output part each; blocks are what the actors share out, so there should be several per
            actor.
        allow_pickle, trust_remote_code: the checkpoint opt-ins (also ``TEXTCLF_ALLOW_PICKLE=1`` /
            ``TEXTCLF_TRUST_REMOTE_CODE=1`` in this process), passed on to the actors.
        progress: Ray Data's progress bars on stderr.

    Returns:
        A :class:`RayPrediction`: the parts written, their rows, the columns and the pool.

    Raises:
        ConfigError: Ray is not installed (naming ``pip install 'textclf[ray]'``), ``output_dir`` is a URL, bad
            pool sizes or Predictor settings (bf16 without native bf16, a truncation the texts cannot take).
        DataError: no file matches ``input``, a file of another type, a file that cannot be read, lacks the text
            column(s) or the id column (naming the file and the column), an empty text (naming the file and the
            row's id), ``chunk_rows`` below 1, an ``output_dir`` that holds other files or an input file.
        ModelError: ``model_dir`` is not a complete checkpoint (checked before Ray starts).
    """
    ray = require_ray()
    if chunk_rows < 1:
        raise DataError(f"chunk_rows={chunk_rows} must be a positive number of rows")
    plan_actors(1, num_actors, threads_per_actor)  # bad sizes fail before Ray starts
    output_path = _check_output_dir(output_dir)
    allow_pickle, trust_remote_code = pickle_allowed(allow_pickle), remote_code_trusted(trust_remote_code)
    model_dir = Path(model_dir).resolve()
    validate_checkpoint(model_dir, allow_pickle=allow_pickle, trust_remote_code=trust_remote_code)
    meta = json.loads((model_dir / "config.json").read_text(encoding="utf-8")).get("textclf") or {}
    fs, files, local = list_input_files(input)
    inside = [f for f in files if local and Path(f).resolve().is_relative_to(output_path.resolve())]
    if inside:
        raise DataError(f"{inside[0]}: an input file is inside --output {output_path}, which is replaced as a whole: "
                        "give another output directory")
    headers = {path: file_header(fs, path, local) for path in files}
    cfg = DataConfig(text_column=text_column, text_pair_column=text_pair_column)
    text_columns, id_column = resolve_columns(headers, meta.get("text_columns"), cfg, id_column)
    keep = (id_column,) if id_column is not None else text_columns
    columns = list(dict.fromkeys([*keep, *text_columns]))
    include_paths = "path" not in columns  # the file of each row, for error messages
    if local:
        filesystem = None
    else:
        from pyarrow.fs import FSSpecHandler, PyFileSystem

        filesystem = PyFileSystem(FSSpecHandler(fs))
    predictor_kwargs = {"batch_size": batch_size, "max_batch_tokens": max_batch_tokens, "precision": precision,
                        "truncation": truncation, "max_seq_length": max_seq_length, "allow_pickle": allow_pickle,
                        "trust_remote_code": trust_remote_code}

    started = not ray.is_initialized()
    if started:
        if os.environ.get("RAY_ADDRESS"):
            ray.init(address=os.environ["RAY_ADDRESS"])
        else:
            ray.init(num_cpus=len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
                     include_dashboard=False)
    # Datasets copy the current DataContext when made: these two settings hold for the ones made below. The
    # original exception of an actor (a DataError naming the file) instead of Ray Data's UserCodeException, whose
    # cause does not survive the trip to this process.
    context = ray.data.DataContext.get_current()
    saved = {"enable_progress_bars": context.enable_progress_bars,
             "raise_original_map_exception": context.raise_original_map_exception}
    context.enable_progress_bars, context.raise_original_map_exception = progress, True
    created = [d for d in (output_path.parent, *output_path.parent.parents) if not d.exists()]  # deepest first
    try:
        actors, threads, reserved = plan_actors(ray.cluster_resources().get("CPU", 1), num_actors, threads_per_actor)
        ds = _read(ray, files, columns, text_columns, filesystem, include_paths)
        ds = ds.repartition(target_num_rows_per_block=chunk_rows)
        ds = ds.map_batches(BatchPredictor, batch_size=None, batch_format="pandas",
                            fn_constructor_args=(str(model_dir), predictor_kwargs, text_columns, keep, threads),
                            compute=ray.data.ActorPoolStrategy(size=actors), num_cpus=reserved)
        with atomic_path(output_path) as tmp:
            try:
                ds.write_parquet(str(tmp))
            except Exception as err:
                if (cause := _original(err, (TextclfError,))) is not None:
                    raise type(cause)(*cause.args) from None
                if (cause := _original(err, _READ_ERRORS)) is not None:
                    message = str(cause).splitlines()[0] if str(cause) else type(cause).__name__
                    raise DataError(f"{input}: Ray Data cannot read one of the {len(files)} input files ({message}): "
                                    "check that each is a complete file of its type; in JSON Lines, every value of "
                                    "a text column must be a JSON string (Arrow's reader takes one type per "
                                    "column)") from None
                raise
            tmp.mkdir(exist_ok=True)  # no rows: no part
            parts = sorted(tmp.glob("*.parquet"))
            rows = sum(pq.ParquetFile(p).metadata.num_rows for p in parts)
            summary = {"rows": rows, "parts": len(parts), "input": str(input), "files": len(files),
                       "checkpoint": str(model_dir), "text_columns": list(text_columns), "id_column": id_column,
                       "num_actors": actors, "threads_per_actor": threads}
            (tmp / MARKER).write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    except BaseException:
        for directory in created:  # the directories atomic_path made for an output that never came
            try:
                directory.rmdir()
            except OSError:
                pass
        raise
    finally:
        for name, value in saved.items():
            setattr(context, name, value)
        if started:
            ray.shutdown()
    return RayPrediction(output_dir=output_path, files=tuple(output_path / p.name for p in parts), rows=rows,
                         text_columns=text_columns, id_column=id_column, num_actors=actors, threads_per_actor=threads)
