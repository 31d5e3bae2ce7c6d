"""Run a classifier exported by ``textclf export --format onnx`` with ONNX Runtime on the CPU.

An export directory holds ``model.onnx`` (inputs: the tokenizer's ``input_ids``, ``attention_mask`` and, for
BERT-style models, ``token_type_ids``, each (batch_size, seq_len) int64; output ``logits``
(batch_size, num_labels) float32), the model's ``config.json`` (id2label, label2id, problem_type, the ``textclf``
metadata) and the tokenizer. :class:`OnnxClassifier` is what :class:`~.predictor.Predictor` calls in place of
a PyTorch model; it imports no training or export code, only ``onnxruntime``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from transformers import AutoConfig, PretrainedConfig

from textclf.checkpoints import ONNX_FILE, remote_code_trusted
from textclf.errors import ModelError

LOGITS = "logits"


def is_onnx_export(path: str | Path) -> bool:
    """True when ``path`` is a directory written by ``textclf export --format onnx`` (it holds ``model.onnx``)."""
    return (Path(path) / ONNX_FILE).is_file()


class OnnxClassifier:
    """An ONNX Runtime session with the model config beside it: ``classifier(inputs)`` gives the logits.

    Args:
        session: an ``onnxruntime.InferenceSession`` of ``model.onnx``.
        config: the exported model's config (id2label, label2id, problem_type, ``textclf`` metadata).

    Attributes:
        input_names: the graph's inputs, e.g. ``["input_ids", "attention_mask", "token_type_ids"]``.
    """

    def __init__(self, session: object, config: PretrainedConfig):
        self.session = session
        self.config = config
        self.input_names = [i.name for i in session.get_inputs()]

    @classmethod
    def from_pretrained(cls, path: str | Path, num_threads: int | None = None, *,
                        trust_remote_code: bool = False) -> OnnxClassifier:
        """Open an export directory on the CPU with every ONNX Runtime graph optimisation (``ORT_ENABLE_ALL``,
        applied when the session loads, so the saved graph stays portable across CPUs).

        Args:
            num_threads: intra-op threads; None lets ONNX Runtime use one per physical core.
            trust_remote_code: let the config's own code (``auto_map``) run when it is read (also
                ``TEXTCLF_TRUST_REMOTE_CODE=1``); the graph itself runs no Python.

        Raises:
            ModelError: no ``model.onnx`` or ``config.json``, or a file ONNX Runtime cannot load.
        """
        import onnxruntime as ort

        path = Path(path)
        if not is_onnx_export(path) or not (path / "config.json").is_file():
            raise ModelError(f"{path} is not an ONNX export (model.onnx and config.json): give the directory that "
                             "`textclf export CHECKPOINT --format onnx` wrote")
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if num_threads:
            options.intra_op_num_threads = num_threads
        try:
            session = ort.InferenceSession(str(path / ONNX_FILE), options, providers=["CPUExecutionProvider"])
            config = AutoConfig.from_pretrained(path, trust_remote_code=remote_code_trusted(trust_remote_code))
        except Exception as err:  # noqa: BLE001 - onnxruntime raises its own Fail/InvalidGraph types
            raise ModelError(f"{path}: the ONNX export cannot be loaded: {str(err).splitlines()[0]}") from None
        return cls(session, config)

    def __call__(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        """Logits for one padded batch.

        Args:
            inputs: the tokenizer's padded features, each (batch_size, seq_len) integer; keys the graph does not
                take are ignored.

        Returns:
            (batch_size, num_labels) float32.
        """
        feed = {name: np.ascontiguousarray(inputs[name], dtype=np.int64) for name in self.input_names}
        return np.asarray(self.session.run([LOGITS], feed)[0], dtype=np.float32)
