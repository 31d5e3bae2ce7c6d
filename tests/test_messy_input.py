"""Messy input, property-tested: the table reader, ``train``, ``evaluate``, ``predict --input`` and the server's
request parsing take random unicode, control characters, RTL marks, U+2028, NUL bytes, empty, whitespace and
numeric-looking texts, 1 MB texts, CSV quoting and delimiter edge cases, BOMs, Latin-1 and UTF-16 files, NaN/None and
mixed labels, duplicate columns, ragged rows, 0-row and header-only files and broken JSON Lines lines.

Every case works (texts read back exactly as written) or raises textclf's one-line error naming the file and the line
(as an editor numbers it), record or row that is wrong; nothing crashes, and a failed ``train`` or ``predict`` leaves
nothing in its output directory. Hypothesis runs with a fixed seed (``derandomize``) and a bounded number of examples;
``pytest --hypothesis-show-statistics`` prints how many ran.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import io
import json
import logging
import math
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import fast_overrides, read_jsonl
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from textclf.cli import main
from textclf.config import DataConfig, load_recipe
from textclf.data.loading import load_files
from textclf.data.tables import iter_table
from textclf.errors import TextclfError
from textclf.evaluation.checkpoint import evaluate_checkpoint
from textclf.inference import Predictor
from textclf.serving import ServeSettings, create_app
from textclf.serving.protocol import STATUS
from textclf.training import train

# A fixed seed (derandomize: the same examples every run), no example database (a failure is reproduced by the
# seed, not by a local file), no deadline: the 2-core CI machine is shared, and a training example takes seconds.
MESSY = settings(derandomize=True, database=None, deadline=None, print_blob=False,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example])


def messy(max_examples: int) -> settings:
    """:data:`MESSY` with this many examples."""
    return settings(MESSY, max_examples=max_examples)


# --- texts and labels ---------------------------------------------------------------------------------------------

# Characters that break naive readers: NUL and other C0 controls, DEL, NEL, no-break and zero-width spaces, LRM/RLM
# and bidi embeddings/overrides/isolates (RTL marks), U+2028/U+2029, BOM, replacement and private-use characters,
# an emoji and the last plane, CSV/TSV delimiters, quotes, escapes and line breaks.
TRICKY = ("\x00\x01\x07\x08\x0b\x0c\x1b\x1c\x7f\x85\xa0\u200b\u200e\u200f\u202a\u202b\u202e\u2066\u2069\u2028\u2029"
          "\ufeff\ufffd\ue000\U0001f600\U0010fffd\t\r\n\"',;|\\ ab\u05d0\u0627")
NUMERIC_LOOKING = ("0", "1", "-1", "007", "1.50", "1e5", "-0.0", "inf", "-Infinity", "nan", "NaN", "NA", "N/A", "null",
                   "None", "TRUE", "false", "0x1F", "1,5", "1_000", "12345678901234567890", "#N/A", "<NA>")
MEGABYTE_TEXT = "word " * 200_000  # 1,000,000 characters


def numeric_texts() -> st.SearchStrategy[str]:
    """Texts a CSV reader would take for numbers or missing values."""
    return st.one_of(st.sampled_from(NUMERIC_LOOKING), st.integers().map(str),
                     st.floats(allow_nan=True, allow_infinity=True).map(repr))


def texts(megabyte: bool = False) -> st.SearchStrategy[str]:
    """Any text: random unicode (no lone surrogates: a UTF-8 file cannot hold them), tricky characters, empty and
    whitespace-only texts, numeric-looking texts and, if asked, 1 MB texts."""
    options = [st.text(st.characters(codec="utf-8"), max_size=24), st.text(st.sampled_from(TRICKY), max_size=12),
               st.sampled_from(["", " ", "\t", "\u3000", " \r\n "]), numeric_texts()]
    if megabyte:
        options.append(st.just(MEGABYTE_TEXT))
    return st.one_of(*options)


CLEAN_LABELS = ("neg", "pos")


def labels(names: tuple[str, ...] = CLEAN_LABELS) -> st.SearchStrategy[Any]:
    """Mostly clean class names; sometimes None, NaN, numbers, booleans, lists, objects or strange strings."""
    messy = st.one_of(st.none(), st.just(math.nan), st.integers(-2, 3), st.floats(), st.booleans(),
                      st.text(max_size=4), st.lists(st.sampled_from(names), max_size=2),
                      st.dictionaries(st.sampled_from("ab"), st.integers(0, 2), max_size=1))
    return st.sampled_from([False] * 7 + [True]).flatmap(  # one label in eight is messy (one_of would flatten)
        lambda is_messy: messy if is_messy else st.sampled_from(names))


# --- files ----------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Layout:
    """How a table is written: format, and for text formats the CSV dialect, a BOM and blank lines."""

    suffix: str
    quoting: int = csv.QUOTE_MINIMAL
    terminator: str = "\r\n"
    bom: bool = False
    ensure_ascii: bool = True
    blank_lines: bool = False


# csv.writer quotes a field with a line break only if the break is in its lineterminator: QUOTE_MINIMAL needs "\r\n".
layouts = st.one_of(
    st.builds(Layout, st.sampled_from([".csv", ".tsv"]),
              st.sampled_from([csv.QUOTE_MINIMAL, csv.QUOTE_ALL, csv.QUOTE_NONNUMERIC]), st.just("\r\n"),
              st.booleans()),
    st.builds(Layout, st.sampled_from([".csv", ".tsv"]), st.just(csv.QUOTE_ALL), st.just("\n"), st.booleans()),
    st.builds(Layout, st.just(".jsonl"), bom=st.booleans(), ensure_ascii=st.booleans(), blank_lines=st.booleans()),
    st.builds(Layout, st.just(".json"), bom=st.booleans(), ensure_ascii=st.booleans()),
    st.builds(Layout, st.just(".parquet")),
)

_BREAKS = re.compile(r"\r\n|\r|\n")  # line breaks as an editor (and Python's universal newlines) counts them


def write_rows(path: Path, rows: list[dict[str, Any]], layout: Layout) -> list[str]:
    """Write ``rows`` (dicts with the same keys) at ``path``; return where each row is, as an error must name it:
    ``line N`` (CSV/TSV/JSON Lines, 1-based, header and line breaks inside quoted texts counted), ``record N`` (JSON,
    1-based) or ``row N`` (Parquet, 0-based, as pandas indexes it)."""
    columns = list(rows[0]) if rows else ["text", "label"]
    prefix = "\ufeff" if layout.bom else ""
    if layout.suffix in (".csv", ".tsv"):
        def line(values: list[Any]) -> str:
            out = io.StringIO()
            csv.writer(out, delimiter="," if layout.suffix == ".csv" else "\t", quoting=layout.quoting,
                       lineterminator=layout.terminator).writerow(values)
            return out.getvalue()

        body, where, number = [line(columns)], [], 2
        for row in rows:
            body.append(line([row[c] for c in columns]))
            where.append(f"line {number}")
            number += len(_BREAKS.findall(body[-1]))
        path.write_text(prefix + "".join(body), encoding="utf-8", newline="")
        return where
    if layout.suffix == ".jsonl":
        body, where = [], []
        for i, row in enumerate(rows):
            if layout.blank_lines and i % 3 == 1:
                body.append("  " if i % 2 else "")
            body.append(json.dumps(row, ensure_ascii=layout.ensure_ascii))
            where.append(f"line {len(body)}")
        path.write_text(prefix + "".join(b + "\n" for b in body), encoding="utf-8", newline="")
        return where
    if layout.suffix == ".json":
        path.write_text(prefix + json.dumps(rows, ensure_ascii=layout.ensure_ascii), encoding="utf-8")
        return [f"record {i + 1}" for i in range(len(rows))]
    # Parquet columns have one type: labels as strings (None stays missing), texts as strings.
    table = {c: pa.array([None if row[c] is None else str(row[c]) for row in rows], pa.string()) for c in columns}
    pq.write_table(pa.table(table), path)
    return [f"row {i}" for i in range(len(rows))]


def missing_or_empty(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or value == ""


def read_back(value: Any) -> str | None:
    """A text as the reader must give it back: itself, or None for a missing one (an empty CSV field, JSON null)."""
    return None if missing_or_empty(value) else value


def is_clean(row: dict[str, Any], names: tuple[str, ...] = CLEAN_LABELS) -> bool:
    """A row a training file may hold: a non-blank text and a known label."""
    text = row["text"]
    return isinstance(text, str) and text.strip() != "" and isinstance(row.get("label"), str) \
        and row["label"] in names


_PLACE = re.compile(r" (line|record|row) (\d+): ")


def assert_user_error(err: BaseException, path: Path, rows: list[dict], where: list[str],
                      names: tuple[str, ...] = CLEAN_LABELS) -> str:
    """``err`` is textclf's one-line error naming ``path``; when it names a row (``PATH line N: ...``), that row is
    one of the file's and one that is wrong. Returns the message."""
    message = str(err)
    assert isinstance(err, TextclfError), f"{type(err).__name__} is not a TextclfError: {message}"
    assert "\n" not in message and str(path) in message, message
    if named := _PLACE.match(message.split(str(path), 1)[1]):
        place = f"{named.group(1)} {named.group(2)}"
        assert place in where, (message, where)
        assert not is_clean(rows[where.index(place)], names), (message, rows[where.index(place)])
    return message


def outcome(message: str, path: Path) -> str:
    """The kind of an error, for hypothesis' statistics: its message without the file, places and values."""
    kind = message.replace(str(path), "").split(": ", 1)[-1]
    return re.sub(r"\d+|'[^']*'|\S*[\[{(].*", "_", kind)[:50]


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory):
    """``scratch()``: a fresh directory per hypothesis example (function-scoped fixtures are not reset between
    examples)."""
    root = tmp_path_factory.mktemp("messy")
    return lambda: Path(tempfile.mkdtemp(dir=root))


def rows_of(text_strategy: st.SearchStrategy[str], label_strategy: st.SearchStrategy[Any], min_size: int = 0,
            max_size: int = 8) -> st.SearchStrategy[list[dict[str, Any]]]:
    return st.lists(st.fixed_dictionaries({"text": text_strategy, "label": label_strategy}), min_size=min_size,
                    max_size=max_size)


# --- the table reader -------------------------------------------------------------------------------------------

@messy(150)
@given(rows=rows_of(texts(megabyte=True), labels()), layout=layouts, chunk_rows=st.sampled_from([None, 1, 3]))
def test_the_table_reader_gives_back_every_text_exactly(scratch, rows, layout, chunk_rows):
    path = scratch() / f"data{layout.suffix}"
    write_rows(path, rows, layout)
    frames = list(iter_table(path, chunk_rows, ["text"]))
    got = [t for frame in frames if "text" in frame for t in frame["text"].tolist()]
    assert [read_back(t) for t in got] == [read_back(r["text"]) for r in rows]
    assert all(isinstance(t, str) for t in got if read_back(t) is not None)  # texts are strings, never numbers


@messy(150)
@given(rows=rows_of(texts(), labels()), layout=layouts)
def test_a_messy_training_file_loads_exactly_or_names_the_bad_row(scratch, rows, layout):
    path = scratch() / f"train{layout.suffix}"
    where = write_rows(path, rows, layout)
    try:
        data = load_files(DataConfig(train_file=str(path)))
    except Exception as err:  # noqa: BLE001 - the property: only textclf's own errors, naming the file and row
        message = assert_user_error(err, path, rows, where)
        event(f"refused: {outcome(message, path)}")
        assert rows == [] or any(not is_clean(r) for r in rows) or len({r["label"] for r in rows}) < 2, message
        return
    event("loaded")
    assert data.splits["train"]["text"] == [r["text"] for r in rows]  # every text, in order, as written
    if all(is_clean(r) for r in rows):
        assert data.splits["train"]["label"] == [data.label_names.index(r["label"]) for r in rows]


# --- structural damage: each kind named with its line and its fix ---------------------------------------------------

CLEAN_ROWS = [{"text": f"a fine text {i}", "label": CLEAN_LABELS[i % 2]} for i in range(7)]
CSV_ONLY, JSONL_ONLY, TEXT_FILES = (".csv", ".tsv"), (".jsonl",), (".csv", ".tsv", ".jsonl")


@dataclass(frozen=True)
class Damage:
    """One way a user's file goes wrong, done to :data:`CLEAN_ROWS` written as CSV, TSV or JSON Lines, and the error
    that must come of it.

    Attributes:
        make: (the clean file's lines without line ends, the damaged data row k, the delimiter) -> the damaged
            file's lines (str) or bytes.
        error: a regular expression the error must match from its start (``{path}``: the file, ``{line}``: the
            damaged row's line); None: the file works.
        predict_ok: ``textclf predict`` reads only texts: label damage does not stop it.
        shift: k -> lines the damaged row moved down (line breaks added before it).
        predicted_rows: rows ``predict`` finds when it works.
    """

    name: str
    suffixes: tuple[str, ...]
    make: Callable[[list[str], int, str], list[str] | bytes]
    error: str | None
    predict_ok: bool = False
    shift: Callable[[int], int] = lambda k: 0
    predicted_rows: int = len(CLEAN_ROWS)

    @property
    def predict_error(self) -> str | None:
        return None if self.predict_ok else self.error


def data_line(k: int, sep: str) -> int:
    """The index, in a clean file's lines, of data row ``k`` (CSV/TSV: after the header)."""
    return k + (sep != "")


def replace_row(new: str) -> Callable[[list[str], int, str], list[str]]:
    """Damage that replaces data row k's line with ``new`` (``{sep}``: the delimiter)."""
    def make(lines: list[str], k: int, sep: str) -> list[str]:
        i = data_line(k, sep)
        return [*lines[:i], new.replace("{sep}", sep), *lines[i + 1:]]
    return make


def edit_row(edit: Callable[[str, str], str]) -> Callable[[list[str], int, str], list[str]]:
    """Damage that rewrites data row k's line: ``edit(line, sep)``."""
    def make(lines: list[str], k: int, sep: str) -> list[str]:
        i = data_line(k, sep)
        return [*lines[:i], edit(lines[i], sep), *lines[i + 1:]]
    return make


def latin1_row(lines: list[str], k: int, sep: str) -> bytes:
    """Data row k's text holds "caf\u00e9" saved as Latin-1 (one byte 0xE9)."""
    i = data_line(k, sep)
    return b"".join((line.replace("a fine", "caf\u00e9 fine").encode("latin-1") if j == i else line.encode()) + b"\n"
                    for j, line in enumerate(lines))


def whole(encode: Callable[[str], bytes]) -> Callable[[list[str], int, str], bytes]:
    """Damage to the file as a whole: ``encode(the clean file's text)``."""
    return lambda lines, k, sep: encode("".join(line + "\n" for line in lines))


def multi_line_texts_then_blank(lines: list[str], k: int, sep: str) -> list[str]:
    """Data row 0 gets a quoted text over three lines (\\n and \\r\\n inside); data row k (k > 0) a blank text."""
    if k == 0:
        return [lines[0], f"{sep}pos", *lines[2:]]
    return [lines[0], f'"one\ntwo\r\nthree"{sep}neg', *lines[2:k + 1], f"{sep}pos", *lines[k + 2:]]


NOT_UTF8 = r"{path}: line {line} is not valid UTF-8: re-save the file as UTF-8, e.g. `iconv -f latin1"
NOT_AN_OBJECT = r"{path}: cannot be read as jsonl: line {line} is a JSON {kind}, not an object: each line holds one"
EMPTY_TEXT = r"{path} line {line}: empty text in column 'text': fill it in or drop the row"
MISSING_LABEL = r"{path} line {line}: missing label: fill it in or drop the row"
DAMAGES = [
    # CSV / TSV: a header line, then the data rows.
    Damage("extra field", CSV_ONLY, edit_row(lambda line, sep: f"{line}{sep}extra"),
           r"{path}: line {line} has 3 fields but the header has 2 .*: put a text that holds a (comma|tab) in double "
           r"quotes"),
    Damage("unclosed quote", CSV_ONLY, edit_row(lambda line, sep: '"' + line),
           r"{path}: line {line}: a double quote opened here is never closed: close it, or write a quote inside a "
           r"quoted text as two"),
    Damage("Latin-1 byte", TEXT_FILES, latin1_row, NOT_UTF8),
    Damage("missing label", CSV_ONLY, replace_row("a text{sep}"), MISSING_LABEL, predict_ok=True),
    Damage("short row", CSV_ONLY, replace_row("a text without a label"), MISSING_LABEL, predict_ok=True),
    Damage("blank text", CSV_ONLY, replace_row("   {sep}pos"), EMPTY_TEXT),
    # A bare CR ends a line, in CSV as in an editor: the row becomes two, the first without a label.
    Damage("bare CR in an unquoted text", CSV_ONLY, replace_row("a fine\rtext{sep}pos"), MISSING_LABEL,
           predict_ok=True, predicted_rows=len(CLEAN_ROWS) + 1),
    Damage("multi-line texts before a blank one", CSV_ONLY, multi_line_texts_then_blank, EMPTY_TEXT,
           shift=lambda k: 2 if k else 0),
    Damage("numeric-looking texts", CSV_ONLY, lambda lines, k, sep: [lines[0]] + [
        f"{n}{sep}{CLEAN_LABELS[i % 2]}" for i, n in enumerate(["1", "2.50", "-3", "1e5", "NA", "007", "nan"])], None),
    Damage("UTF-16", TEXT_FILES, whole(lambda text: text.encode("utf-16")),
           r"{path}: the file is UTF-16 \(or UTF-32\), not UTF-8: re-save it as UTF-8, e.g. `iconv -f utf-16"),
    Damage("UTF-16 without a BOM", CSV_ONLY, whole(lambda text: text.encode("utf-16-le")),
           r"{path}: the file is UTF-16"),
    Damage("UTF-8 BOM", TEXT_FILES, whole(lambda text: codecs.BOM_UTF8 + text.encode()), None),
    Damage("CRLF line ends", TEXT_FILES, whole(lambda text: text.replace("\n", "\r\n").encode()), None),
    Damage("empty", CSV_ONLY, whole(lambda text: b""),
           r"{path}: the file is empty \(or its first line is\): it needs a header line naming the columns"),
    Damage("only blank lines", CSV_ONLY, whole(lambda text: b"\n \n\n"), r"{path}: the file is empty"),
    Damage("header only", CSV_ONLY, whole(lambda text: text.split("\n")[0].encode() + b"\n"),
           r"{path}: no data rows \(only a header: text, label\): add one row per example", predict_ok=True,
           predicted_rows=0),
    Damage("duplicate column", CSV_ONLY, whole(lambda text: text.replace("label", "text", 1).encode()),
           r"{path}: column 'text' appears 2 times in the header \(columns 1, 2\): rename or remove all but one"),
    # JSON Lines: one object per line.
    Damage("broken line", JSONL_ONLY, replace_row('{"text": "a", "label":'),
           r"{path}: cannot be read as jsonl: line {line} is not valid JSON \(Expecting value at column \d+\): fix "
           r"or remove that line"),
    Damage("array line", JSONL_ONLY, replace_row('["a text", "pos"]'), NOT_AN_OBJECT.replace("{kind}", "array")),
    Damage("null line", JSONL_ONLY, replace_row("null"), NOT_AN_OBJECT.replace("{kind}", "null")),
    Damage("list text", JSONL_ONLY, replace_row('{"text": ["a"], "label": "pos"}'),
           r"{path} line {line}: column 'text' holds a JSON array, not a text: write the text as a JSON string"),
    Damage("lone surrogate", JSONL_ONLY, replace_row('{"text": "x \\ud800 y", "label": "pos"}'),
           r"{path} line {line}: \\ud800 is half of a UTF-16 surrogate pair, not a character"),
    Damage("missing text key", JSONL_ONLY, replace_row('{"label": "pos"}'), EMPTY_TEXT),
    Damage("blank lines before a null text", JSONL_ONLY, lambda lines, k, sep: [
        "", *lines[:k], " ", '{"text": null, "label": "pos"}', *lines[k + 1:]], EMPTY_TEXT, shift=lambda k: 2),
    Damage("mixed label types", JSONL_ONLY, replace_row('{"text": "t", "label": 1}'), None),
    Damage("NaN label", JSONL_ONLY, replace_row('{"text": "t", "label": NaN}'), MISSING_LABEL, predict_ok=True),
    Damage("object label", JSONL_ONLY, replace_row('{"text": "t", "label": {"a": 1}}'),
           r"{path} line {line}: label \{'a': 1\} is an object: a label is one name or number", predict_ok=True),
    Damage("numbers as texts", JSONL_ONLY, lambda lines, k, sep: [
        json.dumps({"text": n, "label": CLEAN_LABELS[i % 2]}) for i, n in enumerate([1, 2.5, -3, 10**20, 0, 7, 1e-9])],
           None),
    Damage("empty", JSONL_ONLY, whole(lambda text: b""), r"{path}: no data rows: add one row per example",
           predict_ok=True, predicted_rows=0),
]
ALL_DAMAGES = [pytest.param(d, suffix, id=f"{d.name} {suffix}") for d in DAMAGES for suffix in d.suffixes]


def damaged_file(directory: Path, damage: Damage, suffix: str, k: int) -> tuple[Path, int]:
    """Write :data:`CLEAN_ROWS` as ``suffix`` with ``damage`` done to data row ``k``; return the path and the line
    (1-based) of the damaged row."""
    path = directory / f"data{suffix}"
    if suffix == ".jsonl":
        lines, sep = [json.dumps(r) for r in CLEAN_ROWS], ""
    else:
        sep = "," if suffix == ".csv" else "\t"
        lines = [f"text{sep}label"] + [f"{r['text']}{sep}{r['label']}" for r in CLEAN_ROWS]
    content = damage.make(lines, k, sep)
    path.write_bytes(content if isinstance(content, bytes) else "".join(x + "\n" for x in content).encode())
    return path, data_line(k, sep) + 1 + damage.shift(k)


def expect(pattern: str | None, path: Path, line: int) -> str | None:
    return None if pattern is None else pattern.replace("{path}", re.escape(str(path))).replace("{line}", str(line))


@pytest.mark.parametrize(("damage", "suffix"), ALL_DAMAGES)
@messy(3)
@given(k=st.integers(0, len(CLEAN_ROWS) - 1))
def test_a_damaged_training_file_is_refused_with_its_line_and_the_fix(scratch, damage, suffix, k):
    path, line = damaged_file(scratch(), damage, suffix, k)
    wanted = expect(damage.error, path, line)
    try:
        data = load_files(DataConfig(train_file=str(path)))
    except TextclfError as err:
        assert wanted is not None and re.match(wanted, str(err)), (str(err), wanted)
        assert "\n" not in str(err)
        return
    assert wanted is None, f"loaded; expected {wanted}"
    assert len(data.splits["train"]) == len(CLEAN_ROWS)
    assert all(isinstance(t, str) and t for t in data.splits["train"]["text"])


def non_blank(text: str) -> bool:
    return text.strip() != ""


def made_non_blank(text: str) -> str:
    """``text``, with a letter added when it is blank (a map, not a filter: no examples thrown away)."""
    return text if non_blank(text) else text + "x"


@messy(100)
@given(rows=rows_of(texts(megabyte=True).map(made_non_blank), st.sampled_from(CLEAN_LABELS), min_size=2),
       layout=layouts)
def test_a_well_formed_file_of_any_texts_loads_every_text_as_written(scratch, rows, layout):
    rows[0]["label"], rows[1]["label"] = CLEAN_LABELS  # both classes
    path = scratch() / f"train{layout.suffix}"
    write_rows(path, rows, layout)
    data = load_files(DataConfig(train_file=str(path)))
    assert data.splits["train"]["text"] == [r["text"] for r in rows]
    assert data.splits["train"]["label"] == [CLEAN_LABELS.index(r["label"]) for r in rows]


# --- textclf predict --input ----------------------------------------------------------------------------------------

def run_cli(argv: list[str]) -> tuple[int, str, str]:
    """``textclf ARGV`` in this process: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


def error_line(stderr: str) -> str:
    """The one ``textclf: error: ...`` line of a failed command (no traceback)."""
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if line.startswith("textclf: error: ")]
    assert len(lines) == 1, stderr
    return lines[0].removeprefix("textclf: error: ")


@pytest.fixture(scope="module")
def classifier(classifier_dir) -> Predictor:
    """The conftest's 3-class checkpoint as ``textclf predict`` loads it."""
    return Predictor.from_pretrained(classifier_dir)


@pytest.fixture(autouse=True)
def quiet_logs():
    """No log lines from the commands run in-process (cli.main sets up logging once, on the first stderr)."""
    logging.disable(logging.WARNING)
    yield
    logging.disable(logging.NOTSET)


def predict_input(classifier_dir: Path, path: Path, out: Path) -> tuple[int, str]:
    """``textclf predict DIR --input PATH --output OUT --chunk-rows 3``: (exit code, stderr)."""
    code, _, stderr = run_cli(["predict", str(classifier_dir), "--input", str(path), "--output", str(out),
                               "--chunk-rows", "3"])
    return code, stderr


@messy(30)
@given(rows=rows_of(texts(megabyte=True), labels(), max_size=7), layout=layouts)
def test_predict_input_predicts_every_row_or_names_the_bad_one_and_writes_nothing(scratch, classifier_dir,
                                                                                 classifier, rows, layout):
    directory = scratch()
    path = directory / f"input{layout.suffix}"
    where = write_rows(path, rows, layout)
    out = directory / "new" / "dir" / "predictions.jsonl"
    code, stderr = predict_input(classifier_dir, path, out)
    blank = [place for place, row in zip(where, rows) if not non_blank(row["text"])]
    if code != 0:  # refused: at the first missing or blank text, which it names, and nothing written
        message = error_line(stderr)
        assert code == 2 and str(path) in message, message
        named = _PLACE.match(message.split(str(path), 1)[1])
        assert blank and named and f"{named.group(1)} {named.group(2)}" == blank[0], (message, blank)
        assert not (directory / "new").exists()  # not even the output's directories
        event("refused")
        return
    event("predicted")
    assert not blank
    written = read_jsonl(out)
    expected = classifier.predict([r["text"] for r in rows]) if rows else []
    assert [w["label"] for w in written] == [e["label"] for e in expected]
    assert [w["score"] for w in written] == pytest.approx([e["score"] for e in expected], abs=1e-5)


@pytest.mark.parametrize(("damage", "suffix"), ALL_DAMAGES)
@messy(1)
@given(k=st.integers(0, len(CLEAN_ROWS) - 1))
def test_predict_input_on_a_damaged_file_names_the_line_and_writes_nothing(scratch, classifier_dir, damage, suffix,
                                                                           k):
    directory = scratch()
    path, line = damaged_file(directory, damage, suffix, k)
    wanted = expect(damage.predict_error, path, line)
    out = directory / "out" / "predictions.csv"
    code, stderr = predict_input(classifier_dir, path, out)
    if wanted is None:
        assert code == 0, stderr
        rows = damage.predicted_rows
        assert out.read_text().count("\n") == 1 + rows  # a header, then one row each
    else:
        assert code == 2 and re.match(wanted, error_line(stderr)), (stderr, wanted)
        assert not (directory / "out").exists()


# --- textclf evaluate ------------------------------------------------------------------------------------------------

CLASSIFIER_LABELS = ("neg", "neu", "pos")


@messy(40)
@given(rows=rows_of(texts(), labels(CLASSIFIER_LABELS), max_size=6), layout=layouts)
def test_evaluate_on_a_messy_labelled_file_scores_every_row_or_names_the_bad_one(scratch, classifier_dir, rows,
                                                                                layout):
    path = scratch() / f"dev{layout.suffix}"
    where = write_rows(path, rows, layout)
    try:
        result = evaluate_checkpoint(classifier_dir, str(path))
    except Exception as err:  # noqa: BLE001 - the property: only textclf's own errors, naming the file and row
        event(f"refused: {outcome(assert_user_error(err, path, rows, where, CLASSIFIER_LABELS), path)}")
        assert rows == [] or not all(is_clean(r, CLASSIFIER_LABELS) for r in rows)
        return
    event("evaluated")
    assert result["eval_examples"] == len(rows) and 0.0 <= result["eval_accuracy"] <= 1.0


# --- textclf train ---------------------------------------------------------------------------------------------------

def train_rows() -> st.SearchStrategy[list[dict[str, Any]]]:
    """Files that mostly train: both classes, mostly non-blank texts (any characters), mostly clean labels."""
    text = st.sampled_from([False] * 3 + [True]).flatmap(lambda any_text: texts() if any_text
                                                         else texts().map(made_non_blank))
    return rows_of(text, labels(), min_size=2, max_size=6).map(
        lambda rows: [{**rows[0], "label": "neg"}, {**rows[1], "label": "pos"}, *rows[2:]])


@messy(10)
@example(rows=[{"text": str(1000 + i), "label": CLEAN_LABELS[i % 2]} for i in range(6)],  # texts that are numbers
         layout=Layout(".csv"))
@example(rows=[{"text": MEGABYTE_TEXT, "label": "neg"}, {"text": "\u202e\u2028\x00 1.5", "label": "pos"}],
         layout=Layout(".jsonl", ensure_ascii=False))
@given(rows=train_rows(), layout=layouts)
@pytest.mark.slow  # multi-process or trains several runs: CI runs it, -m 'not slow' skips it
def test_train_on_a_messy_file_trains_or_refuses_before_writing_anything(scratch, tiny_model_dir, rows, layout):
    directory = scratch()
    path = directory / f"train{layout.suffix}"
    where = write_rows(path, rows, layout)
    out = directory / "run"
    overrides = fast_overrides(tiny_model_dir, "report_to=none", "max_seq_length=32", "truncation=head")
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # the Trainer prints its log dicts
            result = train(load_recipe(str(path), overrides), out)
    except Exception as err:  # noqa: BLE001 - the property: only textclf's own errors, naming the file and row
        event(f"refused: {outcome(assert_user_error(err, path, rows, where), path)}")
        assert not out.exists()  # nothing written on failure
        return
    event("trained")
    assert result.metrics["train_examples"] == len(rows) and (out / "model" / "config.json").is_file()
    predictions = read_jsonl(out / "predictions.jsonl")
    assert [p["text"] for p in predictions] == [r["text"] for r in rows]  # every text, as written


# --- the server's request parsing ------------------------------------------------------------------------------------

JSON_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=6))
JSON_VALUES = st.recursive(JSON_SCALARS, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=6), inner, max_size=4), max_leaves=10)
# Texts a client can send: any text, or one holding a lone UTF-16 surrogate (JSON can escape one: "\ud800").
REQUEST_TEXTS = st.one_of(texts(), st.text(st.characters(categories=["Cs"]), min_size=1, max_size=3),
                          st.text(st.characters(), max_size=40))
INPUTS = st.one_of(REQUEST_TEXTS, st.lists(REQUEST_TEXTS, max_size=10),
                   st.lists(st.one_of(REQUEST_TEXTS, st.lists(REQUEST_TEXTS, max_size=3)), max_size=10), JSON_VALUES)
REQUESTS = st.fixed_dictionaries({"inputs": INPUTS}, optional={
    "truncate": st.one_of(st.booleans(), JSON_VALUES), "raw_scores": st.one_of(st.booleans(), JSON_VALUES),
    "model": JSON_VALUES})
BODIES = st.one_of(REQUESTS.map(lambda r: json.dumps(r).encode()),  # surrogates escaped, as json.dumps does
                   REQUESTS.map(lambda r: json.dumps(r, ensure_ascii=False).encode("utf-8", "surrogatepass")),
                   JSON_VALUES.map(lambda v: json.dumps(v).encode()), st.binary(max_size=40),
                   st.sampled_from([b"", b"{", b'{"inputs": "a"', b'{"inputs": "\xff"}', b"\xef\xbb\xbf{}",
                                    b'{"inputs": ' + b"[" * 3000 + b"]" * 3000 + b"}"]))


@pytest.fixture(scope="module")
def client(classifier_dir):
    """The conftest's classifier served (small limits, so batches and long texts meet them)."""
    from fastapi.testclient import TestClient

    predictor = Predictor.from_pretrained(classifier_dir, max_seq_length=32)
    with TestClient(create_app(predictor, ServeSettings(max_client_batch_size=8, max_input_chars=64))) as served:
        yield served


def assert_tei_answer(response, labels: tuple[str, ...] = CLASSIFIER_LABELS) -> None:
    """200 with every label scored (a list, or a list of lists for a batch), or a 4xx in TEI's error shape."""
    assert response.status_code < 500, response.text
    body = response.json()
    if response.status_code == 200:
        answers = body if body and isinstance(body[0], list) else [body]
        assert all(sorted(a["label"] for a in answer) == sorted(labels) for answer in answers), body
        return
    assert set(body) == {"error", "error_type"} and body["error"], body
    assert STATUS[body["error_type"]] == response.status_code, body


@messy(200)
@given(body=BODIES, content_type=st.sampled_from(["application/json", "application/json; charset=utf-8",
                                                  "text/plain", None]))
def test_any_predict_body_gets_an_answer_or_a_4xx_in_tei_shape_never_a_500(client, body, content_type):
    headers = {"content-type": content_type} if content_type else {}
    response = client.post("/predict", content=body, headers=headers)
    event(str(response.status_code))
    assert_tei_answer(response)


@messy(30)
@given(text=texts(), at=st.integers(0, 30), half=st.sampled_from(["\ud800", "\udbff", "\udc00", "\udfff"]),
       batch=st.booleans())
def test_a_text_with_a_lone_surrogate_is_a_422_naming_the_input(client, text, at, half, batch):
    bad = text[:at] + half + text[at:]
    response = client.post("/predict", content=json.dumps({"inputs": [text, bad] if batch else bad}),
                           headers={"content-type": "application/json"})
    assert response.status_code == 422, response.text
    assert response.json() == {"error": f"`inputs{'[1]' if batch else ''}` holds \\u{ord(half):04x}, half of a "
                               "UTF-16 surrogate pair, not a character: send the whole pair (e.g. \\ud83d\\ude00) or "
                               "the character itself", "error_type": "invalid_request"}
