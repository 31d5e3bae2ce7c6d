"""``textclf benchmark``: run the reference task list and write ``results.json`` and a Markdown table.

Every number in the table comes from a run this module made (training with the shipped recipe, then
evaluation of the saved checkpoint), or from a checkpoint the user named for evaluation only. Published
references sit beside ours:

- DistilBERT (Sanh et al. 2019, "DistilBERT, a distilled version of BERT", Table 1: GLUE dev, medians of 5
  runs; Table 2: IMDb test accuracy 92.82). The paper gives one number per task without naming the metric
  for MRPC, QQP and STS-B; we set it beside the task's headline metric (F1, F1, Pearson).
- MiniLM-L6xH384 (Wang et al. 2020, the microsoft/unilm MiniLM README, GLUE dev).

GLUE's scores follow Wang et al. 2019 (GLUE, ICLR), section 4: a task with several metrics scores the
unweighted mean of them (MRPC and QQP: F1 and accuracy; STS-B: Pearson and Spearman); MNLI counts once
with the mean of its matched and mismatched accuracy; the GLUE score is the macro average of the task
scores. We report that average over the GLUE tasks that ran and say how many they are.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from textclf.errors import ConfigError, DataError, TextclfError
from textclf.files import atomic_write_text
from textclf.tasks import TASKS, get_task

logger = logging.getLogger(__name__)

DEFAULT_TASKS = ("imdb", "cola", "sst2", "mrpc", "stsb", "qqp", "mnli", "qnli", "rte", "wnli", "smsa", "goemotions")
# GLUE's nine tasks (MNLI once: its matched and mismatched scores are averaged into one), in registry order.
GLUE_TASKS = tuple(name for name, spec in TASKS.items() if spec.glue_file and name != "mnli-mm")
REFERENCE_MODELS = ("distilbert", "minilm_l6_h384")  # TaskSpec.published keys, as the table's columns

# Budgets: recipe overrides per run. "full" is the shipped recipes as they are; "tiny" is a slice of every
# task for CI (it checks structure and that each score clears the majority class, not quality).
BUDGETS: dict[str, dict[str, Any]] = {
    "full": {},
    "tiny": {"max_train_samples": 1000, "max_eval_samples": 400, "num_train_epochs": 2, "eval_strategy": "no",
             "min_train_steps": 0, "method": "finetune"},  # CI checks the fine-tuning path of every task
}
# IMDb at 512 tokens trains ~20x slower per example than SST-2: fewer, shorter reviews (one 128-token window each)
# keep CI's run short (600 reviews: 32 s with native bf16, test accuracy 0.78 against 0.805 at 256 tokens, 2 to 4
# times as long).
# CoLA and MRPC get more data: on 2,000 examples x 2 epochs their scores were within 0.05 (MCC) and 0.01 (F1) of the
# majority class, too close for a check that must not flake. CoLA on 4,000 still collapsed to the majority class (MCC
# 0.0) on one data order; all 8,551 training sentences gave MCC 0.31 in 54 s (bf16, 2 cores). STS-B on 1,000 pairs
# collapsed (Pearson 0.02; 2,000: 0.70). On a 2-core fp32 CPU (2026-12-06): SST-2 on 1,000 sentences 0.80 (2,000:
# 0.82) in 25 s, GoEmotions on 1,000 micro F1 0.27 (2,000: the same) in 27 s, IMDb on 400 reviews test 0.79 (600: the
# same) in 68 s.
TINY_TASK_OVERRIDES = {"imdb": {"max_seq_length": 128, "max_train_samples": 400, "truncation": "head"},
                       "stsb": {"max_train_samples": 2000},
                       "cola": {"max_train_samples": 8551}, "mrpc": {"max_train_samples": 3668}}
TINY_TEST_SAMPLES = 400


@dataclass
class Row:
    """One line of the results table: a task evaluated on one split.

    Attributes:
        task: registry name (``mnli`` rows carry the split: validation_matched / validation_mismatched).
        split: the split scored; status: "ok", or why there is no score (e.g. no train split).
        metrics: ``{metric: value}`` in [0, 1] (correlations in [-1, 1]); majority: the majority-class floor.
        wall_s: seconds for the task's training and evaluation; train_examples, epochs: the budget used.
        precision: the precision the split was scored in ("fp32", or "bf16" for long test sets).
    """

    task: str
    split: str
    status: str = "ok"
    metrics: dict[str, float] = field(default_factory=dict)
    majority: dict[str, float] = field(default_factory=dict)
    wall_s: float | None = None
    train_examples: int | None = None
    epochs: float | None = None
    run_dir: str | None = None
    precision: str = "fp32"

    @property
    def headline(self) -> str:
        """The metric the task is ranked by."""
        return get_task(self.task).headline_metrics[0]


def _strip(metrics: dict[str, Any]) -> dict[str, float]:
    return {k.removeprefix("eval_"): float(v) for k, v in metrics.items()
            if k.startswith("eval_") and isinstance(v, (int, float)) and k != "eval_examples"}


def _has_train_split(task: str, data_dir: str | None) -> str | None:
    """None when the task's train split loads, else the reason it does not."""
    from textclf.data.loading import load_task_split

    spec = get_task(task)
    try:
        load_task_split(spec, spec.train_split, data_dir)
    except DataError as err:
        return f"no train split ({str(err).split(':')[0]})"
    return None


def run_task(task: str, output_dir: Path, budget: str = "full", overrides: Sequence[str] = (),
             data_dir: str | None = None, checkpoint: str | None = None, test_precision: str = "fp32") -> list[Row]:
    """Train (or, with ``checkpoint``, only evaluate) one task and score every labelled split it has.

    The validation split is scored in fp32 by :func:`textclf.training.run.train`; the extra splits
    (``TaskSpec.extra_splits``) in ``test_precision``.

    Returns:
        One :class:`Row` per split scored; a single row with a non-"ok" status when the task cannot run
        (e.g. the mirror has no train split and no checkpoint was given).

    Raises:
        ConfigError: an unknown budget or a bad override.
    """
    from textclf.config import load_recipe
    from textclf.evaluation.checkpoint import evaluate_checkpoint
    from textclf.training.run import train

    if budget not in BUDGETS:
        raise ConfigError(f"budget={budget!r} is not known: use one of {', '.join(BUDGETS)}")
    spec = get_task(task)
    validation = spec.validation_split or "validation (held out of train)"
    tiny = budget == "tiny"
    started = time.perf_counter()
    if checkpoint is None:
        reason = _has_train_split(task, data_dir)
        if reason:
            status = f"{reason}; evaluate a checkpoint with --checkpoint {task}=DIR"
            missing = [Row(task=task, split=validation, status=status)]
            if task == "mnli":  # GLUE reports matched and mismatched: say so for both
                missing.append(Row(task="mnli-mm", split="validation_mismatched", status=status))
            return missing
        layered = {**BUDGETS[budget], **(TINY_TASK_OVERRIDES.get(task, {}) if tiny else {})}
        items = [f"{k}={v}" for k, v in layered.items()] + list(overrides)
        if data_dir:
            items.append(f"data.data_dir={data_dir}")
        recipe = load_recipe(task, items)
        result = train(recipe, output_dir / task)
        model_dir = str(result.model_dir)
        first = Row(task=task, split=validation, metrics=_strip(result.metrics),
                    majority=_strip(result.metrics["majority_baseline"]),
                    train_examples=result.metrics["train_examples"], epochs=result.metrics["epoch"],
                    run_dir=str(output_dir / task))
        rows = [first]
    else:
        model_dir, rows = checkpoint, []
        spec_splits = (spec.validation_split,) if spec.validation_split else ()
        for split in spec_splits:
            found = evaluate_checkpoint(model_dir, task, split=split, data_dir=data_dir,
                                        max_samples=TINY_TEST_SAMPLES if tiny else None)
            rows.append(Row(task=task, split=split, metrics=_strip(found), majority=_strip(found["majority_baseline"]),
                            run_dir=model_dir))
    for split in spec.extra_splits:
        target = "mnli-mm" if split == "validation_mismatched" else task
        try:
            found = evaluate_checkpoint(model_dir, target, split=None if target == "mnli-mm" else split,
                                        data_dir=data_dir, max_samples=TINY_TEST_SAMPLES if tiny else None,
                                        precision=test_precision)
        except DataError as err:
            rows.append(Row(task=target, split=split, status=f"not scored: {err}"))
            continue
        rows.append(Row(task=target, split=split, metrics=_strip(found), majority=_strip(found["majority_baseline"]),
                        run_dir=model_dir, precision=test_precision))
    wall = round(time.perf_counter() - started, 1)
    for row in rows:
        row.wall_s = wall
        if rows[0].train_examples is not None:
            row.train_examples, row.epochs = rows[0].train_examples, rows[0].epochs
    return rows


def glue_scores(rows: Sequence[Row]) -> dict[str, Any]:
    """GLUE task scores and their macro average, from the validation rows of the GLUE tasks that ran.

    Returns:
        ``{"tasks": {task: score in points}, "macro_average": points or None, "tasks_counted": n,
        "tasks_total": 9}``. MNLI's score is the mean of its matched and mismatched accuracy (either alone
        when only one ran).
    """
    per_task: dict[str, float] = {}
    mnli: list[float] = []
    for row in rows:
        glue_metrics = get_task(row.task).glue_metrics
        if row.status != "ok" or not glue_metrics or not row.split.startswith("validation"):
            continue
        values = [row.metrics[m] for m in glue_metrics if m in row.metrics]
        if not values:
            continue
        score = 100 * sum(values) / len(values)
        if row.task in ("mnli", "mnli-mm"):
            mnli.append(score)
        else:
            per_task[row.task] = score
    if mnli:
        per_task["mnli"] = sum(mnli) / len(mnli)
    ordered = {t: round(per_task[t], 2) for t in GLUE_TASKS if t in per_task}
    macro = round(sum(ordered.values()) / len(ordered), 2) if ordered else None
    return {"tasks": ordered, "macro_average": macro, "tasks_counted": len(ordered), "tasks_total": len(GLUE_TASKS)}


def _fmt(value: float | None, points: bool = True) -> str:
    if value is None:
        return "–"
    return f"{100 * value:.2f}" if points else f"{value:g}"


def render_markdown(results: dict[str, Any]) -> str:
    """The results table in Markdown: one line per task and split, metrics in points (x100)."""
    lines = [
        (f"Budget `{results['budget']}`, model `{results['model']}`, {results['device']}. "
        "Scores in points (x100); the metric the task is ranked by comes first."),
        "",
        ("| task | split | metric | ours | majority class | DistilBERT | MiniLM-L6 | other metrics | wall (s) "
        "| train examples | epochs |"),
        "|---|---|---|---:|---:|---:|---:|---|---:|---:|---:|",
    ]
    for raw in results["rows"]:
        row = Row(**raw)
        if row.status != "ok":
            lines.append(f"| {row.task} | {row.split} | {row.headline} | – | – | "
                         f"{_ref('distilbert', row)} | {_ref('minilm_l6_h384', row)} | {row.status} | | | |")
            continue
        others = ", ".join(f"{m} {_fmt(row.metrics[m])}" for m in get_task(row.task).headline_metrics[1:]
                           if m in row.metrics)
        split = row.split if row.precision == "fp32" else f"{row.split} ({row.precision})"
        lines.append(f"| {row.task} | {split} | {row.headline} | {_fmt(row.metrics.get(row.headline))} | "
                     f"{_fmt(row.majority.get(row.headline))} | {_ref('distilbert', row)} | "
                     f"{_ref('minilm_l6_h384', row)} | {others} | {_fmt(row.wall_s, points=False)} | "
                     f"{_fmt(row.train_examples, points=False)} | "
                     f"{'–' if row.epochs is None else f'{row.epochs:g}'} |")
    glue = results["glue"]
    lines += ["", "GLUE task scores (mean of each task's metrics; MNLI: mean of matched and mismatched): "
              + (", ".join(f"{t} {v:.2f}" for t, v in glue["tasks"].items()) or "none ran") + ".",
              f"GLUE macro average over the {glue['tasks_counted']} of {glue['tasks_total']} GLUE tasks that ran: "
              + ("–" if glue["macro_average"] is None else f"**{glue['macro_average']:.2f}**") + "."]
    return "\n".join(lines) + "\n"


def _ref(source: str, row: Row) -> str:
    """The published number for a row: GLUE dev numbers beside validation rows (MNLI's beside matched),
    IMDb's test accuracy beside its test row."""
    if row.task == "imdb":
        applies = row.split == "test"
    else:
        applies = row.split.startswith("validation") and row.split != "validation_mismatched" \
            and row.task != "mnli-mm"
    value = get_task(row.task).published.get(source) if applies else None
    return "–" if value is None else f"{value:g}"


README_MARKERS = ("<!-- textclf benchmark: start -->", "<!-- textclf benchmark: end -->")


def update_readme(path: str | Path, table: str) -> None:
    """Replace the text between the :data:`README_MARKERS` lines of a Markdown file with ``table`` (atomically).

    Raises:
        ConfigError: the file does not exist or lacks the two marker lines (the message shows them).
    """
    path = Path(path)
    start, end = README_MARKERS
    text = path.read_text(encoding="utf-8") if path.is_file() else ""
    if start not in text or end not in text or text.index(start) > text.index(end):
        raise ConfigError(f"{path}: no place for the table: put the lines {start!r} and {end!r} where it goes")
    head, rest = text.split(start, 1)
    tail = rest.split(end, 1)[1]
    atomic_write_text(path, f"{head}{start}\n{table}{end}{tail}")


def run_benchmark(tasks: Sequence[str] = DEFAULT_TASKS, output_dir: str | Path = "runs/benchmark",
                  budget: str = "full", overrides: Sequence[str] = (), data_dir: str | None = None,
                  checkpoints: dict[str, str] | None = None, test_precision: str = "fp32",
                  readme: str | Path | None = None) -> dict[str, Any]:
    """Run every task and write ``results.json`` and ``results.md`` into ``output_dir`` (atomically, after each
    task, so an interrupted run keeps the tasks it finished).

    Args:
        tasks: registry names; ``mnli`` scores matched and mismatched validation.
        output_dir: one run directory per task is made inside it.
        budget: "full" (the shipped recipes) or "tiny" (CI slices: see :data:`BUDGETS`).
        overrides: ``key=value`` recipe overrides applied to every task (e.g. ``model=DIR``).
        checkpoints: ``{task: checkpoint_dir}`` to evaluate instead of training (tasks without a train split).
        test_precision: "fp32" or "bf16" for the extra (test) splits: see :func:`run_task`.
        readme: a Markdown file whose table between :data:`README_MARKERS` is replaced (:func:`update_readme`)
            after every task; checked before the first task runs.

    Returns:
        The results dict written to results.json: ``rows`` (see :class:`Row`), ``glue`` (:func:`glue_scores`),
        the budget, model and machine.

    Raises:
        ConfigError: an unknown task or budget, or a ``readme`` without the markers; a task's own failure (bad
            data) is recorded in its row.
    """
    from textclf.hardware import describe_machine

    output_dir = Path(output_dir)
    try:
        names = [get_task(t).name for t in tasks]
    except ValueError as err:
        raise ConfigError(str(err)) from None
    if budget not in BUDGETS:
        raise ConfigError(f"budget={budget!r} is not known: use one of {', '.join(BUDGETS)}")
    if readme is not None:
        update_readme(readme, "")  # fail now, not after an hour of training, if the markers are missing
    model = next((o.split("=", 1)[1] for o in overrides if o.startswith("model=")), "bundled")
    results: dict[str, Any] = {"budget": budget, "model": model, "overrides": list(overrides),
                               "device": describe_machine(), "rows": [], "glue": glue_scores([])}
    for name in names:
        logger.info("benchmark: %s (budget %s)", name, budget)
        try:
            rows = run_task(name, output_dir, budget, overrides, data_dir, (checkpoints or {}).get(name),
                            test_precision=test_precision)
        except TextclfError as err:
            rows = [Row(task=name, split="validation", status=f"failed: {err}")]
        results["rows"] += [vars(r) for r in rows]
        results["glue"] = glue_scores([Row(**r) for r in results["rows"]])
        atomic_write_text(output_dir / "results.json", json.dumps(results, indent=2) + "\n")
        atomic_write_text(output_dir / "results.md", render_markdown(results))
        if readme is not None:
            update_readme(readme, render_markdown(results))
    return results
