"""Prediction with a fine-tuned checkpoint: length-sorted batches, no autograd, input order restored.

This module never imports training code: a checkpoint directory is all it needs. The checkpoint can be a PyTorch
one (``textclf train``) or an ONNX export (``textclf export --format onnx``, run with ONNX Runtime); both give the
same output shape, with the same truncation strategies. Files of any size stream through
:func:`textclf.inference.streaming.predict_file`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from textclf.checkpoints import EMBEDDING, ONNX, loading_kwargs, validate_checkpoint
from textclf.data.longdoc import (
    DEFAULT_HEAD_TOKENS,
    DEFAULT_STRIDE,
    SAMPLE_MAPPING,
    check_truncation,
    encode_texts,
    pool_chunks,
)
from textclf.errors import ConfigError, DataError, ModelError
from textclf.hardware import bf16_available
from textclf.inference.onnx_backend import OnnxClassifier
from textclf.modeling import EmbeddingClassifier, predictions_from_logits, scores_from_logits
from textclf.tasks import MULTI_LABEL, REGRESSION, SINGLE_LABEL

Text = str | tuple[str, str]
PRECISIONS = ("fp32", "bf16")
# Padded tokens per forward pass. On this project's 2-core AMX CPU, 4,096 was the fastest budget at every length from
# 32 to 512 tokens in bf16 (8,192 lost about 30% at 128-512 tokens, the activations outgrowing the caches); IMDb
# reviews ran 1.5x faster than in batches of 64 (benchmarks/inference.py --max-batch-tokens; docs/results.md).
MAX_BATCH_TOKENS = 4096
# Batches pad to a multiple of this many tokens: fewer distinct shapes, so oneDNN's kernels (created once per shape)
# are reused; cost at most 7 pad tokens per row. SST-2 validation, first bf16 pass: 1,438 texts/s against 1,171
# unpadded (docs/results.md).
PAD_TO_MULTIPLE_OF = 8


class Predictor:
    """A model and its tokenizer, ready to predict.

    Args:
        model: a ``*ForSequenceClassification`` model whose config has id2label and problem_type, or an
            :class:`~textclf.onnx_backend.OnnxClassifier` (an ONNX export run by ONNX Runtime).
        tokenizer: its (fast) tokenizer.
        max_seq_length: truncation length in tokens; default the one stored at training time
            (``config.textclf["max_seq_length"]``), else the tokenizer's ``model_max_length`` capped at 512.
        batch_size: at most this many model inputs per forward pass (texts, or windows with ``truncation="chunks"``).
        max_batch_tokens: at most this many padded tokens per forward pass (rows x longest row): long inputs go in
            smaller batches (:data:`MAX_BATCH_TOKENS`); None for fixed ``batch_size`` batches.
        truncation, head_tokens, stride: how longer texts are cut (:mod:`textclf.data.longdoc`); each defaults to the
            value stored at training time (``config.textclf``), else ``"head"``, 128 and 128.
        precision: "fp32", or "bf16": the model's weights are cast to bfloat16 (in place) and the forward pass runs
            in bf16 (3.8x faster than fp32 on 512-token IMDb reviews on this project's AMX CPU; autocast, which
            re-casts the fp32 weights on every call, was no faster than fp32). Logits are returned as float32 and
            differ from fp32 by about 1e-2 (bf16 keeps 8 significant bits). PyTorch models only: an ONNX export
            runs in the precision it was exported with (fp32, or int8 weights).

    Attributes:
        backend: "torch" or "onnx".

    Raises:
        ConfigError: a bad truncation strategy or sizes for this tokenizer and ``max_seq_length``; precision=bf16
            on a machine without native bf16, or with an ONNX model.
    """

    def __init__(self, model: Any, tokenizer: Any, max_seq_length: int | None = None, batch_size: int = 64,
                 truncation: str | None = None, head_tokens: int | None = None, stride: int | None = None,
                 precision: str = "fp32", max_batch_tokens: int | None = MAX_BATCH_TOKENS):
        if precision not in PRECISIONS:
            raise ConfigError(f"precision={precision!r} is not allowed: use one of {', '.join(PRECISIONS)}")
        self.backend = "onnx" if isinstance(model, OnnxClassifier) else "torch"
        if precision == "bf16" and self.backend == "onnx":
            raise ConfigError("precision=bf16 is for PyTorch checkpoints: an ONNX export runs in the precision it was "
                              "exported with; use precision=fp32, or give the PyTorch checkpoint")
        if precision == "bf16" and not bf16_available():
            raise ConfigError("precision=bf16 needs native bf16 (a CPU with AVX512-BF16/AMX, or a bf16 GPU): "
                              "use precision=fp32")
        self.precision = precision
        if self.backend == "torch":
            model = (model.to(torch.bfloat16) if precision == "bf16" else model).eval()
        self.model = model
        self.tokenizer = tokenizer
        meta = getattr(model.config, "textclf", None) or {}
        self.max_seq_length = max_seq_length or meta.get("max_seq_length") or min(tokenizer.model_max_length, 512)
        self.truncation = truncation or meta.get("truncation") or "head"
        self.head_tokens = head_tokens if head_tokens is not None else meta.get("head_tokens", DEFAULT_HEAD_TOKENS)
        self.stride = stride if stride is not None else meta.get("stride", DEFAULT_STRIDE)
        check_truncation(self.truncation, self.max_seq_length, self.head_tokens, self.stride,
                         tokenizer.num_special_tokens_to_add())
        if batch_size < 1 or (max_batch_tokens is not None and max_batch_tokens < 1):
            raise ConfigError(f"batch_size={batch_size}, max_batch_tokens={max_batch_tokens}: both must be positive")
        self.batch_size = batch_size
        self.max_batch_tokens = max_batch_tokens
        # Rounding up to a multiple of 8 must not pass the length the model was given (e.g. max_seq_length=510).
        self.pad_to_multiple_of = PAD_TO_MULTIPLE_OF if self.max_seq_length % PAD_TO_MULTIPLE_OF == 0 else None
        self.problem_type = model.config.problem_type or (REGRESSION if model.config.num_labels == 1 else SINGLE_LABEL)
        self.threshold = float(meta.get("threshold", 0.5))
        self.id2label = {int(k): v for k, v in model.config.id2label.items()}

    @classmethod
    def from_pretrained(cls, path: str | Path, *, allow_pickle: bool = False, trust_remote_code: bool = False,
                        **kwargs: Any) -> Predictor:
        """Load a checkpoint directory written by ``textclf train`` (or any sequence-classification checkpoint, a
        complete Trainer ``checkpoint-N`` too), or an ONNX export written by ``textclf export`` (recognised by its
        ``model.onnx``), after :func:`textclf.checkpoints.validate_checkpoint` has checked it.

        Args:
            allow_pickle: accept pickle weights (``pytorch_model.bin``) when there are no safetensors (also
                ``TEXTCLF_ALLOW_PICKLE=1``); off, such a checkpoint is refused and transformers is given
                ``use_safetensors=True``.
            trust_remote_code: run the checkpoint's own code (``auto_map`` in its config; also
                ``TEXTCLF_TRUST_REMOTE_CODE=1``); off, such a checkpoint is refused.
            kwargs: the constructor's settings (batch_size, precision, max_seq_length, truncation, ...).

        Raises:
            ModelError: the directory does not exist or is not a checkpoint (a run directory: give RUN/model), is
                partial (config, label maps, tokenizer, weights, head files), holds only pickle weights, or declares
                custom code, the last two unless allowed; one message names the directory, what is wrong and the fix.
        """
        path = Path(path)
        kind = validate_checkpoint(path, allow_pickle=allow_pickle, trust_remote_code=trust_remote_code)
        safety = loading_kwargs(allow_pickle, trust_remote_code)
        try:
            if kind == ONNX:
                model = OnnxClassifier.from_pretrained(path, trust_remote_code=safety["trust_remote_code"])
            elif kind == EMBEDDING:  # method=head / setfit: encoder, pooling, linear head
                model = EmbeddingClassifier.from_pretrained(path, allow_pickle=allow_pickle,
                                                            trust_remote_code=trust_remote_code)
            else:
                model = AutoModelForSequenceClassification.from_pretrained(path, **safety)
            tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=safety["trust_remote_code"])
        except ModelError:
            raise
        except (OSError, ValueError) as err:
            raise ModelError(f"{path} is not a complete checkpoint (config.json, weights, tokenizer): "
                             f"{str(err).splitlines()[0]}") from None
        return cls(model, tokenizer, **kwargs)

    @property
    def label_names(self) -> list[str]:
        """Class names in id order."""
        return [self.id2label[i] for i in range(len(self.id2label))]

    def logits(self, texts: Sequence[Text]) -> np.ndarray:
        """Raw model outputs for ``texts`` (single strings or (text, text_pair) tuples), in input order.

        Texts are tokenized once with the checkpoint's truncation strategy, and the model inputs (one per text,
        or one per window with ``chunks``) sorted by length and batched so each batch pads to its own longest
        sequence (rounded up to a multiple of 8), at most ``batch_size`` rows and ``max_batch_tokens`` padded
        tokens per batch; this cuts padding without changing any result. With ``chunks``, a text's row is the mean of
        its windows' logits (:func:`textclf.longdoc.pool_chunks`).

        Returns:
            (len(texts), num_labels) float32.

        Raises:
            ConfigError: ``truncation`` is ``head_tail`` or ``chunks`` and the texts are sentence pairs.
            DataError: a text that is not valid Unicode (a lone surrogate, as from undecodable bytes).
        """
        if len(texts) == 0:
            return np.zeros((0, len(self.id2label)), dtype=np.float32)
        pairs = isinstance(texts[0], (tuple, list))
        firsts = [t[0] for t in texts] if pairs else list(texts)
        seconds = [t[1] for t in texts] if pairs else None
        _check_unicode(firsts, seconds)
        encoded = encode_texts(self.tokenizer, firsts, seconds, self.max_seq_length, truncation=self.truncation,
                               head_tokens=self.head_tokens, stride=self.stride)
        sample_mapping = encoded.pop(SAMPLE_MAPPING)  # (num_rows,) text index of each model input
        lengths = np.array([len(ids) for ids in encoded["input_ids"]])
        order = np.argsort(-lengths, kind="stable")
        out = np.empty((len(lengths), len(self.id2label)), dtype=np.float32)  # (num_rows, num_labels)
        onnx = self.backend == "onnx"
        device = None if onnx else self.model.device
        with torch.inference_mode():
            for idx in length_batches(lengths, order, self.batch_size, self.max_batch_tokens):
                features = [{k: encoded[k][i] for k in encoded} for i in idx]
                if onnx:  # (batch_size, longest in batch) int64 arrays
                    out[idx] = self.model(dict(self.tokenizer.pad(features, return_tensors="np",
                                                                  pad_to_multiple_of=self.pad_to_multiple_of)))
                    continue
                batch = self.tokenizer.pad(features, return_tensors="pt", pad_to_multiple_of=self.pad_to_multiple_of)
                batch = {k: v.to(device) for k, v in batch.items()}
                out[idx] = self.model(**batch).logits.float().cpu().numpy()
        # One row per text already unless a text has several windows (every text has at least one).
        return out if len(out) == len(texts) else pool_chunks(out, sample_mapping, len(texts))

    def format(self, logits: np.ndarray) -> list[Any]:
        """Turn logits into the ``transformers.pipeline`` output shape, one entry per text.

        Single-label: ``{"label": name, "score": probability}`` of the top class. Regression:
        ``{"label": "score", "score": value}``. Multi-label: a list of ``{"label", "score"}`` for every label
        whose sigmoid probability reaches the checkpoint's threshold (highest first).
        """
        scores = scores_from_logits(logits, self.problem_type)
        if self.problem_type == REGRESSION:
            return [{"label": self.id2label[0], "score": float(s[0])} for s in scores]
        if self.problem_type == MULTI_LABEL:
            hits = predictions_from_logits(logits, MULTI_LABEL, self.threshold)
            return [sorted(({"label": self.id2label[j], "score": float(s[j])} for j in np.flatnonzero(h)),
                           key=lambda d: -d["score"]) for s, h in zip(scores, hits)]
        top = scores.argmax(axis=-1)
        return [{"label": self.id2label[int(k)], "score": float(s[k])} for s, k in zip(scores, top)]

    def predict(self, texts: Text | Sequence[Text]) -> Any:
        """Predict one text (returns one result) or a list of texts (returns a list), as :meth:`format` says."""
        single = isinstance(texts, str) or (isinstance(texts, tuple) and len(texts) == 2
                                            and all(isinstance(t, str) for t in texts))
        results = self.format(self.logits([texts] if single else list(texts)))
        return results[0] if single else results


def length_batches(lengths: np.ndarray, order: np.ndarray, batch_size: int,
                   max_batch_tokens: int | None) -> list[np.ndarray]:
    """Split ``order`` (row indices sorted by decreasing length) into consecutive batches of at most ``batch_size``
    rows and, when ``max_batch_tokens`` is set, at most ``max_batch_tokens`` padded tokens (rows x the batch's
    first, longest row; a row longer than the budget goes alone).

    Args:
        lengths: (num_rows,) tokens of every row.
        order: (num_rows,) a permutation of the rows, longest first.

    Returns:
        Index arrays that together hold ``order``, in order.
    """
    batches, start = [], 0
    while start < len(order):
        rows = batch_size
        if max_batch_tokens is not None:
            rows = max(1, min(batch_size, max_batch_tokens // max(1, int(lengths[order[start]]))))
        batches.append(order[start:start + rows])
        start += rows
    return batches


def rows_to_texts(columns: dict[str, list], text_columns: Sequence[str]) -> list[Text]:
    """Texts (or (text, text_pair) tuples) from column lists."""
    if len(text_columns) == 1:
        return [str(t) for t in columns[text_columns[0]]]
    return [(str(a), str(b)) for a, b in zip(columns[text_columns[0]], columns[text_columns[1]])]


def _check_unicode(firsts: Sequence[str], seconds: Sequence[str] | None) -> None:
    """Raise DataError for the first text the tokenizer cannot take: one with a lone surrogate (U+D800..U+DFFF),
    which Python makes of undecodable bytes (``surrogateescape``, e.g. a command-line argument that is not UTF-8)."""
    for column in (firsts, seconds or ()):
        for i, text in enumerate(column):
            try:
                text.encode("utf-8")
            except UnicodeEncodeError as err:
                raise DataError(f"text {i} is not valid Unicode: code point U+{ord(text[err.start]):04X} at "
                                f"character {err.start} is half of a surrogate pair (bytes that were not UTF-8): "
                                "pass UTF-8 text") from None
            except AttributeError:
                raise DataError(f"text {i} is {type(text).__name__}, not a string: pass texts as strings") from None
