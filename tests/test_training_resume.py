"""Preemption-safe training: time-based checkpoints with manifests, incomplete ones skipped, and a run killed with
SIGKILL at four points that resumes to the same weights and metrics as a run never stopped."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch
from conftest import REPO_ROOT, sentiment_rows, write_table
from safetensors.torch import load_file
from transformers import TrainerControl, TrainerState, TrainingArguments

from textclf.errors import ConfigError
from textclf.training import checkpointing
from textclf.training.checkpointing import (
    MANIFEST,
    CheckpointCallback,
    EpochSeededLengthGroupedSampler,
    is_complete,
    last_complete_checkpoint,
    resume_checkpoint,
    write_manifest,
)


def fake_checkpoint(root: Path, step: int, complete: bool = True) -> Path:
    """A checkpoint-N directory with a few files; its manifest only when ``complete``."""
    path = root / f"checkpoint-{step}"
    path.mkdir(parents=True)
    (path / "model.safetensors").write_bytes(b"w" * (100 + step))
    (path / "optimizer.pt").write_bytes(b"o" * 50)
    (path / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    if complete:
        write_manifest(path, step)
    return path


def test_a_checkpoint_is_complete_only_with_a_manifest_that_matches_its_files(tmp_path):
    path = fake_checkpoint(tmp_path, 5)
    assert is_complete(path)
    assert json.loads((path / MANIFEST).read_text())["files"]["model.safetensors"] == 105
    (path / "optimizer.pt").write_bytes(b"o" * 10)  # truncated by a kill mid-write
    assert not is_complete(path)
    assert not is_complete(fake_checkpoint(tmp_path, 6, complete=False))
    broken = fake_checkpoint(tmp_path, 7)
    (broken / MANIFEST).write_text("{not json")
    assert not is_complete(broken)


def test_last_skips_and_removes_incomplete_checkpoints_with_a_warning(tmp_path, caplog):
    fake_checkpoint(tmp_path, 2)
    fake_checkpoint(tmp_path, 10)
    fake_checkpoint(tmp_path, 11, complete=False)
    (tmp_path / "checkpoint-x").mkdir()  # not a Trainer checkpoint name: ignored
    found = last_complete_checkpoint(tmp_path)
    assert found == tmp_path / "checkpoint-10"  # by step, not by name (checkpoint-2 sorts after as text)
    assert "checkpoint-11 is incomplete" in caplog.text
    assert not (tmp_path / "checkpoint-11").exists()
    assert resume_checkpoint("last", tmp_path) == str(tmp_path / "checkpoint-10")
    assert resume_checkpoint(None, tmp_path) is None


def test_resume_refuses_a_missing_or_incomplete_checkpoint(tmp_path):
    with pytest.raises(ConfigError, match="no complete checkpoint"):
        resume_checkpoint("last", tmp_path / "checkpoints")
    with pytest.raises(ConfigError, match="no such checkpoint directory"):
        resume_checkpoint(str(tmp_path / "nowhere"), tmp_path)
    partial = fake_checkpoint(tmp_path, 3, complete=False)
    with pytest.raises(ConfigError, match="incomplete"):
        resume_checkpoint(str(partial), tmp_path)


def test_the_callback_asks_for_a_save_once_save_minutes_have_passed(tmp_path, monkeypatch):
    clock = [1000.0]
    monkeypatch.setattr(checkpointing.time, "monotonic", lambda: clock[0])
    callback = CheckpointCallback(save_minutes=10)
    args, state = TrainingArguments(output_dir=str(tmp_path), report_to=[]), TrainerState()
    callback.on_train_begin(args, state, TrainerControl())
    clock[0] += 599
    assert not callback.on_step_end(args, state, TrainerControl()).should_save
    clock[0] += 2
    assert callback.on_step_end(args, state, TrainerControl()).should_save
    state.global_step = 40
    checkpoint = tmp_path / "checkpoint-40"
    checkpoint.mkdir()
    (checkpoint / "trainer_state.json").write_text("{}")
    callback.on_save(args, state, TrainerControl())  # the Trainer finished writing: manifest, clock restarts
    assert is_complete(checkpoint)
    clock[0] += 300
    assert not callback.on_step_end(args, state, TrainerControl()).should_save
    assert not CheckpointCallback(save_minutes=0).on_step_end(args, state, TrainerControl()).should_save


def test_the_length_grouped_order_depends_on_seed_and_epoch_only():
    lengths = [int(n) for n in torch.randint(5, 200, (96,), generator=torch.Generator().manual_seed(1))]

    def order(seed, epoch):
        sampler = EpochSeededLengthGroupedSampler(16, lengths, seed)
        torch.manual_seed(epoch * 7 + 3)  # the global RNG must not matter
        sampler.set_epoch(epoch)
        return list(sampler)

    assert order(42, 0) == order(42, 0)
    assert order(42, 1) == order(42, 1)
    assert order(42, 0) != order(42, 1)
    assert order(42, 0) != order(43, 0)
    assert sorted(order(42, 2)) == list(range(96))
    first = order(42, 0)[:16]  # the first megabatch holds the longest example (transformers' grouping)
    assert max(lengths) in [lengths[i] for i in first]


# --- a real training process killed with SIGKILL, then resumed -----------------------------------------------------

KILL_POINTS = ("mid_epoch", "mid_evaluation", "mid_save", "mid_final_write")


def _overrides(model_dir: Path, validation: Path) -> list[str]:
    # 4 epochs of 4 steps, evaluated every 4, a checkpoint after every step (save_minutes of 0.6 ms), the best
    # checkpoint by loss (the last one here): the final weights depend on every step before.
    return [f"model={model_dir}", "method=finetune", "min_train_steps=0", "bf16=false", "num_train_epochs=4",
            "per_device_train_batch_size=16", "per_device_eval_batch_size=8", "learning_rate=5e-3",
            "warmup_ratio=0.1", "logging_steps=1", f"data.validation_file={validation}", "eval_strategy=steps",
            "eval_steps=4", "save_minutes=0.00001", "metric_for_best_model=loss", "report_to=none",
            "hidden_dropout=0.1"]


def _run(args: list[str]) -> subprocess.CompletedProcess:
    # One thread each: the kill points run two at a time (2 cores here), and every run, baseline included, uses the
    # same thread count, so their floating-point sums are comparable bit for bit.
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO_ROOT / "tests"), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, *args], check=False, capture_output=True, text=True, env=env,
                          timeout=600)


def _history(run: Path) -> tuple[list, list]:
    history = json.loads((run / "log_history.json").read_text())
    steps = [(e["step"], e["loss"], e["learning_rate"]) for e in history if "loss" in e]
    evaluations = [(e["step"], e["eval_loss"]) for e in history if "eval_loss" in e]
    return steps, evaluations


@pytest.mark.slow
def test_a_run_killed_at_any_point_resumes_to_the_same_weights_and_metrics(tmp_path, tiny_model_dir):
    train_file = write_table(tmp_path / "train.csv", sentiment_rows(64))
    validation = write_table(tmp_path / "validation.csv", sentiment_rows(16, offset=1000))
    overrides = _overrides(tiny_model_dir, validation)
    driver = str(REPO_ROOT / "tests" / "killable_train.py")
    baseline = tmp_path / "baseline"

    def kill_then_resume(point: str) -> tuple:
        run = tmp_path / point
        killed = _run([driver, str(run), point, str(train_file), *overrides])
        # Nothing a later evaluate / predict / serve would take for a finished run.
        leftovers = (run / "model").exists() or (run / "metrics.json").exists()
        resumed = _run(["-m", "textclf", "train", str(train_file), "--output-dir", str(run), "--resume",
                        *overrides])
        return killed, leftovers, resumed

    with ThreadPoolExecutor(max_workers=2) as pool:  # processes, two at a time
        baseline_run = pool.submit(_run, [driver, str(baseline), "none", str(train_file), *overrides])
        runs = {point: pool.submit(kill_then_resume, point) for point in KILL_POINTS}
        done = baseline_run.result()
        outcomes = {point: future.result() for point, future in runs.items()}
    assert done.returncode == 0, done.stderr[-3000:]
    base_metrics = json.loads((baseline / "metrics.json").read_text())
    base_weights = load_file(baseline / "model" / "model.safetensors")
    base_steps, base_evals = _history(baseline)
    assert len(base_evals) == 4 and base_metrics["global_step"] == 16
    for point in KILL_POINTS:
        run = tmp_path / point
        killed, leftovers, resumed = outcomes[point]
        assert killed.returncode == -9, f"{point}: not killed: {killed.stderr[-2000:]}"
        assert not leftovers, f"{point}: a model or metrics.json was left by the killed run"
        assert resumed.returncode == 0, f"{point}: {resumed.stderr[-3000:]}"
        if point == "mid_save":
            assert "is incomplete" in resumed.stderr and "skipped" in resumed.stderr
        metrics = json.loads((run / "metrics.json").read_text())
        assert {k: v for k, v in metrics.items() if k.startswith("eval_")} == \
            {k: v for k, v in base_metrics.items() if k.startswith("eval_")}, point
        weights = load_file(run / "model" / "model.safetensors")
        assert all(torch.equal(weights[k], base_weights[k]) for k in base_weights), f"{point}: weights differ"
        steps, evaluations = _history(run)
        assert evaluations == base_evals, point  # the same validation loss at every evaluation
        assert steps == base_steps, point  # same batches, dropout and learning-rate schedule, step by step
        assert not [p for p in run.iterdir() if p.name.endswith(".tmp")], f"{point}: temporary files left"
