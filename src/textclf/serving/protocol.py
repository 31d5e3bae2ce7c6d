"""The HTTP API's shapes, those of Hugging Face text-embeddings-inference (TEI, ``router/src/http/types.rs``).

``POST /predict`` takes ``{"inputs": ..., "truncate": bool, "raw_scores": bool}``; ``inputs`` is a string, a
``[text, text_pair]`` pair, or a batch: a list of strings, of ``[text]`` or of ``[text, text_pair]`` lists. The answer
is a list of ``{"label", "score"}`` sorted by score (highest first), or a list of such lists for a batch. Errors are
``{"error": message, "error_type": kind}`` with TEI's status codes (:data:`STATUS`).

One reading differs from TEI, whose flat list of two strings is always a pair: for a checkpoint trained on single
texts (``config.textclf["text_columns"]`` has one column) a flat list of strings is a batch of texts, of any length.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from textclf.inference.predictor import Predictor, Text
from textclf.modeling import scores_from_logits
from textclf.tasks import REGRESSION

# TEI's error types and their status codes (router/src/http/server.rs, `impl From<&ErrorType> for StatusCode`), plus
# the two TEI answers without a JSON body (401 for a wrong key, 422 for a body its JSON reader rejects), given one.
STATUS = {"empty": 400, "unauthorized": 401, "not_found": 404, "method_not_allowed": 405, "validation": 413,
          "invalid_request": 422, "tokenizer": 422, "backend": 424, "overloaded": 429, "unhealthy": 503}


class ApiError(Exception):
    """An answer in TEI's error shape.

    Args:
        error_type: a key of :data:`STATUS`, which gives the status code.
        message: the ``error`` text (one line, saying what to change).
    """

    def __init__(self, error_type: str, message: str):
        super().__init__(message)
        self.error_type = error_type
        self.status_code = STATUS[error_type]

    def body(self) -> dict[str, str]:
        return {"error": str(self), "error_type": self.error_type}


class ErrorResponse(BaseModel):
    """TEI's error body."""

    error: str = Field(examples=["batch size 40 > maximum allowed batch size 32"])
    error_type: str = Field(examples=["validation"])


class PredictRequest(BaseModel):
    """``POST /predict``'s body. Other keys are ignored (as TEI does): nothing in a request can name a model, a
    file or a path."""

    model_config = ConfigDict(extra="ignore")

    inputs: str | list[str | list[str]] = Field(
        description="a text, a [text, text_pair] pair, or a batch: a list of texts, of [text] or of "
        "[text, text_pair] lists", examples=["a gripping, beautifully acted film"])
    truncate: bool | None = Field(
        default=None, description="cut inputs longer than the checkpoint's max_seq_length tokens (or max_input_chars "
        "characters) instead of refusing them with 413; default: the server's --auto-truncate (false)")
    raw_scores: bool = Field(default=False, description="logits instead of probabilities (softmax for single-label, "
                             "sigmoid for multi-label; regression scores are always raw)")


class Prediction(BaseModel):
    """One label and its score."""

    label: str = Field(examples=["positive"])
    score: float = Field(examples=[0.98])


def parse_inputs(inputs: str | list[Any], pair_task: bool) -> tuple[list[Text], bool]:
    """Turn ``inputs`` into texts and say whether the request was a batch.

    Args:
        pair_task: the checkpoint reads (text, text_pair) pairs: a flat list of two strings is then one pair (TEI's
            reading); otherwise a flat list of strings is a batch of texts.

    Returns:
        (texts: strings and (text, text_pair) tuples, batch: whether to answer with a list of lists).

    Raises:
        ApiError: ``empty`` (no input at all) or ``invalid_request`` (a shape TEI does not take, or a text holding an
            unpaired UTF-16 surrogate, ``"\\ud800"``, which JSON can escape but no tokenizer can read).
    """
    texts, batch = _parse_shape(inputs, pair_task)
    for i, text in enumerate(texts):
        for part in (text,) if isinstance(text, str) else text:
            if not part.isascii():
                _check_unicode(part, f"`inputs[{i}]`" if batch else "`inputs`")
    return texts, batch


def _check_unicode(text: str, where: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as err:
        raise ApiError("invalid_request", f"{where} holds \\u{ord(err.object[err.start]):04x}, half of a UTF-16 "
                       "surrogate pair, not a character: send the whole pair (e.g. \\ud83d\\ude00) or the "
                       "character itself") from None


def _parse_shape(inputs: str | list[Any], pair_task: bool) -> tuple[list[Text], bool]:
    """:func:`parse_inputs` without the Unicode check: the request's shape read as TEI reads it."""
    if isinstance(inputs, str):
        return [inputs], False
    if len(inputs) == 0:
        raise ApiError("empty", "`inputs` cannot be empty")
    if all(isinstance(x, str) for x in inputs):
        if not pair_task:
            return list(inputs), True
        if len(inputs) == 1:
            return [inputs[0]], False
        if len(inputs) == 2:
            return [(inputs[0], inputs[1])], False
        raise ApiError("invalid_request", f"`inputs` is a list of {len(inputs)} strings: this checkpoint reads "
                       "sentence pairs; send one pair as [text, text_pair] or a batch as [[text, text_pair], ...]")
    texts: list[Text] = []
    for i, x in enumerate(inputs):
        if isinstance(x, str) or not 1 <= len(x) <= 2:
            raise ApiError("invalid_request", f"`inputs[{i}]` must be [text] or [text, text_pair] in a batch of lists "
                           "(a string, a pair of strings, or a batch of mixed strings and pairs "
                           "[[string], [string, string], ...])")
        texts.append(x[0] if len(x) == 1 else (x[0], x[1]))
    return texts, True


def clip_chars(text: Text, max_chars: int) -> Text:
    """``text`` cut to ``max_chars`` characters (a pair: the first text first, the second gets what is left)."""
    if isinstance(text, str):
        return text[:max_chars]
    first = text[0][:max_chars]
    return first, text[1][:max(0, max_chars - len(first))]


def num_chars(text: Text) -> int:
    """Characters of a text, or of both texts of a pair (TEI's ``count_chars``)."""
    return len(text) if isinstance(text, str) else len(text[0]) + len(text[1])


def format_predictions(predictor: Predictor, logits: np.ndarray, raw_scores: bool) -> list[list[dict[str, Any]]]:
    """TEI's answer for each row of ``logits``: every label with its score, highest first.

    Args:
        logits: (num_texts, num_labels) float32 from :meth:`Predictor.logits`.
        raw_scores: keep the logits; else softmax (single-label) or sigmoid (multi-label) probabilities, as
            :func:`textclf.modeling.scores_from_logits` computes them. Regression: ``[{"label": id2label[0],
            "score": value}]`` either way.

    Raises:
        ApiError: ``backend``, a score is NaN (TEI's check).
    """
    problem = predictor.problem_type
    scores = np.asarray(logits, dtype=np.float64) if raw_scores or problem == REGRESSION \
        else scores_from_logits(logits, problem)
    if np.isnan(scores).any():
        raise ApiError("backend", "score is NaN")
    names = predictor.label_names
    if problem == REGRESSION:
        return [[{"label": names[0], "score": float(row[0])}] for row in scores]
    order = np.argsort(-scores, axis=-1, kind="stable")  # (num_texts, num_labels), highest score first
    return [[{"label": names[j], "score": float(row[j])} for j in idx] for row, idx in zip(scores, order)]


def is_pair_task(predictor: Predictor) -> bool:
    """True when the checkpoint was trained on (text, text_pair) pairs (``config.textclf["text_columns"]``)."""
    meta = getattr(predictor.model.config, "textclf", None) or {}
    return len(meta.get("text_columns") or ()) == 2


__all__ = ["STATUS", "ApiError", "ErrorResponse", "PredictRequest", "Prediction", "clip_chars",
           "format_predictions", "is_pair_task", "num_chars", "parse_inputs"]
