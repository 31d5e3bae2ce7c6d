"""The training stage: one Trainer builder, fine-tuning, losses, experiment tracking, hyperparameter search.

- :mod:`~textclf.training.trainer`: :func:`~textclf.training.trainer.build_trainer`, shared by every path that trains;
- :mod:`~textclf.training.run`: :func:`train`, a run from recipe to run directory, with the method it picks;
- :mod:`~textclf.training.finetune`: ``method=finetune`` (the Trainer);
- :mod:`~textclf.training.embedding`: ``method=head`` (frozen encoder, linear head) and ``method=setfit``;
- :mod:`~textclf.training.losses`: class weights and the weighted loss;
- :mod:`~textclf.training.tracking`: TensorBoard, MLflow, W&B through ``report_to``;
- :mod:`~textclf.training.search`, :mod:`~textclf.training.search_ray`: ``textclf search`` (Optuna, Ray Tune).
"""

from textclf.training.run import TrainResult, train

__all__ = ["TrainResult", "train"]
