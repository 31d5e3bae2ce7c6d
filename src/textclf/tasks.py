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

from dataclasses import dataclass, field

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
        language: ISO 639-1 code of the texts (the model card's ``language``).
        headline_metrics: the metrics a results table shows, the one the task is ranked by first
            (default: ``metric_for_best_model`` alone).
        extra_splits: labelled splits scored besides validation by ``textclf benchmark`` (IMDb's test set; MNLI's
            mismatched validation set, scored as the task ``mnli-mm``).
        glue_file: the leaderboard file's stem on gluebenchmark.com (``CoLA`` -> ``CoLA.tsv``); None outside GLUE.
        glue_metrics: the metrics GLUE averages into the task's score (Wang et al. 2019, Table 1).
        glue_named_labels: GLUE's file spells the label out (``entailment``) instead of its id (MNLI, QNLI, RTE).
        published: published dev scores in points (x100) by model: ``distilbert`` (Sanh et al. 2019, Tables 1-2)
            and ``minilm_l6_h384`` (the microsoft/unilm MiniLM README, L6xH384).
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
    language: str = "en"
    headline_metrics: tuple[str, ...] = ()
    extra_splits: tuple[str, ...] = ()
    glue_file: str | None = None
    glue_metrics: tuple[str, ...] = ()
    glue_named_labels: bool = False
    published: dict[str, float] = field(default_factory=dict, hash=False, compare=False)

    def __post_init__(self) -> None:
        if not self.headline_metrics:
            object.__setattr__(self, "headline_metrics", (self.metric_for_best_model,))

    @property
    def num_labels(self) -> int:
        """Number of model outputs: 1 for regression, else the number of label names."""
        return num_labels(self.problem_type, self.label_names)


def num_labels(problem_type: str, label_names: tuple[str, ...] | list[str]) -> int:
    """Number of model outputs (``config.num_labels``): 1 for regression, else the number of label names."""
    return 1 if problem_type == REGRESSION else len(label_names)


def default_metrics(problem_type: str, n_labels: int) -> tuple[tuple[str, ...], str]:
    """Metrics for a user's data set (no registry task), and the one that picks the best checkpoint: Pearson,
    Spearman and MSE for regression; micro and macro F1 for multi-label; accuracy and macro F1 for classes, plus
    the positive class's F1 when there are two (GLUE's MRPC/QQP convention)."""
    if problem_type == REGRESSION:
        return ("pearson", "spearmanr", "mse"), "pearson"
    if problem_type == MULTI_LABEL:
        return ("f1_micro", "f1_macro"), "f1_micro"
    return (("accuracy", "f1", "f1_macro") if n_labels == 2 else ("accuracy", "f1_macro")), "accuracy"


def _glue(name: str, columns: tuple[str, ...], labels: tuple[str, ...], glue_file: str, **kwargs) -> TaskSpec:
    kwargs.setdefault("glue_metrics", kwargs.get("headline_metrics") or (kwargs.get("metric_for_best_model")
                                                                          or "accuracy",))
    return TaskSpec(name=name, hub_path="nyu-mll/glue", hub_config=kwargs.pop("hub_config", name),
                    mirror_name=f"glue-{kwargs.pop('mirror', name)}", text_columns=columns,
                    label_names=labels, glue_file=glue_file, **kwargs)


_BINARY_F1 = ("accuracy", "f1", "f1_macro")
_NLI3 = ("entailment", "neutral", "contradiction")

TASKS: dict[str, TaskSpec] = {
    spec.name: spec
    for spec in (
        TaskSpec(name="imdb", hub_path="stanfordnlp/imdb", hub_config=None, mirror_name="imdb",
                 text_columns=("text",), label_names=("neg", "pos"), validation_split=None,
                 extra_splits=("test",), published={"distilbert": 92.82}),
        _glue("cola", ("sentence",), ("unacceptable", "acceptable"), "CoLA",
              metrics=("matthews_correlation", "accuracy", "f1_macro"),
              metric_for_best_model="matthews_correlation", headline_metrics=("matthews_correlation", "accuracy"),
              glue_metrics=("matthews_correlation",), published={"distilbert": 51.3, "minilm_l6_h384": 47.5}),
        _glue("sst2", ("sentence",), ("negative", "positive"), "SST-2",
              published={"distilbert": 91.3, "minilm_l6_h384": 91.5}),
        _glue("mrpc", ("sentence1", "sentence2"), ("not_equivalent", "equivalent"), "MRPC",
              metrics=_BINARY_F1, metric_for_best_model="f1", headline_metrics=("f1", "accuracy"),
              published={"distilbert": 87.5, "minilm_l6_h384": 88.9}),
        _glue("stsb", ("sentence1", "sentence2"), (), "STS-B", problem_type=REGRESSION,
              metrics=("pearson", "spearmanr"), metric_for_best_model="pearson",
              headline_metrics=("pearson", "spearmanr"), published={"distilbert": 86.9}),
        _glue("qqp", ("question1", "question2"), ("not_duplicate", "duplicate"), "QQP",
              metrics=_BINARY_F1, metric_for_best_model="f1", headline_metrics=("f1", "accuracy"),
              published={"distilbert": 88.5, "minilm_l6_h384": 90.6}),
        _glue("mnli", ("premise", "hypothesis"), _NLI3, "MNLI-m", validation_split="validation_matched",
              test_split="test_matched", extra_splits=("validation_mismatched",), glue_named_labels=True,
              published={"distilbert": 82.2, "minilm_l6_h384": 83.3}),
        _glue("mnli-mm", ("premise", "hypothesis"), _NLI3, "MNLI-mm", hub_config="mnli", mirror="mnli",
              validation_split="validation_mismatched", test_split="test_mismatched", glue_named_labels=True),
        _glue("qnli", ("question", "sentence"), ("entailment", "not_entailment"), "QNLI", glue_named_labels=True,
              published={"distilbert": 89.2, "minilm_l6_h384": 90.5}),
        _glue("rte", ("sentence1", "sentence2"), ("entailment", "not_entailment"), "RTE", glue_named_labels=True,
              published={"distilbert": 59.9, "minilm_l6_h384": 68.8}),
        _glue("wnli", ("sentence1", "sentence2"), ("not_entailment", "entailment"), "WNLI",
              published={"distilbert": 56.3}),
        TaskSpec(name="smsa", hub_path="indonlp/indonlu", hub_config="smsa", mirror_name="indonlu-smsa",
                 text_columns=("text",), label_names=("positive", "neutral", "negative"),
                 metrics=("accuracy", "f1_macro"), metric_for_best_model="f1_macro", language="id",
                 headline_metrics=("f1_macro", "accuracy"), extra_splits=("test",)),
        TaskSpec(name="goemotions", hub_path="google-research-datasets/go_emotions",
                 hub_config="simplified", mirror_name="goemotions", text_columns=("text",),
                 label_column="labels", problem_type=MULTI_LABEL,
                 label_names=("admiration", "amusement", "anger", "annoyance", "approval", "caring",
                              "confusion", "curiosity", "desire", "disappointment", "disapproval",
                              "disgust", "embarrassment", "excitement", "fear", "gratitude", "grief",
                              "joy", "love", "nervousness", "optimism", "pride", "realization", "relief",
                              "remorse", "sadness", "surprise", "neutral"),
                 metrics=("f1_micro", "f1_macro"), metric_for_best_model="f1_micro",
                 headline_metrics=("f1_micro", "f1_macro"), extra_splits=("test",)),
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
