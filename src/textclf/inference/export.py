"""Export a checkpoint to ONNX for fast CPU inference: ONNX Runtime graph fusion, int8 weights, a parity check.

``export_checkpoint`` (the ``textclf export`` verb) does, in order:

1. ``torch.onnx.export`` with the dynamo exporter (TorchScript tracing bakes the padding mask's shape into the
   graph of transformers 5 models) and dynamic batch and sequence axes. Inputs are the tokenizer's
   ``input_ids``, ``attention_mask`` (and ``token_type_ids``), each (batch_size, seq_len) int64; the output is
   ``logits`` (batch_size, num_labels) float32. For the BERT family (:data:`FUSABLE_MODEL_TYPES`) the graph is
   written the way ONNX Runtime's transformer optimizer recognises attention: the padding mask enters as an
   additive (batch_size, 1, 1, seq_len) float mask ``(1 - mask) * finfo(float32).min`` (transformers passes a 4D
   mask through unchanged) and the attention scores are divided by sqrt(head_dim).
2. ``onnxruntime.transformers.optimizer.optimize_model`` (model_type ``bert``): each layer's attention becomes one
   ``Attention`` op, residual + LayerNorm ``SkipLayerNormalization``, bias + GELU ``BiasGelu``
   (https://onnxruntime.ai/docs/performance/transformers-optimization.html). Hardware-specific rewrites are left to
   the session, which applies ``ORT_ENABLE_ALL`` when it loads the file (:mod:`~.onnx_backend`). The fp32
   graph must reproduce PyTorch's logits on a few probe texts (to 1e-3); a fused graph that does not is replaced
   by the plain export (the model's own attention and 2D mask), and a plain one that does not is a bug.
3. ``quantize="int8"``: ``onnxruntime.quantization.quantize_dynamic``: the weights of every MatMul and Attention
   to int8, one scale per output channel; activations are quantized per batch as the model runs (dynamic
   quantization, which ONNX Runtime recommends for transformer models:
   https://onnxruntime.ai/docs/performance/model-optimizations/quantization.html). Embeddings stay fp32.
4. The directory gets ``model.onnx``, ``config.json`` (id2label, label2id, problem_type, the ``textclf`` metadata
   with ``textclf.export`` describing the export), the tokenizer, and ``parity.json``.
5. Parity (:func:`textclf.evaluation.parity_report`): the export against the checkpoint in PyTorch fp32 on labelled
   data (default: the validation split of the checkpoint's task): max |logit difference| and the metric before and
   after.

The graph is one file (no external data), so models up to 2 GB (protobuf's limit) export: every BERT-base/large-sized
encoder. Hugging Face Optimum is not used: ``optimum-onnx`` 0.1 requires transformers < 4.58, and textclf needs 5.x.
"""

from __future__ import annotations

import copy
import inspect
import json
import logging
import math
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from textclf.errors import ConfigError, ModelError
from textclf.evaluation.checkpoint import load_labelled_split, parity_report
from textclf.files import atomic_path
from textclf.inference.onnx_backend import LOGITS, ONNX_FILE, is_onnx_export
from textclf.inference.predictor import Predictor
from textclf.modeling import is_embedding_checkpoint
from textclf.tasks import get_task

logger = logging.getLogger(__name__)

EXPORT_FORMATS = ("onnx",)
QUANTIZATIONS = ("int8",)
# Encoders whose attention goes through transformers' AttentionInterface and whose mask goes through
# create_bidirectional_mask (which passes a 4D mask through): the export can take the form ORT's optimizer fuses.
FUSABLE_MODEL_TYPES = ("bert", "roberta", "xlm-roberta", "camembert", "electra", "distilbert", "albert")
EXPORT_ATTENTION = "textclf_onnx_export"  # the name the export's attention function is registered under
MODEL_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
PARITY_FILE = "parity.json"
# An fp32 export must reproduce PyTorch up to float reordering (~1e-6 on logits); more is a broken graph.
FP32_TOLERANCE = 1e-3
PROBE_TEXTS = ("a", "an unexpectedly moving film, and a long one: " * 6, "bad", "the plot is thin but the cast is good")


def _export_attention(module: torch.nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                      attention_mask: torch.Tensor | None, scaling: float | None = None, dropout: float = 0.0,
                      **kwargs: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """Eager attention, written as ONNX Runtime's BERT attention fusion expects it: MatMul, Div, Add (mask),
    Softmax, MatMul. Inference only (no dropout).

    Args:
        query, key, value: (batch_size, num_heads, seq_len, head_dim).
        attention_mask: (batch_size, 1, 1, seq_len) additive float mask, or None.

    Returns:
        ((batch_size, seq_len, num_heads, head_dim) attention output, (batch_size, num_heads, seq_len, seq_len)
        probabilities).
    """
    divisor = 1.0 / scaling if scaling else math.sqrt(query.shape[-1])
    scores = torch.matmul(query, key.transpose(2, 3)) / divisor
    if attention_mask is not None:
        scores = scores + attention_mask
    probabilities = torch.softmax(scores, dim=-1)
    return torch.matmul(probabilities, value).transpose(1, 2).contiguous(), probabilities


class _LogitsOnly(torch.nn.Module):
    """The classifier as ONNX sees it: integer inputs in, logits out; optionally with the 4D additive mask."""

    def __init__(self, model: torch.nn.Module, additive_mask: bool):
        super().__init__()
        self.model, self.additive_mask = model, additive_mask

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        mask = attention_mask
        if self.additive_mask:  # (batch, seq) 1/0 -> (batch, 1, 1, seq) 0 / most negative float
            mask = attention_mask.unsqueeze(1).unsqueeze(2).to(torch.float32)
            mask = (1.0 - mask) * torch.finfo(torch.float32).min
        extra = {} if token_type_ids is None else {"token_type_ids": token_type_ids}
        return self.model(input_ids=input_ids, attention_mask=mask, **extra).logits


def _split_mask_unsqueeze(path: Path) -> None:
    """Rewrite the mask's ``Unsqueeze(attention_mask, axes=[1, 2])`` as two single-axis Unsqueezes, in place.

    The exporter's graph optimizer merges ``unsqueeze(1).unsqueeze(2)`` into one node; ONNX Runtime's attention
    fusion matches the mask path as Mul <- Sub <- Cast <- Unsqueeze <- Unsqueeze and misses the merged form.
    """
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(path))
    graph = model.graph
    constants = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    constants.update({n.output[0]: numpy_helper.to_array(n.attribute[0].t) for n in graph.node
                      if n.op_type == "Constant" and n.attribute and n.attribute[0].name == "value"})
    for position, node in enumerate(list(graph.node)):
        if node.op_type != "Unsqueeze" or node.input[0] != "attention_mask" or len(node.input) < 2:
            continue
        if [int(a) for a in np.ravel(constants.get(node.input[1], []))] != [1, 2]:
            continue
        axes = [numpy_helper.from_array(np.array([axis], dtype=np.int64), f"{node.name}_axis{axis}") for axis in (1, 2)]
        graph.initializer.extend(axes)
        middle = f"{node.name}_middle"
        first = helper.make_node("Unsqueeze", [node.input[0], axes[0].name], [middle], name=f"{node.name}_1")
        second = helper.make_node("Unsqueeze", [middle, axes[1].name], list(node.output), name=f"{node.name}_2")
        graph.node.remove(node)
        graph.node.insert(position, second)
        graph.node.insert(position, first)
    onnx.save(model, str(path))


def _torch_export(model: torch.nn.Module, tokenizer: Any, path: Path, fusable: bool) -> list[str]:
    """Write the classifier's graph to ``path`` (dynamic batch and sequence axes); return its input names."""
    accepted = inspect.signature(model.forward).parameters
    names = [n for n in MODEL_INPUTS if n in tokenizer.model_input_names and n in accepted]
    if names[:2] != ["input_ids", "attention_mask"]:
        raise ModelError(f"the tokenizer's inputs {tokenizer.model_input_names} lack input_ids/attention_mask: "
                         "only encoders that take them can be exported")
    example = tokenizer(["a short text", "a somewhat longer text, to give the exporter two lengths"], padding=True,
                        return_tensors="pt")
    batch, sequence = torch.export.Dim("batch"), torch.export.Dim("sequence")
    with warnings.catch_warnings():  # axis renaming and deprecation notes from the exporter
        warnings.simplefilter("ignore")
        program = torch.onnx.export(_LogitsOnly(model, fusable).eval(), tuple(example[n] for n in names),
                                    input_names=names, output_names=[LOGITS], dynamo=True, verbose=False,
                                    dynamic_shapes={n: {0: batch, 1: sequence} for n in names})
    program.save(str(path), external_data=False)
    if fusable:
        _split_mask_unsqueeze(path)
    return names


def _fuse(source: Path, target: Path, config: Any) -> dict[str, int]:
    """ONNX Runtime's transformer optimizer (Python fusions only); returns the fused operator counts."""
    from onnxruntime.transformers.fusion_options import AttentionMaskFormat, FusionOptions
    from onnxruntime.transformers.optimizer import optimize_model

    options = FusionOptions("bert")
    options.attention_mask_format = AttentionMaskFormat.AttentionMask  # the 2D 0/1 mask: any padding side
    heads = getattr(config, "num_attention_heads", None) or getattr(config, "n_heads", 0)
    hidden = getattr(config, "hidden_size", None) or getattr(config, "dim", 0)
    optimized = optimize_model(str(source), model_type="bert", num_heads=heads, hidden_size=hidden, opt_level=0,
                               optimization_options=options)
    optimized.save_model_to_file(str(target))
    return {k: v for k, v in optimized.get_fused_operator_statistics().items() if v}


def _quantize_int8(source: Path, target: Path) -> None:
    """Dynamic int8 quantization of MatMul and Attention weights (per output channel)."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    model = onnx.load(str(source))
    del model.graph.value_info[:]  # shapes left by the optimizer confuse the quantizer's shape inference
    clean = source.with_name("for_quantization.onnx")
    onnx.save(model, str(clean))
    quantize_dynamic(str(clean), str(target), op_types_to_quantize=["MatMul", "Attention"], per_channel=True,
                     weight_type=QuantType.QInt8,
                     # Fused ops (com.microsoft domain) have no ONNX shape inference: their outputs are float.
                     extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})


def _probe_diff(onnx_path: Path, model: torch.nn.Module, tokenizer: Any, names: list[str]) -> float:
    """Max |logit difference| between the ONNX graph and the PyTorch model on a padded batch of probe texts."""
    import onnxruntime as ort

    encoded = tokenizer(list(PROBE_TEXTS), padding=True, truncation=True, max_length=128, return_tensors="pt")
    with torch.inference_mode():
        expected = model(**{n: encoded[n] for n in names}).logits.float().numpy()
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    got = session.run([LOGITS], {n: encoded[n].numpy().astype(np.int64) for n in names})[0]
    return float(np.abs(got - expected).max())


def _fp32_graph(model_dir: Path, reference: torch.nn.Module, tokenizer: Any, work: Path, fusable: bool,
                optimize: bool) -> tuple[Path, list[str], dict[str, int], float]:
    """Export (and optionally fuse) the fp32 graph into ``work``.

    Returns:
        (the graph's path, its input names, fused operator counts, max |logit difference| from ``reference`` on the
        probe texts).
    """
    from transformers import AttentionInterface, AutoModelForSequenceClassification

    if fusable:  # registered under a name of its own: adds an entry to transformers' table, replaces none
        AttentionInterface.register(EXPORT_ATTENTION, _export_attention)
    try:
        model = AutoModelForSequenceClassification.from_pretrained(
            model_dir, **({"attn_implementation": EXPORT_ATTENTION} if fusable else {})).eval()
    except (OSError, ValueError) as err:
        raise ModelError(f"{model_dir}: cannot load the model for export: {str(err).splitlines()[0]}") from None
    tag = "fused" if fusable else "plain"
    graph = work / f"exported-{tag}.onnx"
    names = _torch_export(model, tokenizer, graph, fusable)
    fused: dict[str, int] = {}
    if optimize:
        fused = _fuse(graph, work / f"optimized-{tag}.onnx", model.config)
        graph = work / f"optimized-{tag}.onnx"
    return graph, names, fused, _probe_diff(graph, reference, tokenizer, names)


def default_output_dir(model_dir: str | Path, quantize: str | None = None) -> Path:
    """``<checkpoint>-onnx`` or ``<checkpoint>-onnx-int8`` beside the checkpoint."""
    model_dir = Path(model_dir)
    return model_dir.with_name(f"{model_dir.name}-onnx" + (f"-{quantize}" if quantize else ""))


def export_checkpoint(model_dir: str | Path, output_dir: str | Path | None = None, format: str = "onnx",
                      quantize: str | None = None, optimize: bool = True, parity: bool = True,
                      data: str | None = None, split: str | None = None, data_dir: str | None = None,
                      max_samples: int | None = 1000, label_column: str | None = None,
                      batch_size: int = 64) -> dict[str, Any]:
    """Export a PyTorch checkpoint to an ONNX directory that :class:`~textclf.inference.predictor.Predictor`, ``textclf
    predict`` and ``textclf evaluate`` load like a checkpoint (the steps: the module docstring).

    Args:
        model_dir: a checkpoint directory (``textclf train``'s ``model``, or any sequence-classification one).
        output_dir: the export directory, replaced atomically; default :func:`default_output_dir`.
        format: "onnx".
        quantize: None (fp32) or "int8" (dynamic int8 weights).
        optimize: fuse the graph with ONNX Runtime's transformer optimizer (BERT-family encoders).
        parity: compare the export with the PyTorch fp32 model on labelled data (``data``), and fail if it cannot.
        data: a registry task or a labelled file for the parity check; default the checkpoint's own task
            (``config.textclf["task"]``).
        split, data_dir, label_column: as for ``textclf evaluate``; the default split is the task's validation
            split, or its test split for a task that has none (IMDb).
        max_samples: parity on a seeded random slice of this many examples (None: all of them).
        batch_size: inputs per forward pass during the parity check.

    Returns:
        ``{"output_dir", "format", "quantize", "optimized": fused operator counts, "size_mb", "probe_max_abs_logit_diff"
        (the fp32 graph against PyTorch on a few probe texts, before any quantization), "parity":
        :func:`textclf.evaluation.parity_report` or None}``.

    Raises:
        ConfigError: an unknown format or quantization; parity without data to run it on.
        ModelError: not a PyTorch checkpoint (e.g. already an ONNX export).
        DataError: the parity data cannot be loaded.
        RuntimeError: the fp32 graph does not reproduce PyTorch (a bug in the export, not the input).
    """
    import onnxruntime

    if format not in EXPORT_FORMATS:
        raise ConfigError(f"format={format!r} is not supported: use one of {', '.join(EXPORT_FORMATS)}")
    if quantize not in (None, *QUANTIZATIONS):
        raise ConfigError(f"quantize={quantize!r} is not supported: use {' or '.join(QUANTIZATIONS)}, or none (fp32)")
    model_dir = Path(model_dir)
    if is_onnx_export(model_dir):
        raise ModelError(f"{model_dir} is an ONNX export already: give the PyTorch checkpoint it came from")
    if is_embedding_checkpoint(model_dir):
        raise ModelError(f"{model_dir} is a method=head/setfit checkpoint (an encoder and a linear head): ONNX export "
                         "takes method=finetune checkpoints; predict it with textclf predict / Predictor")
    reference = Predictor.from_pretrained(model_dir, batch_size=batch_size)
    config = reference.model.config
    meta = dict(getattr(config, "textclf", None) or {})
    parity_data = None
    if parity:  # load the data first: a missing data set fails before minutes of export work
        source = data or meta.get("task")
        if source is None:
            raise ConfigError(f"{model_dir} does not name its task: give --data TASK_OR_LABELLED_FILE for the parity "
                              "check, or --no-parity")
        try:
            spec = get_task(source)
        except ValueError:
            if data is None:
                raise ConfigError(f"{model_dir} was trained on {source!r}, not a registry task: give --data "
                                  "LABELLED_FILE for the parity check, or --no-parity") from None
            spec = None  # a labelled file
        if split is None and spec is not None and spec.validation_split is None:
            split = spec.test_split  # IMDb: its validation split is a seeded slice of train, not a split to load
        parity_data = load_labelled_split(reference, source, split=split, data_dir=data_dir, max_samples=max_samples,
                                          label_column=label_column)
    output_dir = Path(output_dir) if output_dir is not None else default_output_dir(model_dir, quantize)

    tokenizer = reference.tokenizer
    with tempfile.TemporaryDirectory(prefix="textclf-export-") as work, atomic_path(output_dir) as out:
        work = Path(work)
        fusable = optimize and config.model_type in FUSABLE_MODEL_TYPES
        graph, names, fused, probe = _fp32_graph(model_dir, reference.model, tokenizer, work, fusable, optimize)
        if probe > FP32_TOLERANCE and fusable:  # a BERT-family variant the fusion form does not fit: plain export
            logger.warning("%s: the fused graph differs from PyTorch by %.3g; exporting without attention fusion",
                           model_dir, probe)
            graph, names, fused, probe = _fp32_graph(model_dir, reference.model, tokenizer, work, False, optimize)
        if probe > FP32_TOLERANCE:
            raise RuntimeError(f"the exported fp32 graph differs from PyTorch by {probe:.3g} on the logits (more than "
                               f"{FP32_TOLERANCE}): the export of {config.model_type} is broken")
        out.mkdir()
        if quantize == "int8":
            _quantize_int8(graph, out / ONNX_FILE)
        else:
            (out / ONNX_FILE).write_bytes(graph.read_bytes())
        saved = copy.deepcopy(config)
        saved.textclf = {**meta, "export": {"format": format, "quantize": quantize, "optimized": fused,
                                            "source": str(model_dir.resolve()), "inputs": names,
                                            "onnxruntime": onnxruntime.__version__, "torch": torch.__version__}}
        saved.save_pretrained(out)
        tokenizer.save_pretrained(out)
        report = None
        if parity_data is not None:
            candidate = Predictor.from_pretrained(out, batch_size=batch_size)
            report = {"data": parity_data.sources["validation"], **parity_report(reference, candidate, parity_data)}
            (out / PARITY_FILE).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        size_mb = (out / ONNX_FILE).stat().st_size / 2**20
    return {"output_dir": str(output_dir), "format": format, "quantize": quantize, "optimized": fused,
            "size_mb": round(size_mb, 2), "probe_max_abs_logit_diff": probe, "parity": report}

