"""The task registry: columns, labels, metrics and splits of every known dataset."""

from __future__ import annotations

import pytest

from textclf.config.recipes import shipped_recipe
from textclf.tasks import MULTI_LABEL, REGRESSION, SINGLE_LABEL, TASKS, get_task

# Expected values from the GLUE paper (Table 1 metrics), the Hub datasets' column names and the label ids of
# ../shared/data/README.md: (text columns, label names, metric_for_best_model, validation split, mirror name).
EXPECTED = {
    "imdb": (("text",), ("neg", "pos"), "accuracy", None, "imdb"),
    "cola": (("sentence",), ("unacceptable", "acceptable"), "matthews_correlation", "validation", "glue-cola"),
    "sst2": (("sentence",), ("negative", "positive"), "accuracy", "validation", "glue-sst2"),
    "mrpc": (("sentence1", "sentence2"), ("not_equivalent", "equivalent"), "f1", "validation", "glue-mrpc"),
    "stsb": (("sentence1", "sentence2"), (), "pearson", "validation", "glue-stsb"),
    "qqp": (("question1", "question2"), ("not_duplicate", "duplicate"), "f1", "validation", "glue-qqp"),
    "mnli": (("premise", "hypothesis"), ("entailment", "neutral", "contradiction"), "accuracy",
             "validation_matched", "glue-mnli"),
    "mnli-mm": (("premise", "hypothesis"), ("entailment", "neutral", "contradiction"), "accuracy",
                "validation_mismatched", "glue-mnli"),
    "qnli": (("question", "sentence"), ("entailment", "not_entailment"), "accuracy", "validation", "glue-qnli"),
    "rte": (("sentence1", "sentence2"), ("entailment", "not_entailment"), "accuracy", "validation", "glue-rte"),
    "wnli": (("sentence1", "sentence2"), ("not_entailment", "entailment"), "accuracy", "validation", "glue-wnli"),
    "smsa": (("text",), ("positive", "neutral", "negative"), "f1_macro", "validation", "indonlu-smsa"),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_registry_entry(name):
    columns, labels, best, validation_split, mirror = EXPECTED[name]
    spec = get_task(name)
    assert spec.name == name
    assert spec.text_columns == columns
    assert spec.label_names == labels
    assert spec.metric_for_best_model == best
    assert best in spec.metrics
    assert spec.validation_split == validation_split
    assert spec.mirror_name == mirror
    assert spec.train_split == "train"


@pytest.mark.parametrize("name", sorted(set(EXPECTED) - {"stsb"}))
def test_classification_tasks_have_one_output_per_label(name):
    spec = get_task(name)
    assert spec.problem_type == SINGLE_LABEL
    assert spec.num_labels == len(EXPECTED[name][1]) >= 2


def test_stsb_is_a_regression_with_one_output():
    spec = get_task("stsb")
    assert spec.problem_type == REGRESSION
    assert spec.num_labels == 1
    assert set(spec.metrics) >= {"pearson", "spearmanr"}


def test_mnli_mismatched_reads_mnli_and_evaluates_on_validation_mismatched():
    matched, mismatched = get_task("mnli"), get_task("mnli-mm")
    assert mismatched.hub_config == matched.hub_config == "mnli"
    assert mismatched.validation_split == "validation_mismatched"
    assert matched.validation_split == "validation_matched"


def test_goemotions_is_multi_label_with_28_labels():
    spec = get_task("goemotions")
    assert spec.problem_type == MULTI_LABEL
    assert spec.label_column == "labels"
    assert spec.num_labels == 28
    assert spec.label_names[0] == "admiration" and spec.label_names[27] == "neutral"


@pytest.mark.parametrize("alias, name", [
    ("glue/sst2", "sst2"), ("SST-2", "sst2"), ("GLUE/SST2", "sst2"), ("glue-cola", "cola"), ("sts-b", "stsb"),
    ("mnli_mismatched", "mnli-mm"), ("mnli-matched", "mnli"), ("MNLI-MM", "mnli-mm"), ("indonlu-smsa", "smsa"),
])
def test_aliases(alias, name):
    assert get_task(alias) is TASKS[name]


def test_unknown_task_names_the_task_and_lists_known_ones():
    with pytest.raises(ValueError, match="unknown task 'sst3'") as err:
        get_task("sst3")
    assert "sst2" in str(err.value) and "mnli-mm" in str(err.value)


def test_every_task_ships_a_recipe_and_every_recipe_is_a_task():
    from importlib import resources

    shipped = {p.name.removesuffix(".yaml") for p in (resources.files("textclf") / "recipes").iterdir()
               if p.name.endswith(".yaml")}
    assert shipped == set(TASKS)
    assert all(shipped_recipe(name) is not None for name in TASKS)
    assert shipped_recipe("no-such-task") is None
