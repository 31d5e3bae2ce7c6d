"""Multi-label runs: the decision threshold tuned on validation and stored in the checkpoint, and per_label.csv."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from conftest import fast_overrides, write_table

from textclf.config import load_recipe
from textclf.errors import ConfigError
from textclf.evaluation import evaluate_checkpoint
from textclf.evaluation.metrics import THRESHOLD_GRID, compute
from textclf.inference import Predictor
from textclf.modeling import predictions_from_logits
from textclf.tasks import MULTI_LABEL
from textclf.training import train

LABELS = ["anger", "joy", "love"]  # label ids follow the sorted names
WORDS = {"anger": "furious", "joy": "delighted", "love": "adore"}
CHOICES = [["joy"], ["anger"], ["joy", "love"], [], ["anger", "love"], ["love"], ["joy"], ["anger", "joy"]]


def comment_rows(n: int, offset: int = 0) -> list[dict]:
    """Rows ``{"text", "label"}`` whose text names each of its labels' words; unique texts."""
    rows = []
    for i in range(offset, offset + n):
        labels = CHOICES[i % len(CHOICES)]
        words = " and ".join(WORDS[name] for name in labels) or "nothing much"
        rows.append({"text": f"i am {words} today, comment {i}", "label": labels})
    return rows


@pytest.fixture(scope="module")
def multi_label_run(tmp_path_factory, tiny_model_dir):
    """One tiny multi-label run with threshold=auto: {"result", "validation_file", "validation"}."""
    root = tmp_path_factory.mktemp("multi-label-run")
    write_table(root / "train.jsonl", comment_rows(64))
    validation = comment_rows(20, offset=1000)
    validation_file = write_table(root / "validation.jsonl", validation)
    recipe = load_recipe(str(root / "train.jsonl"),
                         fast_overrides(tiny_model_dir, f"validation_file={validation_file}", "num_train_epochs=2"))
    assert recipe.threshold == "auto"  # the default
    return {"result": train(recipe, root / "run"), "validation_file": validation_file, "validation": validation}


def test_tuned_threshold_is_stored_in_the_checkpoint_and_metrics(multi_label_run):
    result = multi_label_run["result"]
    config = json.loads((result.model_dir / "config.json").read_text())
    threshold = config["textclf"]["threshold"]
    assert threshold in THRESHOLD_GRID
    assert result.metrics["threshold"] == threshold and result.metrics["threshold_tuned"] is True
    assert config["problem_type"] == MULTI_LABEL and config["id2label"] == dict(zip("012", LABELS))
    assert Predictor.from_pretrained(result.model_dir).threshold == threshold


def test_tuned_threshold_maximises_validation_micro_f1(multi_label_run):
    result, validation = multi_label_run["result"], multi_label_run["validation"]
    logits = Predictor.from_pretrained(result.model_dir).logits([row["text"] for row in validation])
    gold = np.array([[name in row["label"] for name in LABELS] for row in validation], dtype=np.float32)
    scores = {t: compute(["f1_micro"], predictions_from_logits(logits, MULTI_LABEL, t), gold)["f1_micro"]
              for t in THRESHOLD_GRID}
    assert scores[result.metrics["threshold"]] == max(scores.values())
    assert result.metrics["eval_f1_micro"] == pytest.approx(max(scores.values()))


def test_metrics_json_equals_evaluate_checkpoint(multi_label_run):
    result = multi_label_run["result"]
    saved = json.loads((result.output_dir / "metrics.json").read_text())
    evaluated = evaluate_checkpoint(result.model_dir, str(multi_label_run["validation_file"]))
    eval_keys = {k for k in saved if k.startswith("eval_")}
    assert eval_keys == {"eval_f1_micro", "eval_f1_macro", "eval_examples"}
    for key in eval_keys:
        assert evaluated[key] == saved[key], key  # the same checkpoint, logits and threshold: exactly equal
    assert evaluated["majority_baseline"] == saved["majority_baseline"]


def test_predictions_use_the_stored_threshold(multi_label_run):
    result, validation = multi_label_run["result"], multi_label_run["validation"]
    lines = (result.output_dir / "predictions.jsonl").read_text(encoding="utf-8").splitlines()
    predictions = [json.loads(line) for line in lines]
    again = Predictor.from_pretrained(result.model_dir).predict([row["text"] for row in validation])
    assert [p["predicted"] for p in predictions] == [[hit["label"] for hit in hits] for hits in again]
    threshold = result.metrics["threshold"]
    assert all(score >= threshold for p in predictions for score in p["scores"].values())
    assert [sorted(p["gold"]) for p in predictions] == [sorted(row["label"]) for row in validation]


def test_per_label_csv_has_one_row_per_label_with_the_gold_support(multi_label_run):
    result, validation = multi_label_run["result"], multi_label_run["validation"]
    report = pd.read_csv(result.output_dir / "per_label.csv")
    assert report["label"].tolist() == LABELS
    assert list(report.columns) == ["label", "precision", "recall", "f1", "support"]
    assert report["support"].tolist() == [sum(name in row["label"] for row in validation) for name in LABELS]
    assert report["f1"].mean() == pytest.approx(result.metrics["eval_f1_macro"])


def test_per_label_csv_of_a_single_label_run(trained_run):
    result = trained_run["result"]
    report = pd.read_csv(result.output_dir / "per_label.csv")
    assert report["label"].tolist() == ["neg", "pos"]
    assert report["support"].tolist() == [8, 8]  # the validation file is 8 neg / 8 pos
    assert report["f1"].mean() == pytest.approx(result.metrics["eval_f1_macro"])
    assert result.metrics["threshold"] is None and result.metrics["threshold_tuned"] is False


def test_fixed_threshold_is_stored_as_given(fast_recipe, make_file, tmp_path):
    train_file = make_file("train.jsonl", comment_rows(48))
    result = train(fast_recipe(train_file, "threshold=0.3"), tmp_path / "run")
    config = json.loads((result.model_dir / "config.json").read_text())
    assert config["textclf"]["threshold"] == 0.3
    assert result.metrics["threshold"] == 0.3 and result.metrics["threshold_tuned"] is False


# --- the recipe key ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("raw, expected", [("threshold=auto", "auto"), ("threshold=0.25", 0.25),
                                           ("threshold='0.4'", 0.4)])
def test_threshold_override(raw, expected):
    assert load_recipe("goemotions", [raw]).threshold == expected


@pytest.mark.parametrize("raw", ["threshold=0", "threshold=1", "threshold=1.5", "threshold=high", "threshold=true"])
def test_bad_threshold_is_a_config_error(raw):
    with pytest.raises(ConfigError, match="threshold=.* is not allowed: use auto"):
        load_recipe("goemotions", [raw])


def test_threshold_on_a_single_label_task_is_a_config_error(fast_recipe, sentiment_files, tmp_path):
    train_file, _ = sentiment_files
    with pytest.raises(ConfigError, match="threshold=0.3 applies to multi-label tasks only"):
        train(fast_recipe(train_file, "threshold=0.3"), tmp_path / "run")
    assert not (tmp_path / "run").exists()
