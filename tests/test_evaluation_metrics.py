"""Metrics against values computed by hand on tiny arrays."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
from scipy.special import logit

from textclf.evaluation.metrics import (
    THRESHOLD_GRID,
    compute,
    majority_baseline,
    per_label_report,
    trainer_metrics,
    tune_threshold,
)
from textclf.modeling import predictions_from_logits, scores_from_logits
from textclf.tasks import MULTI_LABEL, REGRESSION, SINGLE_LABEL

# gold 0 0 1 1 1 1, predicted 0 0 1 1 1 0: TP=3 TN=2 FP=0 FN=1 (positive class 1)
GOLD = np.array([0, 0, 1, 1, 1, 1])
PRED = np.array([0, 0, 1, 1, 1, 0])


def test_accuracy():
    assert compute(["accuracy"], PRED, GOLD) == {"accuracy": pytest.approx(5 / 6)}


def test_binary_f1_is_the_f1_of_class_1():
    # precision 3/3, recall 3/4 -> 2PR/(P+R) = 6/7
    assert compute(["f1"], PRED, GOLD)["f1"] == pytest.approx(6 / 7)
    # the same predictions with the classes swapped: class 1 is now the old class 0 (P 2/3, R 1 -> 0.8)
    assert compute(["f1"], 1 - PRED, 1 - GOLD)["f1"] == pytest.approx(0.8)


def test_f1_macro_is_the_unweighted_mean_of_per_class_f1():
    # class 1: 6/7; class 0: precision 2/3, recall 1 -> 0.8
    assert compute(["f1_macro"], PRED, GOLD)["f1_macro"] == pytest.approx((6 / 7 + 0.8) / 2)


def test_f1_macro_three_classes():
    gold, pred = np.array([0, 1, 2, 2]), np.array([0, 2, 2, 2])
    # class 0: 1; class 1: 0 (never predicted); class 2: P 2/3, R 1 -> 0.8
    assert compute(["f1_macro"], pred, gold)["f1_macro"] == pytest.approx((1 + 0 + 0.8) / 3)


def test_matthews_correlation():
    # (TP*TN - FP*FN) / sqrt((TP+FP)(TP+FN)(TN+FP)(TN+FN)) = 6 / sqrt(3*4*2*3)
    assert compute(["matthews_correlation"], PRED, GOLD)["matthews_correlation"] == pytest.approx(6 / math.sqrt(72))
    assert compute(["matthews_correlation"], 1 - GOLD, GOLD)["matthews_correlation"] == pytest.approx(-1.0)


def test_pearson_and_spearman():
    labels = np.array([1.0, 2.0, 3.0, 4.0])
    swapped = np.array([1.0, 3.0, 2.0, 4.0])  # ranks 1 3 2 4: sum d^2 = 2 -> rho = 1 - 6*2/(4*15) = 0.8
    assert compute(["pearson", "spearmanr"], swapped, labels) == {"pearson": pytest.approx(0.8),
                                                                 "spearmanr": pytest.approx(0.8)}
    outlier = np.array([1.0, 3.0, 2.0, 40.0])  # same ranks; pearson = sum(dx dy) / sqrt(sum dx^2 sum dy^2)
    values = compute(["pearson", "spearmanr"], outlier, labels)
    assert values["pearson"] == pytest.approx(58 / math.sqrt(1085 * 5))
    assert values["spearmanr"] == pytest.approx(0.8)


def test_mse():
    assert compute(["mse"], np.array([1.0, 3.0, 2.0, 4.0]), np.array([1.0, 2.0, 3.0, 4.0]))["mse"] == pytest.approx(0.5)


@pytest.mark.parametrize("name", ["pearson", "spearmanr"])
def test_constant_predictions_give_correlation_zero(name):
    value = compute([name], np.full(4, 2.5), np.array([1.0, 2.0, 3.0, 4.0]))[name]
    assert value == 0.0 and not math.isnan(value)


def test_multi_label_f1_micro_and_macro():
    gold = np.array([[1, 0, 1], [0, 1, 0]])
    pred = np.array([[1, 0, 0], [1, 1, 0]])
    # micro: TP 2, FP 1, FN 1 -> 2/3; macro: label 0 (P 1/2, R 1) 2/3, label 1: 1, label 2: 0
    values = compute(["f1_micro", "f1_macro"], pred, gold.astype(np.float32))
    assert values["f1_micro"] == pytest.approx(2 / 3)
    assert values["f1_macro"] == pytest.approx((2 / 3 + 1 + 0) / 3)


def test_values_are_python_floats():
    values = compute(["accuracy", "f1", "matthews_correlation"], PRED, GOLD)
    assert all(type(v) is float for v in values.values())


def test_unknown_metric():
    with pytest.raises(ValueError, match="unknown metric 'auc'"):
        compute(["auc"], PRED, GOLD)


def test_majority_baseline_single_label():
    labels = np.array([1, 1, 0, 1, 2])
    assert majority_baseline(("accuracy",), labels, SINGLE_LABEL) == {"accuracy": pytest.approx(3 / 5)}
    # always predicting class 1 of [1, 0, 0, 1, 1, 1] (majority 1): F1 of class 1 = 2*4/(2*4+2) = 0.8
    assert majority_baseline(("f1",), np.array([1, 0, 0, 1, 1, 1]), SINGLE_LABEL)["f1"] == pytest.approx(0.8)


def test_majority_baseline_regression_predicts_the_mean():
    labels = np.array([1.0, 2.0, 3.0, 6.0])  # mean 3, variance (4 + 1 + 0 + 9) / 4 = 3.5
    assert majority_baseline(("pearson", "mse"), labels, REGRESSION) == {"pearson": 0.0, "mse": pytest.approx(3.5)}


def test_majority_baseline_multi_label_predicts_frequent_labels():
    labels = np.array([[1, 0], [1, 1], [1, 0]], dtype=np.float32)  # label 0 in 3/3 rows, label 1 in 1/3
    # predicting [1, 0] everywhere: TP 3, FN 1, FP 0 -> micro F1 = 6/7
    assert majority_baseline(("f1_micro",), labels, MULTI_LABEL)["f1_micro"] == pytest.approx(6 / 7)


def test_predictions_single_label_are_argmax_ids():
    logits = np.array([[0.1, 2.0, -1.0], [3.0, 0.0, 0.0], [0.0, 0.0, 0.5]], dtype=np.float32)
    predicted = predictions_from_logits(logits, SINGLE_LABEL)
    assert predicted.tolist() == [1, 0, 2] and predicted.dtype == np.int64


def test_predictions_regression_are_the_scores():
    predicted = predictions_from_logits(np.array([[0.5], [4.25]], dtype=np.float32), REGRESSION)
    assert predicted.shape == (2,) and predicted.tolist() == [0.5, 4.25]


def test_predictions_multi_label_threshold_on_sigmoid():
    logits = np.array([[2.0, -2.0, 0.0], [-0.1, 0.5, -3.0]])
    assert predictions_from_logits(logits, MULTI_LABEL).tolist() == [[1, 0, 1], [0, 1, 0]]  # sigmoid(0) = 0.5 counts
    # sigmoid(0.5) = 0.62, sigmoid(2) = 0.88: a 0.7 threshold keeps only the latter
    assert predictions_from_logits(logits, MULTI_LABEL, threshold=0.7).tolist() == [[1, 0, 0], [0, 0, 0]]


def test_scores_from_logits():
    logits = np.array([[0.0, math.log(3.0)]])
    np.testing.assert_allclose(scores_from_logits(logits, SINGLE_LABEL), [[0.25, 0.75]])
    np.testing.assert_allclose(scores_from_logits(logits, MULTI_LABEL), [[0.5, 0.75]])
    np.testing.assert_array_equal(scores_from_logits(logits, REGRESSION), logits)


def test_trainer_metrics_from_an_eval_prediction():
    logits = np.array([[2.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 3.0]])
    compute_metrics = trainer_metrics(("accuracy", "f1"), SINGLE_LABEL)
    values = compute_metrics(SimpleNamespace(predictions=(logits, None), label_ids=np.array([0, 1, 1, 1])))
    # predicted 0 1 0 1: accuracy 3/4; class 1: P 1, R 2/3 -> 0.8
    assert values == {"accuracy": pytest.approx(0.75), "f1": pytest.approx(0.8)}


def test_trainer_metrics_regression_flattens_labels():
    compute_metrics = trainer_metrics(("pearson", "mse"), REGRESSION)
    values = compute_metrics(SimpleNamespace(predictions=np.array([[1.0], [3.0], [2.0], [4.0]]),
                                             label_ids=np.array([[1.0], [2.0], [3.0], [4.0]])))
    assert values == {"pearson": pytest.approx(0.8), "mse": pytest.approx(0.5)}


# --- multi-label threshold and the per-label report ------------------------------------------------------------

def test_threshold_grid_is_005_to_095():
    assert THRESHOLD_GRID[0] == 0.05 and THRESHOLD_GRID[-1] == 0.95 and len(THRESHOLD_GRID) == 19
    assert 0.15 in THRESHOLD_GRID and 0.35 in THRESHOLD_GRID  # rounded: not 0.15000000000000002


def test_tune_threshold_finds_the_best_micro_f1():
    # Gold positives have probabilities 0.62, 0.41, 0.36; negatives 0.33, 0.20, 0.10 (spread over two labels).
    # t = 0.35 keeps exactly the positives (F1 1); 0.40 loses 0.36 (F1 0.8); 0.30 adds 0.33 (F1 6/7);
    # the untuned 0.5 keeps only 0.62 (F1 0.5).
    probabilities = np.array([[0.62, 0.33], [0.20, 0.41], [0.36, 0.10]])
    gold = np.array([[1, 0], [0, 1], [1, 0]], dtype=np.float32)
    logits = logit(probabilities)
    assert tune_threshold(logits, gold) == 0.35
    for threshold, f1 in ((0.35, 1.0), (0.4, 0.8), (0.3, 6 / 7), (0.5, 0.5)):
        predicted = predictions_from_logits(logits, MULTI_LABEL, threshold)
        assert compute(["f1_micro"], predicted, gold)["f1_micro"] == pytest.approx(f1)


def test_tune_threshold_agrees_with_sklearn_on_random_data():
    rng = np.random.default_rng(0)
    gold = (rng.random((200, 5)) < 0.2).astype(np.float32)
    logits = rng.normal(size=(200, 5)) + 2.0 * gold - 2.5  # rare labels with low scores: best t < 0.5
    scores = {t: compute(["f1_micro"], predictions_from_logits(logits, MULTI_LABEL, t), gold)["f1_micro"]
              for t in THRESHOLD_GRID}
    chosen = tune_threshold(logits, gold)
    assert scores[chosen] == max(scores.values())
    assert chosen < 0.5 and scores[chosen] > scores[0.5] + 0.1


def test_tune_threshold_ties_go_to_the_threshold_nearest_one_half():
    # positives at 0.9, negatives at 0.1: every threshold in (0.1, 0.9] is perfect, 0.5 among them
    logits = logit(np.array([[0.9, 0.1], [0.1, 0.9]]))
    assert tune_threshold(logits, np.eye(2)) == 0.5
    # negatives at 0.6: thresholds 0.65 .. 0.9 are perfect; 0.65 is nearest to 0.5
    logits = logit(np.array([[0.95, 0.6], [0.6, 0.95]]))
    assert tune_threshold(logits, np.eye(2)) == 0.65


def test_tune_threshold_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="differ in shape"):
        tune_threshold(np.zeros((3, 2)), np.zeros((3, 3)))


def test_per_label_report_single_label():
    report = per_label_report(PRED, GOLD, ["neg", "pos"])
    assert list(report.columns) == ["label", "precision", "recall", "f1", "support"]
    assert report["label"].tolist() == ["neg", "pos"]
    # neg: P 2/3, R 1, F1 0.8, 2 gold; pos: P 1, R 3/4, F1 6/7, 4 gold
    np.testing.assert_allclose(report["precision"], [2 / 3, 1.0])
    np.testing.assert_allclose(report["recall"], [1.0, 0.75])
    np.testing.assert_allclose(report["f1"], [0.8, 6 / 7])
    assert report["support"].tolist() == [2, 4]
    assert report["f1"].mean() == pytest.approx(compute(["f1_macro"], PRED, GOLD)["f1_macro"])


def test_per_label_report_lists_classes_absent_from_the_data():
    report = per_label_report(np.array([0, 0]), np.array([0, 1]), ["a", "b", "c"])
    assert report["label"].tolist() == ["a", "b", "c"]
    assert report["support"].tolist() == [1, 1, 0]
    assert report.loc[2, ["precision", "recall", "f1"]].tolist() == [0.0, 0.0, 0.0]


def test_per_label_report_multi_label():
    gold = np.array([[1, 0, 1], [0, 1, 0], [1, 0, 0]], dtype=np.float32)
    pred = np.array([[1, 0, 0], [1, 1, 0], [1, 0, 0]])
    report = per_label_report(pred, gold, ["x", "y", "z"])
    assert report["support"].tolist() == [2, 1, 1]  # rows carrying each label
    # x: TP 2, FP 1 -> P 2/3, R 1; y: P 1, R 1; z: never predicted -> 0
    np.testing.assert_allclose(report["precision"], [2 / 3, 1.0, 0.0])
    np.testing.assert_allclose(report["recall"], [1.0, 1.0, 0.0])
    assert report["f1"].mean() == pytest.approx(compute(["f1_macro"], pred, gold)["f1_macro"])


def test_majority_baseline_of_float32_scores_is_zero_correlation_not_nan():
    labels = np.random.default_rng(0).uniform(0, 5, 400).astype(np.float32)  # float32 mean: std of it is not 0
    assert majority_baseline(("pearson", "spearmanr"), labels, REGRESSION) == {"pearson": 0.0, "spearmanr": 0.0}
