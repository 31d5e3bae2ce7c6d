"""The one table reader: CSV, TSV, JSON Lines, JSON and Parquet files, whole or in chunks, for training, evaluation
and prediction alike.

One NA policy everywhere: **texts are always strings**. A text column is read as ``str`` with no value taken for
missing except an empty field (CSV/TSV: ``keep_default_na=False``), so "NA", "null", "None" and numbers such as
"1.50" or "123" are texts that train and predict; an empty field or a JSON ``null`` is a missing text, which
:func:`textclf.data.validation.check_texts` reports with its line. Other columns (labels) keep pandas' own parsing:
numbers are numbers and pandas' default NA strings ("NA", "null", ...) are missing labels. JSON values are taken as
written: a JSON number in a text column becomes its decimal string (``true``/``false`` their words), a Parquet
number or boolean column its Arrow string cast.

What is refused, each with one :class:`DataError` line naming the file, the line (as an editor numbers it, header
included; a quoted CSV text over several lines counts them all) or column, and the fix: an empty file; a UTF-16/32
or otherwise non-UTF-8 file; a header naming a column twice; a CSV/TSV row with more fields than the header (an
unquoted comma in a text); an unclosed quote; a JSON Lines line that is not one JSON object; a JSON array, object
or unpaired UTF-16 surrogate escape in a text column; a Parquet text column of lists, structs or non-UTF-8 bytes. A
UTF-8 byte-order mark is skipped; blank JSON Lines lines are skipped (and not counted as rows).
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import json
import math
import re
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

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
# The largest CSV field Python's csv module reads while numbering lines (its default, 128 KiB, is below a 1 MB text).
_CSV_FIELD_LIMIT = 2**31 - 1
# Byte-order marks of the encodings a "save as Unicode" gives instead of UTF-8 (UTF-32 LE starts like UTF-16 LE).
_WIDE_BOMS = (codecs.BOM_UTF32_BE, codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)
# pandas' C parser errors that carry a record number (1-based, header included) or row (0-based, header row 0).
_FIELDS_ERROR = re.compile(r"Expected (\d+) fields in line (\d+), saw (\d+)")
_QUOTE_ERROR = re.compile(r"EOF inside string starting at row (\d+)")

# What to check when a file cannot be parsed for a reason the reader does not name itself.
_FORMAT_FIX = {".csv": "check that it is comma-separated UTF-8 text with a header line",
               ".tsv": "check that it is tab-separated UTF-8 text with a header line",
               ".jsonl": "check that every line is one JSON object", ".json": "check that it is one JSON array of "
               "objects", ".parquet": "check that it is a complete Parquet file (pandas: DataFrame.to_parquet)"}

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


def _check_not_wide(path: Path) -> None:
    """Refuse a UTF-16 or UTF-32 text file (a byte-order mark, or NUL bytes in a third of its first line), which
    would otherwise read as one garbled column."""
    with open(path, "rb") as fh:
        head = fh.read(4096)
    first = head.split(b"\n", 1)[0]
    if head.startswith(_WIDE_BOMS) or (first.count(b"\x00") >= 4 and 3 * first.count(b"\x00") >= len(first)):
        raise DataError(f"{path}: the file is UTF-16 (or UTF-32), not UTF-8: re-save it as UTF-8, "
                        f"e.g. `iconv -f utf-16 -t utf-8 {path.name} > fixed{path.suffix}`")


def _kind(value: Any) -> str:
    """The JSON name of a Python value's type (for messages)."""
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    return "null" if value is None else "boolean" if isinstance(value, bool) else "number"


# --- where a row is -------------------------------------------------------------------------------------------

@contextlib.contextmanager
def _csv_records(path: Path, sep: str) -> Iterator[Any]:
    """Python's csv reader over ``path`` (UTF-8, BOM skipped, bad bytes replaced), with room for 1 MB fields; its
    ``line_num`` counts physical lines as an editor does (\\n, \\r\\n or \\r; not U+2028)."""
    limit = csv.field_size_limit()
    csv.field_size_limit(_CSV_FIELD_LIMIT)
    try:
        with open(path, encoding="utf-8-sig", errors="replace", newline="") as fh:
            yield csv.reader(fh, delimiter=sep)
    finally:
        csv.field_size_limit(limit)


def _record_line(path: Path, sep: str, record: int) -> int | None:
    """The physical line (1-based) where CSV/TSV record ``record`` starts (0-based, the header is record 0); None
    when the file has fewer records."""
    start = 1
    with _csv_records(path, sep) as reader:
        for number in range(record + 1):
            try:
                next(reader)
            except StopIteration:
                return None
            except csv.Error:  # e.g. an unclosed quote: the record that fails starts at ``start``
                return start if number == record else None
            if number < record:
                start = reader.line_num + 1
    return start


def row_line(path: str | Path, index: int) -> int | None:
    """The line (1-based, as an editor numbers it) where data row ``index`` (0-based) of a CSV, TSV or JSON Lines
    file starts: after the header and any quoted texts that span lines (CSV/TSV), skipping blank lines (JSON Lines,
    as the reader does). None for other files, or when the file cannot be read there. Reads the file up to that row:
    for error messages, not for every row."""
    path = Path(path)
    suffix = path.suffix.lower()
    try:
        if suffix in (".csv", ".tsv"):
            return _record_line(path, "\t" if suffix == ".tsv" else ",", index + 1)
        if suffix == ".jsonl":
            rows = -1
            with open(path, "rb") as fh:
                for number, raw in enumerate(fh, start=1):
                    rows += bool((raw.removeprefix(codecs.BOM_UTF8) if number == 1 else raw).strip())
                    if rows == index:
                        return number
    except OSError:
        pass
    return None


# --- header and size ------------------------------------------------------------------------------------------

def _check_header(path: Path, sep: str) -> list[str]:
    """The raw header fields of a CSV/TSV file, after refusing an empty file, a column named twice, and a first data
    row with more (non-empty) fields than the header, which pandas would silently cut."""
    records = []
    # An unclosed quote in the first rows is not an error here: pandas reports it below, with its line.
    with _csv_records(path, sep) as reader, contextlib.suppress(csv.Error):
        for record in reader:
            records.append(record)
            if len(records) == 2:
                break
    if not records or not any(field.strip() for field in records[0]):
        raise DataError(f"{path}: the file is empty (or its first line is): it needs a header line naming the "
                        f"columns, e.g. `text{sep}label`, then one row per example")
    header = records[0]
    for i, name in enumerate(header):
        if name and name in header[i + 1:]:
            where = [j + 1 for j, other in enumerate(header) if other == name]
            raise DataError(f"{path}: column {name!r} appears {len(where)} times in the header (columns "
                            f"{', '.join(map(str, where))}): rename or remove all but one")
    if len(records) > 1 and any(field.strip() for field in records[1][len(header):]):
        raise _fields_error(path, sep, header, 1, len(records[1]))
    return header


def _fields_error(path: Path, sep: str, header: list[str], record: int, fields: int) -> DataError:
    line = _record_line(path, sep, record)
    mark = "comma" if sep == "," else "tab"
    shown = sep.join(header) if len(header) <= 6 else sep.join(header[:6]) + sep + "..."
    return DataError(f"{path}: line {line} has {fields} fields but the header has {len(header)} ({shown!r}): put a "
                     f"text that holds a {mark} in double quotes (\"like{sep} this\"), or remove the extra {mark}")


def _parse_error(path: Path, sep: str, err: Exception) -> DataError:
    """pandas' CSV parser error as one line with the file's line number and the fix."""
    message = str(err)
    if fields := _FIELDS_ERROR.search(message):
        header = list(pd.read_csv(path, sep=sep, nrows=0, encoding="utf-8").columns)
        return _fields_error(path, sep, header, int(fields.group(2)) - 1, int(fields.group(3)))
    if quote := _QUOTE_ERROR.search(message):
        line = _record_line(path, sep, int(quote.group(1)))
        return DataError(f"{path}: line {line}: a double quote opened here is never closed: close it, or write a "
                         f"quote inside a quoted text as two (\"\"); a text that starts with a quote must be quoted "
                         f"whole")
    first = message.splitlines()[0] if message else type(err).__name__
    return DataError(f"{path}: cannot be read as {path.suffix[1:]}: {first}: {_FORMAT_FIX[path.suffix.lower()]}")


def file_columns(path: str | Path) -> list[str] | None:
    """The column names of a CSV/TSV/Parquet file, read from its header or schema only; None for JSON Lines and
    JSON, whose keys are known once rows are read.

    Raises:
        DataError: a UTF-16/32 CSV/TSV file; pandas' or pyarrow's own errors for a file they cannot parse
            (:func:`iter_table` reports those with the line and the fix).
    """
    import pyarrow.parquet as pq

    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        return list(pq.ParquetFile(path).schema_arrow.names)
    if suffix in (".csv", ".tsv"):
        _check_not_wide(path)
        return list(pd.read_csv(path, sep="\t" if suffix == ".tsv" else ",", nrows=0, encoding="utf-8").columns)
    return None


def count_rows(path: str | Path) -> int | None:
    """The number of data rows in a file, for a progress bar: exact for Parquet (its metadata), the number of lines
    (less the header for CSV/TSV) for text files, which overcounts quoted texts that span lines; None for JSON, or
    for a file that cannot be read (the reader reports why)."""
    import pyarrow.parquet as pq

    path = Path(path)
    suffix = path.suffix.lower()
    try:
        if suffix == ".parquet":
            return pq.ParquetFile(path).metadata.num_rows
        if suffix not in (".csv", ".tsv", ".jsonl"):
            return None
        lines, last = 0, b"\n"
        with open(path, "rb") as fh:
            while block := fh.read(_BLOCK):
                lines += block.count(b"\n")
                last = block[-1:]
    except Exception:  # noqa: BLE001 - a progress bar without a total; iter_table says what is wrong
        return None
    lines += last != b"\n"  # a last line without a newline
    return max(lines - (suffix != ".jsonl"), 0)


# --- texts as strings -----------------------------------------------------------------------------------------

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


def _json_text(value: Any, where: str, column: str) -> str | None:
    """A JSON value of a text column as its text: strings as they are, integers as written (any size), other
    numbers as Python prints them (1.10 -> "1.1"), true/false as words, null/NaN missing; an array or object is
    refused (DataError naming ``where``)."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return None if math.isnan(value) else str(value)
    if isinstance(value, int):
        return str(value)
    raise DataError(f"{where}: column {column!r} holds a JSON {_kind(value)}, not a text: write the text as a "
                    f"JSON string, e.g. {{\"{column}\": \"...\"}}")


def _records_frame(records: list[tuple[str, dict]], text_columns: Sequence[str], start: int = 0) -> pd.DataFrame:
    """A frame from (where, JSON object) records: one column per key in order of appearance, missing keys missing;
    text columns as strings (:func:`_json_text`), others as pandas infers them (numbers, lists, ...)."""
    keys = list(dict.fromkeys(key for _, record in records for key in record))
    data = {}
    for key in keys:
        if key in text_columns:
            data[key] = pd.Series([_json_text(record.get(key), where, key) for where, record in records],
                                  dtype=object)
        else:
            data[key] = pd.Series([record.get(key) for _, record in records])
    frame = pd.DataFrame(data) if data else pd.DataFrame(index=range(len(records)))
    frame.index = pd.RangeIndex(start, start + len(records))
    return frame


def _surrogate_error(where: str, text: str) -> DataError | None:
    """A DataError if ``text`` (a JSON line or file) decodes to an unpaired UTF-16 surrogate (``"\\ud800"``), which
    is not a character: no tokenizer, nor a UTF-8 file, can take it."""
    if "\\u" not in text or not re.search(r"\\u[dD][89a-fA-F]", text):
        return None
    try:
        json.dumps(json.loads(text, strict=False), ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as err:
        code = ord(err.object[err.start])
        return DataError(f"{where}: \\u{code:04x} is half of a UTF-16 surrogate pair, not a character: write the "
                         "whole pair (e.g. \\ud83d\\ude00) or the character itself, or remove it")
    return None


def _jsonl_records(path: Path) -> Iterator[tuple[str, dict]]:
    """("PATH line N", object) for every non-blank line of a JSON Lines file.

    Raises:
        DataError: a line that is not UTF-8, not JSON, not a JSON object, or holds an unpaired surrogate escape.
    """
    with open(path, "rb") as fh:
        for number, raw in enumerate(fh, start=1):
            if number == 1:
                raw = raw.removeprefix(codecs.BOM_UTF8)
            if not raw.strip():
                continue
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise _utf8_error(path, number) from None
            where = f"{path} line {number}"
            try:
                value = json.loads(line, strict=False)  # strict=False: raw tabs and control characters in strings
            except json.JSONDecodeError as err:
                raise DataError(f"{path}: cannot be read as jsonl: line {number} is not valid JSON ({err.msg} at "
                                f"column {err.colno}): fix or remove that line; each line holds one JSON object, "
                                "e.g. {\"text\": \"...\", \"label\": \"...\"}") from None
            except RecursionError:
                raise DataError(f"{path}: cannot be read as jsonl: line {number} is nested too deeply: each line "
                                "holds one flat JSON object, e.g. {\"text\": \"...\", \"label\": \"...\"}") from None
            if not isinstance(value, dict):
                raise DataError(f"{path}: cannot be read as jsonl: line {number} is a JSON {_kind(value)}, not an "
                                "object: each line holds one JSON object, e.g. {\"text\": \"...\", \"label\": "
                                "\"...\"}")
            if (err := _surrogate_error(where, line)) is not None:
                raise err
            yield where, value


def _iter_jsonl(path: Path, chunk_rows: int | None, text_columns: TextColumns,
                columns: Sequence[str] | None) -> Iterator[pd.DataFrame]:
    """Frames of at most ``chunk_rows`` rows (None: one frame, possibly empty) from a JSON Lines file; the text
    columns are chosen once, from the keys of the first chunk."""
    chosen: Sequence[str] | None = None if callable(text_columns) else text_columns
    records: list[tuple[str, dict]] = []
    done = 0

    def frame() -> pd.DataFrame:
        nonlocal chosen
        if chosen is None:
            chosen = _pick(text_columns, list(dict.fromkeys(k for _, r in records for k in r)))
        out = _records_frame(records, chosen, start=done)
        return out if columns is None else out.reindex(columns=list(columns))

    for record in _jsonl_records(path):
        records.append(record)
        if chunk_rows is not None and len(records) == chunk_rows:
            yield frame()
            done += len(records)
            records = []
    if records or (chunk_rows is None and done == 0):
        if not records and chosen is None:  # no rows, so no keys to choose the text columns from
            chosen = ()
        yield frame()


def _read_json(path: Path, text_columns: TextColumns, columns: Sequence[str] | None) -> pd.DataFrame:
    """A plain JSON file: an array of objects (or pandas' column orientation, an object of columns)."""
    text = path.read_bytes().removeprefix(codecs.BOM_UTF8).decode("utf-8")
    shape = "a JSON file holds one array of objects [{\"text\": \"...\", \"label\": \"...\"}, ...] (or use JSON " \
            "Lines, .jsonl, one object per line)"
    try:
        value = json.loads(text, strict=False)
    except json.JSONDecodeError as err:
        raise DataError(f"{path}: cannot be read as json: line {err.lineno} column {err.colno}: {err.msg}: "
                        f"{shape}") from None
    except RecursionError:
        raise DataError(f"{path}: cannot be read as json: it is nested too deeply: {shape}") from None
    if (err := _surrogate_error(str(path), text)) is not None:
        raise err
    if isinstance(value, dict) and value and all(isinstance(v, (dict, list)) for v in value.values()):
        try:
            frame = pd.DataFrame(value)
        except ValueError as err:
            raise DataError(f"{path}: cannot be read as json: {err}: {shape}") from None
        frame = _texts_as_str(frame, text_columns)
    elif isinstance(value, list):
        for i, record in enumerate(value):
            if not isinstance(record, dict):
                raise DataError(f"{path}: cannot be read as json: record {i + 1} is a JSON {_kind(record)}, not an "
                                f"object: {shape}")
        records = [(f"{path} record {i + 1}", record) for i, record in enumerate(value)]
        keys = list(dict.fromkeys(k for record in value for k in record))
        frame = _records_frame(records, _pick(text_columns, keys) if records else ())
    else:
        raise DataError(f"{path}: cannot be read as json: it holds a JSON {_kind(value)}: {shape}")
    return frame if columns is None else frame.reindex(columns=list(columns))


def _parquet_text_tables(path: Path, chunk_rows: int | None, text_columns: TextColumns,
                         columns: Sequence[str] | None) -> Iterator[pd.DataFrame]:
    """Frames of a Parquet file, text columns cast to strings by Arrow (numbers, booleans, dates; UTF-8 bytes)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    parquet = pq.ParquetFile(path)
    names = list(parquet.schema_arrow.names)
    for i, name in enumerate(names):
        if name in names[i + 1:]:
            raise DataError(f"{path}: column {name!r} appears {names.count(name)} times: rename or remove all but "
                            "one (e.g. with pandas: df.loc[:, ~df.columns.duplicated()])")
    stored = [c for c in names if columns is None or c in columns]
    texts = _pick(text_columns, stored)
    for column in texts:
        kind = parquet.schema_arrow.field(column).type
        if pa.types.is_nested(kind):
            raise DataError(f"{path}: column {column!r} holds {kind} values, not texts: store the texts as strings")

    def cast(table: pa.Table) -> pd.DataFrame:
        for column in texts:
            values = table.column(column)
            if not pa.types.is_string(values.type) and not pa.types.is_large_string(values.type):
                try:
                    values = values.cast(pa.string())
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as err:
                    reason = str(err).splitlines()[0]
                    raise DataError(f"{path}: column {column!r} ({table.schema.field(column).type}) cannot be read "
                                    f"as texts ({reason}): store the texts as UTF-8 strings") from None
                table = table.set_column(table.schema.get_field_index(column), column, values)
        frame = table.to_pandas()
        return frame.assign(**{c: frame[c].astype(object).where(frame[c].notna(), None) for c in texts})

    if chunk_rows is None:
        yield cast(parquet.read(columns=columns))
        return
    for batch in parquet.iter_batches(batch_size=chunk_rows, columns=columns):
        yield cast(pa.Table.from_batches([batch]))


def _iter_csv(path: Path, sep: str, chunk_rows: int | None, text_columns: TextColumns,
              columns: Sequence[str] | None) -> Iterator[pd.DataFrame]:
    _check_not_wide(path)
    _check_header(path, sep)
    try:
        header = list(pd.read_csv(path, sep=sep, nrows=0, encoding="utf-8").columns)
    except pd.errors.ParserError as err:
        raise _parse_error(path, sep, err) from None
    read = [c for c in header if columns is None or c in columns]
    texts = _pick(text_columns, read)
    # Every column is parsed (no usecols, which would let a row with an extra field pass, its text cut at an
    # unquoted comma); the ones not asked for as plain strings, then dropped. index_col=False: a first column is
    # never taken for an index. skip_blank_lines=False keeps line numbers: a blank line is an empty text, reported.
    options = {"sep": sep, "encoding": "utf-8", "index_col": False, "skip_blank_lines": False,
               "keep_default_na": False, "dtype": {c: str for c in header if c in texts or c not in read},
               "na_values": {c: [""] if c in texts else sorted(_PANDAS_NA) for c in read}}
    try:
        if chunk_rows is None:
            yield pd.read_csv(path, **options)[read]
            return
        with pd.read_csv(path, chunksize=chunk_rows, **options) as reader:
            for chunk in reader:
                yield chunk[read]
    except pd.errors.ParserError as err:
        raise _parse_error(path, sep, err) from None


def iter_table(path: str | Path, chunk_rows: int | None = None, text_columns: TextColumns = (),
               columns: Sequence[str] | None = None) -> Iterator[pd.DataFrame]:
    """Read a CSV, TSV, JSON Lines, JSON or Parquet file as DataFrames of at most ``chunk_rows`` rows, in order.

    Args:
        chunk_rows: rows per frame; None reads the file as one frame. A plain JSON file (one array) cannot be read
            piece by piece and is loaded whole, then cut. An empty JSON Lines or Parquet file gives no chunk (one
            empty frame when read whole).
        text_columns: the columns read as texts (see the module docstring), or a function that picks them from the
            file's columns, called once (on the header before a CSV is parsed, on the first chunk's keys for JSON).
        columns: keep only these columns (Parquet: the others are never read); None keeps every column.

    Raises:
        DataError: the file is missing, has an unsupported suffix, is not UTF-8 (with the line), or cannot be
            parsed (see the module docstring: with the line or column and the fix); whatever ``text_columns``
            raises for the file's columns.
    """
    path = check_data_file(path)
    suffix = path.suffix.lower()
    if chunk_rows is not None and chunk_rows < 1:
        raise DataError(f"chunk_rows={chunk_rows} must be a positive number of rows")
    try:
        if suffix == ".parquet":
            yield from _parquet_text_tables(path, chunk_rows, text_columns, columns)
        elif suffix in (".csv", ".tsv"):
            yield from _iter_csv(path, "\t" if suffix == ".tsv" else ",", chunk_rows, text_columns, columns)
        elif suffix == ".jsonl":
            _check_not_wide(path)
            yield from _iter_jsonl(path, chunk_rows, text_columns, columns)
        else:
            _check_not_wide(path)
            frame = _read_json(path, text_columns, columns)
            if chunk_rows is None:
                yield frame
                return
            for start in range(0, len(frame), chunk_rows):  # an empty array: no chunk, as JSON Lines
                yield frame.iloc[start:start + chunk_rows]
    except UnicodeDecodeError:
        raise _utf8_error(path, bad_utf8_line(path)) from None
    except DataError:
        raise
    except Exception as err:  # noqa: BLE001 - pandas/pyarrow parse errors come in many types
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise DataError(f"{path}: cannot be read as {suffix[1:]}: {first}: {_FORMAT_FIX[suffix]}") from None


def read_table(path: str | Path, text_columns: TextColumns = (), columns: Sequence[str] | None = None) -> pd.DataFrame:
    """Read a whole CSV, TSV, JSON Lines, JSON or Parquet file into one DataFrame (see :func:`iter_table`).

    Raises:
        DataError: as :func:`iter_table`.
    """
    return next(iter_table(path, None, text_columns, columns))
