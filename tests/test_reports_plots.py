"""The plots of a run: learning curves, confusion matrix, reliability diagram, regression scatter."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import assert_png, front_matter, read_jsonl
from sklearn.metrics import confusion_matrix

from textclf.reports.plots import confusion_counts, expected_calibration_error, reliability_bins
from textclf.training import train


def test_a_classification_run_has_its_plots(trained_run):
    plots = trained_run["result"].output_dir / "plots"
    assert sorted(p.name for p in plots.iterdir()) == ["confusion_matrix.png", "learning_curves.png",
                                                         "reliability.png"]
    for path in plots.iterdir():
        assert_png(path)


def test_confusion_counts_equal_the_predictions_file(trained_run):
    out = trained_run["result"].output_dir
    rows = read_jsonl(out / "predictions.jsonl")
    names, counts = confusion_counts(out)
    assert names == ["neg", "pos"]
    expected = confusion_matrix([r["gold"] for r in rows], [r["predicted"] for r in rows], labels=names)
    np.testing.assert_array_equal(counts, expected)
    assert counts.sum() == len(rows) == 16
    assert counts.sum(axis=1).tolist() == [8, 8]  # gold rows: the validation file is 8 neg / 8 pos


def test_expected_calibration_error_by_hand():
    confidence = [0.95, 0.95, 0.85, 0.65, 0.65, 0.55]
    correct = [True, False, True, True, True, False]
    # bins (0.9, 1]: 2 examples, accuracy 0.5 vs 0.95; (0.8, 0.9]: 1, 1.0 vs 0.85; (0.6, 0.7]: 2, 1.0 vs 0.65;
    # (0.5, 0.6]: 1, 0.0 vs 0.55
    by_hand = (2 * 0.45 + 1 * 0.15 + 2 * 0.35 + 1 * 0.55) / 6
    assert expected_calibration_error(confidence, correct) == pytest.approx(by_hand)
    assert expected_calibration_error([0.8] * 5, [True] * 4 + [False]) == pytest.approx(0.0)
    assert expected_calibration_error([], []) == 0.0


def test_reliability_bins_are_right_closed():
    bins = reliability_bins(np.array([0.0, 0.1, 0.3, 0.31, 1.0]), np.array([1, 0, 1, 1, 0]))
    assert bins["count"].tolist() == [2, 0, 1, 1, 0, 0, 0, 0, 0, 1]  # 0 and 0.1 in (0, 0.1]; 0.3 in (0.2, 0.3]
    assert bins["accuracy"][0] == 0.5 and bins["confidence"][3] == pytest.approx(0.31)
    assert np.isnan(bins["accuracy"][1])


def test_regression_run_gets_a_scatter_and_no_confusion_matrix(fast_recipe, make_file, tmp_path):
    table = [{"sentence1": f"first sentence number {i}", "sentence2": f"second {i % 7}", "label": (i % 11) * 0.45}
             for i in range(48)]
    train(fast_recipe(make_file("scores.csv", table), "report_to=none"), tmp_path / "run")
    plots = tmp_path / "run" / "plots"
    assert sorted(p.name for p in plots.iterdir()) == ["learning_curves.png", "regression_scatter.png"]
    for path in plots.iterdir():
        assert_png(path)
    with pytest.raises(ValueError, match="single-label"):
        confusion_counts(tmp_path / "run")
    assert not (tmp_path / "run" / "tensorboard").exists()  # report_to=none
    card = front_matter((tmp_path / "run" / "model" / "README.md").read_text())
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    values = {m["type"]: m["value"] for m in card["model-index"][0]["results"][0]["metrics"]}
    assert values == {k[5:]: v for k, v in metrics.items() if k in ("eval_pearson", "eval_spearmanr", "eval_mse")}
