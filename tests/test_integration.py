"""Integration: the real bundled model (all-MiniLM-L6-v2) trained on slices of real data from the mirror.

The runs are CI's tiny benchmark (the ``tiny_benchmark`` fixture: 1,000 training examples x 2 epochs per task, more
where a task needs them: :data:`textclf.benchmark.TINY_TASK_OVERRIDES`),
trained once per session. Each test asserts a quality floor that a broken pipeline (labels shuffled, wrong columns,
no learning) cannot reach, well above the majority class on the same validation examples, and that the checkpoint
works outside textclf.
"""

from __future__ import annotations

import json

import pytest
from conftest import mirror_path

from textclf.cli import main
from textclf.tasks import get_task

pytestmark = pytest.mark.slow


def row(tiny_benchmark: dict, task: str) -> dict:
    return next(r for r in tiny_benchmark["results"]["rows"] if r["task"] == task and r["status"] == "ok")


def test_tiny_budget_on_every_kind_of_task_beats_the_majority_class(tiny_benchmark):
    """CI's run of the benchmark runner: a slice of each kind of reference task with the bundled model (in this
    module, not test_benchmark.py: pytest-xdist's ``--dist loadscope`` then runs every test of the fixture on one
    worker, which trains it once)."""
    assert tiny_benchmark["code"] == 0
    results = tiny_benchmark["results"]
    by_task = {(r["task"], r["split"]): r for r in results["rows"]}
    ran = {task for task, _ in by_task if by_task[(task, _)]["status"] == "ok"}
    assert ran == {"imdb", "sst2", "stsb", "goemotions"}
    for missing in ("qqp", "mnli", "mnli-mm", "qnli"):  # the mirror has no train split for these
        entry = next(r for r in results["rows"] if r["task"] == missing)
        assert entry["status"].startswith("no train split")
    assert {("imdb", "test"), ("goemotions", "test")} <= set(by_task)
    for (task, split), entry in by_task.items():
        if entry["status"] != "ok":
            continue
        metric = get_task(task).headline_metrics[0]
        score, floor = entry["metrics"][metric], entry["majority"][metric]
        assert score > floor, (task, split, metric, score, floor)
        assert entry["wall_s"] > 0 and entry["train_examples"] > 0
    table = (tiny_benchmark["dir"] / "results.md").read_text()
    assert table.count("\n| ") == len(results["rows"]) + 1
    assert results["glue"]["tasks_counted"] == 2 and results["glue"]["macro_average"] is not None


def test_sst2_slice_beats_majority(tiny_benchmark) -> None:
    metrics = json.loads((tiny_benchmark["dir"] / "sst2" / "metrics.json").read_text())
    assert metrics["train_examples"] == 1000 and metrics["eval_examples"] == 400
    assert metrics["majority_baseline"]["eval_accuracy"] < 0.55
    assert metrics["eval_accuracy"] >= 0.75


def test_sst2_checkpoint_loads_in_pipeline(tiny_benchmark) -> None:
    from transformers import pipeline

    classify = pipeline("text-classification", model=str(tiny_benchmark["dir"] / "sst2" / "model"))
    results = classify(["a moving, funny and beautifully acted film", "a dull, lifeless and boring mess"])
    assert [r["label"] for r in results] == ["positive", "negative"]


def test_sst2_evaluate_verb_reproduces_metrics(tiny_benchmark, capsys: pytest.CaptureFixture) -> None:
    """The run scored a seeded 400 of the 872 validation sentences (max_eval_samples, seed 42); `evaluate
    --max-samples 400` draws the same 400 (seed 42) and must give the run's metrics exactly."""
    run = tiny_benchmark["dir"] / "sst2"
    metrics = json.loads((run / "metrics.json").read_text())
    capsys.readouterr()
    assert main(["evaluate", str(run / "model"), "sst2", "--data-dir", str(mirror_path()), "--max-samples",
                 "400"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["eval_examples"] == 400
    for key in ("eval_accuracy", "eval_f1_macro"):
        assert printed[key] == pytest.approx(metrics[key], abs=1e-9), key


def test_stsb_slice_regression_correlates(tiny_benchmark) -> None:
    stsb = row(tiny_benchmark, "stsb")
    assert stsb["majority"]["pearson"] == 0.0
    assert stsb["metrics"]["pearson"] >= 0.65


def test_imdb_test_split_is_scored(tiny_benchmark) -> None:
    imdb = next(r for r in tiny_benchmark["results"]["rows"] if r["task"] == "imdb" and r["split"] == "test")
    assert imdb["metrics"]["accuracy"] >= 0.7 > imdb["majority"]["accuracy"]


def test_eight_sst2_sentences_per_class_as_a_new_user_would(tmp_path, capsys) -> None:
    """`textclf train my.csv` (defaults: method=auto) on 16 real sentences, then `evaluate` on all 872 validation
    sentences: auto picks SetFit and beats the majority class clearly; method=head on the same file too."""
    import pandas as pd

    train_frame = pd.read_parquet(mirror_path() / "glue-sst2" / "train.parquet")
    names = ["negative", "positive"]
    sample = pd.concat([g.sample(8, random_state=0) for _, g in train_frame.groupby("label")])
    train_csv, dev_csv = tmp_path / "train.csv", tmp_path / "dev.csv"
    pd.DataFrame({"text": sample["sentence"], "label": [names[i] for i in sample["label"]]}).to_csv(train_csv,
                                                                                                   index=False)
    dev = pd.read_parquet(mirror_path() / "glue-sst2" / "validation.parquet")
    pd.DataFrame({"text": dev["sentence"], "label": [names[i] for i in dev["label"]]}).to_csv(dev_csv, index=False)
    for method, floor in (("auto", 0.6), ("head", 0.58)):
        out = tmp_path / method
        assert main(["train", str(train_csv), "--output-dir", str(out), f"method={method}", "report_to=none"]) == 0
        trained = json.loads(capsys.readouterr().out)
        assert trained["method"] == ("setfit" if method == "auto" else "head")
        assert trained["validation_is_train"] is True and trained["train_examples"] == 16
        assert main(["evaluate", str(out / "model"), str(dev_csv)]) == 0
        evaluated = json.loads(capsys.readouterr().out)
        assert evaluated["eval_accuracy"] >= floor > evaluated["majority_baseline"]["eval_accuracy"], method
