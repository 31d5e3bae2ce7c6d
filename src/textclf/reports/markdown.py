"""Markdown tables for report.md and the model card."""

from __future__ import annotations

from typing import Any

from textclf.evaluation.metrics import METRICS


def _cell(value: Any, width: int = 120) -> str:
    if isinstance(value, float):
        text = f"{value:.4f}" if value == 0 or abs(value) >= 1e-3 else f"{value:.3g}"  # learning rates: 2e-05
    else:
        text = " ".join(str(value).split())
    text = text if len(text) <= width else text[:width - 1] + "…"
    return text.replace("|", "\\|")


def markdown_table(header: list[str], rows: list[list[Any]]) -> str:
    """A GitHub-flavoured Markdown table; floats to 4 decimals (3 significant digits below 0.001), cells on one
    line, ``|`` escaped."""
    lines = ["| " + " | ".join(map(_cell, header)) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def metrics_rows(metrics: dict[str, Any]) -> list[list[Any]]:
    """[metric name, validation value, majority-class floor or "-"] for each task metric in metrics.json."""
    floor = metrics.get("majority_baseline") or {}
    return [[m, metrics[f"eval_{m}"], floor.get(f"eval_{m}", "-")] for m in METRICS if f"eval_{m}" in metrics]


def distillation_section(metrics: dict[str, Any]) -> str:
    """The "Distillation" section of report.md and the model card: the teacher, its score and the student's on the
    same validation split, and both models' speed measured in the same run ("" for a run that was not distilled)."""
    d = metrics.get("distillation")
    if not d:
        return ""
    rows = [[m, d["teacher_metrics"].get(f"eval_{m}", "-"), metrics[f"eval_{m}"]]
            for m in METRICS if f"eval_{m}" in metrics]
    params = [d.get("teacher_parameters"), d.get("student_parameters")]
    rows.append(["parameters", *[f"{p / 1e6:.1f}M" if p else "-" for p in params]])
    rows.append([f"texts/s ({d['precision']}, {d['speed_texts']} validation texts)", d["teacher_texts_per_second"],
                 d["student_texts_per_second"]])
    own = d.get("teacher_run_metric")
    return ("## Distillation\n\n"
            f"Distilled from teacher `{d['teacher']}` (alpha={d['alpha']}, temperature={d['temperature']}"
            + (f", {d['unlabeled_examples']} unlabelled texts labelled by the teacher" if d.get("unlabeled_examples")
               else "")
            + (f", {d['augmented_examples']} new texts by augment={d['augment']}" if d.get("augmented_examples")
               else "") + f"): the student is {d['speedup']}x as fast"
            + (f"; the teacher's own run reported {', '.join(f'{k} {v:.4f}' for k, v in own.items())}" if own else "")
            + ".\n\n" + markdown_table(["", "teacher", "student"], rows))
