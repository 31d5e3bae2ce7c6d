"""``DIR/report.md``, a run's summary in Markdown, and :func:`build_report`: plots, report and model card in one call.

``report.md`` holds the metrics against the majority-class floor, training time and hardware, the per-label table,
the largest errors and the plots (:mod:`textclf.reports.plots`).
"""

from __future__ import annotations

from pathlib import Path

from textclf.files import atomic_write_text
from textclf.reports.markdown import distillation_section, markdown_table, metrics_rows
from textclf.reports.modelcard import write_model_card
from textclf.reports.plots import write_plots
from textclf.reports.rundir import RunFiles, as_run, read_run


def write_report(run_dir: str | Path | RunFiles, top_errors: int = 10) -> Path:
    """Write ``DIR/report.md``: metrics, training summary, the plots in ``DIR/plots/``, per-label results and the
    ``top_errors`` first rows of errors.csv (the most confident mistakes; regression: the largest errors).

    Raises:
        DataError: ``run_dir`` is not a finished run.
    """
    run = as_run(run_dir)
    m, recipe = run.metrics, run.config
    parts = [f"# textclf run: {m.get('task') or run.run_dir.name}\n",
             (f"Model `{recipe.get('model', '?')}`, {run.problem_type.replace('_', ' ')}, "
              f"{m.get('train_examples', '?')} training and {m.get('eval_examples', '?')} validation examples "
              f"(validation: {(m.get('data_sources') or {}).get('validation', '?')}).\n"),
             "## Validation metrics\n",
             markdown_table(["metric", "validation", "majority-class floor"], metrics_rows(m)),
             (f"\nThe best checkpoint was chosen by `{m.get('metric_for_best_model')}`. Training took "
              f"{m.get('train_runtime', '?')} s ({m.get('global_step', '?')} steps, {m.get('epoch', '?')} epochs) on "
              f"{m.get('hardware', 'unrecorded hardware')}.\n")]
    if m.get("distillation"):
        parts.append(distillation_section(m))
    plots = sorted((run.run_dir / "plots").glob("*.png")) if (run.run_dir / "plots").is_dir() else []
    if plots:
        parts += ["## Plots\n"] + [f"![{p.stem.replace('_', ' ')}](plots/{p.name})\n" for p in plots]
    if run.per_label is not None and len(run.per_label):
        parts += ["## Per label\n", markdown_table(list(run.per_label.columns), run.per_label.values.tolist())]
    if run.errors is not None and len(run.errors):
        parts += [f"## Errors ({min(top_errors, len(run.errors))} of {len(run.errors)} in errors.csv)\n",
                  markdown_table(list(run.errors.columns), run.errors.head(top_errors).values.tolist())]
    path = run.run_dir / "report.md"
    atomic_write_text(path, "\n".join(parts))
    return path


def build_report(run_dir: str | Path) -> list[Path]:
    """Everything a person looks at after a run: :func:`write_plots`, :func:`write_report`, and the model card
    (:func:`textclf.reports.modelcard.write_model_card`) when the run kept its checkpoint.

    Returns:
        The files written: the plots, report.md, then model/README.md if written.

    Raises:
        DataError: ``run_dir`` is not a finished run.
    """
    run = read_run(run_dir)  # once, for all three
    written = [*write_plots(run), write_report(run)]
    if run.model_config is not None:
        written.append(write_model_card(run))
    return written
