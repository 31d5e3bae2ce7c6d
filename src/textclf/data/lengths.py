"""``max_seq_length=auto`` and ``truncation=auto``: input length and long-text strategy read off the training texts.

A user's CSV carries no hint of how long its texts are. A fixed 128 tokens cuts an IMDb review to its first
sentences (a median review is about 230 tokens, 16% pass 512): on the reference exercise (500 training reviews) the
fixed default scored 0.716 test accuracy. With dynamic padding (every batch pads to its own longest row) a longer
limit costs only on the texts that are long, so ``auto`` takes the longest tokenized text of a seeded sample of the
training split, rounded up to a multiple of 8 (the Predictor pads to multiples of 8) and capped at what the model
takes. When more than :data:`CHUNK_ABOVE_FRACTION` of the sample is longer than that cap, ``truncation=auto``
becomes ``chunks`` for fine-tuning (every window read, logits averaged per text: on 2,000 IMDb training reviews
0.8762 test accuracy against 0.8352 for the first 512 tokens; docs/results.md), else ``head``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

LENGTH_SAMPLE = 2000  # texts tokenized to measure lengths: about a second with a fast tokenizer
MODEL_INPUT_CAP = 512  # BERT-family position embeddings; tokenizers may report a huge model_max_length
MIN_AUTO_LENGTH = 16
# Above this fraction of over-long texts, chunks beats cutting (a 1% tail barely moves accuracy, and chunks then
# adds about 1% more windows, so the choice is cheap either way).
CHUNK_ABOVE_FRACTION = 0.01


@dataclass(frozen=True)
class LengthChoice:
    """What ``auto`` chose.

    Attributes:
        max_seq_length: tokens per model input, special tokens included.
        truncation: ``head`` or ``chunks``.
        longest: the longest sampled text in tokens (special tokens included); p95 its 95th percentile.
        over_fraction: fraction in [0, 1] of sampled texts longer than ``cap``.
        reason: one line for the log and metrics.json.
    """

    max_seq_length: int
    truncation: str
    longest: int
    p95: int
    over_fraction: float
    reason: str


def token_lengths(tokenizer: Any, texts: Sequence[str], text_pairs: Sequence[str] | None = None) -> np.ndarray:
    """Tokens per text (or pair), special tokens included, without truncation: (len(texts),) int64. Used by
    ``auto`` here and by the server's batcher (:mod:`textclf.serving.batching`) to size its batches."""
    encoded = tokenizer(list(texts), list(text_pairs) if text_pairs is not None else None, truncation=False,
                        add_special_tokens=True, return_attention_mask=False, return_token_type_ids=False,
                        verbose=False)
    return np.asarray([len(ids) for ids in encoded["input_ids"]], dtype=np.int64)


def model_input_cap(tokenizer: Any, native: int | None = None) -> int:
    """The longest input a model takes: the tokenizer's ``model_max_length`` (often a 1e30 sentinel) capped at
    :data:`MODEL_INPUT_CAP`, and at ``native`` when given (a sentence-transformers model's own ``max_seq_length``,
    256 for all-MiniLM-L6-v2, the length its embeddings were trained for)."""
    cap = min(int(min(tokenizer.model_max_length, 10**6)), MODEL_INPUT_CAP)
    return min(cap, native) if native else cap


def choose_lengths(tokenizer: Any, texts: Sequence[str], text_pairs: Sequence[str] | None, *, cap: int,
                   allow_chunks: bool, seed: int = 0, sample: int = LENGTH_SAMPLE) -> LengthChoice:
    """Pick ``max_seq_length`` and the truncation strategy from the training texts (module docstring).

    Args:
        tokenizer: the model's fast tokenizer.
        texts, text_pairs: the training texts (pairs: both columns, measured together).
        cap: the most tokens the model takes (:func:`model_input_cap`).
        allow_chunks: whether ``chunks`` may be chosen (fine-tuning on single texts); else always ``head``.
        seed: seeds the sample of at most ``sample`` texts.

    Returns:
        A :class:`LengthChoice`; ``max_seq_length`` is in [min(16, cap), cap].
    """
    n = len(texts)
    rows = np.random.default_rng(seed).choice(n, size=sample, replace=False) if n > sample else np.arange(n)
    firsts = [str(texts[i]) for i in rows]
    seconds = [str(text_pairs[i]) for i in rows] if text_pairs is not None else None
    lengths = token_lengths(tokenizer, firsts, seconds) if n else np.zeros(1, dtype=np.int64)
    longest, p95 = int(lengths.max()), int(np.percentile(lengths, 95))
    over = float((lengths > cap).mean())
    length = min(cap, max(MIN_AUTO_LENGTH, -(-longest // 8) * 8))
    truncation = "chunks" if allow_chunks and over > CHUNK_ABOVE_FRACTION else "head"
    where = f"{len(rows)} sampled training texts" if n > sample else f"the {n} training texts"
    reason = f"longest of {where} is {longest} tokens (95th percentile {p95}); the model takes {cap}"
    if over:
        reason += f"; {over:.1%} are longer"
        reason += ": chunks reads every window and averages" if truncation == "chunks" else ": cut at the head"
    return LengthChoice(length, truncation, longest, p95, over, reason)
