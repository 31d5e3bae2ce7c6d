"""``textclf train`` under ``torchrun --nproc_per_node 2`` (gloo on this CPU): the run of 2 processes with half the
per-device batch matches a 1-process run with the same global batch size, and only the main process writes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import free_port, sentiment_rows, write_table
from safetensors.torch import load_file

from textclf.training.checkpointing import checkpoint_dirs, is_complete


def _overrides(model_dir: Path, validation: Path, batch: int) -> list[str]:
    # Random sampling (accelerate's seedable sampler: the same permutation in both runs, dealt out to the processes in
    # batches), no dropout (each process would draw its own masks), class weights and a checkpoint every step (the
    # time-based save must be taken by both processes at once).
    return [f"model={model_dir}", "method=finetune", "min_train_steps=0", "bf16=false", "num_train_epochs=2",
            f"per_device_train_batch_size={batch}", "per_device_eval_batch_size=8", "learning_rate=5e-3",
            "warmup_ratio=0.1", "logging_steps=1", f"data.validation_file={validation}", "eval_strategy=epoch",
            "save_minutes=0.00001", "metric_for_best_model=loss", "report_to=tensorboard", "hidden_dropout=0",
            "attention_dropout=0", "train_sampling_strategy=random", "class_weights=balanced",
            "torch_num_threads=1"]


@pytest.mark.slow
def test_two_processes_match_one_with_the_same_global_batch(tmp_path, tiny_model_dir):
    train_file = write_table(tmp_path / "train.csv", sentiment_rows(80))
    validation = write_table(tmp_path / "validation.csv", sentiment_rows(16, offset=1000))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    single, double = tmp_path / "one", tmp_path / "two"
    one = subprocess.run([sys.executable, "-m", "textclf", "train", str(train_file), "--output-dir", str(single),
                          *_overrides(tiny_model_dir, validation, 16)], check=False, capture_output=True, text=True,
                         env=env, timeout=600)
    assert one.returncode == 0, one.stderr[-3000:]
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                          "--master_port", str(free_port()), "-m", "textclf", "train", str(train_file),
                          "--output-dir", str(double), *_overrides(tiny_model_dir, validation, 8)],
                         check=False, capture_output=True, text=True, env=env, timeout=600)
    assert two.returncode == 0, two.stderr[-5000:]  # rank 1 too: torchrun fails when any process does
    printed = [line for line in two.stdout.splitlines() if line.startswith("{")]
    assert len(printed) == 1  # one JSON answer: the main process's
    metrics_one = json.loads((single / "metrics.json").read_text())
    metrics_two = json.loads((double / "metrics.json").read_text())
    assert metrics_two["global_step"] == metrics_one["global_step"] == 10  # 80 rows / 16 per step, 2 epochs
    scores = [k for k in metrics_one if k.startswith("eval_") and isinstance(metrics_one[k], float)]
    assert "eval_accuracy" in scores
    for key in scores:
        assert metrics_two[key] == pytest.approx(metrics_one[key], abs=1e-4), key
    evaluations = [[e["eval_loss"] for e in json.loads((run / "log_history.json").read_text()) if "eval_loss" in e]
                   for run in (single, double)]
    assert len(evaluations[0]) == 2 and evaluations[1] == pytest.approx(evaluations[0], abs=1e-5)
    weights_one = load_file(single / "model" / "model.safetensors")
    weights_two = load_file(double / "model" / "model.safetensors")
    worst = max((weights_one[k] - weights_two[k]).abs().max().item() for k in weights_one)
    print(f"DDP-vs-single: max weight diff {worst:.3g}, eval losses {evaluations}")
    assert worst < 1e-4, f"weights differ by {worst}"  # float sums in another order, nothing more
    saved = checkpoint_dirs(double / "checkpoints")
    assert saved and all(is_complete(path) for path in saved)  # time-based saves, taken by both processes at once
    assert len(list((double / "tensorboard").iterdir())) == 1  # one event file: the main process's
    assert not [p for p in double.iterdir() if p.name.startswith(".")]
