"""Hyperparameter search on a tiny random BERT: the space, the study's storage and resume, pruning, workers."""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import subprocess
import sys

import optuna
import pandas as pd
import pytest
import yaml
from conftest import fast_overrides

from textclf.cli import main
from textclf.config import Recipe, load_recipe, parse_space
from textclf.config.coercion import field_types
from textclf.data.loading import load_recipe_data
from textclf.errors import ConfigError
from textclf.training import train
from textclf.training.search import (
    PruningCallback,
    apply_params,
    default_study_name,
    objective_metric,
    search,
)
from textclf.training.study import open_storage

# Small enough for trials of a second or two: 32 of the 64 training rows, one epoch, two or four steps.
SPACE = {"learning_rate": {"low": 1e-4, "high": 1e-2, "log": True},
         "seed": {"low": 1, "high": 5},
         "per_device_train_batch_size": {"choices": [8, 16]}}


def parse_space_of(space):
    """:func:`parse_space` against the Recipe's own field types."""
    return parse_space(space, field_types(Recipe))


@pytest.fixture
def make_search_recipe(tmp_path, tiny_model_dir, sentiment_files):
    """``make_search_recipe(*overrides, **search_settings)``: a recipe YAML with a search section, loaded."""
    train_file, validation_file = sentiment_files

    def make(*extra: str, **settings):
        doc = {"data": {"train_file": str(train_file), "validation_file": str(validation_file)},
               "search": {"space": SPACE, "n_trials": 3, "fraction": 0.5, "retrain": False, **settings}}
        path = tmp_path / "search.yaml"
        path.write_text(yaml.safe_dump(doc), encoding="utf-8")
        return load_recipe(str(path), fast_overrides(tiny_model_dir, *extra))

    return make


def load_study(result):
    return optuna.load_study(study_name=result.study_name, storage=open_storage(result.storage))


# --- the space --------------------------------------------------------------------------------------------------

def test_space_parses_log_and_linear_floats_ints_grids_and_choices():
    specs = {s.name: s for s in parse_space_of({
        "learning_rate": {"low": "1e-5", "high": 3e-4, "log": True},
        "weight_decay": {"low": 0, "high": 0.1},
        "num_train_epochs": {"low": 1, "high": 5, "step": 1},
        "seed": {"low": 1, "high": 40},
        "per_device_train_batch_size": {"choices": [16, "32"]},
        "lr_scheduler_type": {"choices": ["linear", "cosine"]},
    })}
    assert (specs["learning_rate"].kind, specs["learning_rate"].low, specs["learning_rate"].log) == ("float", 1e-5, True)
    assert (specs["weight_decay"].kind, specs["weight_decay"].log) == ("float", False)
    assert (specs["num_train_epochs"].kind, specs["num_train_epochs"].step) == ("float", 1.0)  # a float field
    assert (specs["seed"].kind, specs["seed"].low, specs["seed"].high) == ("int", 1, 40)
    assert specs["per_device_train_batch_size"].choices == (16, 32)  # coerced to the field's int
    assert specs["lr_scheduler_type"].choices == ("linear", "cosine")


def test_default_space_covers_the_issue_knobs():
    recipe = load_recipe("sst2")
    assert {s.name for s in recipe.search_space()} == {
        "learning_rate", "num_train_epochs", "per_device_train_batch_size", "weight_decay", "warmup_ratio", "seed"}


@pytest.mark.parametrize(("override", "named"), [
    ("search.space={foo: {low: 1, high: 2}}", "search.space.foo"),
    ("search.space={data: {choices: [1]}}", "search.space.data"),
    ("search.space={seed: {low: 1, hi: 3}}", "search.space.seed.hi"),
    ("search.space={seed: 5}", "search.space.seed"),
    ("search.space={seed: {low: 1}}", "search.space.seed"),
    ("search.space={seed: {choices: [1, 2], low: 1}}", "search.space.seed"),
    ("search.space={learning_rate: {low: 0.1, high: 0.01}}", "search.space.learning_rate"),
    ("search.space={learning_rate: {low: 0, high: 0.1, log: true}}", "search.space.learning_rate"),
    ("search.space={learning_rate: {low: 0.001, high: 0.1, log: true, step: 0.01}}", "search.space.learning_rate"),
    ("search.space={per_device_train_batch_size: {choices: []}}", "search.space.per_device_train_batch_size"),
    ("search.space={per_device_train_batch_size: {choices: [16, big]}}",
     "search.space.per_device_train_batch_size.choices[1]"),
    ("search.space={optim: {low: 1, high: 2}}", "search.space.optim"),
    ("search.space={optim: {choices: [adamw_torch, nope]}}", "search.space.optim"),
    ("search.space={warmup_ratio: {low: 0, high: 1.5}}", "search.space.warmup_ratio"),
    ("search.space=[1, 2]", "search.space"),
    ("search.fraction=0", "search.fraction"),
    ("search.n_trials=0", "search.n_trials"),
    ("search.pruner=hyperband", "search.pruner"),
    ("search.nope=1", "search.nope"),
])
def test_bad_search_settings_raise_config_error_naming_the_key(override, named):
    with pytest.raises(ConfigError) as err:
        load_recipe("sst2", [override])
    assert named in str(err.value)


def test_space_on_the_command_line_replaces_the_recipe_space():
    recipe = load_recipe("sst2", ["search.space={seed: {choices: [1, 2]}}"])
    assert recipe.search.space == {"seed": {"choices": [1, 2]}}


# --- a search ---------------------------------------------------------------------------------------------------

@pytest.mark.slow  # multi-process or trains several runs: CI runs it, -m 'not slow' skips it
def test_three_trial_search_writes_the_table_best_recipe_plots_and_retrained_model(make_search_recipe, tmp_path):
    recipe = make_search_recipe(retrain=True)
    out = tmp_path / "search"
    result = search(recipe, out)

    table = pd.read_csv(out / "trials.csv")
    assert list(table["number"]) == [0, 1, 2] and set(table["state"]) == {"COMPLETE"}
    assert {"value", "params_learning_rate", "params_seed", "params_per_device_train_batch_size",
            "datetime_start", "datetime_complete", "duration_s", "worker"} <= set(table.columns)
    assert json.loads((out / "trials.json").read_text())[0]["number"] == 0
    for row in table.itertuples():  # each value is its trial's validation accuracy, on half of train
        metrics = json.loads((out / "trials" / str(row.number) / "metrics.json").read_text())
        assert row.value == pytest.approx(metrics["eval_accuracy"])
        assert metrics["train_examples"] == 32 and metrics["eval_examples"] == 16
        assert not (out / "trials" / str(row.number) / "model").exists()  # weights deleted
        assert not (out / "trials" / str(row.number) / "checkpoints").exists()
        assert not (out / "trials" / str(row.number) / "tensorboard").exists()  # trials log no event files
    assert result.metric == "accuracy" and result.direction == "maximize"
    assert result.best_value == table["value"].max()

    best = load_recipe(str(out / "best_recipe.yaml"))  # what `textclf train best_recipe.yaml` loads
    assert best == apply_params(recipe, result.best_params)
    best_row = table.loc[table["value"].idxmax()]
    assert best.seed == best_row["params_seed"]
    assert best.learning_rate == pytest.approx(best_row["params_learning_rate"])
    assert best.per_device_train_batch_size == best_row["params_per_device_train_batch_size"]

    assert result.best_metrics["train_examples"] == 64  # retrained on the full training data
    assert (out / "best" / "model" / "model.safetensors").is_file()
    chosen = {key: result.best_metrics[key] for key in ("max_seq_length", "truncation")}  # auto, as resolved
    assert load_recipe(str(out / "best" / "config.yaml")) == dataclasses.replace(best, **chosen)
    summary = json.loads((out / "search.json").read_text())
    assert summary["best_validation"]["eval_accuracy"] == result.best_metrics["eval_accuracy"]
    assert summary["direction"] == "maximize" and summary["states"] == {"COMPLETE": 3}
    for plot in ("optimization_history.png", "param_importances.png"):
        assert (out / plot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_direction_follows_the_task_metric(make_file, fast_recipe, make_search_recipe, tmp_path):
    scores = [{"sentence1": f"first sentence {i}", "sentence2": f"second {i % 7}", "label": (i % 11) * 0.45}
              for i in range(48)]
    regression = fast_recipe(make_file("scores.csv", scores))
    assert objective_metric(regression, load_recipe_data(regression)) == ("pearson", "maximize")

    recipe = make_search_recipe("metric_for_best_model=loss", n_trials=1)
    result = search(recipe, tmp_path / "loss")
    assert (result.metric, result.direction) == ("loss", "minimize")
    assert load_study(result).direction == optuna.study.StudyDirection.MINIMIZE
    history = json.loads((tmp_path / "loss" / "trials" / "0" / "log_history.json").read_text())
    assert result.best_value == min(entry["eval_loss"] for entry in history if "eval_loss" in entry)


# --- storage, resume, workers -----------------------------------------------------------------------------------

def test_rerun_resumes_the_study_without_redoing_finished_trials(make_search_recipe, tmp_path):
    out = tmp_path / "search"
    first = search(make_search_recipe(n_trials=2), out)
    before = pd.read_csv(out / "trials.csv")
    again = search(make_search_recipe(n_trials=3), out)  # n_trials changed: the same study
    after = pd.read_csv(out / "trials.csv")

    assert again.study_name == first.study_name and (out / "study.log").is_file()
    assert list(after["number"]) == [0, 1, 2] and set(after["state"]) == {"COMPLETE"}
    columns = ["number", "value", "datetime_start", "datetime_complete", "params_learning_rate"]
    pd.testing.assert_frame_equal(after.loc[:1, columns], before[columns])  # trials 0 and 1 were not re-run
    assert after.loc[2, "datetime_start"] >= before["datetime_complete"].max()
    search(make_search_recipe(n_trials=3), out)  # nothing left to do
    assert len(pd.read_csv(out / "trials.csv")) == 3


def test_trial_left_running_by_a_killed_worker_is_failed_and_replaced(make_search_recipe, tmp_path):
    recipe = make_search_recipe(n_trials=1)
    out = tmp_path / "search"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    study = optuna.create_study(study_name=default_study_name(recipe), storage=open_storage(str(out / "study.log")),
                                direction="maximize")
    zombie = study.ask()  # what a SIGKILLed worker leaves behind: a RUNNING trial nobody will finish
    zombie.set_user_attr("worker", f"{socket.gethostname()}:{dead.pid}")

    search(recipe, out)
    table = pd.read_csv(out / "trials.csv")
    assert list(table["state"]) == ["FAIL", "COMPLETE"]


@pytest.mark.slow  # multi-process or trains several runs: CI runs it, -m 'not slow' skips it
def test_two_workers_share_one_study(make_search_recipe, tmp_path):
    # 3 trials, 2 workers: both finish their first trial at about the same time, and only one may start the third.
    result = search(make_search_recipe(n_trials=3), tmp_path / "search", workers=2)
    table = pd.read_csv(tmp_path / "search" / "trials.csv")
    assert sorted(table["number"]) == [0, 1, 2]  # the union, nothing duplicated, n_trials in total
    assert set(table["state"]) == {"COMPLETE"}
    pids = {worker.rpartition(":")[2] for worker in table["worker"]}
    assert str(os.getpid()) not in pids and 1 <= len(pids) <= 2  # run by the spawned workers
    assert result.best_params is not None and (tmp_path / "search" / "best_recipe.yaml").is_file()


# --- pruning ----------------------------------------------------------------------------------------------------

class StubTrial:
    """Records what the callback reports; its pruner prunes at the first report."""

    def __init__(self):
        self.reports, self.user_attrs = [], {}

    def report(self, value, step):
        self.reports.append((value, step))

    def should_prune(self):
        return True

    def set_user_attr(self, key, value):
        self.user_attrs[key] = value


def test_pruning_callback_stops_training_after_the_first_evaluation(fast_recipe, sentiment_files, tmp_path):
    train_file, validation_file = sentiment_files
    recipe = fast_recipe(train_file, f"validation_file={validation_file}", "num_train_epochs=3")
    trial = StubTrial()
    with pytest.raises(optuna.TrialPruned):
        train(recipe, tmp_path / "run", callbacks=[PruningCallback(trial, "accuracy")])
    assert len(trial.reports) == 1 and trial.reports[0][1] == 1  # reported once, at epoch 1
    assert 0.0 <= trial.reports[0][0] <= 1.0
    assert trial.user_attrs == {"pruned_at_step": 4, "planned_steps": 12}  # 64 rows / batch 16, 3 epochs
    assert not (tmp_path / "run" / "metrics.json").exists()


class AlwaysPrune(optuna.pruners.BasePruner):
    def prune(self, study, trial):
        return True


def test_pruned_trials_end_early_and_leave_no_best_recipe(make_search_recipe, tmp_path):
    result = search(make_search_recipe("num_train_epochs=2", n_trials=2), tmp_path / "search", pruner=AlwaysPrune())
    table = pd.read_csv(tmp_path / "search" / "trials.csv")
    assert list(table["state"]) == ["PRUNED", "PRUNED"]
    for trial in load_study(result).trials:
        assert trial.user_attrs["pruned_at_step"] < trial.user_attrs["planned_steps"]
        assert trial.user_attrs["pruned_at_step"] * 2 == trial.user_attrs["planned_steps"]  # after epoch 1 of 2
    assert result.best_params is None and not (tmp_path / "search" / "best_recipe.yaml").exists()


# --- Ray and the command line -----------------------------------------------------------------------------------

def test_ray_backend_without_ray_names_the_extra(make_search_recipe, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` fails even where Ray is installed
    with pytest.raises(ConfigError, match=r"pip install 'textclf\[ray\]'"):
        search(make_search_recipe(backend="ray"), tmp_path / "search")
    assert not (tmp_path / "search").exists()


def test_push_to_hub_without_a_token_fails_before_any_trial(make_search_recipe, tmp_path, monkeypatch):
    import huggingface_hub

    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setattr(huggingface_hub, "get_token", lambda: None)
    with pytest.raises(ConfigError, match="push_to_hub=true needs a Hugging Face token"):
        search(make_search_recipe("push_to_hub=true", retrain=True), tmp_path / "search")
    assert not (tmp_path / "search").exists()


def test_ray_space_refuses_keys_the_trainer_cannot_set(monkeypatch):
    from textclf.training.search_ray import ray_space

    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(ConfigError, match=r"search.space.hidden_dropout .*backend=optuna"):
        ray_space(parse_space_of({"learning_rate": {"low": 1e-5, "high": 1e-3}, "hidden_dropout": {"low": 0, "high": 0.2}}))


def test_ray_trainer_rebuilds_the_model_for_each_trial(make_search_recipe, tmp_path):
    from textclf.training.search_ray import ray_trainer

    recipe = make_search_recipe()
    trainer = ray_trainer(recipe, load_recipe_data(recipe), tmp_path / "ray", "accuracy")
    first, second = trainer.call_model_init(), trainer.call_model_init()
    assert first is not second and first.config.id2label == {0: "neg", 1: "pos"}
    assert trainer.args.save_strategy == "no" and not trainer.args.load_best_model_at_end
    assert len(trainer.train_dataset) == 64 and trainer.args.metric_for_best_model == "accuracy"


def test_cli_search(tiny_model_dir, sentiment_files, tmp_path, capsys, monkeypatch):
    train_file, validation_file = sentiment_files
    args = ["search", str(train_file), *fast_overrides(tiny_model_dir), f"validation_file={validation_file}",
            "search.space={learning_rate: {low: 1e-4, high: 1e-2, log: true}}", "search.fraction=0.5",
            "--n-trials", "1", "--no-retrain", "--output-dir", str(tmp_path / "search")]
    assert main(args) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["trials"] == {"COMPLETE": 1} and printed["metric"] == "eval_accuracy"
    assert load_recipe(printed["best_recipe"]).learning_rate == printed["best_params"]["learning_rate"]
    assert printed["best_validation"] is None

    monkeypatch.setitem(sys.modules, "ray", None)
    assert main([*args[:-2], "--output-dir", str(tmp_path / "ray"), "--backend", "ray"]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert error[-1].startswith("textclf: error:") and "textclf[ray]" in error[-1]


@pytest.mark.slow  # multi-process or trains several runs: CI runs it, -m 'not slow' skips it
def test_the_method_is_searchable(make_search_recipe, tmp_path):
    """search.space can hold method: each trial trains with the method it drew, and the best recipe keeps it."""
    recipe = make_search_recipe("search.space={method: {choices: [finetune, head]}}", n_trials=4, startup_trials=4)
    result = search(recipe, tmp_path / "search")
    table = pd.read_csv(tmp_path / "search" / "trials.csv")
    assert set(table["state"]) == {"COMPLETE"} and set(table["params_method"]) <= {"finetune", "head"}
    for row in table.itertuples():
        metrics = json.loads((tmp_path / "search" / "trials" / str(row.number) / "metrics.json").read_text())
        assert metrics["method"] == row.params_method
    assert load_recipe(str(tmp_path / "search" / "best_recipe.yaml")).method == result.best_params["method"]


@pytest.mark.slow  # multi-process or trains several runs: CI runs it, -m 'not slow' skips it
def test_an_interrupted_trial_continues_from_its_checkpoint_to_the_uninterrupted_result(make_search_recipe,
                                                                                        tmp_path, monkeypatch):
    from transformers import TrainerCallback

    import textclf.training.search as search_module

    recipe = make_search_recipe("num_train_epochs=3", "eval_strategy=steps", "eval_steps=2",
                                "save_minutes=0.00001", n_trials=1)
    baseline = search(recipe, tmp_path / "baseline")

    class CtrlC(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == 3:
                raise KeyboardInterrupt

    real_train = search_module.train
    monkeypatch.setattr(search_module, "train", lambda *a, callbacks=(), **k: real_train(
        *a, callbacks=[*callbacks, CtrlC()], **k))
    out = tmp_path / "search"
    with pytest.raises(KeyboardInterrupt):
        search(recipe, out)
    assert (out / "trials" / "0" / "checkpoints" / "checkpoint-2").is_dir()  # kept for the next run
    monkeypatch.setattr(search_module, "train", real_train)
    resumed = search(recipe, out)

    table = pd.read_csv(out / "trials.csv")
    assert list(table["state"]) == ["FAIL", "COMPLETE"]
    study, base_study = load_study(resumed), load_study(baseline)
    continued, reference = study.trials[1], base_study.trials[0]
    assert continued.user_attrs["resumes_trial"] == 0 and continued.params == reference.params
    assert continued.value == reference.value
    assert continued.user_attrs["metrics"] == reference.user_attrs["metrics"]  # eval_loss too: same weights
    assert continued.intermediate_values == reference.intermediate_values  # replayed, then the same evaluations
    assert not (out / "trials" / "0" / "checkpoints").exists()  # finished: weights dropped as for any trial
