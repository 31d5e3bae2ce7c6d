"""Registry of known benchmark tasks: the reference notebook's ``task_to_keys``, done properly.

Each :class:`TaskSpec` says where the data lives (Hub id and config, local mirror name), which columns
hold the text(s) and the label, the label names in id order, the problem type, the metrics the task is
judged by and the one that picks the best checkpoint, and the split names.

Sources: GLUE (Wang et al. 2019, ICLR) and its Hub copy ``nyu-mll/glue``; IMDb (Maas et al. 2011,
``stanfordnlp/imdb``); IndoNLU SmSA (Wilie et al. 2020, ``indonlp/indonlu``); GoEmotions (Demszky et al.
2020, ``google-research-datasets/go_emotions``, config ``simplified``). Metric choices follow the GLUE
paper, Table 1 (CoLA: Matthews correlation; STS-B: Pearson/Spearman; MRPC, QQP: accuracy and F1).
"""

from __future__ import annotations

from dataclasses import dataclass

SINGLE_LABEL = "single_label_classification"
MULTI_LABEL = "multi_label_classification"
REGRESSION = "regression"


@dataclass(frozen=True)
class TaskSpec:
    """A known dataset and how to train and judge a classifier on it.

    Attributes:
        name: registry key used on the command line (``sst2``, ``mnli-mm``, ...).
        hub_path: dataset id on the Hugging Face Hub, for ``datasets.load_dataset``.
        hub_config: configuration name on the Hub (``"sst2"`` for GLUE SST-2), or None.
        mirror_name: directory name in a local dataset mirror holding ``<split>.parquet`` files.
        text_columns: one column (single texts) or two (sentence pairs), in model input order.
        label_column: column holding the label id (int), score (float) or list of ids (multi-label).
        label_names: class names in id order; empty for regression.
        problem_type: ``transformers`` problem_type: single_label_classification, multi_label_classification
            or regression.
        metrics: metric names reported (see :mod:`textclf.metrics`).
        metric_for_best_model: the metric that picks the best checkpoint (greater is better).
        train_split, validation_split, test_split: split names in the source; test may be unlabelled.
            A validation_split of None means "carve one from train" (IMDb has only train and test).
    """

    name: str
    hub_path: str
    hub_config: str | None
    mirror_name: str
    text_columns: tuple[str, ...]
    label_names: tuple[str, ...]
    problem_type: str = SINGLE_LABEL
    metrics: tuple[str, ...] = ("accuracy", "f1_macro")
    metric_for_best_model: str = "accuracy"
    label_column: str = "label"
    train_split: str = "train"
    validation_split: str | None = "validation"
    test_split: str | None = "test"

    @property
    def num_labels(self) -> int:
        """Number of model outputs: 1 for regression, else the number of label names."""
        return 1 if self.problem_type == REGRESSION else len(self.label_names)


def _glue(name: str, columns: tuple[str, ...], labels: tuple[str, ...], **kwargs) -> TaskSpec:
    return TaskSpec(name=name, hub_path="nyu-mll/glue", hub_config=kwargs.pop("hub_config", name),
                    mirror_name=f"glue-{kwargs.pop('mirror', name)}", text_columns=columns,
                    label_names=labels, **kwargs)


_BINARY_F1 = ("accuracy", "f1", "f1_macro")
_NLI3 = ("entailment", "neutral", "contradiction")

TASKS: dict[str, TaskSpec] = {
    spec.name: spec
    for spec in (
        TaskSpec(name="imdb", hub_path="stanfordnlp/imdb", hub_config=None, mirror_name="imdb",
                 text_columns=("text",), label_names=("neg", "pos"), validation_split=None),
        _glue("cola", ("sentence",), ("unacceptable", "acceptable"),
              metrics=("matthews_correlation", "accuracy", "f1_macro"),
              metric_for_best_model="matthews_correlation"),
        _glue("sst2", ("sentence",), ("negative", "positive")),
        _glue("mrpc", ("sentence1", "sentence2"), ("not_equivalent", "equivalent"),
              metrics=_BINARY_F1, metric_for_best_model="f1"),
        _glue("stsb", ("sentence1", "sentence2"), (), problem_type=REGRESSION,
              metrics=("pearson", "spearmanr"), metric_for_best_model="pearson"),
        _glue("qqp", ("question1", "question2"), ("not_duplicate", "duplicate"),
              metrics=_BINARY_F1, metric_for_best_model="f1"),
        _glue("mnli", ("premise", "hypothesis"), _NLI3, validation_split="validation_matched",
              test_split="test_matched"),
        _glue("mnli-mm", ("premise", "hypothesis"), _NLI3, hub_config="mnli", mirror="mnli",
              validation_split="validation_mismatched", test_split="test_mismatched"),
        _glue("qnli", ("question", "sentence"), ("entailment", "not_entailment")),
        _glue("rte", ("sentence1", "sentence2"), ("entailment", "not_entailment")),
        _glue("wnli", ("sentence1", "sentence2"), ("not_entailment", "entailment")),
        TaskSpec(name="smsa", hub_path="indonlp/indonlu", hub_config="smsa", mirror_name="indonlu-smsa",
                 text_columns=("text",), label_names=("positive", "neutral", "negative"),
                 metrics=("accuracy", "f1_macro"), metric_for_best_model="f1_macro"),
        TaskSpec(name="goemotions", hub_path="google-research-datasets/go_emotions",
                 hub_config="simplified", mirror_name="goemotions", text_columns=("text",),
                 label_column="labels", problem_type=MULTI_LABEL,
                 label_names=("admiration", "amusement", "anger", "annoyance", "approval", "caring",
                              "confusion", "curiosity", "desire", "disappointment", "disapproval",
                              "disgust", "embarrassment", "excitement", "fear", "gratitude", "grief",
                              "joy", "love", "nervousness", "optimism", "pride", "realization", "relief",
                              "remorse", "sadness", "surprise", "neutral"),
                 metrics=("f1_micro", "f1_macro"), metric_for_best_model="f1_micro"),
    )
}
"""Known tasks by name. GLUE tasks are also reachable as ``glue/<name>`` (see :func:`get_task`)."""


def get_task(name: str) -> TaskSpec:
    """Look a task up by name (``sst2``), with or without a ``glue/`` prefix.

    Raises:
        ValueError: the name is not a known task; the message lists the known ones.
    """
    key = name.lower().removeprefix("glue/").removeprefix("glue-").replace("_", "-")
    key = {"mnli-m": "mnli", "mnli-matched": "mnli", "mnli-mismatched": "mnli-mm", "sst-2": "sst2",
           "sts-b": "stsb", "indonlu-smsa": "smsa", "go-emotions": "goemotions"}.get(key, key)
    if key not in TASKS:
        raise ValueError(f"unknown task {name!r}: known tasks are {', '.join(TASKS)}; "
                         "or give a recipe .yaml or a data file (.csv, .jsonl, .parquet)")
    return TASKS[key]
