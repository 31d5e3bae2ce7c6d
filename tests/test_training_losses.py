"""Class weights: the balanced formulas, the recipe key, the weighted loss and training runs that use it."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import sentiment_rows
from safetensors.torch import load_file
from sklearn.utils.class_weight import compute_class_weight
from transformers import AutoModelForSequenceClassification

from textclf.config import load_recipe
from textclf.errors import ConfigError
from textclf.tasks import MULTI_LABEL, REGRESSION, SINGLE_LABEL, TASKS, default_metrics, get_task
from textclf.training import train
from textclf.training.losses import (
    MAX_POS_WEIGHT,
    WeightedLoss,
    balanced_class_weights,
    balanced_pos_weights,
    resolve_class_weights,
)

# --- the weights ------------------------------------------------------------------------------------------------

def test_balanced_weights_follow_the_sklearn_formula():
    labels = np.array([0] * 6 + [1] * 3 + [2])  # counts 6, 3, 1; n = 10, 3 classes
    weights = balanced_class_weights(labels, ["a", "b", "c"])
    np.testing.assert_allclose(weights, [10 / (3 * 6), 10 / (3 * 3), 10 / (3 * 1)])
    np.testing.assert_allclose(weights, compute_class_weight("balanced", classes=np.arange(3), y=labels))
    assert weights[labels].sum() == pytest.approx(len(labels))  # example weights sum to n


def test_balanced_weights_need_every_class_in_train():
    with pytest.raises(ConfigError, match="no train example of class 'neutral'.*positive, neutral, negative"):
        balanced_class_weights(np.array([0, 2, 2]), ["positive", "neutral", "negative"])


def test_balanced_pos_weights_are_negatives_over_positives_clipped():
    labels = np.zeros((10, 4), dtype=np.float32)
    labels[:2, 0] = 1   # 2 positives, 8 negatives -> 4
    labels[:5, 1] = 1   # 5 / 5 -> 1
    labels[:, 3] = 1    # always present: 0 / 10 -> clipped up to 1 / MAX_POS_WEIGHT
    # label 2 never present: clipped down to MAX_POS_WEIGHT
    np.testing.assert_allclose(balanced_pos_weights(labels), [4.0, 1.0, MAX_POS_WEIGHT, 1 / MAX_POS_WEIGHT])
    np.testing.assert_allclose(balanced_pos_weights(labels[:, :2], max_weight=3.0), [3.0, 1.0])


def test_resolve_class_weights():
    names = ["positive", "neutral", "negative"]
    labels = np.array([0, 0, 1, 2])
    assert resolve_class_weights("none", labels, names, SINGLE_LABEL) is None
    assert resolve_class_weights("balanced", labels, names, SINGLE_LABEL) == pytest.approx([2 / 3, 4 / 3, 4 / 3])
    assert resolve_class_weights([1, 2, 3], labels, names, SINGLE_LABEL) == [1.0, 2.0, 3.0]
    multi_hot = np.array([[1, 0], [0, 0], [1, 1], [0, 0]], dtype=np.float32)
    assert resolve_class_weights("balanced", multi_hot, ["x", "y"], MULTI_LABEL) == pytest.approx([1.0, 3.0])


def test_explicit_weights_of_the_wrong_length_are_a_config_error():
    with pytest.raises(ConfigError, match=r"class_weights has 2 values but this task has 3 labels: give one weight "
                                          r"per label, in label-id order: positive, neutral, negative"):
        resolve_class_weights([1.0, 2.0], np.array([0, 1, 2]), ["positive", "neutral", "negative"], SINGLE_LABEL)


@pytest.mark.parametrize("setting", ["balanced", [2.0]])
def test_class_weights_for_regression_are_a_config_error(setting):
    with pytest.raises(ConfigError, match="regression task has no classes"):
        resolve_class_weights(setting, np.array([0.5, 1.5]), [], REGRESSION)


# --- the recipe key ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("raw, expected", [("class_weights=none", "none"), ("class_weights=balanced", "balanced"),
                                           ("class_weights=[1, 2.5, 0.5]", [1.0, 2.5, 0.5])])
def test_class_weights_override(raw, expected):
    recipe = load_recipe("smsa", [raw])
    assert recipe.class_weights == expected
    assert load_recipe("smsa").class_weights == "none"  # the default


@pytest.mark.parametrize("raw", ["class_weights=heavy", "class_weights=[]", "class_weights=[1, 0]",
                                 "class_weights=[1, -2]", "class_weights=[1, .inf]"])
def test_bad_class_weights_are_a_config_error(raw):
    with pytest.raises(ConfigError, match="class_weights=.* is not allowed"):
        load_recipe("smsa", [raw])


def test_class_weights_must_be_numbers():
    with pytest.raises(ConfigError, match=r"class_weights\[1\]='b' is not a valid float"):
        load_recipe("smsa", ["class_weights=[1, b]"])


# --- the loss ---------------------------------------------------------------------------------------------------

LOGITS = torch.tensor([[2.0, 0.5, -1.0], [0.1, 0.2, 0.3], [-1.0, 2.0, 0.0], [0.5, -0.5, 1.5], [1.0, 1.0, -2.0],
                       [0.0, -1.0, 0.5]])
TARGETS = torch.tensor([0, 0, 1, 2, 0, 2])  # counts 3, 1, 2


def weighted(weights: list[float], problem_type: str = SINGLE_LABEL) -> WeightedLoss:
    return WeightedLoss(torch.tensor(weights, dtype=torch.float32), problem_type)


def test_weighted_loss_equals_cross_entropy_with_class_weights():
    # balanced weights of this batch: 6 / (3 * count) = [2/3, 2, 1]; the examples' weights sum to the batch size,
    # so PyTorch's weighted mean (sum / sum of weights) and textclf's sum / count agree
    w = torch.tensor([2 / 3, 2.0, 1.0])
    expected = F.cross_entropy(LOGITS, TARGETS, weight=w)
    loss = weighted(w.tolist())({"logits": LOGITS}, TARGETS)
    assert loss.dtype == torch.float32
    torch.testing.assert_close(loss, expected)
    assert not torch.allclose(loss, F.cross_entropy(LOGITS, TARGETS))  # the weights matter


def test_weighted_loss_divides_the_weighted_sum_by_the_label_count():
    w = torch.tensor([1.0, 5.0, 0.5])
    total = F.cross_entropy(LOGITS, TARGETS, weight=w, reduction="sum")
    loss_func = weighted(w.tolist())
    torch.testing.assert_close(loss_func({"logits": LOGITS}, TARGETS), total / 6)
    torch.testing.assert_close(loss_func({"logits": LOGITS}, TARGETS, num_items_in_batch=torch.tensor(12)),
                               total / 12)


def test_weighted_loss_is_additive_over_gradient_accumulation_micro_batches():
    # The Trainer passes the label count of the whole accumulated batch: micro-batch losses must add up to the
    # accumulated batch's loss (and so must their gradients).
    loss_func = weighted([1.0, 5.0, 0.5])
    logits = LOGITS.clone().requires_grad_(True)
    whole = loss_func({"logits": logits}, TARGETS)
    (grad_whole,) = torch.autograd.grad(whole, logits)
    halves = [loss_func({"logits": logits[i:i + 3]}, TARGETS[i:i + 3], num_items_in_batch=torch.tensor(6))
              for i in (0, 3)]
    torch.testing.assert_close(halves[0] + halves[1], whole)
    (grad_halves,) = torch.autograd.grad(halves[0] + halves[1], logits)
    torch.testing.assert_close(grad_halves, grad_whole)


def test_weighted_loss_ignores_minus_100_labels():
    targets = TARGETS.clone()
    targets[1] = -100
    w = torch.tensor([1.0, 5.0, 0.5])
    expected = F.cross_entropy(LOGITS, targets, weight=w, reduction="sum") / 5
    torch.testing.assert_close(weighted(w.tolist())({"logits": LOGITS}, targets), expected)


def test_multi_label_weighted_loss_is_bce_with_pos_weight():
    logits = LOGITS[:, :2]
    labels = torch.tensor([[1, 0], [0, 0], [1, 1], [0, 1], [0, 0], [1, 0]], dtype=torch.float32)
    pos_weight = torch.tensor([2.0, 0.5])
    expected = F.binary_cross_entropy_with_logits(logits, labels, pos_weight=pos_weight)  # mean over 12 cells
    torch.testing.assert_close(weighted([2.0, 0.5], MULTI_LABEL)({"logits": logits}, labels), expected)


def test_bf16_logits_give_a_float32_loss():
    loss = weighted([1.0, 5.0, 0.5])({"logits": LOGITS.bfloat16()}, TARGETS)
    assert loss.dtype == torch.float32
    torch.testing.assert_close(loss, F.cross_entropy(LOGITS.bfloat16().float(), TARGETS,
                                                     weight=torch.tensor([1.0, 5.0, 0.5]), reduction="sum") / 6)


def test_unit_weights_give_the_models_own_loss(classifier_dir, bundled_tokenizer):
    model = AutoModelForSequenceClassification.from_pretrained(classifier_dir).eval()
    batch = bundled_tokenizer(["a good film", "a dull and flat film", "so so"], padding=True, return_tensors="pt")
    labels = torch.tensor([2, 0, 1])
    with torch.no_grad():
        outputs = model(**batch, labels=labels)
    torch.testing.assert_close(weighted([1.0, 1.0, 1.0])(outputs, labels), outputs.loss)


def test_weighted_loss_rejects_regression():
    with pytest.raises(ValueError, match="no class weights"):
        WeightedLoss(torch.ones(1), REGRESSION)


# --- training runs ----------------------------------------------------------------------------------------------

def imbalanced_rows() -> list[dict]:
    """64 rows: 48 neg, 16 pos (balanced weights: 64 / (2 * 48) = 2/3 and 64 / (2 * 16) = 2)."""
    rows = sentiment_rows(128)
    negative = [r for r in rows if r["label"] == "neg"]
    positive = [r for r in rows if r["label"] == "pos"]
    return negative[:48] + positive[:16]


def weights_of(run) -> dict[str, torch.Tensor]:
    return load_file(run.model_dir / "model.safetensors")


def test_balanced_run_records_and_uses_the_weights(fast_recipe, make_file, sentiment_files, tmp_path):
    train_file = make_file("imbalanced.csv", imbalanced_rows())
    _, validation_file = sentiment_files
    plain = train(fast_recipe(train_file, f"validation_file={validation_file}"), tmp_path / "plain")
    balanced = train(fast_recipe(train_file, f"validation_file={validation_file}", "class_weights=balanced"),
                     tmp_path / "balanced")
    saved = json.loads((tmp_path / "balanced" / "metrics.json").read_text())
    assert saved["class_weights"] == pytest.approx({"neg": 2 / 3, "pos": 2.0})
    assert plain.metrics["class_weights"] is None
    log = json.loads((tmp_path / "balanced" / "log_history.json").read_text())
    losses = [entry["loss"] for entry in log if "loss" in entry]
    assert len(losses) == 4 and all(np.isfinite(losses))  # logging_steps=1: 64 rows / batch 16
    first, second = weights_of(plain), weights_of(balanced)
    assert not all(torch.equal(first[k], second[k]) for k in first)  # the weights reached the loss
    assert {"eval_accuracy", "eval_f1_macro"} <= set(saved)


def test_unit_class_weights_train_the_same_model_as_none(trained_run, tmp_path):
    recipe = dataclasses.replace(trained_run["recipe"], class_weights=[1.0, 1.0])
    again = train(recipe, tmp_path / "run")
    assert again.metrics["class_weights"] == {"neg": 1.0, "pos": 1.0}
    first, second = weights_of(trained_run["result"]), weights_of(again)
    for key in first:
        torch.testing.assert_close(second[key], first[key], rtol=1e-4, atol=1e-6)


def test_gradient_accumulation_gives_the_same_weighted_model(fast_recipe, make_file, tmp_path):
    # batch 16 vs 2 micro-batches of 8 in sequential order: the same examples per optimizer step, so with the loss
    # normalised by the accumulated batch's label count the two runs train the same model.
    train_file = make_file("imbalanced.csv", imbalanced_rows())
    common = ("class_weights=balanced", "train_sampling_strategy=sequential", "eval_strategy=no")
    one = train(fast_recipe(train_file, *common), tmp_path / "one")
    two = train(fast_recipe(train_file, *common, "per_device_train_batch_size=8", "gradient_accumulation_steps=2"),
                tmp_path / "two")
    assert one.metrics["global_step"] == two.metrics["global_step"] == 4
    first, second = weights_of(one), weights_of(two)
    for key in first:
        torch.testing.assert_close(second[key], first[key], rtol=1e-4, atol=1e-5)


def test_multi_label_run_with_balanced_pos_weight(fast_recipe, make_file, tmp_path):
    choices = [["joy"], ["anger"], ["joy", "love"], [], ["joy"], ["love"]]
    rows = [{"text": f"comment number {i}", "label": choices[i % len(choices)]} for i in range(60)]
    train_file, validation_file = make_file("train.jsonl", rows[:48]), make_file("validation.jsonl", rows[48:])
    result = train(fast_recipe(train_file, f"validation_file={validation_file}", "class_weights=balanced"),
                   tmp_path / "run")
    assert json.loads((result.model_dir / "config.json").read_text())["problem_type"] == MULTI_LABEL
    # 48 train rows: anger in 8 (40 negatives / 8 = 5), joy in 24 (24 / 24 = 1), love in 16 (32 / 16 = 2)
    assert result.metrics["class_weights"] == {"anger": 5.0, "joy": 1.0, "love": 2.0}
    assert np.isfinite(result.metrics["train_loss"])


def test_explicit_weights_of_the_wrong_length_fail_before_the_run(fast_recipe, sentiment_files, tmp_path):
    train_file, _ = sentiment_files
    with pytest.raises(ConfigError, match="class_weights has 3 values but this task has 2 labels.*neg, pos"):
        train(fast_recipe(train_file, "class_weights=[1, 2, 3]"), tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_class_weights_on_regression_fail_before_the_run(fast_recipe, make_file, tmp_path):
    table = [{"text": f"sentence {i}", "label": i * 0.37} for i in range(24)]
    with pytest.raises(ConfigError, match="regression"):
        train(fast_recipe(make_file("scores.csv", table), "class_weights=balanced"), tmp_path / "run")
    assert not (tmp_path / "run").exists()


# --- macro F1 for imbalanced tasks ------------------------------------------------------------------------------

def test_smsa_reports_and_selects_by_macro_f1():
    spec = get_task("smsa")
    assert spec.label_names == ("positive", "neutral", "negative")
    assert "f1_macro" in spec.metrics and spec.metric_for_best_model == "f1_macro"


def test_every_classification_task_reports_macro_f1():
    for spec in TASKS.values():
        if spec.problem_type != REGRESSION:
            assert "f1_macro" in spec.metrics, spec.name
    for problem_type, num_labels in ((SINGLE_LABEL, 2), (SINGLE_LABEL, 3), (MULTI_LABEL, 5)):
        assert "f1_macro" in default_metrics(problem_type, num_labels)[0]
