"""Integration: train the real bundled model (all-MiniLM-L6-v2) on slices of real data from the mirror.

Each asserts a quality floor that a broken pipeline (labels shuffled, wrong columns, no learning) cannot
reach: well above the majority class on the same validation examples.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import mirror_path

from textclf.cli import main
from textclf.config import load_recipe
from textclf.training import train

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def mirror() -> str:
    return str(mirror_path())


@pytest.fixture(scope="module")
def sst2_run(mirror: str, tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("sst2")
    recipe = load_recipe("sst2", [f"data.data_dir={mirror}", "max_train_samples=3000", "num_train_epochs=1",
                                  "learning_rate=1e-4"])
    return train(recipe, out)


def test_sst2_slice_beats_majority(sst2_run) -> None:
    metrics = sst2_run.metrics
    assert metrics["train_examples"] == 3000 and metrics["eval_examples"] == 872
    assert metrics["majority_baseline"]["eval_accuracy"] < 0.52
    assert metrics["eval_accuracy"] >= 0.75


def test_sst2_checkpoint_loads_in_pipeline(sst2_run) -> None:
    from transformers import pipeline

    classify = pipeline("text-classification", model=str(sst2_run.model_dir))
    results = classify(["a moving, funny and beautifully acted film", "a dull, lifeless and boring mess"])
    assert [r["label"] for r in results] == ["positive", "negative"]


def test_sst2_evaluate_verb_reproduces_metrics(sst2_run, mirror: str, capsys: pytest.CaptureFixture) -> None:
    assert main(["evaluate", str(sst2_run.model_dir), "sst2", "--data-dir", mirror]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["eval_accuracy"] == pytest.approx(sst2_run.metrics["eval_accuracy"], abs=1e-9)


def test_stsb_slice_regression_correlates(mirror: str, tmp_path: Path) -> None:
    recipe = load_recipe("stsb", [f"data.data_dir={mirror}", "max_train_samples=3000", "num_train_epochs=3",
                                  "learning_rate=1e-4", "max_eval_samples=500"])
    metrics = train(recipe, tmp_path).metrics
    assert metrics["majority_baseline"]["eval_pearson"] == 0.0
    assert metrics["eval_pearson"] >= 0.65
