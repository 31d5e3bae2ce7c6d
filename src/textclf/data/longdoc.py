"""Texts longer than the model's input: keep the head, keep the head and the tail, or read every window.

The recipe key ``truncation`` picks one of :data:`TRUNCATIONS`:

- ``head`` (default): the first ``max_seq_length`` tokens, special tokens included (the tokenizer's own
  truncation; for sentence pairs, longest-first).
- ``head_tail``: the first ``head_tokens`` and the last ``max_seq_length - head_tokens - num_special_tokens``
  content tokens, between the special tokens ([CLS] ... [SEP]). Sun et al. 2019, "How to Fine-Tune BERT for
  Text Classification?" (arXiv:1905.05583), on long texts: on IMDb, head+tail with 128 + 382 tokens at 512 beat
  head-only, tail-only and their hierarchical methods (fragments' [CLS] states mean-, max- or attention-pooled).
- ``chunks``: windows of ``max_seq_length`` tokens, consecutive windows sharing ``stride`` content tokens (the
  fast tokenizer's ``return_overflowing_tokens``). Training sees every window with its document's label; at
  evaluation and prediction the windows' logits are averaged per document (:func:`pool_chunks`).

``head_tail`` and ``chunks`` are for single texts: which of two texts to cut has no one right answer (and GLUE
pairs fit in 128 tokens), so a sentence pair with either raises :class:`ConfigError`; use ``head`` for pairs.

This module imports no training code: :mod:`textclf.data` (training) and :mod:`textclf.inference` share it,
so a checkpoint is read the way it was trained.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from textclf.errors import ConfigError

TRUNCATIONS = ("head", "head_tail", "chunks")
# Sun et al. 2019 (arXiv:1905.05583): head 128 + tail 382 was the best way to cut IMDb reviews to 512 tokens.
DEFAULT_HEAD_TOKENS = 128
# BERT's SQuAD windows share 128 tokens (doc_stride=128, also transformers' run_qa.py default): every token away
# from a document's ends then has at least 64 tokens of context on both sides in some window. At 512 tokens a
# window moves 382 content tokens, so a document costs about length / 382 forward passes.
DEFAULT_STRIDE = 128
# The key, named as the fast tokenizers name it, that maps each encoded row to its text's index.
SAMPLE_MAPPING = "overflow_to_sample_mapping"


def check_truncation(truncation: str, max_seq_length: int, head_tokens: int, stride: int,
                     num_special_tokens: int = 2) -> None:
    """Check a truncation strategy and its sizes against each other.

    Args:
        truncation: one of :data:`TRUNCATIONS`.
        max_seq_length: tokens per model input, special tokens included.
        head_tokens: ``head_tail`` only: content tokens kept from the start of the text.
        stride: ``chunks`` only: content tokens shared by consecutive windows.
        num_special_tokens: special tokens the tokenizer adds to a single text (2 for BERT's [CLS] and [SEP];
            the recipe is checked with 2 before the tokenizer is known, then again with the tokenizer's count).

    Raises:
        ConfigError: naming the key, the value and the allowed values.
    """
    if truncation not in TRUNCATIONS:
        raise ConfigError(f"truncation={truncation!r} is not allowed: use one of {', '.join(TRUNCATIONS)}")
    if head_tokens < 1:
        raise ConfigError(f"head_tokens={head_tokens} must be a positive integer")
    if stride < 0:
        raise ConfigError(f"stride={stride} must be 0 or a positive integer")
    room = max_seq_length - num_special_tokens  # content tokens per model input
    if truncation == "head_tail" and not head_tokens < room:
        raise ConfigError(f"head_tokens={head_tokens} leaves no room for the tail at max_seq_length={max_seq_length} "
                          f"({room} content tokens): use 0 < head_tokens < {room}, e.g. head_tokens=128 with "
                          "max_seq_length=512 (Sun et al. 2019)")
    if truncation == "chunks" and not stride < room:
        raise ConfigError(f"stride={stride} must be below the {room} content tokens of a window at "
                          f"max_seq_length={max_seq_length}: use 0 <= stride < {room}, e.g. stride={room // 4}")


def _head_tail(encoded: Any, index: int, head_tokens: int, tail_tokens: int) -> list[int]:
    """Positions to keep in row ``index``: the special tokens, the first ``head_tokens`` and the last
    ``tail_tokens`` content tokens, in order. Content tokens are those the fast tokenizer marks as coming from the
    text (``sequence_ids``), so a literal "[SEP]" inside the text counts as content."""
    sequence = encoded.sequence_ids(index)
    content = [j for j, s in enumerate(sequence) if s is not None]
    kept = set(content[:head_tokens]) | set(content[len(content) - tail_tokens:])
    return [j for j, s in enumerate(sequence) if s is None or j in kept]


def encode_texts(tokenizer: Any, texts: Sequence[str], text_pairs: Sequence[str] | None, max_seq_length: int,
                 truncation: str = "head", head_tokens: int = DEFAULT_HEAD_TOKENS,
                 stride: int = DEFAULT_STRIDE) -> dict[str, list]:
    """Tokenize texts (or pairs) into model inputs of at most ``max_seq_length`` tokens with one strategy.

    No padding: rows keep their own lengths.

    Args:
        tokenizer: a fast (Rust ``tokenizers``-backed) tokenizer; ``head_tail`` and ``chunks`` need it.
        texts: the first (or only) texts.
        text_pairs: the second texts of sentence pairs, same length as ``texts``, or None.
        max_seq_length: tokens per row, special tokens included.
        truncation, head_tokens, stride: the strategy and its sizes (see the module docstring).

    Returns:
        The tokenizer's features as lists of int lists (``input_ids``, ``attention_mask``, and ``token_type_ids``
        for BERT-style tokenizers), one entry per row, plus :data:`SAMPLE_MAPPING`: for each row, the index in
        ``texts`` of its text, non-decreasing. ``head`` and ``head_tail`` give one row per text (the mapping is
        ``0..len(texts)-1``); ``chunks`` gives one or more consecutive rows per text.

    Raises:
        ConfigError: a bad strategy or sizes for this tokenizer (:func:`check_truncation`), ``head_tail`` or
            ``chunks`` with sentence pairs, or with a tokenizer that is not fast.
    """
    check_truncation(truncation, max_seq_length, head_tokens, stride, tokenizer.num_special_tokens_to_add())
    texts = list(texts)
    pairs = list(text_pairs) if text_pairs is not None else None
    if truncation == "head":
        encoded = tokenizer(texts, pairs, truncation=True, max_length=max_seq_length)
        return {**encoded, SAMPLE_MAPPING: list(range(len(texts)))}
    if pairs is not None:
        raise ConfigError(f"truncation={truncation} is for single texts, not sentence pairs: use truncation=head")
    if not getattr(tokenizer, "is_fast", False):
        raise ConfigError(f"truncation={truncation} needs a fast (tokenizers-backed) tokenizer; "
                          f"{type(tokenizer).__name__} is not: use truncation=head")
    if truncation == "chunks":
        encoded = tokenizer(texts, truncation=True, max_length=max_seq_length, stride=stride,
                            return_overflowing_tokens=True)
        return dict(encoded)
    # head_tail: tokenize in full (verbose=False: no warning about lengths above model_max_length), then cut.
    encoded = tokenizer(texts, truncation=False, verbose=False)
    tail_tokens = max_seq_length - head_tokens - tokenizer.num_special_tokens_to_add()
    out: dict[str, list] = {key: [] for key in encoded}
    for i, ids in enumerate(encoded["input_ids"]):
        keep = _head_tail(encoded, i, head_tokens, tail_tokens) if len(ids) > max_seq_length else None
        for key, rows in encoded.items():
            out[key].append(rows[i] if keep is None else [rows[i][j] for j in keep])
    out[SAMPLE_MAPPING] = list(range(len(texts)))
    return out


def pool_chunks(logits: np.ndarray, sample_mapping: Sequence[int] | np.ndarray, num_texts: int) -> np.ndarray:
    """Average the rows (windows) of each text: one row of logits per text.

    The mean of the windows' logits is the classifier layer applied to the mean of the windows' pooled
    representations (that layer is affine): the hierarchical mean pooling of Sun et al. 2019 (arXiv:1905.05583,
    which mean-pools the fragments' [CLS] states before the classifier), with no pooling layer to train.

    Args:
        logits: (num_rows, num_labels) float, one row per window.
        sample_mapping: (num_rows,) int, each row's text index in ``0..num_texts-1`` (:data:`SAMPLE_MAPPING`);
            every text has at least one row.
        num_texts: the number of texts.

    Returns:
        (num_texts, num_labels) float32, in text order.
    """
    mapping = np.asarray(sample_mapping, dtype=np.int64)
    sums = np.zeros((num_texts, logits.shape[1]), dtype=np.float64)
    np.add.at(sums, mapping, logits)
    counts = np.bincount(mapping, minlength=num_texts)
    return (sums / counts[:, None]).astype(np.float32)
