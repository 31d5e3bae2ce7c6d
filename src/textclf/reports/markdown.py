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
