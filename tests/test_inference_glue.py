"""GLUE leaderboard files from unlabelled test data, with tiny checkpoints whose labels are a GLUE task's."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from conftest import _tiny_bert_config, write_table

from textclf.cli import main
from textclf.errors import DataError
from textclf.inference import Predictor
from textclf.inference.glue import write_glue_submission
from textclf.tasks import REGRESSION, get_task


def tiny_checkpoint(root: Path, task: str, tokenizer) -> Path:
    """A random-init tiny classifier with ``task``'s labels and problem type (outputs vary from text to text)."""
    import torch
    from transformers import BertForSequenceClassification

    spec = get_task(task)
    names = ["score"] if spec.problem_type == REGRESSION else list(spec.label_names)
    config = _tiny_bert_config(tokenizer.vocab_size, initializer_range=0.2, id2label=dict(enumerate(names)),
                               label2id={n: i for i, n in enumerate(names)},
                               problem_type=spec.problem_type)
    path = root / f"ckpt-{task}"
    with torch.random.fork_rng():
        torch.manual_seed(1)
        BertForSequenceClassification(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def pair_rows(n: int, first: str, second: str) -> list[dict]:
    """Unlabelled GLUE-style test rows (label -1, idx shuffled so it differs from the row position)."""
    return [{first: f"the cat sat on mat number {i} today", second: f"a {'dog' if i % 2 else 'cat'} sat {i * 7}",
             "label": -1, "idx": 1000 - i} for i in range(n)]


def read_tsv(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, sep="\t", keep_default_na=False)


def test_rte_file_has_index_and_label_names_in_test_order(tmp_path, bundled_tokenizer):
    ckpt = tiny_checkpoint(tmp_path, "rte", bundled_tokenizer)
    rows = pair_rows(40, "sentence1", "sentence2")
    test_file = write_table(tmp_path / "rte-test.tsv", rows)
    [path] = write_glue_submission(ckpt, "rte", tmp_path / "submission", input_file=str(test_file))
    assert path.name == "RTE.tsv"
    assert path.read_text().splitlines()[0] == "index\tprediction"
    table = read_tsv(path)
    assert table["index"].tolist() == [r["idx"] for r in rows]
    expected = Predictor.from_pretrained(ckpt).predict([(r["sentence1"], r["sentence2"]) for r in rows])
    assert table["prediction"].tolist() == [e["label"] for e in expected]
    assert set(table["prediction"]) <= {"entailment", "not_entailment"}
    assert table["prediction"].nunique() == 2  # a mapping bug that collapses labels would show


def test_binary_tasks_use_glue_label_ids_and_stsb_floats(tmp_path, bundled_tokenizer):
    ckpt = tiny_checkpoint(tmp_path, "sst2", bundled_tokenizer)
    rows = [{"sentence": f"film number {i} was {'great' if i % 3 else 'awful'}", "label": -1} for i in range(30)]
    test_file = write_table(tmp_path / "sst2-test.jsonl", rows)
    [path] = write_glue_submission(ckpt, "sst2", tmp_path / "out", input_file=str(test_file))
    table = read_tsv(path)
    assert path.name == "SST-2.tsv" and table["index"].tolist() == list(range(30))  # no idx: row order
    expected = Predictor.from_pretrained(ckpt).predict([r["sentence"] for r in rows])
    assert table["prediction"].tolist() == [["negative", "positive"].index(e["label"]) for e in expected]

    ckpt = tiny_checkpoint(tmp_path, "stsb", bundled_tokenizer)
    rows = pair_rows(12, "sentence1", "sentence2")
    [path] = write_glue_submission(ckpt, "stsb", tmp_path / "out", input_file=str(write_table(
        tmp_path / "stsb-test.csv", rows)))
    table = read_tsv(path)
    scores = [e["score"] for e in Predictor.from_pretrained(ckpt).predict(
        [(r["sentence1"], r["sentence2"]) for r in rows])]
    assert path.name == "STS-B.tsv" and table["prediction"].tolist() == pytest.approx(scores, abs=1e-5)


def test_mnli_writes_matched_and_mismatched_from_the_test_splits(tmp_path, bundled_tokenizer, make_mirror):
    ckpt = tiny_checkpoint(tmp_path, "mnli", bundled_tokenizer)
    mirror = make_mirror("glue-mnli", test_matched=pair_rows(9, "premise", "hypothesis"),
                         test_mismatched=pair_rows(7, "premise", "hypothesis"))
    paths = write_glue_submission(ckpt, "mnli", tmp_path / "sub", data_dir=str(mirror))
    assert [p.name for p in paths] == ["MNLI-m.tsv", "MNLI-mm.tsv"]
    assert [len(read_tsv(p)) for p in paths] == [9, 7]
    assert set(read_tsv(paths[0])["prediction"]) <= {"entailment", "neutral", "contradiction"}


def test_wrong_checkpoint_or_missing_column_writes_nothing(tmp_path, bundled_tokenizer, classifier_dir):
    test_file = write_table(tmp_path / "t.csv", pair_rows(5, "sentence1", "sentence2"))
    with pytest.raises(DataError, match="not rte's"):
        write_glue_submission(classifier_dir, "rte", tmp_path / "sub", input_file=str(test_file))
    ckpt = tiny_checkpoint(tmp_path, "qnli", bundled_tokenizer)
    with pytest.raises(DataError, match=r"no column\(s\) \['question', 'sentence'\]"):
        write_glue_submission(ckpt, "qnli", tmp_path / "sub", input_file=str(test_file))
    with pytest.raises(DataError, match="not a GLUE task"):
        write_glue_submission(ckpt, "imdb", tmp_path / "sub", input_file=str(test_file))
    assert not (tmp_path / "sub").exists() or not list((tmp_path / "sub").iterdir())


def test_cli_predict_glue(tmp_path, bundled_tokenizer, capsys):
    ckpt = tiny_checkpoint(tmp_path, "cola", bundled_tokenizer)
    test_file = write_table(tmp_path / "cola.parquet", [{"sentence": f"he run {i}", "idx": i} for i in range(6)])
    code = main(["predict", str(ckpt), "--glue", "cola", "--input", str(test_file), "--output", str(tmp_path / "s")])
    assert code == 0
    assert json.loads(capsys.readouterr().out) == {"written": [str(tmp_path / "s" / "CoLA.tsv")]}
    assert set(read_tsv(tmp_path / "s" / "CoLA.tsv")["prediction"]) <= {0, 1}
    assert main(["predict", str(ckpt), "some text", "--glue", "cola", "--output", str(tmp_path / "s")]) == 2
