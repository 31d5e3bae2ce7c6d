"""Inference throughput: textclf's prediction paths against the ``transformers`` pipeline, in one process.

On SST-2 validation (872 sentences) and a seeded 2,000-review slice of IMDb test, with a checkpoint fine-tuned on
each task (``--checkpoint sst2=DIR imdb=DIR``, or trained here on a slice of train when none is given):

- ``pipeline_b1``, the baseline: ``pipeline("text-classification", model=DIR)`` called on the list of texts as
  the reference workflow does, one text per forward pass (truncation at the checkpoint's max_seq_length);
- ``pipeline_b32``: the same with ``batch_size=32``;
- ``textclf_fp32``: :class:`textclf.inference.Predictor`: length-sorted batches, no autograd;
- ``textclf_bf16``: the same with the weights in bfloat16 (only where the CPU has native bf16);
- ``onnx_fp32``, ``onnx_int8``: ``textclf export`` (ONNX Runtime, fused graph; int8: dynamic int8 weights), run by
  the same Predictor;
- IMDb only: ``textclf_bf16_head`` and ``onnx_int8_head``: the checkpoint cut as the pipeline cuts it (its first
  max_seq_length tokens) when it was trained with another strategy (chunks averages several windows per review: more
  accurate, and slower); and for each ``--short-lengths`` L, ``textclf_bf16_htL`` and ``onnx_int8_htL``: head+tail
  truncation to L tokens (the first L/4 and the last tokens; Sun et al. 2019, arXiv:1905.05583), which has to keep
  accuracy.

Reported per path: texts/s, real (non-pad) tokens/s, the ratio of texts/s to the baseline, accuracy and its drop
from the baseline's in points, and the achieved FLOP/s as a fraction of the machine's matmul peak measured in this
process (a large fp32 and bf16 matrix product). Inference FLOPs are counted per model input of L real tokens as
2 x non-embedding parameters x L (the forward pass; Kaplan et al. 2020, "Scaling Laws for Neural Language Models",
section 2.1) plus 4 x layers x hidden x L^2 for the attention scores and their weighted sum; padding is not counted,
so the fraction is a lower bound on what the hardware did. The fp32 paths are compared with the fp32 peak, the bf16
and int8 paths with the bf16 peak (int8 matmuls have no peak measured here; their fraction is an upper bound).

The best path of a task is the fastest textclf path whose accuracy is at most ``--max-drop`` points below the
baseline's (the fastest of all when none is).

    python benchmarks/inference.py --checkpoint sst2=runs/sst2/model imdb=runs/imdb/model
    python benchmarks/inference.py --quick --checkpoint sst2=runs/sst2/model imdb=runs/imdb/model  # minutes

Ends with one JSON line: sst2_ratio, imdb_ratio (best path over the baseline), max_accuracy_drop (points, the larger
of the two best paths' drops), the best paths, the peaks, and every run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from textclf.config import load_recipe
from textclf.data.longdoc import SAMPLE_MAPPING, encode_texts
from textclf.evaluation.checkpoint import load_labelled_split
from textclf.evaluation.metrics import compute
from textclf.hardware import bf16_available, describe_machine, matmul_peak
from textclf.inference.export import export_checkpoint
from textclf.inference.predictor import MAX_BATCH_TOKENS, Predictor, rows_to_texts
from textclf.modeling import predictions_from_logits

PIPELINES = ("pipeline_b1", "pipeline_b32")
WARMUP_TEXTS = 8


def model_shape(model: torch.nn.Module) -> tuple[int, int, int]:
    """(non-embedding parameters, layers, hidden size) of a sequence-classification model."""
    embeddings = sum(p.numel() for p in model.base_model.embeddings.parameters())
    config = model.config
    layers = getattr(config, "num_hidden_layers", None) or config.n_layers
    hidden = getattr(config, "hidden_size", None) or config.dim
    return sum(p.numel() for p in model.parameters()) - embeddings, layers, hidden


def input_lengths(predictor: Predictor, texts: list[str]) -> np.ndarray:
    """Real tokens of every model input the predictor builds for ``texts`` (one per text, more with chunks)."""
    encoded = encode_texts(predictor.tokenizer, texts, None, predictor.max_seq_length, truncation=predictor.truncation,
                           head_tokens=predictor.head_tokens, stride=predictor.stride)
    encoded.pop(SAMPLE_MAPPING)
    return np.array([len(ids) for ids in encoded["input_ids"]], dtype=np.int64)


def train_checkpoint(task: str, model: str, examples: int, work: Path) -> Path:
    """Fine-tune ``model`` on ``examples`` training examples of ``task`` (one epoch, the task's recipe)."""
    from textclf.training import train

    recipe = load_recipe(task, [f"model={model}", f"max_train_samples={examples}", "num_train_epochs=1",
                                "eval_strategy=no", "logging_steps=1000000", "max_eval_samples=200"])
    with contextlib.redirect_stdout(sys.stderr):
        return Path(train(recipe, work / f"{task}-trained").model_dir)


def time_call(fn, texts: list[str]) -> tuple[object, float]:
    """Warm up on a few texts, then time ``fn(texts)``; returns (its output, seconds)."""
    fn(texts[:WARMUP_TEXTS])
    started = time.perf_counter()
    out = fn(texts)
    return out, time.perf_counter() - started


def run_task(task: str, checkpoint: Path, n_examples: int, args: argparse.Namespace, peaks: dict[str, float],
             work: Path) -> dict[str, dict]:
    """Every path on one task's texts; returns {path: row}."""
    from transformers import pipeline

    reference = Predictor.from_pretrained(checkpoint, batch_size=args.batch_size, max_batch_tokens=args.max_batch_tokens)
    split = "test" if task == "imdb" else None
    data = load_labelled_split(reference, task, split=split, data_dir=args.data_dir, max_samples=n_examples)
    ds = data.splits["validation"]
    texts = rows_to_texts(ds.to_dict(), data.text_columns)
    labels = np.asarray(ds["label"])
    n_params, layers, hidden = model_shape(reference.model)
    max_length = reference.max_seq_length
    print(f"{task}: {len(texts)} texts from {data.sources['validation']}, checkpoint {checkpoint} "
          f"(max_seq_length {max_length}, truncation {reference.truncation})", file=sys.stderr)

    def accuracy_of(predicted_ids: np.ndarray) -> float:
        return compute(("accuracy",), predicted_ids, labels)["accuracy"]

    rows: dict[str, dict] = {}

    def record(path: str, seconds: float, predicted_ids: np.ndarray, lengths: np.ndarray, peak: str,
               extra: dict | None = None) -> None:
        flops = float((2 * n_params * lengths + 4 * layers * hidden * lengths.astype(np.float64) ** 2).sum())
        row = {"task": task, "path": path, "texts": len(texts), "seconds": round(seconds, 3),
               "texts_per_s": round(len(texts) / seconds, 2), "tokens_per_s": round(float(lengths.sum()) / seconds, 1),
               "accuracy": round(accuracy_of(predicted_ids), 4), "achieved_tflops": round(flops / seconds / 1e12, 4),
               "fraction_of_peak": round(flops / seconds / peaks[peak], 4), "peak": peak, **(extra or {})}
        base = rows.get("pipeline_b1")
        row["ratio"] = round(row["texts_per_s"] / base["texts_per_s"], 2) if base else 1.0
        row["accuracy_drop_points"] = round(100 * (base["accuracy"] - row["accuracy"]), 2) if base else 0.0
        rows[path] = row
        print(json.dumps(row), file=sys.stderr, flush=True)

    head_lengths = input_lengths(reference, texts)
    if "pipeline" in args.paths:
        label2id = {name: i for i, name in reference.id2label.items()}
        for path, batch in (("pipeline_b1", 1), ("pipeline_b32", 32)):
            pipe = pipeline("text-classification", model=str(checkpoint), device=-1)
            out, seconds = time_call(lambda t, p=pipe, b=batch: p(t, batch_size=b, truncation=True,
                                                                    max_length=max_length), texts)
            record(path, seconds, np.array([label2id[r["label"]] for r in out]), head_lengths, "fp32")
            del pipe

    def run_predictor(path: str, model_dir: Path, peak: str, **settings) -> None:
        predictor = Predictor.from_pretrained(model_dir, batch_size=args.batch_size,
                                              max_batch_tokens=args.max_batch_tokens, **settings)
        logits, seconds = time_call(predictor.logits, texts)
        predicted = predictions_from_logits(logits, data.problem_type, predictor.threshold)
        lengths = head_lengths if not settings else input_lengths(predictor, texts)
        record(path, seconds, predicted, lengths, peak, {"settings": settings} if settings else None)

    bf16 = bf16_available()
    if "fp32" in args.paths:
        run_predictor("textclf_fp32", checkpoint, "fp32")
    if "bf16" in args.paths and bf16:
        run_predictor("textclf_bf16", checkpoint, "bf16", precision="bf16")
    exports = {}
    for quantize in (None, "int8"):
        name = f"onnx_{quantize or 'fp32'}"
        if name not in args.paths:
            continue
        started = time.perf_counter()
        with contextlib.redirect_stdout(sys.stderr):
            export = export_checkpoint(checkpoint, work / f"{task}-{name}", quantize=quantize, parity=False)
        exports[name] = Path(export["output_dir"])
        run_predictor(name, exports[name], "fp32" if quantize is None else "bf16")
        rows[name]["export_seconds"] = round(time.perf_counter() - started, 1)
    if task == "imdb":
        if reference.truncation != "head":
            if "bf16" in args.paths and bf16:
                run_predictor("textclf_bf16_head", checkpoint, "bf16", precision="bf16", truncation="head")
            if "onnx_int8" in exports:
                run_predictor("onnx_int8_head", exports["onnx_int8"], "bf16", truncation="head")
        for length in args.short_lengths:
            short = {"max_seq_length": length, "truncation": "head_tail", "head_tokens": length // 4}
            if "bf16" in args.paths and bf16:
                run_predictor(f"textclf_bf16_ht{length}", checkpoint, "bf16", precision="bf16", **short)
            if "onnx_int8" in exports:
                run_predictor(f"onnx_int8_ht{length}", exports["onnx_int8"], "bf16", **short)
    return rows


def best_path(rows: dict[str, dict], max_drop: float) -> dict:
    """The fastest textclf path within ``max_drop`` accuracy points of the baseline (else the fastest of all)."""
    ours = [r for r in rows.values() if r["path"] not in PIPELINES]
    good = [r for r in ours if r["accuracy_drop_points"] <= max_drop]
    return max(good or ours, key=lambda r: r["texts_per_s"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="IMDb 200 reviews instead of 2000 (a few minutes)")
    parser.add_argument("--checkpoint", nargs="+", action="extend", default=[], metavar="TASK=DIR",
                        help="fine-tuned checkpoints: sst2=DIR imdb=DIR (a task without one is trained here)")
    parser.add_argument("--sst2-examples", type=int, help="validation sentences (default all 872)")
    parser.add_argument("--imdb-examples", type=int, help="test reviews, a seeded slice (default 2000; quick 200)")
    parser.add_argument("--train-examples", type=int,
                        help="training examples when a checkpoint is trained here (default 4000; quick 1000)")
    parser.add_argument("--model", default="bundled", help="the encoder to fine-tune when no checkpoint is given")
    parser.add_argument("--tasks", nargs="+", default=["sst2", "imdb"], choices=("sst2", "imdb"))
    parser.add_argument("--paths", nargs="+", default=["pipeline", "fp32", "bf16", "onnx_fp32", "onnx_int8"],
                        choices=("pipeline", "fp32", "bf16", "onnx_fp32", "onnx_int8"))
    parser.add_argument("--short-lengths", nargs="*", type=int, default=[256],
                        help="IMDb: also run bf16 and ONNX int8 with head+tail truncation to these lengths")
    parser.add_argument("--batch-size", type=int, default=64, help="textclf paths: inputs per forward pass")
    parser.add_argument("--max-batch-tokens", type=int, default=MAX_BATCH_TOKENS,
                        help="textclf paths: padded tokens per forward pass at most")
    parser.add_argument("--max-drop", type=float, default=0.5, help="accuracy points a best path may lose")
    parser.add_argument("--work-dir", help="where exports (and trained checkpoints) go (default: a temporary dir)")
    parser.add_argument("--data-dir", help="dataset mirror (default $TEXTCLF_DATA_DIR)")
    args = parser.parse_args()
    if "pipeline" not in args.paths:
        parser.error("--paths must include pipeline: it is the baseline")
    checkpoints = {}
    for item in args.checkpoint:
        task, sep, path = item.partition("=")
        if not sep or task not in ("sst2", "imdb"):
            parser.error(f"--checkpoint {item!r} is not sst2=DIR or imdb=DIR")
        checkpoints[task] = Path(path)
    sizes = {"sst2": args.sst2_examples,
             "imdb": args.imdb_examples or (200 if args.quick else 2000)}
    train_examples = args.train_examples or (1000 if args.quick else 4000)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()

    peaks = {"fp32": matmul_peak(torch.float32)}
    peaks["bf16"] = matmul_peak(torch.bfloat16) if bf16_available() else peaks["fp32"]
    print(f"{describe_machine()}; matmul peak fp32 {peaks['fp32'] / 1e12:.2f} TFLOP/s, "
          f"bf16 {peaks['bf16'] / 1e12:.2f} TFLOP/s", file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="textclf-inference-bench-") as tmp:
        work = Path(args.work_dir or tmp)
        work.mkdir(parents=True, exist_ok=True)
        results = {}
        for task in args.tasks:
            checkpoint = checkpoints.get(task) or train_checkpoint(task, args.model, train_examples, work)
            results[task] = run_task(task, checkpoint, sizes[task], args, peaks, work)

    print("| task | path | texts/s | tokens/s | x pipeline | accuracy | drop (points) | TFLOP/s | of peak |")
    print("|---|---|---|---|---|---|---|---|---|")
    for rows in results.values():
        for r in rows.values():
            print(f"| {r['task']} | {r['path']} | {r['texts_per_s']} | {r['tokens_per_s']} | {r['ratio']} | "
                  f"{r['accuracy']:.4f} | {r['accuracy_drop_points']} | {r['achieved_tflops']} | "
                  f"{r['fraction_of_peak']:.1%} ({r['peak']}) |")
    summary: dict = {}
    for task, rows in results.items():
        best = best_path(rows, args.max_drop)
        summary[f"{task}_ratio"] = best["ratio"]
        summary[f"{task}_best_path"] = best["path"]
        summary[f"{task}_best_accuracy_drop"] = best["accuracy_drop_points"]
        summary[f"{task}_pipeline_texts_per_s"] = rows["pipeline_b1"]["texts_per_s"]
    summary["max_accuracy_drop"] = max(summary[f"{t}_best_accuracy_drop"] for t in results)
    summary.update({"peak_tflops": {k: round(v / 1e12, 3) for k, v in peaks.items()}, "machine": describe_machine(),
                    "runs": {task: rows for task, rows in results.items()}})
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
