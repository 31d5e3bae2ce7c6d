"""report.md and `textclf report`: a run's summary, rebuilt from its files."""

from __future__ import annotations

import json
import shutil

from conftest import assert_png, read_jsonl

from textclf.cli import main
from textclf.reports.plots import confusion_counts, write_plots
from textclf.reports.rundir import write_jsonl


def test_report_md_links_the_plots_and_shows_the_metrics(trained_run):
    out = trained_run["result"].output_dir
    text = (out / "report.md").read_text()
    metrics = trained_run["result"].metrics
    for name in ("learning_curves", "confusion_matrix", "reliability"):
        assert f"(plots/{name}.png)" in text
    assert f"| accuracy | {metrics['eval_accuracy']:.4f} | 0.5000 |" in text
    assert "## Per label" in text and "| neg |" in text
    assert metrics["hardware"] in text


def test_report_verb_rebuilds_what_was_deleted(run_copy, capsys):
    shutil.rmtree(run_copy / "plots")
    (run_copy / "report.md").unlink()
    (run_copy / "model" / "README.md").unlink()
    assert main(["report", str(run_copy)]) == 0
    written = json.loads(capsys.readouterr().out)["written"]
    assert sorted(written) == sorted(str(p) for p in [
        run_copy / "plots" / "learning_curves.png", run_copy / "plots" / "confusion_matrix.png",
        run_copy / "plots" / "reliability.png", run_copy / "report.md", run_copy / "model" / "README.md"])
    for path in (run_copy / "plots").iterdir():
        assert_png(path)


def test_report_of_a_run_without_its_checkpoint(run_copy):
    shutil.rmtree(run_copy / "model")  # as a search trial leaves it
    (run_copy / "per_label.csv").unlink()
    assert {p.name for p in write_plots(run_copy)} == {"learning_curves.png", "confusion_matrix.png",
                                                       "reliability.png"}
    assert confusion_counts(run_copy)[0] == ["neg", "pos"]  # the labels seen, sorted


def test_texts_with_unicode_line_separators_stay_one_prediction_each(run_copy):
    # json.dumps(ensure_ascii=False) leaves U+2028, U+2029 and U+0085 unescaped; IMDb reviews have them.
    path = run_copy / "predictions.jsonl"
    rows = read_jsonl(path)
    rows[0]["text"] = "first\u2028second\u2029third\x85fourth"
    write_jsonl(path, rows)
    names, counts = confusion_counts(run_copy)
    assert names == ["neg", "pos"]
    assert counts.sum() == len(rows) == 16


def test_report_verb_on_a_directory_that_is_not_a_run(capsys, tmp_path):
    assert main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not a finished textclf run (no metrics.json)" in err[0]
