"""Training throughput: textclf's default recipe against the reference recipe, in one process.

The reference recipe is the Trainer setup of the Hugging Face text-classification guide (fp32, random
sampling, dynamic padding, batch 16, lr 2e-5, plain AdamW): ``preset=reference``. textclf's default is
``preset=fast`` plus whatever the task recipe sets. Both train the same model on the same examples for one
epoch and are judged on the same validation examples.

Reported per run: examples/s, real (non-pad) tokens/s, padding fraction, achieved FLOP/s as a fraction of the
machine's matmul peak measured in this process (a large fp32 and bf16 matmul), and validation accuracy.
Training FLOPs are counted as 6 x non-embedding parameters per real token (forward 2N, backward 4N;
Kaplan et al. 2020, "Scaling Laws for Neural Language Models", section 2.1), ignoring attention's
sequence-length term and padding, so the fraction is a lower bound on what the hardware did.

    python benchmarks/train_throughput.py            # SST-2 8,000 examples, IMDb 400 reviews at 512 tokens
    python benchmarks/train_throughput.py --quick    # small slices, a few minutes

Ends with one JSON line: sst2_ratio, imdb_ratio, sst2_accuracy_textclf, sst2_accuracy_reference,
imdb_accuracy_textclf, imdb_accuracy_reference, and the per-run details.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile

import torch

from textclf.config import load_recipe
from textclf.hardware import bf16_available, matmul_peak
from textclf.modeling import load_model, resolve_model_path
from textclf.training import train


def non_embedding_parameters(model_name: str) -> int:
    """Parameters outside the embedding tables (word, position, token type): the ones a token's FLOPs use."""
    model = load_model(model_name, ["a", "b"], "single_label_classification")
    embeddings = sum(p.numel() for p in model.base_model.embeddings.parameters())
    return sum(p.numel() for p in model.parameters()) - embeddings


def run(task: str, preset: str, overrides: list[str], peaks: dict[str, float], n_params: int) -> dict:
    recipe = load_recipe(task, [f"preset={preset}", *overrides])
    with tempfile.TemporaryDirectory() as out, contextlib.redirect_stdout(sys.stderr):
        metrics = train(recipe, out).metrics
    runtime = metrics["train_runtime"]
    real_tokens = metrics["train_real_tokens"]
    flops = 6 * n_params * real_tokens / runtime
    peak = peaks["bf16" if metrics["bf16"] else "fp32"]
    return {
        "task": task, "preset": preset, "bf16": metrics["bf16"], "train_examples": metrics["train_examples"],
        "train_runtime_s": runtime,
        "examples_per_s": round(metrics["train_examples"] * metrics["epoch"] / runtime, 2),
        "real_tokens_per_s": round(real_tokens / runtime, 1),
        "padding_fraction": metrics["train_padding_fraction"],
        "achieved_tflops": round(flops / 1e12, 3),
        "fraction_of_peak": round(flops / peak, 4),
        "eval_accuracy": round(metrics["eval_accuracy"], 4),
        "eval_examples": metrics["eval_examples"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small slices (a few minutes)")
    parser.add_argument("--sst2-examples", type=int)
    parser.add_argument("--imdb-examples", type=int)
    parser.add_argument("--model", default="bundled")
    args = parser.parse_args()
    sst2_n = args.sst2_examples or (1000 if args.quick else 8000)
    imdb_n = args.imdb_examples or (64 if args.quick else 400)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()

    peaks = {"fp32": matmul_peak(torch.float32)}
    peaks["bf16"] = matmul_peak(torch.bfloat16) if bf16_available() else peaks["fp32"]
    n_params = non_embedding_parameters(args.model)
    print(f"model {resolve_model_path(args.model)}: {n_params / 1e6:.1f}M non-embedding parameters; "
          f"matmul peak fp32 {peaks['fp32'] / 1e12:.2f} TFLOP/s, bf16 {peaks['bf16'] / 1e12:.2f} TFLOP/s",
          file=sys.stderr)
    common = [f"model={args.model}", "num_train_epochs=1", "eval_strategy=no", "logging_steps=1000000"]
    plans = {
        "sst2": [*common, f"max_train_samples={sst2_n}"],
        # IMDb has no validation split: 10% of train is held out; score 500 of those reviews.
        "imdb": [*common, f"max_train_samples={imdb_n}", "max_eval_samples=500", "max_seq_length=512"],
    }
    results = {}
    for task, overrides in plans.items():
        for preset in ("reference", "fast"):
            row = run(task, preset, overrides, peaks, n_params)
            results[f"{task}_{preset}"] = row
            print(json.dumps(row), file=sys.stderr)

    header = "| task | recipe | bf16 | examples | ex/s | real tok/s | padding | TFLOP/s | of peak | accuracy |"
    print(header)
    print("|---|---|---|---|---|---|---|---|---|---|")
    for row in results.values():
        print(f"| {row['task']} | {'textclf' if row['preset'] == 'fast' else 'reference'} | {row['bf16']} | "
              f"{row['train_examples']} | {row['examples_per_s']} | {row['real_tokens_per_s']} | "
              f"{row['padding_fraction']:.1%} | {row['achieved_tflops']} | {row['fraction_of_peak']:.1%} | "
              f"{row['eval_accuracy']:.4f} (n={row['eval_examples']}) |")
    summary = {
        "sst2_ratio": round(results["sst2_fast"]["examples_per_s"] / results["sst2_reference"]["examples_per_s"], 2),
        "imdb_ratio": round(results["imdb_fast"]["examples_per_s"] / results["imdb_reference"]["examples_per_s"], 2),
        "sst2_accuracy_textclf": results["sst2_fast"]["eval_accuracy"],
        "sst2_accuracy_reference": results["sst2_reference"]["eval_accuracy"],
        "imdb_accuracy_textclf": results["imdb_fast"]["eval_accuracy"],
        "imdb_accuracy_reference": results["imdb_reference"]["eval_accuracy"],
        "peak_tflops": {k: round(v / 1e12, 3) for k, v in peaks.items()},
        "runs": results,
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
