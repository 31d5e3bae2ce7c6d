"""``textclf VERB ...`` through ``textclf.cli.main``: exit codes, one-line errors, JSON on stdout."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from textclf.cli import main
from textclf.inference import Predictor


def one_error_line(capsys, argv):
    """Run main(argv), expect exit code 2 and exactly one 'textclf: error:' line on stderr; return that line."""
    code = main(argv)
    captured = capsys.readouterr()
    assert code == 2
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("textclf: error: ")
    return lines[0]


def last_error_line(capsys, argv):
    """Like one_error_line, for errors found after the model is loaded: progress bars may come first on stderr,
    but the last line is the one error line and there is no traceback."""
    code = main(argv)
    captured = capsys.readouterr()
    assert code == 2
    assert captured.out == ""
    assert "Traceback" not in captured.err
    lines = captured.err.splitlines()
    assert [line for line in lines if line.startswith("textclf: error: ")] == lines[-1:]
    return lines[-1]


# --- user errors: exit 2, one line, no traceback ---------------------------------------------------------------

def test_unknown_task(capsys, tmp_path):
    line = one_error_line(capsys, ["train", "nosuchtask", "--output-dir", str(tmp_path / "run")])
    assert "unknown task 'nosuchtask'" in line
    assert not (tmp_path / "run").exists()


def test_unknown_override_key(capsys, sentiment_files, tmp_path):
    train_file, _ = sentiment_files
    line = one_error_line(capsys, ["train", str(train_file), "learnin_rate=1e-4",
                                   "--output-dir", str(tmp_path / "run")])
    assert "learnin_rate" in line
    assert not (tmp_path / "run").exists()


def test_override_after_an_option(capsys, tmp_path):
    line = one_error_line(capsys, ["train", "sst2", "--output-dir", str(tmp_path / "run"), "bf16=maybe"])
    assert "bf16='maybe'" in line


def test_missing_file(capsys, tmp_path):
    missing = tmp_path / "nope.csv"
    line = one_error_line(capsys, ["train", str(missing), "--output-dir", str(tmp_path / "run")])
    assert str(missing) in line and "file not found" in line
    assert not (tmp_path / "run").exists()


def test_missing_column(capsys, sentiment_files, tmp_path):
    train_file, _ = sentiment_files
    line = one_error_line(capsys, ["train", str(train_file), "data.text_column=review",
                                   "--output-dir", str(tmp_path / "run")])
    assert str(train_file) in line and "'review'" in line
    assert not (tmp_path / "run").exists()


def test_missing_label_column_in_data_verb(capsys, make_file):
    path = make_file("stars.csv", [{"text": "good", "stars": 5}, {"text": "bad", "stars": 1}])
    line = one_error_line(capsys, ["data", str(path)])
    assert str(path) in line and "no column 'label'" in line


def test_non_utf8_file(capsys, tmp_path):
    path = tmp_path / "latin1.csv"
    path.write_bytes("text,label\nna\u00efve,pos\nok,neg\n".encode("latin-1"))
    line = one_error_line(capsys, ["data", str(path)])
    assert f"{path}: line 2 is not valid UTF-8" in line


def test_empty_text_in_predict_input(capsys, classifier_dir, make_file):
    path = make_file("input.csv", [{"id": 0, "text": "fine"}, {"id": 1, "text": " "}])
    line = last_error_line(capsys, ["predict", str(classifier_dir), "--input", str(path)])
    assert str(path) in line and "empty text" in line


def test_empty_row_of_a_one_column_csv_is_reported(capsys, classifier_dir, tmp_path):
    path = tmp_path / "input.csv"
    path.write_text("text\nfine\n\nalso fine\n")
    line = last_error_line(capsys, ["predict", str(classifier_dir), "--input", str(path), "--output",
                                   str(tmp_path / "out.jsonl")])
    assert "empty text" in line


def test_predict_needs_texts_or_an_input_file(capsys, classifier_dir):
    line = one_error_line(capsys, ["predict", str(classifier_dir)])
    assert "--input" in line


def test_evaluate_a_directory_that_is_not_a_checkpoint(capsys, tmp_path, sentiment_files):
    line = one_error_line(capsys, ["evaluate", str(tmp_path), str(sentiment_files[1])])
    assert "not a checkpoint directory" in line


def test_data_verb_with_a_split_that_is_not_loaded(capsys, sentiment_files):
    line = one_error_line(capsys, ["data", str(sentiment_files[0]), "--split", "test"])
    assert "test" in line


def test_model_that_is_an_empty_directory(capsys, sentiment_files, tmp_path):
    empty = tmp_path / "empty-model"
    empty.mkdir()
    line = one_error_line(capsys, ["train", str(sentiment_files[0]), f"model={empty}", "bf16=false",
                                   "--output-dir", str(tmp_path / "run")])
    assert "cannot load model" in line
    assert not (tmp_path / "run").exists()


def test_argparse_error_exits_2(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "sst2", "--no-such-option"])
    assert exit_info.value.code == 2
    assert "unrecognized arguments: --no-such-option" in capsys.readouterr().err


# --- predict ----------------------------------------------------------------------------------------------------

def test_predict_texts_prints_a_json_list(capsys, classifier_dir):
    texts = ["a fine film", "awful", "the long and winding road of a plot " * 5]
    assert main(["predict", str(classifier_dir), *texts]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert isinstance(printed, list) and len(printed) == 3
    assert all(set(row) == {"label", "score"} for row in printed)
    expected = Predictor.from_pretrained(classifier_dir).predict(texts)
    assert [r["label"] for r in printed] == [r["label"] for r in expected]
    assert [r["score"] for r in printed] == pytest.approx([r["score"] for r in expected], abs=1e-6)


def test_predict_truncation_and_max_seq_length_override_the_checkpoint(capsys, classifier_dir):
    text = "the long and winding road of a plot " * 20
    assert main(["predict", str(classifier_dir), text, "--truncation", "head", "--max-seq-length", "16"]) == 0
    printed = json.loads(capsys.readouterr().out)
    expected = Predictor.from_pretrained(classifier_dir, truncation="head", max_seq_length=16).logits([text])
    default = Predictor.from_pretrained(classifier_dir).logits([text])
    assert not np.allclose(expected, default, atol=1e-4)  # the options reach the model
    probabilities = np.exp(expected[0]) / np.exp(expected[0]).sum()
    assert printed[0]["score"] == pytest.approx(float(probabilities.max()), abs=1e-5)


def test_predict_input_file_to_output_file(capsys, classifier_dir, make_file, tmp_path):
    texts = [f"review number {i} " + "very " * (i * 3) + "good" for i in range(7)]
    path = make_file("input.csv", [{"id": i, "text": t} for i, t in enumerate(texts)])
    out = tmp_path / "out.jsonl"
    assert main(["predict", str(classifier_dir), "--input", str(path), "--output", str(out)]) == 0
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "wrote 7 predictions" in captured.err
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(lines) == 7
    expected = Predictor.from_pretrained(classifier_dir).predict(texts)
    assert [r["label"] for r in lines] == [r["label"] for r in expected]
    assert [r["score"] for r in lines] == pytest.approx([r["score"] for r in expected], abs=1e-6)


def test_predict_input_file_to_stdout(capsys, classifier_dir, make_file):
    path = make_file("input.jsonl", [{"body": "first"}, {"body": "second text"}])
    assert main(["predict", str(classifier_dir), "--input", str(path), "--text-column", "body"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and all(set(json.loads(line)) == {"label", "score"} for line in lines)


def test_predict_sentence_pairs_from_a_file(capsys, classifier_dir, make_file):
    pairs = [("a man plays", "a person plays"), ("cats", "dogs are not cats at all")]
    path = make_file("pairs.csv", [{"sentence1": a, "sentence2": b} for a, b in pairs])
    assert main(["predict", str(classifier_dir), "--input", str(path)]) == 0
    printed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    expected = Predictor.from_pretrained(classifier_dir).predict(pairs)
    assert [r["label"] for r in printed] == [r["label"] for r in expected]
    assert [r["score"] for r in printed] == pytest.approx([r["score"] for r in expected], abs=1e-6)


# --- data, train, evaluate --------------------------------------------------------------------------------------

def test_data_verb_prints_examples_with_label_names(capsys, sentiment_files):
    train_file, _ = sentiment_files
    assert main(["data", str(train_file), "--n", "4", "--seed", "1"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["label_names"] == ["neg", "pos"]
    assert printed["problem_type"] == "single_label_classification"
    assert printed["splits"] == {"train": 64, "validation": 64}  # 64 rows: no hold-out, the train data judged
    gold = dict(pd.read_csv(train_file)[["text", "label"]].itertuples(index=False))
    assert len(printed["examples"]) == 4
    assert all(example["label"] == gold[example["text"]] for example in printed["examples"])


def test_train_then_evaluate(capsys, tiny_model_dir, sentiment_files, tmp_path):
    train_file, valid = sentiment_files
    out = tmp_path / "run"
    argv = ["train", str(train_file), "--output-dir", str(out), f"model={tiny_model_dir}", "method=finetune", "bf16=false",
            "num_train_epochs=1", "per_device_train_batch_size=16", f"validation_file={valid}", "learning_rate=1e-3"]
    assert main(argv) == 0
    trained = json.loads(capsys.readouterr().out)  # stdout holds the result JSON and nothing else
    assert trained["output_dir"] == str(out) and trained["model_dir"] == str(out / "model")
    assert trained["eval_examples"] == 16
    assert json.loads((out / "metrics.json").read_text())["eval_accuracy"] == trained["eval_accuracy"]

    assert main(["evaluate", str(out / "model"), str(valid)]) == 0
    evaluated = json.loads(capsys.readouterr().out)
    for key in ("eval_accuracy", "eval_f1", "eval_f1_macro", "eval_examples"):
        assert evaluated[key] == pytest.approx(trained[key], abs=1e-9), key
    assert evaluated["source"] == str(valid)

    assert main(["evaluate", str(out / "model"), str(valid), "--max-samples", "5"]) == 0
    assert json.loads(capsys.readouterr().out)["eval_examples"] == 5


def test_output_dir_that_is_a_file_is_one_error_line(capsys, sentiment_files, tmp_path):
    train_file, _ = sentiment_files
    taken = tmp_path / "taken"
    taken.write_text("not a directory\n")
    line = one_error_line(capsys, ["train", str(train_file), "--output-dir", str(taken)])
    assert f"output directory {taken} is a file" in line and "--output-dir" in line
    assert taken.read_text() == "not a directory\n"
