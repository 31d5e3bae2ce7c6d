"""The one table reader: CSV, TSV, JSON Lines, JSON and Parquet files, whole or in chunks, for training, evaluation
and prediction alike.

One NA policy everywhere: **texts are always strings**. A text column is read as ``str`` with no value taken for
missing except an empty field (CSV/TSV: ``keep_default_na=False``), so "NA", "null", "None" and numbers such as
"1.50" or "123" are texts that train and predict; an empty field or a JSON ``null`` is a missing text, which
:func:`textclf.data.validation.check_texts` reports with its line. Other columns (labels) keep pandas' own parsing:
numbers are numbers and pandas' default NA strings ("NA", "null", ...) are missing labels. JSON values are taken as
written (``dtype=False``): a JSON number in a text column becomes its decimal string.

Bad files raise :class:`DataError` with one line naming the file, the line where it can, and the fix.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from textclf.config import DATA_FILE_SUFFIXES
from textclf.errors import DataError

_BLOCK = 1 << 20  # bytes per read when scanning a text file (line count, UTF-8 check)
# pandas' default missing-value strings (pandas.read_csv's na_values doc), used for the non-text columns only.
try:
    from pandas._libs.parsers import STR_NA_VALUES as _PANDAS_NA
except ImportError:  # pragma: no cover - the documented list, should pandas move it
    _PANDAS_NA = {"", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN", "<NA>",
                  "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null"}

# The text columns of a file: a fixed list, or a function of the file's columns that picks them (and raises
# DataError, naming the columns found, when it cannot).
TextColumns = Sequence[str] | Callable[[list[str]], Sequence[str]]


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


def bad_utf8_line(path: str | Path) -> int | None:
    """The first line (1-based) of ``path`` that is not valid UTF-8, reading one line at a time; None if none."""
    with open(path, "rb") as fh:
        for number, line in enumerate(fh, start=1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError:
                return number
    return None


def _utf8_error(path: Path, line: int | None) -> DataError:
    return DataError(f"{path}: line {line} is not valid UTF-8: re-save the file as UTF-8, "
                     f"e.g. `iconv -f latin1 -t utf-8 {path.name} > fixed{path.suffix}`")


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


def _pick(text_columns: TextColumns, columns: list[str]) -> list[str]:
    chosen = text_columns(columns) if callable(text_columns) else text_columns
    return [c for c in chosen if c in columns]


def as_text(values: pd.Series) -> pd.Series:
    """A column as strings, missing values (None, NaN) kept missing: numbers become their decimal text."""
    return values.map(lambda v: v if isinstance(v, str) or v is None
                      or (isinstance(v, float) and np.isnan(v)) else str(v)).astype(object)


def _texts_as_str(frame: pd.DataFrame, text_columns: TextColumns) -> pd.DataFrame:
    chosen = _pick(text_columns, list(frame.columns))
    return frame.assign(**{c: as_text(frame[c]) for c in chosen}) if chosen else frame


def iter_table(path: str | Path, chunk_rows: int | None = None, text_columns: TextColumns = (),
               columns: Sequence[str] | None = None) -> Iterator[pd.DataFrame]:
    """Read a CSV, TSV, JSON Lines, JSON or Parquet file as DataFrames of at most ``chunk_rows`` rows, in order.

    Args:
        chunk_rows: rows per frame; None reads the file as one frame. A plain JSON file (one array) cannot be read
            piece by piece and is loaded whole, then cut.
        text_columns: the columns read as texts (see the module docstring), or a function that picks them from the
            file's columns, called once (on the header before a CSV is parsed, on the first chunk's keys for JSON).
        columns: read only these columns (CSV/TSV/Parquet: the others are never parsed); None reads every column.

    Raises:
        DataError: the file is missing, has an unsupported suffix, is not UTF-8 (with the line), or cannot be
            parsed; whatever ``text_columns`` raises for the file's columns.
    """
    import pyarrow.parquet as pq

    path = check_data_file(path)
    suffix = path.suffix.lower()
    if chunk_rows is not None and chunk_rows < 1:
        raise DataError(f"chunk_rows={chunk_rows} must be a positive number of rows")
    try:
        if suffix == ".parquet":
            parquet = pq.ParquetFile(path)
            stored = [c for c in parquet.schema_arrow.names if columns is None or c in columns]
            text_columns = _pick(text_columns, stored)
            if chunk_rows is None:
                yield _texts_as_str(parquet.read(columns=columns).to_pandas(), text_columns)
                return
            for batch in parquet.iter_batches(batch_size=chunk_rows, columns=columns):
                yield _texts_as_str(batch.to_pandas(), text_columns)
        elif suffix in (".csv", ".tsv"):
            sep = "\t" if suffix == ".tsv" else ","
            header = list(pd.read_csv(path, sep=sep, nrows=0, encoding="utf-8").columns)
            read = [c for c in header if columns is None or c in columns]
            texts = _pick(text_columns, read)
            # skip_blank_lines=False keeps line numbers: a blank line is an empty text, reported with its line.
            options = dict(sep=sep, encoding="utf-8", usecols=read, skip_blank_lines=False, keep_default_na=False,
                           dtype={c: str for c in texts},
                           na_values={c: [""] if c in texts else sorted(_PANDAS_NA) for c in read})
            if chunk_rows is None:
                yield pd.read_csv(path, **options)
                return
            with pd.read_csv(path, chunksize=chunk_rows, **options) as reader:
                yield from reader
        elif suffix == ".jsonl" and chunk_rows is not None:
            with pd.read_json(path, lines=True, chunksize=chunk_rows, encoding="utf-8", dtype=False) as reader:
                for chunk in reader:
                    chunk = chunk if columns is None else chunk.reindex(columns=list(columns))
                    if callable(text_columns):  # chosen once, from the first chunk's keys
                        text_columns = _pick(text_columns, list(chunk.columns))
                    yield _texts_as_str(chunk, text_columns)
        else:
            frame = pd.read_json(path, lines=suffix == ".jsonl", encoding="utf-8", dtype=False)
            frame = _texts_as_str(frame if columns is None else frame.reindex(columns=list(columns)), text_columns)
            step = chunk_rows or max(len(frame), 1)
            for start in range(0, max(len(frame), 1), step):
                yield frame.iloc[start:start + step]
    except UnicodeDecodeError:
        raise _utf8_error(path, bad_utf8_line(path)) from None
    except DataError:
        raise
    except Exception as err:  # noqa: BLE001 - pandas/pyarrow parse errors come in many types
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise DataError(f"{path}: cannot be read as {suffix[1:]}: {first}") from None


def read_table(path: str | Path, text_columns: TextColumns = (), columns: Sequence[str] | None = None) -> pd.DataFrame:
    """Read a whole CSV, TSV, JSON Lines, JSON or Parquet file into one DataFrame (see :func:`iter_table`).

    Raises:
        DataError: as :func:`iter_table`.
    """
    return next(iter_table(path, None, text_columns, columns))
