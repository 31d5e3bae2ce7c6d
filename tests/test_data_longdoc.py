"""Long texts: head+tail truncation, sliding windows (chunks) and their pooling, in data, Predictor and training."""

from __future__ import annotations

import itertools
import json

import datasets
import numpy as np
import pytest
import torch
from conftest import sentiment_rows
from transformers import AutoModelForSequenceClassification

from textclf.config import load_recipe
from textclf.data.longdoc import SAMPLE_MAPPING, check_truncation, encode_texts, pool_chunks
from textclf.data.tokenization import tokenize
from textclf.errors import ConfigError
from textclf.evaluation import evaluate_checkpoint
from textclf.inference import Predictor
from textclf.training import train

# 300 distinct words with a literal "[SEP]" in the middle (content, not a special token): well over 32 tokens.
LONG = " ".join(f"word{i}" if i != 150 else "[SEP]" for i in range(300))
MIXED = ["ok", "the film was a long, slow and strangely moving meditation on grief and memory " * 4, "bad",
         "a fine cast wasted on a script that never decides what it wants to be, again and again", "x y z",
         "an utterly charming, witty and warm film " * 6]


def content_ids(tokenizer, text):
    """The text's token ids without special tokens: the reference every strategy cuts from."""
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def expected_windows(content, window, stride):
    """[start, stop) of each window as the fast tokenizers cut them: step ``window - stride`` from 0, until a window
    reaches the end."""
    starts, start = [], 0
    while True:
        starts.append(start)
        if start + window >= len(content):
            return [(s, min(s + window, len(content))) for s in starts]
        start += window - stride


# --- head_tail --------------------------------------------------------------------------------------------------

def test_head_tail_keeps_the_first_and_last_tokens_between_cls_and_sep(bundled_tokenizer):
    tok = bundled_tokenizer
    content = content_ids(tok, LONG)
    assert len(content) > 100 and tok.sep_token_id in content  # the literal [SEP] is content
    encoded = encode_texts(tok, [LONG], None, 32, truncation="head_tail", head_tokens=8)
    (ids,) = encoded["input_ids"]
    tail = 32 - 8 - 2
    assert len(ids) == 32
    assert ids == [tok.cls_token_id, *content[:8], *content[-tail:], tok.sep_token_id]
    assert encoded["attention_mask"] == [[1] * 32] and encoded["token_type_ids"] == [[0] * 32]
    assert encoded[SAMPLE_MAPPING] == [0]
    # and it differs from plain (head) truncation, which keeps the first 30 content tokens
    assert ids != tok(LONG, truncation=True, max_length=32)["input_ids"]


def test_head_tail_leaves_texts_that_fit_unchanged(bundled_tokenizer):
    tok = bundled_tokenizer
    fits = " ".join(f"word{i}" for i in range(60))
    exact = tok.decode(content_ids(tok, fits)[:30])  # 30 content tokens + [CLS] + [SEP] = 32 exactly
    texts = ["short text", exact, fits]
    encoded = encode_texts(tok, texts, None, 32, truncation="head_tail", head_tokens=8)
    plain = tok(texts, truncation=True, max_length=32)
    assert len(content_ids(tok, exact)) == 30
    assert encoded["input_ids"][:2] == plain["input_ids"][:2]
    assert encoded["input_ids"][2] != plain["input_ids"][2] and len(encoded["input_ids"][2]) == 32
    assert encoded[SAMPLE_MAPPING] == [0, 1, 2]


def test_head_is_the_tokenizers_own_truncation(bundled_tokenizer):
    encoded = encode_texts(bundled_tokenizer, MIXED, None, 16)
    assert encoded["input_ids"] == bundled_tokenizer(MIXED, truncation=True, max_length=16)["input_ids"]
    assert encoded[SAMPLE_MAPPING] == list(range(len(MIXED)))


# --- chunks -----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("max_seq_length, stride", [(32, 8), (16, 0), (12, 9)])
def test_chunks_are_the_expected_windows(bundled_tokenizer, max_seq_length, stride):
    tok = bundled_tokenizer
    texts = [LONG, "short", MIXED[1]]
    encoded = encode_texts(tok, texts, None, max_seq_length, truncation="chunks", stride=stride)
    mapping = encoded[SAMPLE_MAPPING]
    expected_ids, expected_mapping = [], []
    for index, text in enumerate(texts):
        content = content_ids(tok, text)
        for start, stop in expected_windows(content, max_seq_length - 2, stride):
            expected_ids.append([tok.cls_token_id, *content[start:stop], tok.sep_token_id])
            expected_mapping.append(index)
    assert encoded["input_ids"] == expected_ids
    assert mapping == expected_mapping
    assert mapping.count(1) == 1 and mapping.count(0) > 3  # the short text is one window, the long one many
    assert all(len(ids) <= max_seq_length for ids in encoded["input_ids"])
    # consecutive windows of a document share exactly `stride` content tokens
    first = [ids[1:-1] for ids, m in zip(encoded["input_ids"], mapping) if m == 0]
    if stride:
        assert all(a[-stride:] == b[:stride] for a, b in itertools.pairwise(first))


def test_pool_chunks_averages_the_rows_of_each_text():
    logits = np.array([[1.0, 2.0], [3.0, 6.0], [5.0, 1.0], [-1.0, 0.0], [0.0, 4.0], [2.0, 2.0]], dtype=np.float32)
    pooled = pool_chunks(logits, [0, 0, 1, 2, 2, 2], 3)
    assert pooled.dtype == np.float32 and pooled.shape == (3, 2)
    np.testing.assert_allclose(pooled, [[2.0, 4.0], [5.0, 1.0], [1 / 3, 2.0]], rtol=1e-6)


def per_chunk_logits(classifier_dir, tokenizer, text, max_seq_length, stride):
    """Each window of ``text`` through the model on its own (no batching, no padding): (num_windows, num_labels)."""
    model = AutoModelForSequenceClassification.from_pretrained(classifier_dir).eval()
    windows = tokenizer(text, truncation=True, max_length=max_seq_length, stride=stride,
                        return_overflowing_tokens=True)
    rows = []
    with torch.inference_mode():
        for i in range(len(windows["input_ids"])):
            inputs = {k: torch.tensor([windows[k][i]]) for k in ("input_ids", "attention_mask", "token_type_ids")}
            rows.append(model(**inputs).logits[0].numpy())
    return np.stack(rows)


def test_predictor_pools_chunk_logits_per_text_in_input_order(classifier_dir, bundled_tokenizer):
    predictor = Predictor.from_pretrained(classifier_dir, max_seq_length=16, truncation="chunks", stride=4,
                                          batch_size=3)
    logits = predictor.logits(MIXED)
    assert logits.shape == (len(MIXED), 3) and logits.dtype == np.float32
    several = 0
    for row, text in zip(logits, MIXED):
        chunks = per_chunk_logits(classifier_dir, bundled_tokenizer, text, 16, 4)
        np.testing.assert_allclose(row, chunks.mean(axis=0), atol=1e-5)
        if len(chunks) > 1:
            several += 1
            assert not np.allclose(row, chunks[0], atol=1e-3)  # pooling changed the answer: a real test
    assert several >= 3
    one_by_one = np.stack([predictor.logits([text])[0] for text in MIXED])
    np.testing.assert_allclose(logits, one_by_one, atol=1e-5)
    reversed_logits = predictor.logits(MIXED[::-1])
    np.testing.assert_allclose(reversed_logits[::-1], logits, atol=1e-5)


def test_predictor_reads_the_strategy_from_the_checkpoint_and_arguments_override_it(classifier_dir, bundled_tokenizer,
                                                                                    tmp_path):
    model = AutoModelForSequenceClassification.from_pretrained(classifier_dir)
    model.config.textclf = {"max_seq_length": 16, "truncation": "chunks", "head_tokens": 4, "stride": 4}
    model.save_pretrained(tmp_path)
    bundled_tokenizer.save_pretrained(tmp_path)
    stored = Predictor.from_pretrained(tmp_path)
    assert (stored.max_seq_length, stored.truncation, stored.head_tokens, stored.stride) == (16, "chunks", 4, 4)
    text = MIXED[1]
    chunks = per_chunk_logits(classifier_dir, bundled_tokenizer, text, 16, 4)
    np.testing.assert_allclose(stored.logits([text])[0], chunks.mean(axis=0), atol=1e-5)
    head = Predictor.from_pretrained(tmp_path, truncation="head")
    assert head.truncation == "head" and head.max_seq_length == 16
    np.testing.assert_allclose(head.logits([text])[0], chunks[0], atol=1e-5)  # head = the first window
    head_tail = Predictor.from_pretrained(tmp_path, truncation="head_tail")
    assert head_tail.head_tokens == 4
    assert not np.allclose(head_tail.logits([text]), head.logits([text]), atol=1e-4)
    legacy = Predictor.from_pretrained(classifier_dir)  # a checkpoint without the keys: today's behaviour
    assert (legacy.truncation, legacy.head_tokens, legacy.stride) == ("head", 128, 128)


def test_pairs_are_rejected_by_head_tail_and_chunks(classifier_dir, bundled_tokenizer):
    for truncation in ("head_tail", "chunks"):
        with pytest.raises(ConfigError, match=f"truncation={truncation} is for single texts"):
            encode_texts(bundled_tokenizer, ["a"], ["b"], 32, truncation=truncation, head_tokens=8, stride=8)
        predictor = Predictor.from_pretrained(classifier_dir, max_seq_length=32, truncation=truncation,
                                              head_tokens=8, stride=8)
        with pytest.raises(ConfigError, match="single texts"):
            predictor.logits([("a man plays", "a person plays")])
        ds = datasets.Dataset.from_dict({"s1": ["a"], "s2": ["b"], "label": [0]})
        with pytest.raises(ConfigError, match="single texts"):
            tokenize(ds, bundled_tokenizer, ("s1", "s2"), 32, truncation=truncation, head_tokens=8, stride=8)
    # head still handles pairs
    assert encode_texts(bundled_tokenizer, ["a"], ["b"], 32)["input_ids"] == [[101, 1037, 102, 1038, 102]]


def test_predictor_rejects_sizes_that_do_not_fit(classifier_dir):
    with pytest.raises(ConfigError, match="stride=14"):
        Predictor.from_pretrained(classifier_dir, max_seq_length=16, truncation="chunks", stride=14)
    with pytest.raises(ConfigError, match="head_tokens=20"):
        Predictor.from_pretrained(classifier_dir, max_seq_length=16, truncation="head_tail", head_tokens=20)


# --- tokenize (datasets) ----------------------------------------------------------------------------------------

def test_tokenize_chunks_gives_every_window_its_documents_label(bundled_tokenizer):
    texts = ["short one", LONG, "another short", MIXED[5]]
    ds = datasets.Dataset.from_dict({"text": texts, "label": [0, 1, 2, 1], "other": ["a", "b", "c", "d"]})
    encoded = tokenize(ds, bundled_tokenizer, ("text",), 32, truncation="chunks", stride=8)
    mapping = encode_texts(bundled_tokenizer, texts, None, 32, truncation="chunks", stride=8)[SAMPLE_MAPPING]
    assert len(encoded) == len(mapping) > len(ds)
    assert set(encoded.column_names) == {"input_ids", "attention_mask", "token_type_ids", "label"}
    assert encoded["label"] == [[0, 1, 2, 1][m] for m in mapping]
    assert encoded.features["label"] == ds.features["label"]
    assert max(len(ids) for ids in encoded["input_ids"]) == 32


def test_tokenize_chunks_keeps_float32_scores(bundled_tokenizer):
    ds = datasets.Dataset.from_dict({"text": [LONG, "short"], "label": [0.25, 3.5]})
    ds = ds.cast_column("label", datasets.Value("float32"))
    encoded = tokenize(ds, bundled_tokenizer, ("text",), 32, truncation="chunks", stride=8)
    assert encoded.features["label"] == datasets.Value("float32")
    assert encoded["label"][0] == 0.25 and encoded["label"][-1] == 3.5


def test_tokenize_head_tail_rows_and_fingerprints(bundled_tokenizer):
    ds = datasets.Dataset.from_dict({"text": [LONG, "short"], "label": [0, 1]})
    encoded = tokenize(ds, bundled_tokenizer, ("text",), 32, truncation="head_tail", head_tokens=8)
    assert encoded["input_ids"] == encode_texts(bundled_tokenizer, [LONG, "short"], None, 32,
                                                truncation="head_tail", head_tokens=8)["input_ids"]
    assert encoded["label"] == [0, 1]
    # the cache key is deterministic, and differs with the strategy and its sizes
    again = tokenize(ds, bundled_tokenizer, ("text",), 32, truncation="head_tail", head_tokens=8)
    assert again._fingerprint == encoded._fingerprint
    others = {tokenize(ds, bundled_tokenizer, ("text",), 32, truncation="head_tail", head_tokens=9)._fingerprint,
              tokenize(ds, bundled_tokenizer, ("text",), 32)._fingerprint,
              tokenize(ds, bundled_tokenizer, ("text",), 32, truncation="chunks", stride=8)._fingerprint,
              tokenize(ds, bundled_tokenizer, ("text",), 32, truncation="chunks", stride=9)._fingerprint}
    assert len(others) == 4 and encoded._fingerprint not in others


# --- training ---------------------------------------------------------------------------------------------------

def long_rows(n, offset=0):
    """Sentiment rows whose texts take 2-4 windows of 16 tokens."""
    return [{"text": " ".join([row["text"]] * 4), "label": row["label"]} for row in sentiment_rows(n, offset)]


def test_training_with_chunks_stores_the_strategy_and_predicts_with_it(fast_recipe, make_file, tmp_path):
    train_file = make_file("train.csv", long_rows(48))
    validation_file = make_file("validation.csv", long_rows(12, offset=1000))
    recipe = fast_recipe(train_file, f"validation_file={validation_file}", "truncation=chunks", "max_seq_length=16",
                         "stride=4")
    result = train(recipe, tmp_path / "run")
    config = json.loads((result.model_dir / "config.json").read_text())
    assert {k: config["textclf"][k] for k in ("truncation", "head_tokens", "stride", "max_seq_length")} == {
        "truncation": "chunks", "head_tokens": 128, "stride": 4, "max_seq_length": 16}
    predictor = Predictor.from_pretrained(result.model_dir)
    assert (predictor.truncation, predictor.stride, predictor.max_seq_length) == ("chunks", 4, 16)
    windows = encode_texts(predictor.tokenizer, [r["text"] for r in long_rows(48)], None, 16, truncation="chunks",
                           stride=4)[SAMPLE_MAPPING]
    assert result.metrics["train_examples"] == len(windows) > 48  # every window is a training example
    assert result.metrics["eval_examples"] == 12  # the Trainer's evaluation: one (first) window per document
    predictions = [json.loads(line) for line in (tmp_path / "run" / "predictions.jsonl").read_text().splitlines()]
    assert len(predictions) == 12  # one per document
    evaluated = evaluate_checkpoint(result.model_dir, str(validation_file))
    assert evaluated["eval_accuracy"] == pytest.approx(result.metrics["eval_accuracy"])
    texts = [r["text"] for r in long_rows(12, offset=1000)]
    pooled = predictor.logits(texts)
    # The tiny trained model's logits barely vary (~1e-5 between windows), hence the tight tolerance.
    direct = np.stack([per_chunk_logits(result.model_dir, predictor.tokenizer, text, 16, 4).mean(axis=0)
                       for text in texts])
    np.testing.assert_allclose(pooled, direct, rtol=0, atol=1e-7)
    gold = [r["label"] for r in long_rows(12, offset=1000)]
    accuracy = np.mean([predictor.label_names[k] == label for k, label in zip(pooled.argmax(axis=1), gold)])
    assert result.metrics["eval_accuracy"] == pytest.approx(accuracy)


def test_training_head_tail_on_sentence_pairs_is_a_config_error(fast_recipe, make_file, tmp_path):
    table = [{"sentence1": f"first {i}", "sentence2": f"second {i}", "label": "ab"[i % 2]} for i in range(20)]
    with pytest.raises(ConfigError, match="truncation=head_tail is for single texts"):
        train(fast_recipe(make_file("pairs.csv", table), "truncation=head_tail", "head_tokens=8"), tmp_path / "run")
    assert not (tmp_path / "run").exists()


# --- recipe validation ------------------------------------------------------------------------------------------

def test_recipe_defaults_and_valid_settings():
    recipe = load_recipe("sst2")
    # truncation=auto (the default): head at sst2's explicit 128 tokens (textclf.training.run.resolve_lengths)
    assert (recipe.truncation, recipe.head_tokens, recipe.stride) == ("auto", 128, 128)
    imdb = load_recipe("imdb", ["truncation=head_tail"])
    assert (imdb.truncation, imdb.head_tokens, imdb.max_seq_length) == ("head_tail", 128, 512)
    assert load_recipe("imdb", ["truncation=chunks", "stride=0"]).stride == 0


@pytest.mark.parametrize("overrides, message", [
    (["truncation=middle"], "truncation='middle' is not allowed: use one of head, head_tail, chunks"),
    (["truncation=head_tail", "max_seq_length=128"], r"head_tokens=128 leaves no room .* 0 < head_tokens < 126"),
    (["truncation=head_tail", "head_tokens=126"], r"head_tokens=126 leaves no room"),
    (["head_tokens=0"], "head_tokens=0 must be a positive integer"),
    (["truncation=chunks"], r"stride=128 must be below the 126 content tokens .* 0 <= stride < 126"),
    (["stride=-1"], "stride=-1 must be 0 or a positive integer"),
])
def test_recipe_validation_errors(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_recipe("sst2", overrides)


def test_check_truncation_uses_the_tokenizers_special_token_count():
    check_truncation("head_tail", 16, 14, 0, num_special_tokens=1)  # a tokenizer adding only </s>: room for 15
    with pytest.raises(ConfigError, match="head_tokens=14"):
        check_truncation("head_tail", 16, 14, 0, num_special_tokens=2)
    check_truncation("head", 16, 500, 500)  # sizes of unused strategies are not checked
