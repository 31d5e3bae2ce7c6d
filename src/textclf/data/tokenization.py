"""Tokenization of a split for the Trainer: fast tokenizers in batches, no padding (the collator pads per batch)."""

from __future__ import annotations

from typing import Any

import datasets

from textclf.data.longdoc import DEFAULT_HEAD_TOKENS, DEFAULT_STRIDE, SAMPLE_MAPPING, encode_texts


def tokenize(ds: datasets.Dataset, tokenizer: Any, text_columns: tuple[str, ...], max_seq_length: int,
             keep_columns: tuple[str, ...] = ("label",), truncation: str = "head",
             head_tokens: int = DEFAULT_HEAD_TOKENS, stride: int = DEFAULT_STRIDE) -> datasets.Dataset:
    """Tokenize a split with a fast tokenizer in batches, to at most ``max_seq_length`` tokens per row.

    No padding here: the collator pads each batch to its own longest sequence (dynamic padding). ``truncation``
    (see :mod:`textclf.data.longdoc`): ``head`` keeps the first tokens (pairs longest-first), ``head_tail`` the first
    ``head_tokens`` and the last ones; both give one row per example. ``chunks`` gives one row per window of
    ``max_seq_length`` tokens (consecutive windows share ``stride`` tokens), each with its example's
    ``keep_columns`` values (its label), so the result can be longer than ``ds``.

    The result has ``input_ids``, ``attention_mask`` (and ``token_type_ids`` for BERT-style models) plus
    ``keep_columns`` with their original features; ``datasets`` caches it by fingerprint between runs (the
    strategy and its sizes are part of the fingerprint).

    Raises:
        ConfigError: a bad strategy or sizes, or ``head_tail``/``chunks`` on sentence pairs (see
            :mod:`textclf.data.longdoc`).
    """
    keep = [c for c in keep_columns if c in ds.column_names]

    def encode(batch: dict[str, list]) -> dict[str, list]:
        pairs = batch[text_columns[1]] if len(text_columns) > 1 else None
        features = encode_texts(tokenizer, batch[text_columns[0]], pairs, max_seq_length, truncation=truncation,
                                head_tokens=head_tokens, stride=stride)
        rows = features.pop(SAMPLE_MAPPING)
        if truncation == "chunks":  # every window carries its document's label (and other kept columns)
            features.update({c: [batch[c][i] for i in rows] for c in keep})
        return features

    # Check the strategy (and pairs) once here, so a bad one fails before `map` and on an empty split too.
    encode_texts(tokenizer, ["x"], ["x"] if len(text_columns) > 1 else None, max_seq_length, truncation=truncation,
                 head_tokens=head_tokens, stride=stride)
    if truncation != "chunks":
        drop = [c for c in ds.column_names if c not in keep_columns]
        return ds.map(encode, batched=True, remove_columns=drop, desc="tokenize")
    # The row count changes, so every input column goes and the kept ones come back, cast to their own features
    # (e.g. float32 regression scores, which Python floats would turn into float64).
    out = ds.map(encode, batched=True, remove_columns=ds.column_names, desc="tokenize (chunks)")
    changed = {c: ds.features[c] for c in keep if c in out.features and out.features[c] != ds.features[c]}
    return out.cast(datasets.Features({**out.features, **changed})) if changed else out
