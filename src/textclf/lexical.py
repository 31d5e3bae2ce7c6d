"""TF-IDF features of an encoder's own word pieces and of the words they spell, for languages the encoder's vocabulary
does not know.

The bundled encoder (all-MiniLM-L6-v2) was trained on English. On Indonesian SmSA its WordPiece vocabulary splits
82% of the words into several pieces (English GLUE and IMDb text: 3-9%), and with 16 or 64 labelled texts per class
TF-IDF with logistic regression beats SetFit on its embeddings (docs/results.md, "Languages the encoder does not
know"). :class:`LexicalFeatures` is that TF-IDF, computed inside the model from the ``input_ids`` every checkpoint
already gets (so ``Predictor``, ``predict``, ``evaluate`` and the server need nothing new), in two blocks:

- word pieces: unigrams and bigrams of the token ids;
- words: unigrams and bigrams of the words the pieces spell (a word is a piece that starts one and the continuation
  pieces after it, :func:`continuation_token_ids`), each word named by a hash of its pieces.

Each block is scikit-learn's ``TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)`` over its terms (its user
guide, "Tf-idf term weighting"): sublinear term frequency ``1 + ln(count)``, smoothed inverse document frequency
``ln((1 + n) / (1 + df)) + 1``, L2 normalisation per text and block, over the terms seen in training. On SmSA the
two blocks side by side beat either alone at 64 per class (docs/results.md). A method=head / setfit checkpoint with
these features adds ``lexical_weight @ tfidf`` to the head's logits (:class:`textclf.modeling.EmbeddingClassifier`).
"""

from __future__ import annotations

import functools
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


# Words are named by a polynomial hash of their pieces' ids modulo this prime (2^31 - 1): two distinct words of a
# training set share a name with probability about words^2 / 2^32 (50,000 words: one pair in 3,400 sets).
WORD_HASH_MODULUS = 2**31 - 1


def continuation_token_ids(tokenizer: Any) -> torch.Tensor:
    """(k,) int64 sorted ids of the vocabulary's pieces that continue the word before them rather than start one.

    WordPiece (BERT, MiniLM, DistilBERT) marks continuations with a leading ``##``; SentencePiece (XLM-R, T5) and
    byte-level BPE (RoBERTa, GPT-2) mark word starts with ``\u2581`` / ``\u0120`` instead, so there a piece without
    the mark continues a word. A vocabulary with none of these marks gives no continuations: every piece is a word.
    """
    vocab = tokenizer.get_vocab()
    pieces = list(vocab)
    if any(piece.startswith("##") for piece in pieces):
        ids = [i for piece, i in vocab.items() if piece.startswith("##")]
    else:
        marks = [mark for mark in ("\u2581", "\u0120") if sum(p.startswith(mark) for p in pieces) > len(pieces) // 10]
        ids = [i for piece, i in vocab.items() if not piece.startswith(marks[0])] if marks else []
    return torch.tensor(sorted(ids), dtype=torch.int64)


@functools.lru_cache(maxsize=16)
def _hash_powers(base: int, length: int) -> tuple[int, ...]:
    """``base ** k mod WORD_HASH_MODULUS`` for k < length, computed once per (base, length): prediction calls the
    word hash on every batch. The base (vocab_size + 1) exceeds every id + 1, so distinct piece sequences differ
    before the modulus; each term ``(id + 1) * power`` is below 2^18 * 2^31 and a word's sum below 2^58 for
    vocabularies under 2^18 pieces."""
    powers = [1]
    for _ in range(length - 1):
        powers.append(powers[-1] * base % WORD_HASH_MODULUS)
    return tuple(powers)


def _word_hashes(input_ids: torch.Tensor, valid: torch.Tensor, continuation_ids: torch.Tensor,
                 vocab_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(hashes, present), both (batch_size, seq_len): row r's j-th word's hash in ``hashes[r, j]`` for
    ``j < `` its number of words (``present``), in [0, WORD_HASH_MODULUS)."""
    seq_len = input_ids.shape[1]
    previous = torch.nn.functional.pad(valid[:, :-1], (1, 0), value=False)
    start = valid & ~(torch.isin(input_ids, continuation_ids) & previous)
    word = (torch.cumsum(start.long(), dim=1) - 1).clamp(min=0)
    index = torch.arange(seq_len, device=input_ids.device).expand_as(input_ids)
    position = index - torch.cummax(torch.where(start, index, torch.zeros_like(index)), dim=1).values
    power = torch.tensor(_hash_powers(vocab_size + 1, seq_len), dtype=torch.int64, device=input_ids.device)[position]
    terms = torch.where(valid, (input_ids + 1) * power, torch.zeros_like(input_ids))
    hashes = torch.zeros_like(input_ids).scatter_add_(1, word, terms) % WORD_HASH_MODULUS
    present = index < start.sum(dim=1, keepdim=True)
    return hashes, present


def raw_feature_ids(input_ids: torch.Tensor, attention_mask: torch.Tensor, special_ids: torch.Tensor,
                    vocab_size: int, continuation_ids: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Unigram and bigram feature ids of each row's word pieces and, with ``continuation_ids``, of its words.

    Args:
        input_ids, attention_mask: (batch_size, seq_len) int64, as the tokenizer pads them.
        special_ids: (k,) int64 token ids that are not text ([CLS], [SEP], [PAD], ...).
        vocab_size: ids are below it (and below 2^18 for the word hashes).
        continuation_ids: (m,) int64 pieces that continue a word (:func:`continuation_token_ids`); None: pieces only.

    Returns:
        (ids, valid), both (batch_size, 2 * seq_len - 1), or (batch_size, 4 * seq_len - 2) with words: a piece
        unigram is its token id, a piece bigram ``vocab_size * (1 + a) + b`` (both >= 0); a word unigram
        ``-(1 + h)`` and a word bigram ``-(1 + p + p * h1 + h2)`` for word hashes h below p =
        :data:`WORD_HASH_MODULUS` (both < 0); ``valid`` is False for padding, special tokens and n-grams that touch
        them.
    """
    valid = attention_mask.bool() & ~torch.isin(input_ids, special_ids)
    bigrams = vocab_size * (1 + input_ids[:, :-1]) + input_ids[:, 1:]
    ids, keep = [input_ids, bigrams], [valid, valid[:, :-1] & valid[:, 1:]]
    if continuation_ids is not None:
        p = WORD_HASH_MODULUS
        hashes, present = _word_hashes(input_ids, valid, continuation_ids, vocab_size)
        ids += [-(1 + hashes), -(1 + p + p * hashes[:, :-1] + hashes[:, 1:])]
        keep += [present, present[:, :-1] & present[:, 1:]]
    return torch.cat(ids, dim=1), torch.cat(keep, dim=1)


class LexicalFeatures(torch.nn.Module):
    """TF-IDF of word-piece (and word) unigrams and bigrams over a fixed feature set (see the module docstring).

    Args:
        feature_ids: (num_features,) int64 sorted raw ids (:func:`raw_feature_ids`) seen in training.
        idf: (num_features,) float32 inverse document frequencies.
        vocab_size: the tokenizer's vocabulary size the ids were made with.
        special_ids: (k,) int64 token ids left out.
        continuation_ids: (m,) int64 pieces that continue a word (:func:`continuation_token_ids`); None for
            checkpoints with word-piece features only.
    """

    def __init__(self, feature_ids: torch.Tensor, idf: torch.Tensor, vocab_size: int, special_ids: torch.Tensor,
                 continuation_ids: torch.Tensor | None = None):
        super().__init__()
        self.register_buffer("feature_ids", feature_ids.to(torch.int64))
        self.register_buffer("idf", idf.to(torch.float32))
        self.register_buffer("special_ids", special_ids.to(torch.int64))
        self.register_buffer("continuation_ids", None if continuation_ids is None else continuation_ids.to(torch.int64))
        self.vocab_size = int(vocab_size)

    @property
    def num_features(self) -> int:
        """Columns of the output."""
        return int(self.feature_ids.numel())

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """(batch_size, num_features) float32 TF-IDF rows, each block (pieces: ids >= 0; words: ids < 0)
        L2-normalised on its own; features unseen in training are dropped."""
        ids, valid = raw_feature_ids(input_ids, attention_mask, self.special_ids, self.vocab_size,
                                     self.continuation_ids)
        size = self.num_features
        position = torch.searchsorted(self.feature_ids, ids).clamp(max=max(size - 1, 0))
        hit = valid & (self.feature_ids[position] == ids) if size else torch.zeros_like(valid)
        column = torch.where(hit, position, torch.full_like(position, size))  # misses go to a dropped last column
        counts = torch.zeros(ids.shape[0], size + 1, dtype=torch.float32, device=ids.device)
        counts.scatter_add_(1, column, torch.ones_like(column, dtype=torch.float32))
        counts = counts[:, :size]
        tf = torch.where(counts > 0, 1 + torch.log(counts.clamp(min=1)), counts) * self.idf.float()
        words = self.feature_ids < 0
        squares = tf.square()
        norms = torch.where(words, squares[:, words].sum(dim=1, keepdim=True).sqrt(),
                            squares[:, ~words].sum(dim=1, keepdim=True).sqrt())
        return tf / norms.clamp(min=1e-12)  # torch.nn.functional.normalize's eps


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
    continuation = continuation_token_ids(tokenizer)
    document_frequency: dict[int, int] = {}
    for input_ids, attention_mask in _encoded_batches(tokenizer, texts, max_seq_length, batch_size):
        ids, valid = raw_feature_ids(input_ids, attention_mask, special, vocab, continuation)
        for row, keep in zip(ids.numpy(), valid.numpy()):
            for feature in np.unique(row[keep]).tolist():
                document_frequency[feature] = document_frequency.get(feature, 0) + 1
    features = np.array(sorted(document_frequency), dtype=np.int64)
    df = np.array([document_frequency[f] for f in features.tolist()], dtype=np.float64)
    idf = np.log((1 + len(texts)) / (1 + df)) + 1  # scikit-learn's smooth_idf
    module = LexicalFeatures(torch.from_numpy(features), torch.from_numpy(idf.astype(np.float32)), vocab, special,
                             continuation)
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
            "lexical_special_ids": module.special_ids.contiguous(),
            **({} if module.continuation_ids is None else
               {"lexical_continuation_ids": module.continuation_ids.contiguous()})}


def lexical_from_tensors(tensors: dict[str, torch.Tensor]) -> tuple[LexicalFeatures, torch.Tensor] | None:
    """(:class:`LexicalFeatures`, its (num_labels, num_features) weight) from a head file's tensors
    (:func:`lexical_tensors`); None when the checkpoint has no lexical features."""
    if "lexical_weight" not in tensors:
        return None
    module = LexicalFeatures(tensors["lexical_feature_ids"], tensors["lexical_idf"],
                             int(tensors["lexical_vocab_size"][0]), tensors["lexical_special_ids"],
                             tensors.get("lexical_continuation_ids"))
    return module, tensors["lexical_weight"]
