"""Loading and validating data: user files, registry tasks from a local mirror, tokenization."""

from __future__ import annotations

import math

import numpy as np
import pytest

from textclf.config import DataConfig, load_recipe
from textclf.data.loading import (
    DATA_DIR_ENV,
    MIN_HOLDOUT_TRAIN,
    load_eval_data,
    load_files,
    load_recipe_data,
    load_task,
    load_task_split,
    random_examples,
)
from textclf.data.tables import read_table
from textclf.data.tokenization import tokenize
from textclf.errors import DataError
from textclf.tasks import MULTI_LABEL, REGRESSION, SINGLE_LABEL, get_task


def rows(texts, labels, column="text"):
    return [{column: t, "label": y} for t, y in zip(texts, labels)]


def many(n, labels, prefix="text"):
    """n rows with unique texts and labels cycling through ``labels``."""
    return [{"text": f"{prefix} {i}", "label": labels[i % len(labels)]} for i in range(n)]


# --- user files: labels and columns ---------------------------------------------------------------------------

def test_string_labels_become_one_sorted_list_and_ids(make_file):
    train = make_file("train.csv", rows(["a", "b", "c", "d", "e"], ["pos", "neg", "neutral", "pos", "neg"]))
    valid = make_file("valid.csv", rows(["f", "g"], ["neutral", "pos"]))
    data = load_files(DataConfig(train_file=str(train), validation_file=str(valid)))
    assert data.label_names == ["neg", "neutral", "pos"]
    assert data.problem_type == SINGLE_LABEL and data.num_labels == 3
    assert data.splits["train"]["label"] == [2, 0, 1, 2, 0]
    assert data.splits["validation"]["label"] == [1, 2]
    assert data.splits["train"]["text"] == ["a", "b", "c", "d", "e"]
    assert data.text_columns == ("text",)
    assert data.metric_for_best_model == "accuracy"


def test_integer_labels_sort_as_numbers(make_file):
    train = make_file("train.csv", rows(["a", "b", "c", "d"], [10, 2, 1, 2]))
    data = load_files(DataConfig(train_file=str(train), validation_file=str(train)))
    assert data.label_names == ["1", "2", "10"]
    assert data.splits["train"]["label"] == [2, 1, 0, 1]
    assert data.splits["train"].features["label"].dtype == "int64"


def test_binary_labels_report_f1(make_file):
    train = make_file("train.csv", rows(["a", "b", "c"], [0, 1, 1]))
    data = load_files(DataConfig(train_file=str(train), validation_file=str(train)))
    assert data.label_names == ["0", "1"]
    assert "f1" in data.metrics


def test_non_integer_floats_are_a_regression(make_file):
    train = make_file("train.csv", rows(["a", "b", "c", "d"], [0.5, 1.0, 4.25, 3.0]))
    data = load_files(DataConfig(train_file=str(train), validation_file=str(train)))
    assert data.problem_type == REGRESSION
    assert data.num_labels == 1 and data.label_names == []
    assert data.splits["train"].features["label"].dtype == "float32"
    assert data.splits["train"]["label"] == pytest.approx([0.5, 1.0, 4.25, 3.0])
    assert data.metric_for_best_model == "pearson"


def test_integer_valued_floats_are_classes(make_file):
    train = make_file("train.csv", rows(["a", "b", "c"], [1.0, 2.0, 1.0]))
    data = load_files(DataConfig(train_file=str(train), validation_file=str(train)))
    assert data.problem_type == SINGLE_LABEL
    assert data.label_names == ["1", "2"]


def test_list_labels_are_multi_label(make_file):
    train = make_file("train.jsonl", rows(["a", "b", "c"], [["joy"], ["anger", "joy"], []]))
    data = load_files(DataConfig(train_file=str(train), validation_file=str(train)))
    assert data.problem_type == MULTI_LABEL
    assert data.label_names == ["anger", "joy"]
    assert data.splits["train"]["label"] == [[0.0, 1.0], [1.0, 1.0], [0.0, 0.0]]
    assert data.metric_for_best_model == "f1_micro"




def test_multi_hot_labels_are_float32_for_a_file(make_file):
    train = make_file("train.jsonl", rows(["a", "b"], [["joy"], ["anger", "joy"]]))
    data = load_files(DataConfig(train_file=str(train), validation_file=str(train)))
    assert data.splits["train"].features["label"].feature.dtype == "float32"


def test_multi_hot_labels_are_float32_for_a_task(make_mirror):
    table = [{"text": "wow", "labels": [0, 27], "id": "a"}, {"text": "ok", "labels": [27], "id": "b"}]
    mirror = make_mirror("goemotions", train=table, validation=table)
    data = load_task(get_task("goemotions"), str(mirror))
    assert data.splits["train"].features["label"].feature.dtype == "float32"


def test_sentence_pair_columns_are_inferred(make_file):
    train = make_file("train.csv", [{"sentence1": "a man", "sentence2": "a person", "label": "yes", "idx": 0},
                                    {"sentence1": "a cat", "sentence2": "a car", "label": "no", "idx": 1}])
    data = load_files(DataConfig(train_file=str(train), validation_file=str(train)))
    assert data.text_columns == ("sentence1", "sentence2")
    assert data.splits["train"].column_names == ["sentence1", "sentence2", "label"]


def test_configured_columns(make_file):
    train = make_file("train.tsv", [{"review": "good", "title": "t1", "stars": "5"},
                                    {"review": "bad", "title": "t2", "stars": "1"}])
    cfg = DataConfig(train_file=str(train), validation_file=str(train), text_column="review",
                     text_pair_column="title", label_column="stars")
    data = load_files(cfg)
    assert data.text_columns == ("review", "title")
    assert data.label_names == ["1", "5"]
    assert data.splits["train"]["label"] == [1, 0]


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".jsonl", ".parquet"])
def test_every_file_format_reads_the_same(make_file, suffix):
    table = rows(["good film", "bad, film", "fine\tfilm"], ["pos", "neg", "pos"])
    frame = read_table(make_file(f"data{suffix}", table))
    assert frame["text"].tolist() == ["good film", "bad, film", "fine\tfilm"]
    assert frame["label"].tolist() == ["pos", "neg", "pos"]


def test_unsupported_suffix(tmp_path):
    path = tmp_path / "data.xlsx"
    path.write_text("x")
    with pytest.raises(DataError, match="unsupported file type"):
        read_table(path)


# --- user files: validation carved from train -------------------------------------------------------------------

def test_validation_is_carved_from_train_with_a_seed(make_file):
    rows = MIN_HOLDOUT_TRAIN + 40
    train = make_file("train.csv", many(rows, ["neg", "pos"]))

    def split(seed):
        data = load_files(DataConfig(train_file=str(train)), seed=seed)
        return data.splits["train"]["text"], data.splits["validation"]["text"]

    first, again, other = split(1), split(1), split(2)
    assert first == again
    assert sorted(first[1]) != sorted(other[1])
    assert len(first[0]) + len(first[1]) == rows
    assert len(first[1]) == math.ceil(0.1 * rows)
    assert not set(first[0]) & set(first[1])


def test_validation_fraction(make_file):
    train = make_file("train.csv", many(MIN_HOLDOUT_TRAIN, ["neg", "pos"]))
    data = load_files(DataConfig(train_file=str(train), validation_fraction=0.25))
    assert (len(data.splits["train"]), len(data.splits["validation"])) == (MIN_HOLDOUT_TRAIN * 3 // 4,
                                                                           MIN_HOLDOUT_TRAIN // 4)
    assert "0.25 of" in data.sources["validation"] and not data.validation_is_train


def test_a_small_file_without_validation_is_not_split(make_file):
    """Below MIN_HOLDOUT_TRAIN examples every example trains; the validation split is the training data, flagged."""
    train = make_file("train.csv", many(MIN_HOLDOUT_TRAIN - 1, ["neg", "pos"]))
    data = load_files(DataConfig(train_file=str(train)))
    assert len(data.splits["train"]) == len(data.splits["validation"]) == MIN_HOLDOUT_TRAIN - 1
    assert data.validation_is_train and "the training data itself" in data.sources["validation"]
    with_file = load_files(DataConfig(train_file=str(train), validation_file=str(train)))
    assert not with_file.validation_is_train


def test_a_search_holds_out_however_small(make_file):
    """``min_holdout_train=0`` (a hyperparameter search) holds a seeded fraction out of even 40 texts."""
    train = make_file("train.csv", many(40, ["neg", "pos"]))
    data = load_recipe_data(load_recipe(str(train), ["max_seq_length=16"]), min_holdout_train=0)
    assert (len(data.splits["train"]), len(data.splits["validation"])) == (36, 4) and not data.validation_is_train


def test_sample_caps(make_file):
    train = make_file("train.csv", many(40, ["neg", "pos"]))
    recipe = load_recipe(str(train), ["max_train_samples=10", "max_eval_samples=3", "max_seq_length=16"])
    data = load_recipe_data(recipe)
    assert (len(data.splits["train"]), len(data.splits["validation"])) == (10, 3)


# --- user files: bad input, each named with file and line or column ---------------------------------------------

def test_missing_file(tmp_path):
    path = tmp_path / "nope.csv"
    with pytest.raises(DataError, match="file not found") as err:
        load_files(DataConfig(train_file=str(path)))
    assert str(path) in str(err.value)


def test_missing_validation_file(make_file, tmp_path):
    train = make_file("train.csv", many(4, ["a", "b"]))
    with pytest.raises(DataError, match="valid.csv: file not found"):
        load_files(DataConfig(train_file=str(train), validation_file=str(tmp_path / "valid.csv")))


def test_missing_text_column(make_file):
    train = make_file("train.csv", [{"review": "good", "label": "pos"}, {"review": "bad", "label": "neg"}])
    with pytest.raises(DataError, match="text column") as err:
        load_files(DataConfig(train_file=str(train)))
    assert str(train) in str(err.value) and "review" in str(err.value)


def test_configured_text_column_missing(make_file):
    train = make_file("train.csv", many(4, ["a", "b"]))
    with pytest.raises(DataError, match="'body'") as err:
        load_files(DataConfig(train_file=str(train), text_column="body"))
    assert str(train) in str(err.value)


def test_missing_label_column(make_file):
    train = make_file("train.csv", [{"text": "good", "stars": 5}, {"text": "bad", "stars": 1}])
    with pytest.raises(DataError, match="no column 'label'") as err:
        load_files(DataConfig(train_file=str(train)))
    assert str(train) in str(err.value) and "label_column" in str(err.value)


def test_validation_file_missing_a_column(make_file):
    train = make_file("train.csv", many(4, ["a", "b"]))
    valid = make_file("valid.csv", [{"body": "x", "label": "a"}])
    with pytest.raises(DataError, match="no column 'text'") as err:
        load_files(DataConfig(train_file=str(train), validation_file=str(valid)))
    assert str(valid) in str(err.value)


@pytest.mark.parametrize("empty", ["", "   "])
def test_empty_text_reports_the_csv_line(make_file, empty):
    table = many(6, ["neg", "pos"])
    table[3]["text"] = empty  # data row 3 is CSV line 5 (line 1 is the header)
    train = make_file("train.csv", table)
    with pytest.raises(DataError, match="empty text") as err:
        load_files(DataConfig(train_file=str(train)))
    assert f"{train} line 5:" in str(err.value)


def test_empty_text_reports_the_jsonl_line(make_file):
    table = many(6, ["neg", "pos"])
    table[2]["text"] = None
    train = make_file("train.jsonl", table)
    with pytest.raises(DataError, match="empty text") as err:
        load_files(DataConfig(train_file=str(train)))
    assert f"{train} line 3:" in str(err.value)


def test_empty_text_in_the_pair_column(make_file):
    table = [{"sentence1": f"s{i}", "sentence2": "x" if i != 1 else "", "label": i % 2} for i in range(4)]
    train = make_file("train.csv", table)
    with pytest.raises(DataError, match="'sentence2'") as err:
        load_files(DataConfig(train_file=str(train)))
    assert f"{train} line 3:" in str(err.value)


def test_non_utf8_file_reports_the_line(tmp_path):
    path = tmp_path / "latin1.csv"
    path.write_bytes("text,label\ngood,pos\nbad,neg\ncaf\u00e9 cr\u00e8me,pos\n".encode("latin-1"))
    with pytest.raises(DataError, match="not valid UTF-8") as err:
        load_files(DataConfig(train_file=str(path)))
    assert f"{path}: line 4 " in str(err.value)


def test_unknown_label_in_the_validation_file(make_file):
    train = make_file("train.csv", many(6, ["neg", "pos"]))
    valid = make_file("valid.csv", rows(["a", "b", "c"], ["neg", "pos", "positive"]))
    with pytest.raises(DataError, match="unknown label 'positive'") as err:
        load_files(DataConfig(train_file=str(train), validation_file=str(valid)))
    assert f"{valid} line 4:" in str(err.value)
    assert "neg, pos" in str(err.value)


def test_label_minus_one_in_the_validation_file(make_file):
    train = make_file("train.csv", many(6, [0, 1]))
    valid = make_file("valid.csv", rows(["a", "b"], [1, -1]))
    with pytest.raises(DataError, match="label -1") as err:
        load_files(DataConfig(train_file=str(train), validation_file=str(valid)))
    assert f"{valid} line 3:" in str(err.value)


def test_label_minus_one_in_the_train_file(make_file):
    train = make_file("train.csv", rows(["a", "b", "c", "d"], [0, 1, -1, 1]))
    with pytest.raises(DataError, match="label -1") as err:
        load_files(DataConfig(train_file=str(train)))
    assert f"{train} line 4:" in str(err.value)


def test_missing_label_value(make_file):
    train = make_file("train.csv", rows(["a", "b", "c"], ["pos", None, "neg"]))
    with pytest.raises(DataError, match="missing label") as err:
        load_files(DataConfig(train_file=str(train)))
    assert f"{train} line 3:" in str(err.value)


def test_a_single_class_is_not_enough(make_file):
    train = make_file("train.csv", rows(["a", "b"], ["pos", "pos"]))
    with pytest.raises(DataError, match="at least 2"):
        load_files(DataConfig(train_file=str(train)))


def test_unparseable_file(tmp_path):
    path = tmp_path / "broken.jsonl"
    path.write_text('{"text": "a", "label": 1}\n{"text": \n')
    with pytest.raises(DataError, match="cannot be read as jsonl") as err:
        read_table(path)
    assert str(path) in str(err.value)


# --- registry tasks from a local mirror -------------------------------------------------------------------------

def sst2_rows(labels, start=0):
    return [{"sentence": f"sentence {start + i}", "label": y, "idx": start + i} for i, y in enumerate(labels)]


def test_task_from_a_mirror(make_mirror):
    mirror = make_mirror("glue-sst2", train=sst2_rows([0, 1, 1, 0]), validation=sst2_rows([1, 0], start=10))
    data = load_task(get_task("sst2"), str(mirror))
    assert data.splits["train"].column_names == ["sentence", "label"]
    assert data.splits["train"]["label"] == [0, 1, 1, 0]
    assert data.splits["validation"]["sentence"] == ["sentence 10", "sentence 11"]
    assert data.label_names == ["negative", "positive"]
    assert data.sources["validation"] == "sst2/validation"


def test_mirror_from_the_environment(make_mirror, monkeypatch):
    mirror = make_mirror("glue-sst2", train=sst2_rows([0, 1]), validation=sst2_rows([1, 0]))
    monkeypatch.setenv(DATA_DIR_ENV, str(mirror))
    assert len(load_task(get_task("sst2")).splits["train"]) == 2


@pytest.mark.parametrize("bad, message", [(2, "label 2 is out of range"), (-1, "label -1")])
def test_bad_label_in_a_mirror_train_split(make_mirror, bad, message):
    mirror = make_mirror("glue-sst2", train=sst2_rows([0, 1, 1, bad, 0]), validation=sst2_rows([1, 0]))
    with pytest.raises(DataError, match=message) as err:
        load_task(get_task("sst2"), str(mirror))
    assert "sst2/train row 3" in str(err.value)


def test_bad_label_in_a_mirror_validation_split(make_mirror):
    mirror = make_mirror("glue-mnli", train=[{"premise": "p", "hypothesis": "h", "label": 0}],
                         validation_matched=[{"premise": "p", "hypothesis": "h", "label": 3}])
    with pytest.raises(DataError, match="mnli/validation_matched row 0: label 3 is out of range"):
        load_task(get_task("mnli"), str(mirror))


def test_empty_text_in_a_mirror(make_mirror):
    train = sst2_rows([0, 1, 0])
    train[1]["sentence"] = " "
    mirror = make_mirror("glue-sst2", train=train, validation=sst2_rows([1, 0]))
    with pytest.raises(DataError, match="sst2/train row 1: empty text in column 'sentence'"):
        load_task(get_task("sst2"), str(mirror))


def test_unlabelled_test_split_is_allowed(make_mirror):
    mirror = make_mirror("glue-sst2", train=sst2_rows([0, 1]), validation=sst2_rows([1, 0]),
                         test=sst2_rows([-1, -1, -1]))
    data = load_task(get_task("sst2"), str(mirror), with_test=True)
    assert data.splits["test"]["label"] == [-1, -1, -1]


def test_task_without_validation_split_carves_one(make_mirror):
    mirror = make_mirror("imdb", train=[{"text": f"review {i}", "label": i % 2} for i in range(50)])
    first = load_task(get_task("imdb"), str(mirror), seed=3, validation_fraction=0.2)
    again = load_task(get_task("imdb"), str(mirror), seed=3, validation_fraction=0.2)
    assert len(first.splits["validation"]) == 10 and len(first.splits["train"]) == 40
    assert first.splits["validation"]["text"] == again.splits["validation"]["text"]
    assert "seed 3" in first.sources["validation"]


def test_regression_task_labels_are_float(make_mirror):
    pairs = [{"sentence1": "a", "sentence2": "b", "label": 3.5}, {"sentence1": "c", "sentence2": "d", "label": 0.0}]
    mirror = make_mirror("glue-stsb", train=pairs, validation=pairs)
    data = load_task(get_task("stsb"), str(mirror))
    assert data.splits["train"].features["label"].dtype == "float32"
    assert data.splits["train"]["label"] == [3.5, 0.0]


def test_multi_label_task_gets_multi_hot_labels(make_mirror):
    table = [{"text": "wow", "labels": [0, 27], "id": "a"}, {"text": "ok", "labels": [27], "id": "b"}]
    mirror = make_mirror("goemotions", train=table, validation=table)
    data = load_task(get_task("goemotions"), str(mirror))
    label = data.splits["train"]["label"]
    assert len(label[0]) == 28 and label[0][0] == label[0][27] == 1.0 and sum(label[0]) == 2.0
    assert sum(label[1]) == 1.0


def test_split_missing_from_the_mirror_offline(make_mirror):
    mirror = make_mirror("glue-qqp", validation=[{"question1": "a", "question2": "b", "label": 0}])
    with pytest.raises(DataError) as err:
        load_task_split(get_task("qqp"), "train", str(mirror))
    message = str(err.value)
    assert DATA_DIR_ENV in message
    assert str(mirror / "glue-qqp" / "train.parquet") in message
    assert "\n" not in message


def test_mirror_directory_missing_offline(tmp_path, datasets_cache):
    with pytest.raises(DataError, match="does not exist") as err:
        load_task(get_task("rte"), str(tmp_path / "no-mirror"))
    assert DATA_DIR_ENV in str(err.value)


def test_real_sst2_mirror(data_dir, datasets_cache):
    data = load_task(get_task("sst2"), str(data_dir))
    assert len(data.splits["train"]) == 67349
    assert len(data.splits["validation"]) == 872
    assert data.splits["train"].column_names == ["sentence", "label"]
    assert set(data.splits["validation"].unique("label")) == {0, 1}


# --- evaluation data, tokenization, examples -------------------------------------------------------------------

def test_eval_data_from_a_file_uses_the_checkpoint_labels(make_file):
    path = make_file("eval.csv", rows(["a", "b", "c"], ["pos", "neg", "pos"]))
    data = load_eval_data(str(path), ["neg", "neu", "pos"], SINGLE_LABEL)
    assert data.splits["validation"]["label"] == [2, 0, 2]
    with pytest.raises(DataError, match="unknown label 'pos'"):
        load_eval_data(str(path), ["negative", "positive"], SINGLE_LABEL)


def test_eval_data_needs_a_label_column(make_file):
    path = make_file("eval.csv", [{"text": "a"}])
    with pytest.raises(DataError, match="no label column 'label'"):
        load_eval_data(str(path), ["neg", "pos"], SINGLE_LABEL)


def test_eval_data_unknown_task():
    with pytest.raises(DataError, match="unknown task"):
        load_eval_data("nosuchtask", ["neg", "pos"], SINGLE_LABEL)


def test_tokenize_truncates_and_keeps_the_label(bundled_tokenizer, make_file):
    train = make_file("train.csv", [{"sentence1": "word " * 50, "sentence2": "other " * 50, "label": 0},
                                    {"sentence1": "short", "sentence2": "pair", "label": 1}])
    data = load_files(DataConfig(train_file=str(train), validation_file=str(train)))
    encoded = tokenize(data.splits["train"], bundled_tokenizer, data.text_columns, max_seq_length=16)
    assert set(encoded.column_names) == {"input_ids", "attention_mask", "token_type_ids", "label"}
    assert [len(ids) for ids in encoded["input_ids"]] == [16, 5]  # [CLS] short [SEP] pair [SEP]
    assert encoded["token_type_ids"][1] == [0, 0, 0, 1, 1]
    assert encoded["label"] == [0, 1]


def test_random_examples_show_label_names(make_file):
    train = make_file("train.csv", many(20, ["neg", "pos"]))
    data = load_files(DataConfig(train_file=str(train)))
    examples = random_examples(data, n=5, seed=0)
    assert len(examples) == 5 and len({e["text"] for e in examples}) == 5
    by_text = {r["text"]: r["label"] for r in many(20, ["neg", "pos"])}
    assert all(e["label"] == by_text[e["text"]] for e in examples)
    assert random_examples(data, n=5, seed=0) == examples


def test_random_examples_multi_label(make_file):
    train = make_file("train.jsonl", rows(["a", "b"], [["joy", "anger"], ["joy"]]))
    data = load_files(DataConfig(train_file=str(train), validation_file=str(train)))
    examples = {e["text"]: e["label"] for e in random_examples(data, n=2, seed=0)}
    assert examples == {"a": ["anger", "joy"], "b": ["joy"]}


def test_labels_are_numpy_ready(make_file):
    train = make_file("train.csv", many(10, ["neg", "pos"]))
    data = load_files(DataConfig(train_file=str(train)))
    labels = np.asarray(data.splits["train"]["label"])
    assert labels.dtype == np.int64 and set(labels.tolist()) == {0, 1}
