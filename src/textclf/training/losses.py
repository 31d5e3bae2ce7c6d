"""Class weights against label imbalance, and the weighted loss given to ``Trainer(compute_loss_func=...)``.

The recipe key ``class_weights`` picks the weights:

- ``none``: the model's own loss (cross-entropy, BCE-with-logits), no hook;
- ``balanced``: computed from the train split's label counts (see :func:`balanced_class_weights` and
  :func:`balanced_pos_weights`);
- a list of floats, one per label in label-id order.

Single-label tasks weight each example's cross-entropy by the weight of its gold class. Multi-label tasks use
the weights as BCE-with-logits ``pos_weight``: the loss of each positive (label present) is multiplied by its
label's weight. Regression has no classes: any setting but ``none`` is a :class:`ConfigError`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from textclf.errors import ConfigError
from textclf.tasks import MULTI_LABEL, REGRESSION, SINGLE_LABEL

# pos_weight is clipped to [1 / MAX_POS_WEIGHT, MAX_POS_WEIGHT]: a label with no train positive (or no negative)
# would get an infinite (or zero) weight, and a label with a handful of positives among 40,000 rows (GoEmotions'
# grief: ~560 negatives per positive) would let those few rows dominate every batch's gradient.
MAX_POS_WEIGHT = 100.0


def balanced_class_weights(labels: np.ndarray, label_names: Sequence[str]) -> np.ndarray:
    """Per-class weights ``n_samples / (n_classes * count_c)``, inversely proportional to class frequency.

    The formula of scikit-learn's ``compute_class_weight("balanced", ...)`` (sklearn.utils.class_weight;
    King & Zeng 2001): over the train split the weights of the examples sum to ``n_samples``, so the weighted
    loss keeps the scale of the unweighted one and every class contributes the same total weight.

    Args:
        labels: (n_samples,) int class ids in ``[0, len(label_names))``.
        label_names: class names in id order.

    Returns:
        (n_classes,) float64 weights in label-id order.

    Raises:
        ConfigError: a class has no train example (its weight would be infinite); the message names it.
    """
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=len(label_names))
    missing = [label_names[i] for i in np.flatnonzero(counts == 0)]
    if missing:
        raise ConfigError(f"class_weights=balanced: no train example of class {', '.join(map(repr, missing))}, "
                          "so n_samples / (n_classes * count) is undefined: give explicit class_weights "
                          f"(one per label, in label-id order: {', '.join(label_names)}) or class_weights=none")
    return len(labels) / (len(label_names) * counts.astype(np.float64))


def balanced_pos_weights(labels: np.ndarray, max_weight: float = MAX_POS_WEIGHT) -> np.ndarray:
    """Per-label BCE ``pos_weight`` = negatives / positives in the train split, clipped.

    PyTorch's ``BCEWithLogitsLoss`` documentation: "if a dataset contains 100 positive and 300 negative examples
    of a single class, then pos_weight for the class should be equal to 300/100=3". The ratio is clipped to
    ``[1 / max_weight, max_weight]`` (see :data:`MAX_POS_WEIGHT`); a label never (always) present gets
    ``max_weight`` (``1 / max_weight``).

    Args:
        labels: (n_samples, num_labels) multi-hot 0/1 (any numeric dtype).
        max_weight: the clip, > 1.

    Returns:
        (num_labels,) float64 weights in label-id order.
    """
    labels = np.asarray(labels, dtype=np.float64)
    positives = labels.sum(axis=0)
    negatives = len(labels) - positives
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(positives > 0, negatives / np.maximum(positives, 1), max_weight)
    return np.clip(ratio, 1 / max_weight, max_weight)


def resolve_class_weights(setting: str | list[float], labels: np.ndarray, label_names: Sequence[str],
                          problem_type: str) -> list[float] | None:
    """The weights a recipe's ``class_weights`` asks for, checked against the task.

    Args:
        setting: ``"none"``, ``"balanced"`` or one float per label in label-id order (``Recipe.class_weights``).
        labels: the train split's labels: (n,) int ids, or (n, num_labels) multi-hot for multi-label.
        label_names: label names in id order.
        problem_type: single_label_classification, multi_label_classification or regression.

    Returns:
        None for ``none``; else one float per label in label-id order (cross-entropy class weights, or BCE
        ``pos_weight`` for multi-label).

    Raises:
        ConfigError: weights for a regression task; a list whose length is not the number of labels (the
            message gives both counts and the label order); a class absent from train with ``balanced``.
    """
    if setting == "none":
        return None
    if problem_type == REGRESSION:
        raise ConfigError(f"class_weights={setting!r}: a regression task has no classes to weight: "
                          "use class_weights=none")
    if setting == "balanced":
        weights = balanced_pos_weights(labels) if problem_type == MULTI_LABEL else balanced_class_weights(
            labels, label_names)
        return [float(w) for w in weights]
    if isinstance(setting, str):  # Recipe.validate lets only none, balanced and lists through
        raise ConfigError(f"class_weights={setting!r} is not allowed: use none, balanced or a list of floats")
    if len(setting) != len(label_names):
        raise ConfigError(f"class_weights has {len(setting)} values but this task has {len(label_names)} labels: "
                          f"give one weight per label, in label-id order: {', '.join(label_names)}")
    return [float(w) for w in setting]


class WeightedLoss:
    """A ``compute_loss_func`` for ``transformers.Trainer``: class-weighted cross-entropy (single-label) or
    BCE-with-logits with ``pos_weight`` (multi-label).

    The Trainer calls it as ``loss_func(outputs, labels, num_items_in_batch=n)``, where ``n`` counts the labels
    (``labels.ne(-100).sum()``) of the whole gradient-accumulation batch: examples for single-label, examples
    x labels for multi-label (``Trainer._get_num_items_in_batch``). The loss is the weighted *sum* over the
    micro-batch divided by ``n``, so the micro-batch losses of one optimizer step add up to the mean over the
    accumulated batch, whatever ``gradient_accumulation_steps`` is (the Trainer then leaves the loss unscaled).
    Without ``n`` it divides by the micro-batch's own label count.

    Dividing by the count, not by the sum of the batch's weights as ``F.cross_entropy(..., weight=w)`` does,
    keeps micro-batch losses additive; with ``balanced`` weights the examples' weights sum to the train size,
    so over the whole train split the two normalisations agree. With all weights 1 it is the model's own loss.

    Args:
        weights: (num_labels,) float32 tensor, on the model's device (moved there on first use otherwise).
        problem_type: single_label_classification or multi_label_classification.

    Raises:
        ValueError: another problem type.
    """

    def __init__(self, weights: torch.Tensor, problem_type: str):
        if problem_type not in (SINGLE_LABEL, MULTI_LABEL):
            raise ValueError(f"WeightedLoss: no class weights for problem_type={problem_type!r}")
        self.weights = weights
        self.problem_type = problem_type

    def __call__(self, outputs: Any, labels: torch.Tensor,
                 num_items_in_batch: torch.Tensor | int | None = None) -> torch.Tensor:
        """The loss of one micro-batch.

        Args:
            outputs: the model's output (``outputs["logits"]``: (batch_size, num_labels), any float dtype).
            labels: (batch_size,) int64 class ids (-100 ignored), or (batch_size, num_labels) multi-hot float.
            num_items_in_batch: labels in the whole accumulated batch (see the class docstring), or None.

        Returns:
            A float32 scalar tensor.
        """
        logits = outputs["logits"].float()  # fp32 loss: under bf16 the logits arrive in bf16
        if self.weights.device != logits.device:
            self.weights = self.weights.to(logits.device)
        if self.problem_type == MULTI_LABEL:
            total = F.binary_cross_entropy_with_logits(logits, labels.to(logits.dtype), pos_weight=self.weights,
                                                       reduction="sum")
            count = labels.numel()
        else:
            total = F.cross_entropy(logits.view(-1, logits.shape[-1]), labels.view(-1), weight=self.weights,
                                    reduction="sum")
            count = labels.ne(-100).sum()
        return total / (num_items_in_batch if num_items_in_batch is not None else count)
