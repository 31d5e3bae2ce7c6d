"""predict_file: any file size in bounded memory, the Predictor's results in input order, errors that name the line."""

from __future__ import annotations

import json
import tracemalloc

import numpy as np
import pandas as pd
import pytest
import torch

from textclf.data.tables import count_rows, iter_table
from textclf.errors import DataError
from textclf.inference import Predictor
from textclf.inference.streaming import predict_file
from textclf.modeling import load_model, load_tokenizer
from textclf.tasks import MULTI_LABEL

TEXTS = [f"review {i}: " + "a rather long and winding sentence " * (i % 7) + ("good" if i % 3 else "bad")
         for i in range(23)]


@pytest.fixture
def one_thread():
    """One torch thread: the tiny model's matmuls are too small to share, and on a busy 2-core machine two threads
    wait on each other (a 20,000-row file took 27 s with 2 threads, 1.4 s with 1)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def predictor(classifier_dir):
    return Predictor.from_pretrained(classifier_dir, batch_size=4)


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def assert_same(ours, theirs, abs_tol=1e-6):
    assert [r["label"] for r in ours] == [r["label"] for r in theirs]
    assert [r["score"] for r in ours] == pytest.approx([r["score"] for r in theirs], abs=abs_tol)


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".jsonl", ".parquet", ".json"])
def test_every_input_format_gives_the_predictor_results_in_input_order(predictor, make_file, tmp_path, suffix):
    rows = [{"id": i, "text": t} for i, t in enumerate(TEXTS)]
    path = make_file(f"input{suffix}", rows) if suffix != ".json" else tmp_path / "input.json"
    if suffix == ".json":
        path.write_text(json.dumps(rows), encoding="utf-8")
    out = tmp_path / "out.jsonl"
    assert predict_file(predictor, path, out, chunk_rows=5, progress=False) == len(TEXTS)  # 5 chunks, last short
    written = read_jsonl(out)
    assert_same(written, predictor.predict(TEXTS))
    assert len({round(r["score"], 5) for r in written}) == len(TEXTS)  # scores differ: a misplaced row would show


def test_csv_output_has_a_header_and_one_row_per_input(predictor, make_file, tmp_path):
    path = make_file("input.parquet", [{"text": t} for t in TEXTS])
    out = tmp_path / "out.csv"
    predict_file(predictor, path, out, chunk_rows=7, progress=False)
    table = pd.read_csv(out)
    assert list(table.columns) == ["label", "score"] and len(table) == len(TEXTS)
    assert_same(table.to_dict(orient="records"), predictor.predict(TEXTS))


def test_sentence_pairs_and_chosen_columns(predictor, make_file, tmp_path):
    pairs = [(f"premise {i}", "a hypothesis " * (i % 4 + 1)) for i in range(9)]
    path = make_file("pairs.csv", [{"a": a, "b": b, "other": 1} for a, b in pairs])
    out = tmp_path / "out.jsonl"
    predict_file(predictor, path, out, text_column="a", text_pair_column="b", chunk_rows=4, progress=False)
    assert_same(read_jsonl(out), predictor.predict(pairs))


def test_texts_that_look_like_numbers_or_missing_values_stay_texts(predictor, make_file, tmp_path):
    texts = ["1.50", "NA", "null", "007"]
    path = make_file("input.csv", [{"text": t} for t in texts])
    out = tmp_path / "out.jsonl"
    predict_file(predictor, path, out, progress=False)
    assert_same(read_jsonl(out), predictor.predict(texts))


def test_stdout_when_no_output_path(predictor, make_file, capsys):
    path = make_file("input.jsonl", [{"text": t} for t in TEXTS[:3]])
    predict_file(predictor, path, None, progress=False)
    assert_same([json.loads(line) for line in capsys.readouterr().out.splitlines()], predictor.predict(TEXTS[:3]))


def test_multi_label_csv_output_lists_labels_and_scores(tiny_model_dir, make_file, tmp_path):
    model = load_model(str(tiny_model_dir), ["anger", "joy", "love"], MULTI_LABEL)
    predictor = Predictor(model, load_tokenizer(str(tiny_model_dir)))
    predictor.threshold = 0.0  # every label: the lists are not empty
    path = make_file("input.csv", [{"text": t} for t in TEXTS[:4]])
    predict_file(predictor, path, tmp_path / "out.csv", progress=False)
    table = pd.read_csv(tmp_path / "out.csv")
    assert list(table.columns) == ["labels", "scores"]
    expected = predictor.predict(TEXTS[:4])
    assert [json.loads(x) for x in table["labels"]] == [[r["label"] for r in row] for row in expected]


def test_an_empty_text_in_a_later_chunk_names_its_line_and_writes_nothing(predictor, make_file, tmp_path):
    rows = [{"text": t} for t in TEXTS]
    rows[17]["text"] = "   "
    path = make_file("input.csv", rows)
    out = tmp_path / "out.jsonl"
    out.write_text("old\n")
    with pytest.raises(DataError, match=rf"{path} line 19: empty text in column 'text'"):  # header is line 1
        predict_file(predictor, path, out, chunk_rows=5, progress=False)
    assert out.read_text() == "old\n"  # the earlier output is untouched: results are renamed in only at the end
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".out")] == []


def test_a_jsonl_row_missing_the_text_key_is_reported(predictor, tmp_path):
    path = tmp_path / "input.jsonl"
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in TEXTS[:6]) + json.dumps({"body": "x"}) + "\n")
    with pytest.raises(DataError, match=rf"{path} line 7: empty text"):
        predict_file(predictor, path, tmp_path / "out.jsonl", chunk_rows=4, progress=False)


def test_non_utf8_input_names_the_line(predictor, tmp_path):
    path = tmp_path / "latin1.csv"
    path.write_bytes(("text\n" + "fine\n" * 10 + "na\u00efve\n").encode("latin-1"))
    with pytest.raises(DataError, match=rf"{path}: line 12 is not valid UTF-8"):
        predict_file(predictor, path, tmp_path / "out.jsonl", chunk_rows=4, progress=False)


def test_missing_column_unsupported_file_and_missing_file(predictor, make_file, tmp_path):
    path = make_file("input.csv", [{"body": "x"}])
    with pytest.raises(DataError, match="no text column found"):
        predict_file(predictor, path, tmp_path / "out.jsonl", progress=False)
    with pytest.raises(DataError, match="unsupported file type"):
        predict_file(predictor, tmp_path / "input.xlsx", tmp_path / "out.jsonl", progress=False)
    with pytest.raises(DataError, match="file not found"):
        predict_file(predictor, tmp_path / "missing.csv", tmp_path / "out.jsonl", progress=False)
    assert not (tmp_path / "out.jsonl").exists()


def test_count_rows_and_iter_table(make_file):
    rows = [{"text": f"t{i}"} for i in range(10)]
    for suffix in (".csv", ".jsonl", ".parquet"):
        path = make_file(f"rows{suffix}", rows)
        assert count_rows(path) == 10
        chunks = list(iter_table(path, 4))
        assert [len(c) for c in chunks] == [4, 4, 2]
        assert pd.concat(chunks)["text"].tolist() == [r["text"] for r in rows]


def _write_lines(path, n):
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("id,text\n")
        fh.writelines(f"{i},review {i} was {'good' if i % 3 else 'bad'}\n" for i in range(n))


def _traced_peak(predictor, source, target):
    tracemalloc.start()
    try:
        rows = predict_file(predictor, source, target, chunk_rows=4096, progress=False)
        return rows, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.slow
def test_an_80k_line_file_streams_in_memory_that_does_not_grow_with_the_file(classifier_dir, tmp_path, one_thread):
    """Peak traced Python memory (tracemalloc: pandas' and numpy's arrays, texts, results) with 20,000 and with
    80,000 lines (about 20 chunks of 4,096): reading the whole file would hold 4x as many rows, so the peak would grow about 4x; streaming it
    stays flat (measured at 50,000 and 200,000 lines: about 8 MB for both)."""
    predictor = Predictor.from_pretrained(classifier_dir, batch_size=256)
    small, large = tmp_path / "small.csv", tmp_path / "large.csv"
    _write_lines(small, 20_000)
    _write_lines(large, 80_000)
    rows_small, peak_small = _traced_peak(predictor, small, tmp_path / "small.jsonl")
    rows_large, peak_large = _traced_peak(predictor, large, tmp_path / "large.jsonl")
    print(f"peak traced memory: {peak_small / 2**20:.1f} MB for 20,000 lines, {peak_large / 2**20:.1f} MB for 80,000")
    assert (rows_small, rows_large) == (20_000, 80_000)
    assert peak_large < 1.3 * peak_small
    assert peak_large < 64 * 2**20
    # Order and rows: the written lines are the Predictor's results for the file's rows, line by line.
    written = (tmp_path / "large.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(written) == 80_000
    picks = np.random.default_rng(0).choice(80_000, size=500, replace=False)
    expected = predictor.predict([f"review {i} was {'good' if i % 3 else 'bad'}" for i in picks])
    assert_same([json.loads(written[i]) for i in picks], expected, abs_tol=1e-5)
    assert len({round(r["score"], 5) for r in expected}) > 400
