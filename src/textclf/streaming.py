"""Predict a data file of any size: read it in chunks, predict each chunk, write the results as they come.

Memory is bounded by one chunk (``chunk_rows`` rows, their tokens and their predictions), not by the file: CSV/TSV
and JSON Lines are read with pandas' chunked readers, Parquet with pyarrow's ``ParquetFile.iter_batches``. A plain
JSON file (one array) cannot be read piece by piece and is loaded whole. Within a chunk the
:class:`~textclf.inference.Predictor` sorts texts by length into batches, so the chunk should hold many batches;
outputs keep the input order. The output file is written to a temporary file renamed at the end, so it is either
complete or absent.
"""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any

import datasets
import pandas as pd
from tqdm.auto import tqdm

from textclf.config import DataConfig
from textclf.data import check_data_file, check_texts, choose_text_columns, read_table
from textclf.errors import DataError
from textclf.files import atomic_path
from textclf.inference import Predictor, rows_to_texts

# 64 batches of 64: enough texts to sort by length into well-filled batches, and at most a few MB of texts, tokens
# and results in memory (512-token reviews: ~4096 x 512 int64 ids x 3 features = 50 MB at the very most).
DEFAULT_CHUNK_ROWS = 4096
_BLOCK = 1 << 20  # bytes per read when scanning a text file (line count, UTF-8 check)


def _bad_utf8_line(path: Path) -> int | None:
    """The first line (1-based) of ``path`` that is not valid UTF-8, reading one line at a time."""
    with open(path, "rb") as fh:
        for number, line in enumerate(fh, start=1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError:
                return number
    return None


def count_rows(path: str | Path) -> int | None:
    """The number of data rows in a file, for a progress bar: exact for Parquet (its metadata), the number of lines
    (less the header for CSV/TSV) for text files, which overcounts quoted texts that span lines; None for JSON."""
    import pyarrow.parquet as pq

    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        return pq.ParquetFile(path).metadata.num_rows
    if suffix not in (".csv", ".tsv", ".jsonl"):
        return None
    lines, last = 0, b"\n"
    with open(path, "rb") as fh:
        while block := fh.read(_BLOCK):
            lines += block.count(b"\n")
            last = block[-1:]
    lines += last != b"\n"  # a last line without a newline
    return max(lines - (suffix != ".jsonl"), 0)


def file_columns(path: str | Path) -> list[str] | None:
    """The column names of a CSV/TSV/Parquet file, read from its header or schema only; None for JSON Lines and
    JSON, whose keys are known once rows are read."""
    import pyarrow.parquet as pq

    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        return list(pq.ParquetFile(path).schema_arrow.names)
    if suffix in (".csv", ".tsv"):
        return list(pd.read_csv(path, sep="\t" if suffix == ".tsv" else ",", nrows=0, encoding="utf-8").columns)
    return None


def check_input(path: str | Path, chunk_rows: int = DEFAULT_CHUNK_ROWS) -> None:
    """Fail early on an input file that cannot be streamed.

    Raises:
        DataError: an unsupported suffix, a missing file, or ``chunk_rows`` below 1.
    """
    check_data_file(path)
    if chunk_rows < 1:
        raise DataError(f"chunk_rows={chunk_rows} must be a positive number of rows")


def iter_chunks(path: str | Path, chunk_rows: int = DEFAULT_CHUNK_ROWS,
                columns: Sequence[str] | None = None) -> Iterator[pd.DataFrame]:
    """Read a CSV, TSV, JSON Lines, JSON or Parquet file as DataFrames of at most ``chunk_rows`` rows, in order.

    Args:
        columns: read only these columns (CSV/TSV: as strings, with no value taken for missing except an empty
            field; Parquet: as stored); None reads every column.

    Raises:
        DataError: the file is missing, has an unsupported suffix, is not UTF-8 (with the line), or cannot be
            parsed.
    """
    import pyarrow.parquet as pq

    path = Path(path)
    suffix = path.suffix.lower()
    check_input(path, chunk_rows)
    try:
        if suffix == ".parquet":
            for batch in pq.ParquetFile(path).iter_batches(batch_size=chunk_rows, columns=columns):
                yield batch.to_pandas()
        elif suffix in (".csv", ".tsv"):
            # Texts stay strings ("1.50" is not read as 1.5); "NA" or "null" are texts, not missing values; an empty
            # field or a blank line (skip_blank_lines=False keeps line numbers) is an empty text that check_texts
            # reports with its line.
            with pd.read_csv(path, sep="\t" if suffix == ".tsv" else ",", encoding="utf-8", chunksize=chunk_rows,
                             usecols=columns, dtype=str if columns else None, keep_default_na=columns is None,
                             skip_blank_lines=False) as reader:
                yield from reader
        elif suffix == ".jsonl":
            with pd.read_json(path, lines=True, chunksize=chunk_rows, encoding="utf-8", dtype=False) as reader:
                for chunk in reader:
                    yield chunk if columns is None else chunk.reindex(columns=list(columns))
        else:
            frame = read_table(path)
            frame = frame if columns is None else frame.reindex(columns=list(columns))
            for start in range(0, len(frame), chunk_rows):
                yield frame.iloc[start:start + chunk_rows]
    except UnicodeDecodeError:
        line = _bad_utf8_line(path)
        raise DataError(f"{path}: line {line} is not valid UTF-8: re-save the file as UTF-8, "
                        f"e.g. `iconv -f latin1 -t utf-8 {path.name} > fixed{path.suffix}`") from None
    except DataError:
        raise
    except Exception as err:  # noqa: BLE001 - pandas/pyarrow parse errors come in many types
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise DataError(f"{path}: cannot be read as {suffix[1:]}: {first}") from None


def _flat(result: Any) -> dict[str, Any]:
    """One output row for CSV/TSV: ``label`` and ``score``, or for multi-label ``labels`` and ``scores`` as JSON
    lists (highest score first)."""
    if isinstance(result, list):
        return {"labels": json.dumps([r["label"] for r in result], ensure_ascii=False),
                "scores": json.dumps([r["score"] for r in result])}
    return result


class _Writer:
    """Writes predictions as JSON Lines (pipeline shape, one per line), CSV or TSV (a header, then one row each)."""

    def __init__(self, fh: IO[str], fmt: str):
        self.fh, self.fmt, self.csv = fh, fmt, None

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
    (:func:`textclf.data.choose_text_columns`).

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
    """
    input_path = Path(input_path)
    meta = getattr(predictor.model.config, "textclf", None) or {}
    cfg = DataConfig(text_column=text_column, text_pair_column=text_pair_column)
    source = str(input_path)
    check_input(input_path, chunk_rows)  # before anything is written
    try:
        header = file_columns(input_path)
    except Exception:  # noqa: BLE001 - a header pandas cannot parse is reported by iter_chunks, with its reason
        header = None
    # CSV/TSV/Parquet: the text columns are known from the header, and only they are read; JSON (Lines): from the
    # first chunk's keys.
    columns = choose_text_columns(header, meta.get("text_columns"), cfg, source) if header is not None else None
    chunks = iter_chunks(input_path, chunk_rows, columns)
    fmt = output_format(output_path)
    bar = tqdm(total=count_rows(input_path) if progress else None, unit=" rows", file=sys.stderr,
               disable=not progress, desc=f"predict {input_path.name}", mininterval=1.0)

    def run(fh: IO[str]) -> int:
        nonlocal columns
        writer, done = _Writer(fh, fmt), 0
        for chunk in chunks:
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
        return done

    try:
        if output_path is None:
            return run(sys.stdout)
        with atomic_path(Path(output_path)) as tmp, open(tmp, "w", encoding="utf-8", newline="") as fh:
            return run(fh)
    finally:
        bar.close()
