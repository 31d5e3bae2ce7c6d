"""A run's method choice (method=auto) and the small-data rules: no starving hold-out, a step floor, a warning
below the majority class."""

from __future__ import annotations

import json
import logging

import datasets
import pytest
from conftest import sentiment_rows

from textclf.config import load_recipe
from textclf.data.loading import TaskData
from textclf.errors import ConfigError
from textclf.tasks import MULTI_LABEL, REGRESSION, SINGLE_LABEL
from textclf.training import train
from textclf.training.run import SETFIT_BELOW_PER_CLASS, choose_method, examples_per_class
from textclf.training.trainer import small_data_schedule


def task_data(labels, problem_type=SINGLE_LABEL, columns=("text",), names=("a", "b", "c")) -> TaskData:
    split = datasets.Dataset.from_dict({**{c: [f"t{i}" for i in range(len(labels))] for c in columns},
                                        "label": labels})
    return TaskData(name="toy", splits={"train": split, "validation": split}, text_columns=columns,
                    label_names=[] if problem_type == REGRESSION else list(names), problem_type=problem_type,
                    metrics=("accuracy",), metric_for_best_model="accuracy")


def recipe(*overrides):
    return load_recipe("sst2", list(overrides))


@pytest.mark.parametrize("per_class, expected", [(8, "setfit"), (16, "setfit"), (64, "setfit"),
                                                 (SETFIT_BELOW_PER_CLASS - 1, "setfit"),
                                                 (SETFIT_BELOW_PER_CLASS, "finetune"), (1000, "finetune")])
def test_auto_picks_by_the_rarest_class(per_class, expected):
    data = task_data([0] * per_class + [1] * (per_class + 50) + [2] * (per_class + 7))
    assert examples_per_class(data) == per_class
    method, reason = choose_method(recipe(), data)
    assert method == expected and str(per_class) in reason


def test_auto_fine_tunes_pairs_long_documents_and_scores():
    assert choose_method(recipe(), task_data([0, 1] * 4, columns=("s1", "s2")))[0] == "finetune"
    assert choose_method(recipe("truncation=chunks", "stride=16"), task_data([0, 1] * 4))[0] == "finetune"
    assert choose_method(recipe(), task_data([0.5, 1.5] * 4, problem_type=REGRESSION))[0] == "finetune"


def test_auto_counts_the_mean_per_label_of_a_multi_label_task():
    rare = task_data([[1.0, 0.0, 1.0]] * 5 + [[0.0, 1.0, 1.0]] * 200, problem_type=MULTI_LABEL)
    assert examples_per_class(rare) == (5 + 200 + 205) // 3 and choose_method(recipe(), rare)[0] == "finetune"
    small = task_data([[1.0, 0.0, 0.0]] * 30 + [[0.0, 1.0, 1.0]] * 30, problem_type=MULTI_LABEL)
    assert examples_per_class(small) == 30 and choose_method(recipe(), small)[0] == "setfit"


def test_explicit_methods_are_kept_or_refused():
    assert choose_method(recipe("method=head"), task_data([0, 1] * 300))[0] == "head"
    assert choose_method(recipe("method=finetune"), task_data([0, 1] * 4))[0] == "finetune"
    with pytest.raises(ConfigError, match="method=setfit embeds single texts"):
        choose_method(recipe("method=setfit"), task_data([0, 1] * 4, columns=("s1", "s2")))
    with pytest.raises(ConfigError, match="method='boost' is not allowed"):
        load_recipe("sst2", ["method=boost"])


def test_the_step_floor_scales_small_runs_up_and_evaluates_ten_times():
    schedule = small_data_schedule(recipe("num_train_epochs=3"), train_rows=128, validation_is_train=False)
    assert schedule["planned_steps"] == 12  # 4 batches of 32 x 3 epochs
    assert schedule["overrides"] == {"max_steps": 300, "eval_strategy": "steps", "eval_steps": 30,
                                     "save_strategy": "steps", "save_steps": 30}
    assert small_data_schedule(recipe(), train_rows=67_349, validation_is_train=False)["overrides"] == {}
    assert small_data_schedule(recipe("min_train_steps=0"), 128, False)["overrides"] == {}
    assert small_data_schedule(recipe("max_steps=5"), 128, False)["overrides"] == {}  # the user's own count
    fixed = small_data_schedule(recipe(), train_rows=128, validation_is_train=True)["overrides"]
    assert fixed["eval_strategy"] == "no" and fixed["load_best_model_at_end"] is False and fixed["max_steps"] == 300
    # Longer inputs carry more tokens per step: the floor shrinks in proportion beyond 128 tokens (300 -> 75 at 512),
    # and little data of them trains in batches of 16 at half the learning rate, twice the steps for the same tokens.
    long_inputs = small_data_schedule(recipe("max_seq_length=512"), train_rows=450, validation_is_train=False)
    assert long_inputs["overrides"]["max_steps"] == 150 and long_inputs["min_train_steps"] == 150
    assert long_inputs["overrides"]["per_device_train_batch_size"] == 16
    assert long_inputs["overrides"]["learning_rate"] == pytest.approx(recipe().learning_rate / 2)
    assert long_inputs["learning_rate"] == long_inputs["overrides"]["learning_rate"]
    assert long_inputs["overrides"]["eval_steps"] == 15
    small_batch = small_data_schedule(recipe("max_seq_length=512", "per_device_train_batch_size=8"), 100, False)
    assert small_batch["overrides"]["max_steps"] == 75 and "learning_rate" not in small_batch["overrides"]
    assert "learning_rate" not in small_data_schedule(recipe("max_seq_length=512"), 67_349, False)["overrides"]
    assert "learning_rate" not in small_data_schedule(recipe("max_seq_length=128"), 128, False)["overrides"]
    assert small_data_schedule(recipe("max_seq_length=64"), 128, False)["overrides"]["max_steps"] == 300


def test_a_small_run_trains_on_everything_with_the_step_floor_and_says_so(fast_recipe, make_file, tmp_path, caplog):
    train_file = make_file("train.csv", sentiment_rows(40))
    with caplog.at_level(logging.WARNING):
        result = train(fast_recipe(train_file, "min_train_steps=20"), tmp_path / "run")
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["train_examples"] == metrics["eval_examples"] == 40 and metrics["validation_is_train"] is True
    assert metrics["global_step"] == 20 and metrics["schedule"]["planned_steps"] == 3  # 40 rows, batch 16, 1 epoch
    assert metrics["best_checkpoint"] is None and metrics["method"] == "finetune"
    assert "the scores in metrics.json are on the training data" in caplog.text
    assert result.metrics == metrics


def test_a_score_below_the_majority_class_is_warned_about(fast_recipe, make_file, tmp_path, caplog):
    """Validation labels flipped: a model that learned the training labels (method=head learns this toy task to
    0.9 and more) scores below always predicting one class."""
    train_file = make_file("train.csv", sentiment_rows(64))
    flipped = [{"text": r["text"], "label": "pos" if r["label"] == "neg" else "neg"} for r in sentiment_rows(16, 900)]
    validation_file = make_file("dev.csv", flipped)
    with caplog.at_level(logging.WARNING):
        result = train(fast_recipe(train_file, f"validation_file={validation_file}", "method=head"),
                       tmp_path / "run")
    assert result.metrics["eval_accuracy"] < 0.5 == result.metrics["majority_baseline"]["eval_accuracy"]
    assert "below the majority-class floor" in caplog.text
