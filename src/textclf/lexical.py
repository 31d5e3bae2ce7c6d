"""TF-IDF features of an encoder's own word pieces, for languages the encoder's vocabulary does not know.

The bundled encoder (all-MiniLM-L6-v2) was trained on English. On Indonesian SmSA its WordPiece vocabulary splits
82% of the words into several pieces (English GLUE and IMDb text: 3-9%), and with 16 or 64 labelled texts per class
TF-IDF with logistic regression beats SetFit on its embeddings (docs/results.md, "Languages the encoder does not
know"). :class:`LexicalFeatures` is that TF-IDF, computed inside the model from the ``input_ids`` every checkpoint
already gets (so ``Predictor``, ``predict``, ``evaluate`` and the server need nothing new): unigrams and bigrams of
word pieces, sublinear term frequency ``1 + ln(count)``, smoothed inverse document frequency
``ln((1 + n) / (1 + df)) + 1`` and L2 normalisation per text, as scikit-learn's
``TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)`` computes them (its user guide, "Tf-idf term weighting"),
over the features seen in training. A method=head / setfit checkpoint with these features adds
``lexical_weight @ tfidf`` to the head's logits (:class:`textclf.modeling.EmbeddingClassifier`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

# The share of a training sample's words that the encoder's tokenizer splits into several pieces above which textclf
# treats the language as unknown to the encoder. Measured on 500 training texts with the bundled (English) vocabulary:
# SST-2 0.085, IMDb 0.048, CoLA 0.030, IndoNLU SmSA (Indonesian) 0.824 (docs/results.md).
SPLIT_WORDS_UNKNOWN = 0.3
COVERAGE_SAMPLE = 1000  # training texts the coverage is measured on (seeded sample)
# The embedding block's scale next to the (unit-norm) TF-IDF block in one logistic regression: on SmSA, 0.5 scored
# 0.668 / 0.736 / 0.794 at 8 / 16 / 64 per class against 0.666 / 0.726 / 0.774 for 1.0 (docs/results.md).
EMBEDDING_SCALE = 0.5
_WORD = re.compile(r"[^\W\d_]+")


def split_word_fraction(tokenizer: Any, texts: Sequence[str], sample: int = COVERAGE_SAMPLE, seed: int = 0) -> float:
    """The share of words (runs of letters) in ``texts`` that ``tokenizer`` splits into more than one piece.

    Args:
        tokenizer: a transformers tokenizer, called once on the distinct words (it lower-cases if it does).
        texts: the training texts; at most ``sample`` of them, drawn with ``seed``, are read.

    Returns:
        A fraction in [0, 1]; 0.0 when the texts hold no word.
    """
    texts = list(texts)
    if len(texts) > sample:
        texts = [texts[i] for i in np.random.default_rng(seed).choice(len(texts), sample, replace=False)]
    words = [w for t in texts for w in _WORD.findall(str(t))]
    if not words:
        return 0.0
    unique = sorted(set(words))
    pieces = tokenizer(unique, add_special_tokens=False)["input_ids"]  # one call: a fast tokenizer batches it
    split = {w for w, ids in zip(unique, pieces) if len(ids) > 1}
    return sum(w in split for w in words) / len(words)


def raw_feature_ids(input_ids: torch.Tensor, attention_mask: torch.Tensor, special_ids: torch.Tensor,
                    vocab_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Unigram and bigram feature ids of each row's word pieces.

    Args:
        input_ids, attention_mask: (batch_size, seq_len) int64, as the tokenizer pads them.
        special_ids: (k,) int64 token ids that are not text ([CLS], [SEP], [PAD], ...).
        vocab_size: ids are below it.

    Returns:
        (ids, valid), both (batch_size, 2 * seq_len - 1): a unigram is its token id, a bigram
        ``vocab_size * (1 + a) + b``; ``valid`` is False for padding, special tokens and bigrams that touch them.
    """
    valid = attention_mask.bool() & ~torch.isin(input_ids, special_ids)
    bigrams = vocab_size * (1 + input_ids[:, :-1]) + input_ids[:, 1:]
    return torch.cat([input_ids, bigrams], dim=1), torch.cat([valid, valid[:, :-1] & valid[:, 1:]], dim=1)


class LexicalFeatures(torch.nn.Module):
    """TF-IDF of word-piece unigrams and bigrams over a fixed feature set (see the module docstring).

    Args:
        feature_ids: (num_features,) int64 sorted raw ids (:func:`raw_feature_ids`) seen in training.
        idf: (num_features,) float32 inverse document frequencies.
        vocab_size: the tokenizer's vocabulary size the ids were made with.
        special_ids: (k,) int64 token ids left out.
    """

    def __init__(self, feature_ids: torch.Tensor, idf: torch.Tensor, vocab_size: int, special_ids: torch.Tensor):
        super().__init__()
        self.register_buffer("feature_ids", feature_ids.to(torch.int64))
        self.register_buffer("idf", idf.to(torch.float32))
        self.register_buffer("special_ids", special_ids.to(torch.int64))
        self.vocab_size = int(vocab_size)

    @property
    def num_features(self) -> int:
        """Columns of the output."""
        return int(self.feature_ids.numel())

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """(batch_size, num_features) float32 L2-normalised TF-IDF rows; features unseen in training are dropped."""
        ids, valid = raw_feature_ids(input_ids, attention_mask, self.special_ids, self.vocab_size)
        size = self.num_features
        position = torch.searchsorted(self.feature_ids, ids).clamp(max=max(size - 1, 0))
        hit = valid & (self.feature_ids[position] == ids) if size else torch.zeros_like(valid)
        column = torch.where(hit, position, torch.full_like(position, size))  # misses go to a dropped last column
        counts = torch.zeros(ids.shape[0], size + 1, dtype=torch.float32, device=ids.device)
        counts.scatter_add_(1, column, torch.ones_like(column, dtype=torch.float32))
        counts = counts[:, :size]
        tf = torch.where(counts > 0, 1 + torch.log(counts.clamp(min=1)), counts) * self.idf.float()
        return torch.nn.functional.normalize(tf, p=2, dim=-1)


def _encoded_batches(tokenizer: Any, texts: Sequence[str], max_seq_length: int, batch_size: int) -> Any:
    for start in range(0, len(texts), batch_size):
        batch = tokenizer([str(t) for t in texts[start:start + batch_size]], truncation=True,
                          max_length=max_seq_length, padding=True, return_tensors="pt")
        yield batch["input_ids"], batch["attention_mask"]


def special_token_ids(tokenizer: Any) -> torch.Tensor:
    """(k,) int64 ids of the tokenizer's special tokens ([CLS], [SEP], [PAD], [UNK], [MASK], ...)."""
    return torch.tensor(sorted({int(i) for i in tokenizer.all_special_ids}), dtype=torch.int64)


def vocabulary_size(tokenizer: Any) -> int:
    """One more than the largest token id the tokenizer produces (added tokens included)."""
    return max(len(tokenizer), max(tokenizer.get_vocab().values()) + 1)


def fit_lexical_features(tokenizer: Any, texts: Sequence[str], max_seq_length: int,
                         batch_size: int = 256) -> tuple[LexicalFeatures, Any]:
    """Learn the feature set and idf on the training ``texts`` and return them with the texts' TF-IDF matrix.

    The texts are tokenized as prediction tokenizes them (first ``max_seq_length`` tokens), and the matrix comes
    from the same :class:`LexicalFeatures` forward pass that prediction runs, so training and prediction agree.

    Returns:
        (the fitted :class:`LexicalFeatures`, a scipy CSR matrix (len(texts), num_features) float64).
    """
    from scipy.sparse import csr_matrix, vstack

    special, vocab = special_token_ids(tokenizer), vocabulary_size(tokenizer)
    document_frequency: dict[int, int] = {}
    for input_ids, attention_mask in _encoded_batches(tokenizer, texts, max_seq_length, batch_size):
        ids, valid = raw_feature_ids(input_ids, attention_mask, special, vocab)
        for row, keep in zip(ids.numpy(), valid.numpy()):
            for feature in np.unique(row[keep]).tolist():
                document_frequency[feature] = document_frequency.get(feature, 0) + 1
    features = np.array(sorted(document_frequency), dtype=np.int64)
    df = np.array([document_frequency[f] for f in features.tolist()], dtype=np.float64)
    idf = np.log((1 + len(texts)) / (1 + df)) + 1  # scikit-learn's smooth_idf
    module = LexicalFeatures(torch.from_numpy(features), torch.from_numpy(idf.astype(np.float32)), vocab, special)
    rows = []
    with torch.inference_mode():
        for input_ids, attention_mask in _encoded_batches(tokenizer, texts, max_seq_length, batch_size):
            rows.append(csr_matrix(module(input_ids, attention_mask).numpy().astype(np.float64)))
    matrix = vstack(rows).tocsr() if rows else csr_matrix((0, module.num_features))
    return module, matrix


def lexical_tensors(module: LexicalFeatures, weight: np.ndarray) -> dict[str, torch.Tensor]:
    """The tensors a checkpoint's head file stores for ``module`` and its (num_labels, num_features) weight."""
    return {"lexical_feature_ids": module.feature_ids.contiguous(), "lexical_idf": module.idf.contiguous(),
            "lexical_weight": torch.tensor(np.asarray(weight, dtype=np.float32)).contiguous(),
            "lexical_vocab_size": torch.tensor([module.vocab_size], dtype=torch.int64),
            "lexical_special_ids": module.special_ids.contiguous()}


def lexical_from_tensors(tensors: dict[str, torch.Tensor]) -> tuple[LexicalFeatures, torch.Tensor] | None:
    """(:class:`LexicalFeatures`, its (num_labels, num_features) weight) from a head file's tensors
    (:func:`lexical_tensors`); None when the checkpoint has no lexical features."""
    if "lexical_weight" not in tensors:
        return None
    module = LexicalFeatures(tensors["lexical_feature_ids"], tensors["lexical_idf"],
                             int(tensors["lexical_vocab_size"][0]), tensors["lexical_special_ids"])
    return module, tensors["lexical_weight"]
