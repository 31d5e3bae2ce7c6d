"""Training runs on a tiny random BERT (a second or two each) and the run directory they leave."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import set_cpu
from safetensors.torch import load_file
from transformers import pipeline

import textclf.training.trainer
from textclf.config import load_recipe
from textclf.errors import ConfigError, DataError
from textclf.evaluation import evaluate_checkpoint
from textclf.inference import Predictor
from textclf.training import train
from textclf.training.checkpointing import write_manifest


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


# --- the run directory ------------------------------------------------------------------------------------------

def test_model_directory_is_a_self_describing_checkpoint(trained_run):
    model_dir = trained_run["result"].model_dir
    assert model_dir == trained_run["result"].output_dir / "model"
    names = {p.name for p in model_dir.iterdir()}
    assert {"model.safetensors", "config.json", "tokenizer.json", "tokenizer_config.json"} <= names
    assert "training_args.bin" not in names
    assert not [n for n in names if n.endswith((".bin", ".pt", ".pth", ".pkl"))]  # never pickle
    config = json.loads((model_dir / "config.json").read_text())
    assert config["id2label"] == {"0": "neg", "1": "pos"}
    assert config["label2id"] == {"neg": 0, "pos": 1}
    assert config["problem_type"] == "single_label_classification"
    assert config["textclf"]["text_columns"] == ["text"]
    # max_seq_length=auto (the default) is resolved from the training texts and stored as a number
    assert config["textclf"]["max_seq_length"] == trained_run["result"].metrics["max_seq_length"]
    assert isinstance(config["textclf"]["max_seq_length"], int) and config["textclf"]["truncation"] == "head"


def test_metrics_json(trained_run):
    out = trained_run["result"].output_dir
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics == json.loads(json.dumps(trained_run["result"].metrics))
    for key in ("eval_accuracy", "eval_f1", "eval_f1_macro"):
        assert 0.0 <= metrics[key] <= 1.0
    assert metrics["metric_for_best_model"] == "eval_accuracy"
    assert (metrics["train_examples"], metrics["eval_examples"]) == (64, 16)
    assert metrics["majority_baseline"]["eval_accuracy"] == 0.5  # the validation file is 8 neg / 8 pos
    assert metrics["global_step"] == 4 and metrics["epoch"] == 1.0  # 64 rows / batch 16, one epoch
    assert metrics["bf16"] is False
    assert metrics["data_sources"]["validation"] == str(trained_run["validation_file"])
    assert (out / "log_history.json").is_file()


def test_config_yaml_loads_back_as_the_same_recipe(trained_run):
    again = load_recipe(str(trained_run["result"].output_dir / "config.yaml"))
    metrics = trained_run["result"].metrics  # the resolved recipe: auto lengths as the run chose them
    assert again == dataclasses.replace(trained_run["recipe"], max_seq_length=metrics["max_seq_length"],
                                        truncation=metrics["truncation"])


def test_predictions_jsonl_has_one_line_per_validation_row(trained_run):
    predictions = read_jsonl(trained_run["result"].output_dir / "predictions.jsonl")
    validation = pd.read_csv(trained_run["validation_file"])
    assert [p["text"] for p in predictions] == validation["text"].tolist()
    assert [p["gold"] for p in predictions] == validation["label"].tolist()
    assert all(p["predicted"] in ("neg", "pos") and 0.5 <= p["score"] <= 1.0 for p in predictions)
    accuracy = np.mean([p["predicted"] == p["gold"] for p in predictions])
    assert trained_run["result"].metrics["eval_accuracy"] == pytest.approx(accuracy)


def test_errors_csv_holds_exactly_the_mismatches(trained_run):
    out = trained_run["result"].output_dir
    predictions = read_jsonl(out / "predictions.jsonl")
    errors = pd.read_csv(out / "errors.csv")
    wrong = {p["text"]: p for p in predictions if p["predicted"] != p["gold"]}
    assert sorted(errors["text"]) == sorted(wrong)
    for row in errors.itertuples():
        assert (row.gold, row.predicted) == (wrong[row.text]["gold"], wrong[row.text]["predicted"])
    assert list(errors["score"]) == sorted(errors["score"], reverse=True)  # most confident first


def test_saved_predictions_match_the_checkpoint_and_the_pipeline(trained_run):
    predictions = read_jsonl(trained_run["result"].output_dir / "predictions.jsonl")
    texts = [p["text"] for p in predictions]
    model_dir = str(trained_run["result"].model_dir)
    for ours, again, ref in zip(predictions, Predictor.from_pretrained(model_dir).predict(texts),
                                pipeline("text-classification", model=model_dir, device=-1)(texts)):
        assert ours["predicted"] == again["label"] == ref["label"]
        assert ours["score"] == pytest.approx(ref["score"], abs=1e-5)


def test_evaluate_reproduces_the_run_metrics(trained_run):
    metrics = trained_run["result"].metrics
    evaluated = evaluate_checkpoint(trained_run["result"].model_dir, str(trained_run["validation_file"]))
    eval_keys = {k for k in metrics if k.startswith("eval_")}
    assert eval_keys == {"eval_accuracy", "eval_f1", "eval_f1_macro", "eval_examples"}
    for key in eval_keys:
        assert evaluated[key] == pytest.approx(metrics[key], abs=1e-9), key
    assert evaluated["majority_baseline"] == pytest.approx(metrics["majority_baseline"])


def test_training_changes_the_encoder(trained_run, tiny_model_dir):
    base = load_file(tiny_model_dir / "model.safetensors")
    tuned = load_file(trained_run["result"].model_dir / "model.safetensors")
    changed = [k for k, v in base.items() if not torch.equal(v, tuned[f"bert.{k}"])]
    assert changed  # the control for the freeze_base test below


def test_same_recipe_and_seed_give_the_same_model(trained_run, tmp_path):
    again = train(trained_run["recipe"], tmp_path / "again")
    first = load_file(trained_run["result"].model_dir / "model.safetensors")
    second = load_file(again.model_dir / "model.safetensors")
    assert all(torch.equal(first[k], second[k]) for k in first)


# --- options ----------------------------------------------------------------------------------------------------

def test_freeze_base_trains_only_the_head(fast_recipe, sentiment_files, tiny_model_dir, tmp_path, monkeypatch):
    initial = {}
    original = textclf.training.trainer.load_model

    def spy(*args, **kwargs):
        model = original(*args, **kwargs)
        initial.update({k: v.detach().clone() for k, v in model.state_dict().items()})
        return model

    monkeypatch.setattr(textclf.training.trainer, "load_model", spy)
    train_file, valid = sentiment_files
    result = train(fast_recipe(train_file, f"validation_file={valid}", "freeze_base=true", "learning_rate=1e-2"),
                   tmp_path / "run")
    tuned = load_file(result.model_dir / "model.safetensors")
    base = load_file(tiny_model_dir / "model.safetensors")
    encoder = [k for k in tuned if k.startswith("bert.")]
    assert len(encoder) == len(base)
    assert all(torch.equal(tuned[k], base[k.removeprefix("bert.")]) for k in encoder)
    assert not torch.equal(tuned["classifier.weight"], initial["classifier.weight"])
    assert not torch.equal(tuned["classifier.bias"], initial["classifier.bias"])


def test_resume_from_the_last_checkpoint(fast_recipe, sentiment_files, tmp_path):
    train_file, valid = sentiment_files
    out = tmp_path / "run"
    first = train(fast_recipe(train_file, f"validation_file={valid}"), out)
    steps = first.metrics["global_step"]
    state_file = out / "checkpoints" / f"checkpoint-{steps}" / "trainer_state.json"
    state = json.loads(state_file.read_text())
    state["log_history"].insert(0, {"marker": "from the first run", "step": 0})  # shows the state was loaded
    state_file.write_text(json.dumps(state))
    write_manifest(state_file.parent, steps)  # an edited checkpoint is incomplete until its manifest is rewritten

    second = train(fast_recipe(train_file, f"validation_file={valid}", "num_train_epochs=2",
                               "resume_from_checkpoint=last"), out)
    assert second.metrics["global_step"] == 2 * steps
    assert second.metrics["epoch"] == 2.0
    history = json.loads((out / "log_history.json").read_text())
    assert history[0] == {"marker": "from the first run", "step": 0}


def test_resume_without_a_checkpoint_is_a_config_error(fast_recipe, sentiment_files, tmp_path):
    train_file, _ = sentiment_files
    with pytest.raises(ConfigError, match="resume_from_checkpoint=last: no complete checkpoint"):
        train(fast_recipe(train_file, "resume_from_checkpoint=last"), tmp_path / "run")
    assert not (tmp_path / "run").exists()
    with pytest.raises(ConfigError, match="no such checkpoint directory"):
        train(fast_recipe(train_file, f"resume_from_checkpoint={tmp_path / 'nope'}"), tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_data_error_leaves_no_output_directory(fast_recipe, make_file, tmp_path):
    table = [{"text": f"text {i}" if i != 5 else "", "label": "ab"[i % 2]} for i in range(20)]
    train_file = make_file("train.csv", table)
    with pytest.raises(DataError, match="line 7: empty text"):
        train(fast_recipe(train_file), tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_metric_not_computed_for_the_task_is_a_config_error(fast_recipe, sentiment_files, tmp_path):
    train_file, _ = sentiment_files
    with pytest.raises(ConfigError, match="matthews_correlation"):
        train(fast_recipe(train_file, "metric_for_best_model=matthews_correlation"), tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_mse_is_not_a_metric_of_a_classification_task(fast_recipe, sentiment_files, tmp_path):
    train_file, valid = sentiment_files
    with pytest.raises(ConfigError, match="mse"):
        train(fast_recipe(train_file, f"validation_file={valid}", "metric_for_best_model=mse"), tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_regression_run_reports_pearson(fast_recipe, make_file, tmp_path):
    table = [{"sentence1": f"first sentence number {i}", "sentence2": f"second {i % 7}", "label": (i % 11) * 0.45}
             for i in range(48)]
    result = train(fast_recipe(make_file("scores.csv", table)), tmp_path / "run")
    metrics = result.metrics
    assert {"eval_pearson", "eval_spearmanr", "eval_mse"} <= set(metrics)
    assert -1.0 <= metrics["eval_pearson"] <= 1.0 and metrics["eval_mse"] > 0
    assert metrics["metric_for_best_model"] == "eval_pearson"
    assert metrics["majority_baseline"]["eval_pearson"] == 0.0
    config = json.loads((result.model_dir / "config.json").read_text())
    assert config["problem_type"] == "regression"
    assert config["id2label"] == {"0": "score"}
    assert config["textclf"]["text_columns"] == ["sentence1", "sentence2"]
    predictions = read_jsonl(tmp_path / "run" / "predictions.jsonl")
    assert len(predictions) == metrics["eval_examples"] == 48  # no hold-out of 48 rows: judged on the train data
    assert metrics["validation_is_train"] is True and metrics["best_checkpoint"] is None  # a fixed schedule
    assert all(isinstance(p["predicted"], float) and isinstance(p["gold"], float) for p in predictions)


def test_multi_label_run_reports_f1_micro(fast_recipe, make_file, tmp_path):
    choices = [["joy"], ["anger"], ["joy", "love"], [], ["anger", "love"], ["love"]]
    table = [{"text": f"comment number {i}", "label": choices[i % len(choices)]} for i in range(48)]
    result = train(fast_recipe(make_file("comments.jsonl", table)), tmp_path / "run")
    metrics = result.metrics
    assert {"eval_f1_micro", "eval_f1_macro"} <= set(metrics)
    assert 0.0 <= metrics["eval_f1_micro"] <= 1.0
    assert metrics["metric_for_best_model"] == "eval_f1_micro"
    config = json.loads((result.model_dir / "config.json").read_text())
    assert config["problem_type"] == "multi_label_classification"
    assert config["id2label"] == {"0": "anger", "1": "joy", "2": "love"}
    predictions = read_jsonl(tmp_path / "run" / "predictions.jsonl")
    assert len(predictions) == metrics["eval_examples"]
    by_text = {row["text"]: sorted(row["label"]) for row in table}
    assert all(sorted(p["gold"]) == by_text[p["text"]] for p in predictions)
    assert all(set(p["predicted"]) <= {"anger", "joy", "love"} for p in predictions)


# --- bf16 -------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("native", [False, True])
def test_bf16_auto_follows_the_hardware_in_a_run(fast_recipe, sentiment_files, tmp_path, monkeypatch, native):
    set_cpu(monkeypatch, {"avx512_bf16"} if native else {"avx2"})
    train_file, valid = sentiment_files
    result = train(fast_recipe(train_file, f"validation_file={valid}", "bf16=auto"), tmp_path / "run")
    assert result.metrics["bf16"] is native
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["bf16"] is native


def test_bf16_true_without_native_bf16_is_a_config_error(fast_recipe, sentiment_files, tmp_path, monkeypatch):
    set_cpu(monkeypatch, {"avx2"})
    train_file, _ = sentiment_files
    with pytest.raises(ConfigError, match="no native bf16"):
        train(fast_recipe(train_file, "bf16=true"), tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_early_stopping_ends_the_run_when_the_metric_stalls(fast_recipe, sentiment_files, tmp_path):
    # A learning rate of 1e-12 leaves the model as it was: the metric never improves, so with patience 1
    # the run stops after the second evaluation instead of running its 5 epochs.
    train_file, validation_file = sentiment_files
    recipe = fast_recipe(train_file, f"validation_file={validation_file}", "num_train_epochs=5",
                         "learning_rate=1e-12", "early_stopping_patience=1")
    metrics = train(recipe, tmp_path / "run").metrics
    assert metrics["epoch"] == pytest.approx(2.0)


# --- layer-wise learning-rate decay -------------------------------------------------------------------------------

def test_training_with_layerwise_decay_uses_the_groups(fast_recipe, sentiment_files, tmp_path, monkeypatch):
    from textclf.training import trainer as training

    seen = {}
    real = training.layerwise_parameter_groups

    def spy(*args, **kwargs):
        seen["groups"] = real(*args, **kwargs)
        return seen["groups"]

    monkeypatch.setattr(training, "layerwise_parameter_groups", spy)
    train_file, validation_file = sentiment_files
    recipe = fast_recipe(train_file, f"validation_file={validation_file}", "layerwise_lr_decay=0.5")
    result = train(recipe, tmp_path / "run")
    assert len({g["lr"] for g in seen["groups"]}) == 4  # head, 2 blocks, embeddings
    assert 0.0 <= result.metrics["eval_accuracy"] <= 1.0
    with pytest.raises(ConfigError, match="layerwise_lr_decay=1.5"):
        load_recipe(str(train_file), ["layerwise_lr_decay=1.5"])
