"""Predict a data file of any size: read it in chunks, predict each chunk, write the results as they come.

Memory is bounded by one chunk (``chunk_rows`` rows, their tokens and their predictions), not by the file: the one
table reader (:func:`textclf.data.tables.iter_table`, the same NA policy as training: texts are always strings)
reads CSV/TSV and JSON Lines with pandas' chunked readers, Parquet with pyarrow's ``ParquetFile.iter_batches``, and
only the text columns. A plain JSON file (one array) cannot be read piece by piece and is loaded whole. Within a
chunk the :class:`~.predictor.Predictor` sorts texts by length into batches, so the chunk should hold many batches;
outputs keep the input order. The output file is written to a temporary file renamed at the end, so it is either
complete or absent.
"""

from __future__ import annotations

import contextlib
import csv
import itertools
import json
import sys
from pathlib import Path
from typing import IO, Any

import datasets
from tqdm.auto import tqdm

from textclf.config import DataConfig
from textclf.data.loading import choose_text_columns
from textclf.data.tables import check_data_file, count_rows, file_columns, iter_table
from textclf.data.validation import check_texts
from textclf.errors import DataError
from textclf.files import atomic_path
from textclf.inference.predictor import Predictor, rows_to_texts
from textclf.tasks import MULTI_LABEL

# 64 batches of 64: enough texts to sort by length into well-filled batches, and at most a few MB of texts, tokens
# and results in memory (512-token reviews: ~4096 x 512 int64 ids x 3 features = 50 MB at the very most).
DEFAULT_CHUNK_ROWS = 4096


def _flat(result: Any) -> dict[str, Any]:
    """One output row for CSV/TSV: ``label`` and ``score``, or for multi-label ``labels`` and ``scores`` as JSON
    lists (highest score first)."""
    if isinstance(result, list):
        return {"labels": json.dumps([r["label"] for r in result], ensure_ascii=False),
                "scores": json.dumps([r["score"] for r in result])}
    return result


class _Writer:
    """Writes predictions as JSON Lines (pipeline shape, one per line), CSV or TSV (a header, then one row each; the
    header alone for an input without rows)."""

    def __init__(self, fh: IO[str], fmt: str, multi_label: bool = False):
        self.fh, self.fmt, self.csv = fh, fmt, None
        self.fieldnames = ["labels", "scores"] if multi_label else ["label", "score"]

    def write(self, results: list[Any]) -> None:
        if self.fmt == "jsonl":
            self.fh.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in results)
            return
        rows = [_flat(r) for r in results]
        if self.csv is None and rows:
            self.csv = csv.DictWriter(self.fh, fieldnames=list(rows[0]), delimiter="\t" if self.fmt == "tsv" else ",")
            self.csv.writeheader()
        if self.csv is not None:
            self.csv.writerows(rows)

    def close(self) -> None:
        """The CSV/TSV header, if no row wrote it (an input with a header and no rows)."""
        if self.fmt != "jsonl" and self.csv is None:
            csv.DictWriter(self.fh, fieldnames=self.fieldnames, delimiter="\t" if self.fmt == "tsv" else ",").writeheader()


def output_format(path: str | Path | None) -> str:
    """``csv`` or ``tsv`` for those suffixes, else ``jsonl`` (also for stdout, ``path=None``)."""
    suffix = Path(path).suffix.lower() if path is not None else ""
    return {".csv": "csv", ".tsv": "tsv"}.get(suffix, "jsonl")


def predict_file(predictor: Predictor, input_path: str | Path, output_path: str | Path | None = None,
                 text_column: str | None = None, text_pair_column: str | None = None,
                 chunk_rows: int = DEFAULT_CHUNK_ROWS, progress: bool = True) -> int:
    """Predict every row of a data file, streaming: memory does not grow with the file.

    The text column(s) are ``text_column`` (and ``text_pair_column``) when given, else the columns the checkpoint
    was trained on when the file has them, else ``text``, ``sentence1`` + ``sentence2`` or ``sentence``
    (:func:`textclf.data.loading.choose_text_columns`).

    Args:
        predictor: the model (a PyTorch checkpoint or an ONNX export) with its batch size and truncation.
        input_path: CSV, TSV, JSON Lines or Parquet (streamed), or JSON (loaded whole).
        output_path: ``.csv`` / ``.tsv``: a header then ``label,score`` per row (multi-label: ``labels,scores``, JSON
            lists); any other suffix: JSON Lines in the ``transformers.pipeline`` shape, one line per row. Written to
            a temporary file renamed at the end. None: JSON Lines on stdout, flushed after each chunk.
        chunk_rows: rows read, predicted and written at a time.
        progress: a tqdm progress bar (rows) on stderr.

    Returns:
        The number of rows predicted (= rows written, in input order).

    Raises:
        DataError: the file cannot be read, lacks the text column(s), or has an empty text (naming the line or
            row in the file); ConfigError: a truncation strategy the texts cannot take (pairs with ``head_tail``).
            On any error nothing is left at ``output_path``: an earlier file there is untouched, and directories
            made for it are removed again.
    """
    input_path = Path(input_path)
    meta = getattr(predictor.model.config, "textclf", None) or {}
    cfg = DataConfig(text_column=text_column, text_pair_column=text_pair_column)
    source = str(input_path)
    check_data_file(input_path)  # before anything is written
    if chunk_rows < 1:
        raise DataError(f"chunk_rows={chunk_rows} must be a positive number of rows")
    try:
        header = file_columns(input_path)
    except Exception:  # noqa: BLE001 - a header pandas cannot parse is reported by iter_table, with its reason
        header = None
    # CSV/TSV/Parquet: the text columns are known from the header, and only they are read; JSON (Lines): from the
    # first chunk's keys.
    columns = choose_text_columns(header, meta.get("text_columns"), cfg, source) if header is not None else None
    # JSON (Lines): the text columns are chosen from the first chunk's keys, and read as texts.
    chunks = iter_table(input_path, chunk_rows, columns or (lambda found: choose_text_columns(
        found, meta.get("text_columns"), cfg, source)), columns)
    # The first chunk is read before the output is opened: a file that cannot be read, or that lacks the text
    # columns, leaves nothing behind, not even a new output directory.
    first = next(chunks, None)
    if first is not None and columns is None:
        columns = choose_text_columns(list(first.columns), meta.get("text_columns"), cfg, source)
    fmt = output_format(output_path)
    bar = tqdm(total=count_rows(input_path) if progress else None, unit=" rows", file=sys.stderr,
               disable=not progress, desc=f"predict {input_path.name}", mininterval=1.0)

    def run(fh: IO[str]) -> int:
        nonlocal columns
        writer, done = _Writer(fh, fmt, multi_label=predictor.problem_type == MULTI_LABEL), 0
        for chunk in itertools.chain([] if first is None else [first], chunks):
            if columns is None:  # JSON Lines / JSON: the keys of the first chunk
                columns = choose_text_columns(list(chunk.columns), meta.get("text_columns"), cfg, source)
            chunk = chunk.reindex(columns=list(columns))  # a key missing from some rows: empty texts, reported
            check_texts(datasets.Dataset.from_pandas(chunk[list(columns)].reset_index(drop=True),
                                                     preserve_index=False), columns, source, offset=done)
            results = predictor.predict(rows_to_texts({c: chunk[c].tolist() for c in columns}, columns))
            writer.write(results)
            fh.flush()
            done += len(results)
            bar.update(len(results))
        writer.close()
        return done

    try:
        if output_path is None:
            return run(sys.stdout)
        output_path = Path(output_path)
        created = [d for d in (output_path.parent, *output_path.parent.parents) if not d.exists()]  # deepest first
        try:
            with atomic_path(output_path) as tmp, open(tmp, "w", encoding="utf-8", newline="") as fh:
                return run(fh)
        except BaseException:
            for directory in created:  # the directories atomic_path made for an output that never came
                with contextlib.suppress(OSError):
                    directory.rmdir()
            raise
    finally:
        bar.close()
