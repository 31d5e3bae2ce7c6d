"""Predictor: the same labels and scores as ``transformers.pipeline``, in input order, from a checkpoint directory."""

from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pytest
import torch
from transformers import pipeline

from textclf.errors import ConfigError, DataError, ModelError
from textclf.inference import Predictor
from textclf.inference.predictor import length_batches, rows_to_texts
from textclf.modeling import label_maps, load_model, load_tokenizer
from textclf.reports.rundir import write_jsonl
from textclf.tasks import MULTI_LABEL, REGRESSION, SINGLE_LABEL

# From 1 to about 120 tokens, long and short interleaved so length-sorted batching has to restore the order.
TEXTS = [
    "ok",
    "the film was a long, slow and strangely moving meditation on grief and memory " * 7,
    "bad",
    "a fine cast wasted on a script that never decides what it wants to be",
    "wonderful!",
    "x y z",
    "I did not expect to like it, but the second half won me over completely.",
    "meh",
    "a " * 60 + "film",
]


@pytest.fixture(scope="module")
def predictor(classifier_dir):
    return Predictor.from_pretrained(classifier_dir, batch_size=2)


@pytest.fixture(scope="module")
def reference(classifier_dir):
    return pipeline("text-classification", model=str(classifier_dir), device=-1)


def assert_same(ours, theirs):
    assert len(ours) == len(theirs)
    for mine, ref in zip(ours, theirs):
        assert mine["label"] == ref["label"]
        assert mine["score"] == pytest.approx(ref["score"], abs=1e-5)


def test_matches_the_pipeline_in_input_order(predictor, reference):
    ours = predictor.predict(TEXTS)
    assert_same(ours, reference(TEXTS))
    assert len({r["label"] for r in ours}) > 1  # the checkpoint's outputs vary, so a misplaced row would show
    assert len({round(r["score"], 3) for r in ours}) == len(TEXTS)


def test_matches_the_pipeline_for_sentence_pairs(predictor, reference):
    pairs = [("a man plays a guitar", "a person plays music"), ("no", "the long second sentence " * 20),
             ("cats", "dogs"), ("a " * 40, "b")]
    assert_same(predictor.predict(pairs), reference([{"text": a, "text_pair": b} for a, b in pairs]))


def test_pair_order_matters(predictor):
    forward = predictor.logits([("a man plays a guitar", "the long second sentence")])
    backward = predictor.logits([("the long second sentence", "a man plays a guitar")])
    assert not np.allclose(forward, backward)


def test_single_text_returns_one_result_and_a_list_returns_a_list(predictor):
    one = predictor.predict("wonderful!")
    assert isinstance(one, dict) and set(one) == {"label", "score"}
    many = predictor.predict(["wonderful!"])
    assert isinstance(many, list) and many == [one]
    pair = predictor.predict(("a man plays a guitar", "a person plays music"))
    assert isinstance(pair, dict)
    assert predictor.predict([]) == []


def test_batch_size_does_not_change_results(classifier_dir, predictor):
    one_by_one = Predictor.from_pretrained(classifier_dir, batch_size=1).logits(TEXTS)
    all_at_once = Predictor.from_pretrained(classifier_dir, batch_size=64).logits(TEXTS)
    assert one_by_one.shape == (len(TEXTS), 3) and one_by_one.dtype == np.float32
    np.testing.assert_allclose(one_by_one, all_at_once, atol=1e-5)
    np.testing.assert_allclose(predictor.logits(TEXTS), all_at_once, atol=1e-5)


def test_token_budget_and_padding_to_a_multiple_of_8_do_not_change_results(classifier_dir):
    unbatched = Predictor.from_pretrained(classifier_dir, batch_size=1, max_batch_tokens=None)
    budgeted = Predictor.from_pretrained(classifier_dir, batch_size=64, max_batch_tokens=40)
    assert budgeted.pad_to_multiple_of == 8
    np.testing.assert_allclose(budgeted.logits(TEXTS), unbatched.logits(TEXTS), atol=1e-5)
    # A max_seq_length that is not a multiple of 8 is never padded past.
    assert Predictor.from_pretrained(classifier_dir, max_seq_length=10).pad_to_multiple_of is None


def test_length_batches_respect_the_row_and_token_limits():
    lengths = np.array([5, 100, 30, 30, 7, 400, 30, 1])
    order = np.argsort(-lengths, kind="stable")
    batches = length_batches(lengths, order, batch_size=3, max_batch_tokens=64)
    np.testing.assert_array_equal(np.concatenate(batches), order)  # every row once, in the given order
    assert [lengths[b].tolist() for b in batches] == [[400], [100], [30, 30], [30, 7], [5, 1]]
    for batch in batches:
        assert len(batch) <= 3
        assert len(batch) == 1 or len(batch) * lengths[batch].max() <= 64  # an over-long row goes alone
    fixed = length_batches(lengths, order, batch_size=3, max_batch_tokens=None)
    assert [len(b) for b in fixed] == [3, 3, 2]


def test_batch_limits_must_be_positive(classifier_dir):
    with pytest.raises(ConfigError, match="batch_size=0"):
        Predictor.from_pretrained(classifier_dir, batch_size=0)
    with pytest.raises(ConfigError, match="max_batch_tokens=0"):
        Predictor.from_pretrained(classifier_dir, max_batch_tokens=0)


def test_scores_are_softmax_probabilities_of_the_top_class(predictor):
    logits = predictor.logits(TEXTS[:3]).astype(np.float64)
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    for row, result in zip(probabilities, predictor.predict(TEXTS[:3])):
        assert result["label"] == predictor.label_names[int(row.argmax())]
        assert result["score"] == pytest.approx(row.max(), abs=1e-6)


def test_truncates_to_max_seq_length_like_the_pipeline(classifier_dir, reference):
    long_text = "the film was a long, slow and strangely moving meditation on grief " * 5
    short = Predictor.from_pretrained(classifier_dir, max_seq_length=8)
    assert short.max_seq_length == 8
    assert_same(short.predict([long_text]), reference([long_text], truncation=True, max_length=8))
    assert short.predict(long_text) != Predictor.from_pretrained(classifier_dir).predict(long_text)


def test_max_seq_length_stored_in_the_checkpoint_is_used(tiny_model_dir, tmp_path):
    model = load_model(str(tiny_model_dir), ["a", "b"], SINGLE_LABEL, extra_config={"textclf": {"max_seq_length": 24}})
    model.save_pretrained(tmp_path)
    load_tokenizer(str(tiny_model_dir)).save_pretrained(tmp_path)
    predictor = Predictor.from_pretrained(tmp_path)
    assert predictor.max_seq_length == 24
    assert predictor.label_names == ["a", "b"]


def test_label_names_come_from_the_checkpoint(predictor):
    assert predictor.label_names == ["neg", "neu", "pos"]
    assert predictor.problem_type == SINGLE_LABEL


def test_regression_output(tiny_model_dir):
    model = load_model(str(tiny_model_dir), [], REGRESSION)
    predictor = Predictor(model, load_tokenizer(str(tiny_model_dir)))
    assert predictor.format(np.array([[1.75], [-0.5]], dtype=np.float32)) == [{"label": "score", "score": 1.75},
                                                                              {"label": "score", "score": -0.5}]
    assert set(predictor.predict("a text")) == {"label", "score"}


def test_multi_label_output_lists_labels_over_the_threshold(tiny_model_dir):
    model = load_model(str(tiny_model_dir), ["anger", "joy", "love"], MULTI_LABEL)
    predictor = Predictor(model, load_tokenizer(str(tiny_model_dir)))
    sigmoid = lambda x: 1 / (1 + math.exp(-x))
    formatted = predictor.format(np.array([[0.5, -1.0, 2.0], [-3.0, -1.0, -0.1]]))
    assert formatted[0] == [{"label": "love", "score": pytest.approx(sigmoid(2.0))},
                            {"label": "anger", "score": pytest.approx(sigmoid(0.5))}]
    assert formatted[1] == []


def test_from_pretrained_on_a_directory_that_is_not_a_checkpoint(tmp_path):
    with pytest.raises(ModelError, match="not a checkpoint directory"):
        Predictor.from_pretrained(tmp_path)
    with pytest.raises(ModelError, match="not a checkpoint directory"):
        Predictor.from_pretrained(tmp_path / "missing")


def test_from_pretrained_on_a_directory_without_weights(classifier_dir, tmp_path):
    shutil.copy(classifier_dir / "config.json", tmp_path / "config.json")
    with pytest.raises(ModelError):
        Predictor.from_pretrained(tmp_path)


def test_label_maps_derive_from_one_list():
    assert label_maps(["neg", "pos"], SINGLE_LABEL) == ({0: "neg", 1: "pos"}, {"neg": 0, "pos": 1})
    assert label_maps(["ignored"], REGRESSION) == ({0: "score"}, {"score": 0})


def test_load_model_writes_labels_and_problem_type_into_the_config(tiny_model_dir):
    model = load_model(str(tiny_model_dir), ["x", "y", "z"], MULTI_LABEL)
    assert model.config.num_labels == 3
    assert model.config.id2label == {0: "x", 1: "y", 2: "z"}
    assert model.config.label2id == {"x": 0, "y": 1, "z": 2}
    assert model.config.problem_type == MULTI_LABEL


def test_load_model_on_a_missing_path_is_a_model_error(tmp_path):
    with pytest.raises(ModelError, match="cannot load model"):
        load_model(str(tmp_path / "missing"), ["a", "b"], SINGLE_LABEL)


def test_rows_to_texts():
    assert rows_to_texts({"text": ["a", 1]}, ["text"]) == ["a", "1"]
    assert rows_to_texts({"s1": ["a", "b"], "s2": ["c", "d"]}, ["s1", "s2"]) == [("a", "c"), ("b", "d")]


def test_write_jsonl(tmp_path):
    rows = [{"label": "pos", "score": 0.5}, {"text": "caf\u00e9 \u2013 ok"}]
    write_jsonl(tmp_path / "out.jsonl", rows)
    lines = (tmp_path / "out.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.loads(line) for line in lines] == rows
    assert "caf\u00e9" in lines[1]


# --- bf16 ------------------------------------------------------------------------------------------------------

def test_bf16_predictor_matches_fp32_within_bf16_precision(classifier_dir, monkeypatch):
    import textclf.inference.predictor

    monkeypatch.setattr(textclf.inference.predictor, "bf16_available", lambda: True)  # bf16 matmuls also run (emulated) without
    texts = [f"text number {i} " + "word " * (i % 13) for i in range(40)]
    fp32 = Predictor.from_pretrained(classifier_dir).logits(texts)
    predictor = Predictor.from_pretrained(classifier_dir, precision="bf16")
    assert next(predictor.model.parameters()).dtype == torch.bfloat16
    bf16 = predictor.logits(texts)
    assert bf16.dtype == np.float32 and bf16.shape == fp32.shape
    np.testing.assert_allclose(bf16, fp32, atol=0.05)  # bf16 keeps 8 significant bits
    assert not np.array_equal(bf16, fp32)  # it really ran in bf16
    assert (bf16.argmax(1) == fp32.argmax(1)).mean() >= 0.9


def test_bf16_is_refused_without_native_support_and_unknown_precision(classifier_dir, monkeypatch):
    import textclf.inference.predictor
    from textclf.errors import ConfigError

    monkeypatch.setattr(textclf.inference.predictor, "bf16_available", lambda: False)
    with pytest.raises(ConfigError, match="precision=bf16 needs native bf16"):
        Predictor.from_pretrained(classifier_dir, precision="bf16")
    with pytest.raises(ConfigError, match="precision='fp16' is not allowed"):
        Predictor.from_pretrained(classifier_dir, precision="fp16")


def test_a_text_that_is_not_valid_unicode_is_a_data_error_naming_it(classifier_dir):
    predictor = Predictor.from_pretrained(classifier_dir)
    with pytest.raises(DataError, match=r"text 1 is not valid Unicode: code point U\+DCFF at character 3"):
        predictor.logits(["fine", "bad\udcff text"])
    with pytest.raises(DataError, match="text 0 is NoneType, not a string"):
        predictor.logits([("a", None)])
