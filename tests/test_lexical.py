"""TF-IDF of the encoder's word pieces (textclf.lexical): equal to scikit-learn's, chosen for languages the
encoder's vocabulary does not know, and carried through a head checkpoint to prediction."""

from __future__ import annotations

import itertools
import json

import datasets
import numpy as np
import pandas as pd
import pytest
import torch
from conftest import fast_overrides, read_jsonl, sentiment_rows
from safetensors import safe_open
from sklearn.feature_extraction.text import TfidfVectorizer

from textclf.config import load_recipe
from textclf.data.loading import TaskData
from textclf.errors import ConfigError
from textclf.inference import Predictor
from textclf.lexical import SPLIT_WORDS_UNKNOWN, continuation_token_ids, fit_lexical_features, split_word_fraction
from textclf.modeling import EMBEDDING_HEAD_FILE
from textclf.tasks import SINGLE_LABEL
from textclf.training import train
from textclf.training.run import choose_method, resolve_lexical

TEXTS = ["the film was good , really good", "a dull , dull film", "Good acting and a good story",
         "rumah makan ini enak sekali", "pelayanannya sangat lambat dan mengecewakan", "good"]


def reference_tfidf(tokenizer, train_texts, other_texts, max_length, words=False):
    """scikit-learn's TfidfVectorizer over the same word-piece unigrams and bigrams, its columns named by the raw
    feature ids textclf.lexical uses; ``words``: over the words the pieces spell (``##`` pieces joined), columns
    named by the words."""
    special = set(tokenizer.all_special_ids)
    vocab = max(len(tokenizer), max(tokenizer.get_vocab().values()) + 1)

    def pieces(text):
        ids = [i for i in tokenizer(text, truncation=True, max_length=max_length)["input_ids"] if i not in special]
        return [str(i) for i in ids] + [str(vocab * (1 + a) + b) for a, b in itertools.pairwise(ids)]

    def spelled(text):
        spelt = []
        for piece in tokenizer.convert_ids_to_tokens(tokenizer(text, truncation=True,
                                                               max_length=max_length)["input_ids"][1:-1]):
            if piece.startswith("##") and spelt:
                spelt[-1] += piece[2:]
            else:
                spelt.append(piece)
        return spelt + [f"{a} {b}" for a, b in itertools.pairwise(spelt)]

    vectorizer = TfidfVectorizer(analyzer=spelled if words else pieces, sublinear_tf=True).fit(train_texts)
    if words:
        return vectorizer.get_feature_names_out(), vectorizer.transform(train_texts), vectorizer.transform(other_texts)
    columns = np.array([int(name) for name in vectorizer.get_feature_names_out()])
    order = np.argsort(columns)
    return columns[order], vectorizer.transform(train_texts)[:, order], vectorizer.transform(other_texts)[:, order]


def test_lexical_features_equal_scikit_learns_tfidf_of_the_word_pieces_and_words(bundled_tokenizer):
    module, matrix = fit_lexical_features(bundled_tokenizer, TEXTS, max_seq_length=12, batch_size=4)
    new_texts = ["good food , dull story", "zzz unseen"]
    # New texts, padded in one batch: unseen features are dropped before the normalisation, as scikit-learn does.
    batch = bundled_tokenizer(new_texts, truncation=True, max_length=12, padding=True, return_tensors="pt")
    with torch.inference_mode():
        new = module(batch["input_ids"], batch["attention_mask"]).numpy()
    words = (module.feature_ids < 0).numpy()
    columns, expected_train, expected_new = reference_tfidf(bundled_tokenizer, TEXTS, new_texts, 12)
    np.testing.assert_array_equal(module.feature_ids.numpy()[~words], columns)
    np.testing.assert_allclose(matrix.toarray()[:, ~words], expected_train.toarray(), atol=1e-6)
    np.testing.assert_allclose(new[:, ~words], expected_new.toarray(), atol=1e-6)
    assert np.linalg.norm(new[0, ~words]) == pytest.approx(1.0, abs=1e-6)
    # The word block: one column per distinct word and word bigram (no two share a hash), each row the same values
    # as scikit-learn's over the spelled words (the columns are named by hashes, so compared as sorted rows).
    names, expected_train, expected_new = reference_tfidf(bundled_tokenizer, TEXTS, new_texts, 12, words=True)
    assert words.sum() == len(names) and {"pelayanannya", "really good"} <= set(names)
    for got, expected in ((matrix.toarray()[:, words], expected_train.toarray()),
                          (new[:, words], expected_new.toarray())):
        np.testing.assert_allclose(np.sort(got, axis=1), np.sort(expected, axis=1), atol=1e-6)
    assert np.linalg.norm(new[0, words]) == pytest.approx(1.0, abs=1e-6)


class Vocabulary:
    def __init__(self, pieces):
        self.pieces = pieces

    def get_vocab(self):
        return {piece: i for i, piece in enumerate(self.pieces)}


def test_continuation_pieces_follow_each_tokenizers_word_marks(bundled_tokenizer):
    wordpiece = continuation_token_ids(bundled_tokenizer)
    assert set(bundled_tokenizer.convert_tokens_to_ids(["##s", "##ing"])) <= set(wordpiece.tolist())
    assert bundled_tokenizer.convert_tokens_to_ids("good") not in wordpiece.tolist()
    # SentencePiece marks a word's start with U+2581 and byte-level BPE with U+0120: the unmarked pieces continue.
    assert continuation_token_ids(Vocabulary(["<s>", "\u2581good", "\u2581fil", "m", "s"])).tolist() == [0, 3, 4]
    assert continuation_token_ids(Vocabulary(["\u0120good", "\u0120fil", "m"])).tolist() == [2]
    assert continuation_token_ids(Vocabulary(["good", "film"])).tolist() == []


def test_split_words_tell_the_encoders_language_from_others(bundled_tokenizer, data_dir):
    english = pd.read_parquet(data_dir / "glue-sst2" / "train.parquet")["sentence"].head(500).tolist()
    indonesian = pd.read_parquet(data_dir / "indonlu-smsa" / "train.parquet")["text"].head(500).tolist()
    assert split_word_fraction(bundled_tokenizer, english) < SPLIT_WORDS_UNKNOWN / 2
    assert split_word_fraction(bundled_tokenizer, indonesian) > 2 * SPLIT_WORDS_UNKNOWN
    assert split_word_fraction(bundled_tokenizer, ["123 456", ""]) == 0.0


def small_task(texts, labels) -> TaskData:
    split = datasets.Dataset.from_dict({"text": texts, "label": labels})
    return TaskData(name="toy", splits={"train": split, "validation": split}, text_columns=("text",),
                    label_names=["negative", "neutral", "positive"], problem_type=SINGLE_LABEL,
                    metrics=("accuracy",), metric_for_best_model="accuracy")


def test_auto_gives_an_unknown_language_a_head_with_lexical_features_at_every_size(bundled_tokenizer, data_dir):
    frames = {"smsa": pd.read_parquet(data_dir / "indonlu-smsa" / "train.parquet"),
              "sst2": pd.read_parquet(data_dir / "glue-sst2" / "train.parquet").rename(columns={"sentence": "text"})}
    recipe = load_recipe("sst2", [])
    for name, per_class, expected_method, expected_lexical in (("smsa", 16, "head", True), ("smsa", 200, "head", True),
                                                               ("sst2", 16, "setfit", False),
                                                               ("sst2", 200, "finetune", False)):
        frame = frames[name].groupby("label").head(per_class)
        data = small_task(frame["text"].tolist(), frame["label"].tolist())
        method, reason = choose_method(recipe, data)
        assert method == expected_method, reason
        if method != "finetune":
            lexical, why = resolve_lexical(recipe, data, method, bundled_tokenizer)
            assert lexical is expected_lexical and "%" in why
    assert resolve_lexical(load_recipe("sst2", ["lexical=false"]), data, "head", bundled_tokenizer)[0] is False
    assert resolve_lexical(load_recipe("sst2", ["lexical=true"]), data, "setfit", bundled_tokenizer)[0] is True
    with pytest.raises(ConfigError, match="lexical=true adds TF-IDF features to the head"):
        resolve_lexical(load_recipe("sst2", ["lexical=true"]), data, "finetune", bundled_tokenizer)


def test_a_head_with_lexical_features_learns_words_the_frozen_encoder_cannot_and_round_trips(
        tiny_model_dir, make_file, tmp_path):
    """A random frozen encoder knows no words; the TF-IDF block does: the toy task's classes share no words."""
    train_file = make_file("train.csv", sentiment_rows(32))
    validation_file = make_file("validation.csv", sentiment_rows(16, offset=1000))
    overrides = [o for o in fast_overrides(tiny_model_dir, f"validation_file={validation_file}")
                 if not o.startswith("method=")]
    result = train(load_recipe(str(train_file), [*overrides, "method=head", "lexical=true"]), tmp_path / "run")
    assert result.metrics["lexical"] is True and result.metrics["lexical_features"] > 10
    assert result.metrics["eval_accuracy"] == 1.0
    with safe_open(str(result.model_dir / EMBEDDING_HEAD_FILE), "pt") as tensors:
        names = set(tensors.keys())
    assert {"weight", "bias", "lexical_weight", "lexical_idf", "lexical_feature_ids"} <= names
    assert json.loads((result.model_dir / "config.json").read_text())["textclf"]["lexical"] is True
    predictor = Predictor.from_pretrained(result.model_dir)
    saved = read_jsonl(tmp_path / "run" / "predictions.jsonl")
    texts = [r["text"] for r in sentiment_rows(16, offset=1000)]
    assert [p["label"] for p in predictor.predict(texts)] == [row["predicted"] for row in saved]
    # The lexical block is part of the logits: without it the same checkpoint scores differently.
    with_lexical = predictor.logits(texts)
    predictor.model.lexical = None
    assert not np.allclose(predictor.logits(texts), with_lexical, atol=1e-4)
