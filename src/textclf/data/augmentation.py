"""Data augmentation for distillation: new training texts made from the labelled ones, which the teacher labels.

A small training set gives the student few chances to match the teacher; texts close to the training texts give it
more (TinyBERT, Jiao et al. 2020, section 3.1: word replacement grew each GLUE training set 20-fold and mattered most
on the small tasks). The new texts need no gold label: the teacher's logits are their only target
(:mod:`textclf.training.teacher`), so a replacement that flips a text's meaning is still a correct example.

- ``eda``: random swap and random deletion of words (Wei & Zou 2019, "EDA", section 2 with alpha = 0.1): no model,
  no word lists, any language;
- ``mlm``: masked-language-model sampling (Wu et al. 2019, "Conditional BERT Contextual Augmentation"; TinyBERT's
  single-piece case): about 15% of the words (at least one) are masked and each is replaced by a word sampled from
  the masked LM's top 5 predictions (a transformers ``*ForMaskedLM`` checkpoint: ``augment_model``).

Sentence pairs are augmented on both sides independently. Results are deterministic for a seed.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

import numpy as np

from textclf.errors import ConfigError

AUGMENTATIONS = ("none", "eda", "mlm")
EDA_ALPHA = 0.1  # Wei & Zou 2019: the fraction of words swapped or deleted (their best setting for large sets)
MLM_MASK_FRACTION = 0.15  # BERT's masking rate (Devlin et al. 2019)
MLM_TOP_K = 5  # candidates a masked word is sampled from
Text = str | tuple[str, str]


def _eda(words: list[str], rng: random.Random) -> list[str]:
    """One EDA variant of ``words``: random swap or random deletion, alpha = :data:`EDA_ALPHA`."""
    if len(words) < 2:
        return list(words)
    n = max(1, round(EDA_ALPHA * len(words)))
    out = list(words)
    if rng.random() < 0.5:  # random swap: n times, two random positions
        for _ in range(n):
            i, j = rng.sample(range(len(out)), 2)
            out[i], out[j] = out[j], out[i]
        return out
    kept = [w for w in out if rng.random() >= EDA_ALPHA]  # random deletion, each word with probability alpha
    return kept or [rng.choice(out)]


def _mask_positions(n_words: int, rng: random.Random) -> list[int]:
    k = max(1, round(MLM_MASK_FRACTION * n_words))
    return sorted(rng.sample(range(n_words), min(k, n_words)))


class MaskedLMSampler:
    """Word replacement by a masked language model: :meth:`variants` masks whole words and samples replacements.

    Args:
        model: a transformers checkpoint with a masked-LM head (``AutoModelForMaskedLM``), a Hub id or directory.
        batch_size: texts per forward pass.

    Raises:
        ConfigError: the checkpoint cannot be loaded as a masked LM (a sentence encoder without its LM head).
    """

    def __init__(self, model: str, batch_size: int = 32):
        from transformers import AutoModelForMaskedLM, AutoTokenizer

        try:
            self.tokenizer = AutoTokenizer.from_pretrained(model)
            self.model = AutoModelForMaskedLM.from_pretrained(model, use_safetensors=True).eval()
        except (OSError, ValueError) as err:
            raise ConfigError(f"augment_model={model!r} cannot be loaded as a masked language model "
                              f"({str(err).splitlines()[0]}): give a checkpoint with its MLM head, e.g. "
                              "distilbert-base-uncased or bert-base-uncased, or use augment=eda") from None
        if self.tokenizer.mask_token is None:
            raise ConfigError(f"augment_model={model!r} has no mask token: give a masked-LM checkpoint or use "
                              "augment=eda")
        self.batch_size = batch_size

    def fill(self, masked: list[list[str]], originals: list[list[str]], rng: random.Random) -> list[list[str]]:
        """Replace every mask word of each word list by a word sampled from the model's top predictions (a mask
        cut off by truncation, or without an alphanumeric candidate, gets its original word back)."""
        import torch

        mask = self.tokenizer.mask_token
        out = [list(words) for words in masked]
        for start in range(0, len(out), self.batch_size):
            chunk = out[start:start + self.batch_size]
            batch = self.tokenizer([" ".join(w) for w in chunk], return_tensors="pt", padding=True, truncation=True,
                                   max_length=self.tokenizer.model_max_length if self.tokenizer.model_max_length
                                   < 10_000 else 512)
            with torch.inference_mode():
                logits = self.model(**batch).logits  # (batch_size, seq_len, vocab_size)
            top = logits.topk(MLM_TOP_K * 2, dim=-1).indices.numpy()  # spare candidates for sub-words
            for row, words in enumerate(chunk):
                positions = np.flatnonzero(batch["input_ids"][row].numpy() == self.tokenizer.mask_token_id)
                slots = [i for i, w in enumerate(words) if w == mask]
                original = originals[start + row]
                for slot, position in zip(slots, positions):
                    candidates = [t for t in self.tokenizer.convert_ids_to_tokens(top[row, position].tolist())
                                  if t.isalnum() and t not in self.tokenizer.all_special_tokens][:MLM_TOP_K]
                    words[slot] = rng.choice(candidates) if candidates else original[slot]
                for slot in slots[len(positions):]:  # masks cut off by truncation
                    words[slot] = original[slot]
        return out


def augment_texts(texts: Sequence[Text], method: str, copies: int, seed: int = 42,
                  model: str | None = None) -> list[Text]:
    """``copies`` new texts per text of ``texts`` (in order: all copies of the first text, then the second's, ...).

    Args:
        texts: strings, or (text, text_pair) tuples.
        method: ``eda`` or ``mlm`` (module docstring); ``none`` returns [].
        copies: new texts per text, >= 1.
        model: ``mlm`` only: the masked-LM checkpoint.

    Returns:
        ``len(texts) * copies`` texts of the same kind as ``texts``; a copy may equal its original (a one-word text).

    Raises:
        ConfigError: an unknown method, ``copies`` < 1, ``mlm`` without a model or with one that is not a masked LM.
    """
    if method not in AUGMENTATIONS:
        raise ConfigError(f"augment={method!r} is not allowed: use one of {', '.join(AUGMENTATIONS)}")
    if method == "none" or not len(texts):
        return []
    if copies < 1:
        raise ConfigError(f"augment_copies={copies} must be a positive integer")
    rng = random.Random(seed)
    pairs = isinstance(texts[0], (tuple, list))
    sides = [[t[0] for t in texts], [t[1] for t in texts]] if pairs else [list(texts)]
    sampler: Any = None
    if method == "mlm":
        if not model:
            raise ConfigError("augment=mlm needs augment_model=A_MASKED_LM (a Hub id or directory, e.g. "
                              "distilbert-base-uncased), or use augment=eda")
        sampler = MaskedLMSampler(model)
    new_sides = []
    for side in sides:
        variants: list[list[str]] = []
        originals = [str(text).split() for text in side for _ in range(copies)]
        for words in originals:
            if method == "eda" or not words:
                variants.append(_eda(words, rng))
            else:
                masked = list(words)
                for i in _mask_positions(len(words), rng):
                    masked[i] = sampler.tokenizer.mask_token
                variants.append(masked)
        if sampler is not None:
            variants = sampler.fill(variants, originals, rng)
        new_sides.append([" ".join(v) or str(side[i // copies]) for i, v in enumerate(variants)])
    return list(zip(*new_sides)) if pairs else new_sides[0]
