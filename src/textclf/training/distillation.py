"""Task distillation: the student's loss against gold labels and a teacher's outputs, and the Trainer that uses it.

The teacher's logits arrive with each training batch (a ``teacher_logits`` column, computed once by
:mod:`textclf.training.teacher`), with ``has_label`` (1 for a labelled training text, 0 for a text of
``data.unlabeled_file``, whose gold term is left out). The loss of one example, with ``alpha`` in [0, 1]:

- single-label: ``alpha * CE(s, y) + (1 - alpha) * T^2 * KL(softmax(t / T) || softmax(s / T))``, the weighted
  average of Hinton, Vinyals & Dean 2015 ("Distilling the Knowledge in a Neural Network", section 2: the soft term
  is multiplied by T^2 so that its gradients keep their size as the temperature changes);
- regression: ``alpha * MSE(s, y) + (1 - alpha) * MSE(s, t)``, the teacher's score as a second target;
- multi-label: ``alpha * BCE(s, y) + (1 - alpha) * BCE(s, sigmoid(t))``, the teacher's probabilities as soft
  targets (no temperature: each label is its own two-class problem).

Evaluation batches carry no teacher outputs and get the model's own loss, so ``eval_loss`` stays comparable with a
run that was not distilled. Nothing here imports the run or the teacher code: the Trainer builder passes a
:class:`DistillationLoss` to :class:`DistillationTrainer`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from textclf.tasks import MULTI_LABEL, REGRESSION
from textclf.training.checkpointing import ResumableTrainer

TEACHER_LOGITS = "teacher_logits"  # (num_labels,) float32 per row: the teacher's logits (regression: its score)
HAS_LABEL = "has_label"  # int 0/1 per row: 0 for an unlabelled text (its label column holds a placeholder)


@dataclass(frozen=True)
class DistillationLoss:
    """The student's loss on one micro-batch (the module docstring gives the formulas).

    Attributes:
        problem_type: single_label_classification, multi_label_classification or regression.
        alpha: weight in [0, 1] of the gold-label term; 1 - alpha goes to the teacher term (0: the teacher only).
        temperature: T > 0 softening both distributions in the single-label KL term (Hinton et al. 2015).
    """

    problem_type: str
    alpha: float = 0.5
    temperature: float = 2.0

    def __call__(self, logits: torch.Tensor, labels: torch.Tensor, teacher_logits: torch.Tensor,
                 has_label: torch.Tensor | None = None) -> torch.Tensor:
        """The mean loss over the micro-batch.

        Args:
            logits: (batch_size, num_labels) the student's logits, any float dtype (computed in float32).
            labels: (batch_size,) int64 class ids, (batch_size, num_labels) multi-hot, or (batch_size,) float scores.
            teacher_logits: (batch_size, num_labels) float, the teacher's logits on the same texts.
            has_label: (batch_size,) 0/1: rows without a gold label count in the teacher term only (None: all have).

        Returns:
            A float32 scalar: ``alpha`` x the gold term averaged over labelled rows + ``(1 - alpha)`` x the teacher
            term averaged over all rows.
        """
        student = logits.float()
        teacher = teacher_logits.float().to(student.device).view_as(student)
        labelled = (torch.ones(len(student), device=student.device) if has_label is None
                    else has_label.to(student.device).float().view(-1))
        if self.problem_type == REGRESSION:
            gold = F.mse_loss(student.view(-1), labels.float().view(-1), reduction="none")
            soft = F.mse_loss(student, teacher, reduction="none").mean(dim=-1)
        elif self.problem_type == MULTI_LABEL:
            gold = F.binary_cross_entropy_with_logits(student, labels.float(), reduction="none").mean(dim=-1)
            soft = F.binary_cross_entropy_with_logits(student, torch.sigmoid(teacher), reduction="none").mean(dim=-1)
        else:
            t = self.temperature
            gold = F.cross_entropy(student, labels.view(-1).clamp(min=0), reduction="none")
            soft = F.kl_div(F.log_softmax(student / t, dim=-1), F.log_softmax(teacher / t, dim=-1), log_target=True,
                            reduction="none").sum(dim=-1) * t * t
        gold_term = (gold * labelled).sum() / labelled.sum().clamp(min=1.0)
        return self.alpha * gold_term + (1 - self.alpha) * soft.mean()


class DistillationTrainer(ResumableTrainer):
    """A ``Trainer`` whose training loss is :attr:`distillation` (a :class:`DistillationLoss`) on batches that carry
    ``teacher_logits`` and ``has_label``; batches without them (evaluation) get the model's own loss.

    The loss is a mean over the micro-batch, so ``loss_is_scaled_for_ga = False`` tells the Trainer to divide it by
    the gradient-accumulation steps (``Trainer.compute_loss``'s documented contract for an overriding subclass).

    Args:
        distillation: the loss; the other arguments are ``Trainer``'s.
    """

    def __init__(self, *args: Any, distillation: DistillationLoss, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.distillation = distillation
        self.loss_is_scaled_for_ga = False

    def _set_signature_columns_if_needed(self) -> None:
        # The model's forward does not take these columns, but the loss needs them: keep them in the batches.
        super()._set_signature_columns_if_needed()
        self._signature_columns += [c for c in (TEACHER_LOGITS, HAS_LABEL) if c not in self._signature_columns]

    def compute_loss(self, model: torch.nn.Module, inputs: dict[str, Any], return_outputs: bool = False,
                     num_items_in_batch: Any = None) -> Any:
        teacher_logits = inputs.pop(TEACHER_LOGITS, None)
        has_label = inputs.pop(HAS_LABEL, None)
        if teacher_logits is None:
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        labels = inputs.pop("labels")
        outputs = model(**inputs)
        loss = self.distillation(outputs["logits"], labels, teacher_logits, has_label)
        return (loss, outputs) if return_outputs else loss
