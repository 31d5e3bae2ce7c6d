"""The evaluation stage: the task metrics, and judging a checkpoint on labelled data.

- :mod:`~textclf.evaluation.metrics`: accuracy, F1, MCC, Pearson/Spearman, thresholds, per-label reports;
- :mod:`~textclf.evaluation.checkpoint`: :func:`evaluate_checkpoint` (``textclf evaluate``), a run's validation
  judgement, and parity between two ways of running a model.
"""

from textclf.evaluation.checkpoint import evaluate_checkpoint

__all__ = ["evaluate_checkpoint"]
