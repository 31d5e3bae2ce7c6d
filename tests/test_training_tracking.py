"""Experiment tracking through report_to: TensorBoard event files, MLflow/W&B checks, W&B offline mode."""

from __future__ import annotations

import importlib.util
import json
import os

import pytest

from textclf.config import load_recipe, parse_report_to
from textclf.errors import ConfigError
from textclf.training import tracking, train
from textclf.training.trainer import training_arguments


def test_tensorboard_event_files_hold_the_logged_scalars(trained_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = trained_run["result"].output_dir
    assert trained_run["recipe"].report_to == "tensorboard"  # the default
    assert list((out / "tensorboard").glob("events.out.tfevents.*"))
    events = EventAccumulator(str(out / "tensorboard"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"train/loss", "train/learning_rate", "eval/loss", "eval/accuracy", "eval/f1"} <= tags
    history = json.loads((out / "log_history.json").read_text())
    for tag, key in (("train/loss", "loss"), ("eval/loss", "eval_loss"), ("eval/accuracy", "eval_accuracy")):
        logged = [(e["step"], e[key]) for e in history if key in e]
        assert [(s.step, pytest.approx(s.value, rel=1e-6)) for s in events.Scalars(tag)] == logged, tag


@pytest.mark.parametrize("value", ["comet", "tensorboard,nope", "none,tensorboard", "mlflow,all", "all"])
def test_unknown_report_to_is_a_config_error(value):
    with pytest.raises(ConfigError, match="report_to=.*use none, or one or more of tensorboard, mlflow, wandb"):
        load_recipe("sst2", [f"report_to={value}"])


def test_report_to_lists_are_parsed_and_tensorboard_is_textclfs_own(tmp_path):
    assert parse_report_to("none") == []
    assert parse_report_to(" TensorBoard, wandb,tensorboard") == ["tensorboard", "wandb"]
    recipe = load_recipe("sst2", ["report_to=tensorboard,mlflow"])
    assert training_arguments(recipe, tmp_path, "accuracy", bf16=False).report_to == ["mlflow"]
    assert training_arguments(load_recipe("sst2", ["report_to=none"]), tmp_path, "accuracy", False).report_to == []


def test_tracker_not_installed_is_a_config_error_before_anything_is_written(fast_recipe, sentiment_files, tmp_path,
                                                                           monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a))
    train_file, _ = sentiment_files
    with pytest.raises(ConfigError, match=r"needs wandb, which is not installed: pip install 'textclf\[tracking\]'"):
        train(fast_recipe(train_file, "report_to=tensorboard,wandb"), tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_wandb_runs_offline_without_credentials(monkeypatch, tmp_path):
    for key in ("WANDB_MODE", "WANDB_DIR", "WANDB_API_KEY"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc
    monkeypatch.delenv("NETRC", raising=False)
    with tracking.tracking_environment("wandb", tmp_path / "run"):
        assert os.environ["WANDB_MODE"] == "offline" and os.environ["WANDB_DIR"] == str(tmp_path / "run")
    assert "WANDB_MODE" not in os.environ and "WANDB_DIR" not in os.environ  # restored
    monkeypatch.setenv("WANDB_API_KEY", "key")
    with tracking.tracking_environment("tensorboard,wandb", tmp_path / "run"):
        assert "WANDB_MODE" not in os.environ
    monkeypatch.setenv("WANDB_MODE", "disabled")
    with tracking.tracking_environment("wandb", tmp_path / "run"):
        assert os.environ["WANDB_MODE"] == "disabled"
    with tracking.tracking_environment("tensorboard", tmp_path / "other"):
        assert "WANDB_DIR" not in os.environ
