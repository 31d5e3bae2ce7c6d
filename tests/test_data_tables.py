"""The one table reader: every format, one NA policy (texts are always strings), chunks equal to the whole."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from textclf.cli import main
from textclf.config import DataConfig
from textclf.data.loading import load_files
from textclf.data.tables import iter_table, read_table
from textclf.errors import DataError
from textclf.inference import Predictor
from textclf.inference.streaming import predict_file
from textclf.training import train

TRICKY = ["NA", "null", "123", "1.50", "None", "nan", "N/A", "007", "TRUE", "-1"]


def test_csv_texts_are_read_exactly_as_written(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("text,label\n" + "".join(f"{t},{i % 2}\n" for i, t in enumerate(TRICKY)), encoding="utf-8")
    frame = read_table(path, ["text"])
    assert frame["text"].tolist() == TRICKY
    assert frame["label"].tolist() == [i % 2 for i in range(len(TRICKY))]  # labels keep pandas' own parsing


def test_label_column_keeps_pandas_missing_values(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("text,label\nNA,NA\nnull,1\n,0\n", encoding="utf-8")
    frame = read_table(path, ["text"])
    assert frame["text"].tolist()[:2] == ["NA", "null"] and pd.isna(frame["text"][2])  # only an empty field
    assert pd.isna(frame["label"][0]) and frame["label"][1] == 1


@pytest.mark.parametrize("suffix", [".jsonl", ".json", ".parquet"])
def test_numbers_in_a_text_column_become_their_text(tmp_path, suffix):
    path = tmp_path / f"t{suffix}"
    rows = [{"text": 5, "label": "a"}, {"text": 1.5, "label": "b"}, {"text": "7", "label": "a"}]
    if suffix == ".parquet":
        pd.DataFrame({"text": [5, 15, 7], "label": ["a", "b", "a"]}).to_parquet(path)
        expected = ["5", "15", "7"]
    elif suffix == ".jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        expected = ["5", "1.5", "7"]
    else:
        path.write_text(json.dumps(rows))
        expected = ["5", "1.5", "7"]
    frame = read_table(path, ["text"])
    assert frame["text"].tolist() == expected and all(isinstance(v, str) for v in frame["text"])


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".jsonl", ".parquet"])
def test_chunks_equal_the_whole_file_and_the_chooser_runs_once(make_file, suffix):
    rows = [{"text": t, "extra": i, "label": i % 3} for i, t in enumerate(TRICKY * 3)]
    path = make_file(f"t{suffix}", rows)
    calls = []

    def choose(columns):
        calls.append(list(columns))
        return ["text"]

    chunks = list(iter_table(path, 7, choose))
    assert len(calls) == 1 and [len(c) for c in chunks] == [7, 7, 7, 7, 2]
    whole = read_table(path, ["text"])
    joined = pd.concat(chunks, ignore_index=True)
    assert joined["text"].tolist() == whole["text"].tolist() == TRICKY * 3
    assert next(iter(iter_table(path, 7, ["text"], columns=["text"]))).columns.tolist() == ["text"]


def test_bad_chunk_size_and_unparseable_json(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_text('{"text": "a"}\n{"text": \n')
    with pytest.raises(DataError, match="chunk_rows=0"):
        next(iter_table(path, 0))
    with pytest.raises(DataError, match=f"{path}: cannot be read as jsonl"):
        read_table(path)


def numeric_rows(n: int, offset: int = 0) -> list[dict]:
    """Texts that are numbers: odd numbers are "odd", even ones "even" (a tokenizer sees digits)."""
    return [{"text": str(1000 + i), "label": "odd" if i % 2 else "even"} for i in range(offset, offset + n)]


def test_a_csv_whose_texts_are_numbers_trains_evaluates_and_predicts(fast_recipe, make_file, tmp_path, capsys):
    train_file = make_file("numbers.csv", numeric_rows(48))
    validation_file = make_file("numbers-dev.csv", numeric_rows(16, offset=500))
    data = load_files(DataConfig(train_file=str(train_file), validation_file=str(validation_file)))
    assert data.splits["train"]["text"][:2] == ["1000", "1001"] and data.label_names == ["even", "odd"]
    result = train(fast_recipe(train_file, f"validation_file={validation_file}", "report_to=none"), tmp_path / "run")
    assert result.metrics["eval_examples"] == 16 and 0.0 <= result.metrics["eval_accuracy"] <= 1.0
    capsys.readouterr()  # the Trainer's log lines
    assert main(["evaluate", str(result.model_dir), str(validation_file)]) == 0
    evaluated = json.loads(capsys.readouterr().out)
    assert evaluated["eval_accuracy"] == pytest.approx(result.metrics["eval_accuracy"], abs=1e-9)
    predictor = Predictor.from_pretrained(result.model_dir)
    out = tmp_path / "preds.jsonl"
    assert predict_file(predictor, validation_file, out, progress=False) == 16
    predicted = [json.loads(line) for line in out.read_text().splitlines()]
    direct = predictor.predict([r["text"] for r in numeric_rows(16, offset=500)])
    assert [p["label"] for p in predicted] == [d["label"] for d in direct]
    assert np.allclose([p["score"] for p in predicted], [d["score"] for d in direct], atol=1e-6)
