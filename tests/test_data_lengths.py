"""max_seq_length=auto and truncation=auto: lengths read off the training texts, with the bundled tokenizer."""

from __future__ import annotations

import logging

from conftest import read_jsonl, sentiment_rows

from textclf.data.lengths import MIN_AUTO_LENGTH, choose_lengths, model_input_cap, token_lengths


def test_token_lengths_count_special_tokens_and_pairs(bundled_tokenizer):
    lengths = token_lengths(bundled_tokenizer, ["good", "a good film"], None)
    assert lengths.tolist() == [3, 5]  # [CLS] ... [SEP]
    assert token_lengths(bundled_tokenizer, ["good"], ["bad"]).tolist() == [5]  # [CLS] a [SEP] b [SEP]


def test_short_texts_get_the_longest_rounded_up_and_head(bundled_tokenizer):
    texts = ["word " * n for n in (3, 10, 41)]  # 43 tokens at most
    choice = choose_lengths(bundled_tokenizer, texts, None, cap=512, allow_chunks=True)
    assert (choice.max_seq_length, choice.truncation, choice.longest) == (48, "head", 43)
    assert choice.over_fraction == 0.0 and "43 tokens" in choice.reason
    tiny = choose_lengths(bundled_tokenizer, ["a", "b"], None, cap=512, allow_chunks=True)
    assert tiny.max_seq_length == MIN_AUTO_LENGTH


def test_long_texts_are_capped_and_chunked_only_where_allowed(bundled_tokenizer):
    texts = ["word " * 20] * 90 + ["word " * 700] * 10  # 10% longer than the cap
    choice = choose_lengths(bundled_tokenizer, texts, None, cap=512, allow_chunks=True)
    assert (choice.max_seq_length, choice.truncation) == (512, "chunks")
    assert choice.over_fraction == 0.1 and "chunks" in choice.reason
    assert choose_lengths(bundled_tokenizer, texts, None, cap=256, allow_chunks=False).truncation == "head"
    pairs = choose_lengths(bundled_tokenizer, ["word " * 30] * 4, ["more " * 30] * 4, cap=512, allow_chunks=False)
    assert pairs.max_seq_length == 64 and pairs.longest == 63  # both texts and three special tokens


def test_the_sample_is_seeded_and_bounded(bundled_tokenizer):
    texts = [f"word {'x ' * (i % 50)}" for i in range(5000)]
    first = choose_lengths(bundled_tokenizer, texts, None, cap=512, allow_chunks=True, seed=1, sample=300)
    again = choose_lengths(bundled_tokenizer, texts, None, cap=512, allow_chunks=True, seed=1, sample=300)
    assert first == again and "300 sampled" in first.reason


def test_model_input_cap_reads_the_tokenizer_and_the_sentence_model_limit(bundled_tokenizer):
    assert model_input_cap(bundled_tokenizer) == min(bundled_tokenizer.model_max_length, 512)
    assert model_input_cap(bundled_tokenizer, native=256) == 256


def test_a_run_resolves_auto_lengths_and_says_so(fast_recipe, make_file, tmp_path, caplog):
    from textclf.training import train

    rows = sentiment_rows(240)
    for row in rows[:12]:  # 5% of the texts are longer than the 512 tokens the model takes
        row["text"] = row["text"] + " and more" * 300
    train_file = make_file("train.csv", rows)
    with caplog.at_level(logging.INFO):
        result = train(fast_recipe(train_file, "max_seq_length=auto"), tmp_path / "run")
    metrics = result.metrics
    assert metrics["truncation"] == "chunks" and metrics["max_seq_length"] == 512
    assert "are longer" in metrics["max_seq_length_reason"]
    assert any("max_seq_length=512, truncation=chunks" in r.getMessage() for r in caplog.records)
    assert len(read_jsonl(tmp_path / "run" / "predictions.jsonl")) == metrics["eval_examples"]
