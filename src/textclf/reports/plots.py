"""The plots of a finished run, rebuilt from its files alone (``textclf report DIR``).

``DIR/plots/`` (PNG, matplotlib's Agg renderer, no display needed):

    learning_curves.png     training and validation loss per step, and the validation metric that picks the best
                            checkpoint (log_history.json)
    confusion_matrix.png    single-label only: counts, and counts divided by each gold row's total, label names on
                            both axes (predictions.jsonl). Multi-label runs have none: a label set has no single
                            confusion; per_label.csv gives each label's precision and recall instead.
    regression_scatter.png  regression only: predicted against gold score, with the identity line
    reliability.png         single-label only: reliability diagram of the top-class probability, with the expected
                            calibration error (:func:`expected_calibration_error`) in the title

``DIR/report.md`` (:mod:`textclf.reports.summary`) shows them; :func:`textclf.reports.summary.build_report` writes
the plots, the report and the model card.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from textclf.evaluation.metrics import METRICS
from textclf.files import atomic_path
from textclf.reports.rundir import RunFiles, as_run
from textclf.tasks import REGRESSION, SINGLE_LABEL

DPI = 100
N_BINS = 10  # equal-width bins, a common choice for ECE (Guo et al. 2017 use 15)


def confusion_counts(run: RunFiles | str | Path) -> tuple[list[str], np.ndarray]:
    """The confusion matrix of a single-label run's validation predictions (predictions.jsonl).

    Returns:
        (label names in id order, counts: (num_labels, num_labels) int64, row = gold class, column = predicted
        class); the counts sum to the number of validation examples.

    Raises:
        ValueError: the run is not single-label classification.
    """
    run = as_run(run)
    if run.problem_type != SINGLE_LABEL:
        raise ValueError(f"{run.run_dir}: a confusion matrix needs single-label predictions, not {run.problem_type}")
    index = {name: i for i, name in enumerate(run.label_names)}
    counts = np.zeros((len(index), len(index)), dtype=np.int64)
    for row in run.predictions:
        counts[index[str(row["gold"])], index[str(row["predicted"])]] += 1
    return run.label_names, counts


def reliability_bins(confidence: np.ndarray, correct: np.ndarray, n_bins: int = N_BINS) -> dict[str, np.ndarray]:
    """Group predictions into equal-width confidence bins ``((m-1)/M, m/M]`` (Guo et al. 2017, "On Calibration of
    Modern Neural Networks", section 2; a confidence of exactly 0 joins the first bin).

    Args:
        confidence: (n,) probability of the predicted class, in [0, 1].
        correct: (n,) bool, whether the prediction was right.

    Returns:
        ``{"edges": (M + 1,), "count": (M,) int, "confidence": (M,) mean confidence, "accuracy": (M,) fraction
        correct}``; empty bins hold NaN means.
    """
    confidence, correct = np.asarray(confidence, dtype=np.float64), np.asarray(correct, dtype=np.float64)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    which = np.digitize(confidence, edges[1:-1], right=True)  # bin m holds edges[m] < c <= edges[m + 1]
    count = np.bincount(which, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_confidence = np.bincount(which, weights=confidence, minlength=n_bins) / count
        accuracy = np.bincount(which, weights=correct, minlength=n_bins) / count
    return {"edges": edges, "count": count, "confidence": mean_confidence, "accuracy": accuracy}


def expected_calibration_error(confidence: np.ndarray, correct: np.ndarray, n_bins: int = N_BINS) -> float:
    """ECE = sum over bins of ``|B_m| / n * |accuracy(B_m) - confidence(B_m)|`` (Guo et al. 2017, eq. 3), with the
    equal-width bins of :func:`reliability_bins`: 0 for a perfectly calibrated model, at most 1. 0.0 for no input."""
    bins = reliability_bins(confidence, correct, n_bins)
    full = bins["count"] > 0
    if not full.any():
        return 0.0
    gaps = np.abs(bins["accuracy"][full] - bins["confidence"][full])
    return float(np.sum(bins["count"][full] / bins["count"].sum() * gaps))


def _calibration_inputs(run: RunFiles) -> tuple[np.ndarray, np.ndarray]:
    """(n,) top-class probability and (n,) bool correct, from predictions.jsonl's score, predicted and gold."""
    confidence = np.array([row["score"] for row in run.predictions], dtype=np.float64)
    correct = np.array([row["predicted"] == row["gold"] for row in run.predictions], dtype=bool)
    return confidence, correct


def _figure(width: float, height: float, ncols: int = 1, nrows: int = 1, **kwargs: Any) -> tuple[Any, Any]:
    """A Figure drawn by the Agg renderer without pyplot: no global backend switch, nothing left open."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    return figure, figure.subplots(nrows, ncols, squeeze=False, **kwargs)


def _save(figure: Any, path: Path) -> Path:
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=DPI)
    return path


def _main_metric(run: RunFiles, evals: list[dict[str, Any]]) -> str | None:
    """The eval_* key the learning curves show: the one that picked the best checkpoint, else the first task metric
    logged (when that was the loss, already in the loss panel)."""
    chosen = run.metrics.get("metric_for_best_model")
    if chosen and chosen != "eval_loss" and any(chosen in e for e in evals):
        return chosen
    return next((f"eval_{m}" for m in METRICS if any(f"eval_{m}" in e for e in evals)), None)


def plot_learning_curves(run: RunFiles, path: Path) -> Path:
    """Training loss (every ``logging_steps``) and validation loss against the optimizer step on the left, the
    validation metric against the step on the right."""
    history = run.log_history or []
    train = [e for e in history if "loss" in e and "step" in e]
    evals = [e for e in history if "eval_loss" in e and "step" in e]
    figure, axes = _figure(11, 4.2, ncols=2)
    loss, score = axes[0]
    loss.plot([e["step"] for e in train], [e["loss"] for e in train], label="training loss", color="tab:blue")
    loss.plot([e["step"] for e in evals], [e["eval_loss"] for e in evals], "o-", label="validation loss",
              color="tab:orange")
    loss.set(xlabel="step", ylabel="loss", title="Loss")
    loss.legend(loc="best")
    metric = _main_metric(run, evals)
    if metric:
        points = [e for e in evals if metric in e]
        score.plot([e["step"] for e in points], [e[metric] for e in points], "o-", color="tab:green", label=metric)
        floor = (run.metrics.get("majority_baseline") or {}).get(metric)
        if floor is not None:
            score.axhline(floor, color="grey", linestyle="--", label="majority-class floor")
        score.legend(loc="best")
    else:
        score.text(0.5, 0.5, "no validation metric was logged during training", ha="center", va="center")
    score.set(xlabel="step", ylabel=metric or "", title=f"Validation {metric[5:] if metric else 'metric'}")
    from matplotlib.ticker import MaxNLocator

    for ax in (loss, score):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # optimizer steps
    if metric:
        score.set_xlim(loss.get_xlim())  # both panels on the same steps, however few evaluations there were
    steps, epochs = run.metrics.get("global_step"), run.metrics.get("epoch")
    figure.suptitle(f"Learning curves: {steps} steps, {epochs:g} epoch{'' if epochs == 1 else 's'}"
                    if steps and epochs else "Learning curves")
    return _save(figure, path)


def plot_confusion_matrix(run: RunFiles, path: Path) -> Path:
    """Counts (left) and row-normalised fractions (right: each gold class's predictions sum to 1)."""
    names, counts = confusion_counts(run)
    totals = counts.sum(axis=1, keepdims=True)
    fractions = np.divide(counts, totals, out=np.zeros(counts.shape), where=totals > 0)
    side = min(12.0, 2.5 + 0.45 * len(names))
    figure, axes = _figure(2 * side + 2, side, ncols=2)
    for ax, values, title, fmt in ((axes[0][0], counts, "Counts", "d"),
                                   (axes[0][1], fractions, "Row-normalised (recall per gold class)", ".2f")):
        image = ax.imshow(values, cmap="Blues", vmin=0, vmax=None if fmt == "d" else 1)
        figure.colorbar(image, ax=ax, shrink=0.8)
        ax.set(xticks=range(len(names)), yticks=range(len(names)), xlabel="predicted", ylabel="gold", title=title)
        ax.set_xticklabels(names, rotation=45, ha="right")
        ax.set_yticklabels(names)
        if len(names) <= 30:
            high = values.max() / 2 if values.size else 0
            for (i, j), value in np.ndenumerate(values):
                ax.text(j, i, format(value, fmt), ha="center", va="center", fontsize=8,
                        color="white" if value > high else "black")
    figure.suptitle(f"Confusion matrix on {int(counts.sum())} validation examples")
    return _save(figure, path)


def plot_regression_scatter(run: RunFiles, path: Path) -> Path:
    """Predicted against gold score for every validation example, with the identity line."""
    gold = np.array([row["gold"] for row in run.predictions], dtype=np.float64)
    predicted = np.array([row["predicted"] for row in run.predictions], dtype=np.float64)
    figure, axes = _figure(6, 6)
    ax = axes[0][0]
    ax.scatter(gold, predicted, s=12, alpha=0.6)
    both = np.concatenate([gold, predicted]) if len(gold) else np.array([0.0, 1.0])
    low, high = float(both.min()), float(both.max())
    ax.plot([low, high], [low, high], "--", color="grey", label="predicted = gold")
    ax.set(xlabel="gold score", ylabel="predicted score", aspect="equal")
    ax.legend(loc="best")
    shown = [f"{m} {run.metrics[f'eval_{m}']:.3f}" for m in ("pearson", "spearmanr", "mse")
             if f"eval_{m}" in run.metrics]
    ax.set_title(f"Predicted vs gold, {len(gold)} validation examples" + (f"\n{', '.join(shown)}" if shown else ""))
    return _save(figure, path)


def plot_reliability(run: RunFiles, path: Path) -> Path:
    """Reliability diagram (accuracy per confidence bin against the diagonal) above a histogram of the confidences
    (Guo et al. 2017, figure 1), with the expected calibration error in the title."""
    confidence, correct = _calibration_inputs(run)
    bins = reliability_bins(confidence, correct)
    ece = expected_calibration_error(confidence, correct)
    figure, axes = _figure(6, 7.5, nrows=2, height_ratios=(3, 1), sharex=True)
    diagram, histogram = axes[0][0], axes[1][0]
    left, width = bins["edges"][:-1], np.diff(bins["edges"])
    full = bins["count"] > 0
    diagram.bar(left[full], bins["accuracy"][full], width=width[full], align="edge", edgecolor="black",
                color="tab:blue", label="accuracy")
    gap = bins["confidence"][full] - bins["accuracy"][full]
    diagram.bar(left[full], gap, bottom=bins["accuracy"][full], width=width[full], align="edge", color="tab:red",
                alpha=0.3, hatch="//", label="gap to confidence")
    diagram.plot([0, 1], [0, 1], "--", color="grey", label="perfect calibration")
    diagram.set(ylabel="accuracy", xlim=(0, 1), ylim=(0, 1),
                title=f"Reliability of the top-class probability\nECE = {ece:.4f} ({len(left)} bins, "
                      f"{len(confidence)} validation examples)")
    diagram.legend(loc="upper left")
    histogram.bar(left, bins["count"], width=width, align="edge", edgecolor="black", color="tab:grey")
    histogram.set(xlabel="confidence (probability of the predicted class)", ylabel="examples")
    return _save(figure, path)


def write_plots(run_dir: str | Path | RunFiles) -> list[Path]:
    """Draw the run's plots into ``DIR/plots/`` (see the module docstring for which ones a run gets).

    Returns:
        The PNG files written, about 600-2500 pixels a side at 100 dpi.

    Raises:
        DataError: ``run_dir`` is not a finished run.
    """
    run = as_run(run_dir)
    out = run.run_dir / "plots"
    written = []
    if run.log_history is not None:
        written.append(plot_learning_curves(run, out / "learning_curves.png"))
    if run.problem_type == SINGLE_LABEL and run.predictions:
        written.append(plot_confusion_matrix(run, out / "confusion_matrix.png"))
        written.append(plot_reliability(run, out / "reliability.png"))
    if run.problem_type == REGRESSION and run.predictions:
        written.append(plot_regression_scatter(run, out / "regression_scatter.png"))
    return written
