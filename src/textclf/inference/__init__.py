"""The inference stage: predicting with a checkpoint, streaming files, GLUE files, ONNX export and its runtime.

- :mod:`~textclf.inference.predictor`: :class:`Predictor` (length-sorted token-budget batches, bf16, ONNX);
- :mod:`~textclf.inference.streaming`: ``textclf predict --input``, files of any size;
- :mod:`~textclf.inference.glue`: GLUE leaderboard files;
- :mod:`~textclf.inference.export`, :mod:`~textclf.inference.onnx_backend`: ``textclf export`` and ONNX Runtime.

Nothing here imports training code: a checkpoint directory is all it needs.
"""

from textclf.inference.predictor import Predictor

__all__ = ["Predictor"]
