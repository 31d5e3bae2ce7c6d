"""The benchmark runner: GLUE scores, the Markdown table, tasks without train data (its tiny real-data run is in
test_integration.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import fast_overrides, sentiment_rows

from textclf.benchmark import GLUE_TASKS, Row, glue_scores, render_markdown, run_benchmark
from textclf.cli import main
from textclf.errors import ConfigError


def test_glue_scores_average_a_tasks_metrics_then_the_tasks():
    rows = [
        Row(task="mrpc", split="validation", metrics={"f1": 0.9, "accuracy": 0.8, "f1_macro": 0.1}),
        Row(task="stsb", split="validation", metrics={"pearson": 0.86, "spearmanr": 0.84}),
        Row(task="mnli", split="validation_matched", metrics={"accuracy": 0.80}),
        Row(task="mnli-mm", split="validation_mismatched", metrics={"accuracy": 0.70}),
        Row(task="cola", split="validation", metrics={"matthews_correlation": 0.4, "accuracy": 0.9}),
        Row(task="imdb", split="test", metrics={"accuracy": 0.9}),  # not GLUE
        Row(task="qqp", split="validation", status="no train split"),  # did not run
    ]
    glue = glue_scores(rows)
    assert glue["tasks"] == {"cola": 40.0, "mrpc": 85.0, "stsb": 85.0, "mnli": 75.0}
    assert list(glue["tasks"]) == [t for t in GLUE_TASKS if t in glue["tasks"]]  # GLUE's task order
    assert glue["macro_average"] == pytest.approx((40 + 85 + 85 + 75) / 4, abs=0.01)
    assert (glue["tasks_counted"], glue["tasks_total"]) == (4, 9)
    assert glue_scores([])["macro_average"] is None


def test_markdown_table_has_one_line_per_row_with_references():
    rows = [Row(task="sst2", split="validation", metrics={"accuracy": 0.9012}, majority={"accuracy": 0.5092},
                wall_s=200.0, train_examples=67349, epochs=1.0),
            Row(task="imdb", split="test", metrics={"accuracy": 0.91}, majority={"accuracy": 0.5}),
            Row(task="qnli", split="validation", status="no train split")]
    results = {"budget": "full", "model": "bundled", "device": "CPU x", "rows": [vars(r) for r in rows],
               "glue": glue_scores(rows)}
    lines = render_markdown(results).splitlines()
    table = [line for line in lines if line.startswith("| ")]
    assert len(table) == 1 + len(rows)  # header + rows
    assert all(line.count("|") == table[0].count("|") for line in table)
    sst2 = table[1].split("|")
    assert [c.strip() for c in sst2[1:6]] == ["sst2", "validation", "accuracy", "90.12", "50.92"]
    assert sst2[6].strip() == "91.3" and sst2[7].strip() == "91.5"  # DistilBERT, MiniLM references
    assert table[2].split("|")[6].strip() == "92.82"  # IMDb's reference is a test number
    assert "no train split" in table[3]
    assert any("macro average over the 1 of 9" in line for line in lines)


def test_runner_trains_scores_and_reports_a_task_without_train_split(tmp_path, make_mirror, tiny_model_dir):
    rows = sentiment_rows(64)
    mirror = make_mirror("glue-sst2", train=[{"sentence": r["text"], "label": int(r["label"] == "pos"), "idx": i}
                                             for i, r in enumerate(rows)],
                         validation=[{"sentence": r["text"], "label": int(r["label"] == "pos"), "idx": i}
                                     for i, r in enumerate(sentiment_rows(16, offset=500))])
    make_mirror("glue-qnli", validation=[{"question": "q?", "sentence": "s.", "label": 0, "idx": 0}])
    out = tmp_path / "bench"
    results = run_benchmark(["sst2", "qnli"], out, overrides=fast_overrides(tiny_model_dir), data_dir=str(mirror))
    saved = json.loads((out / "results.json").read_text())
    assert saved == json.loads(json.dumps(results))
    sst2, qnli = saved["rows"]
    assert sst2["task"] == "sst2" and sst2["status"] == "ok" and sst2["train_examples"] == 64
    metrics = json.loads((out / "sst2" / "metrics.json").read_text())
    assert sst2["metrics"]["accuracy"] == metrics["eval_accuracy"]  # the number comes from the run
    assert qnli["status"].startswith("no train split") and "--checkpoint qnli=DIR" in qnli["status"]
    assert "| qnli |" in (out / "results.md").read_text()
    assert saved["glue"]["tasks"] == {"sst2": round(100 * metrics["eval_accuracy"], 2)}

    # evaluation only: a given checkpoint is scored on the validation split, nothing is trained
    again = run_benchmark(["sst2"], tmp_path / "eval-only", data_dir=str(mirror),
                          checkpoints={"sst2": str(out / "sst2" / "model")})
    assert again["rows"][0]["metrics"]["accuracy"] == metrics["eval_accuracy"]
    assert again["rows"][0]["train_examples"] is None


def test_runner_rejects_unknown_task_and_budget(tmp_path):
    with pytest.raises(ConfigError, match="unknown task 'sst3'"):
        run_benchmark(["sst3"], tmp_path)
    with pytest.raises(ConfigError, match="budget='huge'"):
        run_benchmark(["sst2"], tmp_path, budget="huge")
    assert main(["benchmark", "sst2", "--budget", "huge", "--output-dir", str(tmp_path)]) == 2


def test_cli_benchmark_splits_tasks_from_overrides(tmp_path, make_mirror, tiny_model_dir, capsys):
    mirror = make_mirror("glue-sst2", train=[{"sentence": r["text"], "label": int(r["label"] == "pos")}
                                             for r in sentiment_rows(32)],
                         validation=[{"sentence": r["text"], "label": int(r["label"] == "pos")}
                                     for r in sentiment_rows(8, offset=100)])
    code = main(["benchmark", "sst2", *fast_overrides(tiny_model_dir), "--output-dir", str(tmp_path / "b"),
                 "--data-dir", str(mirror)])
    assert code == 0
    printed = json.loads(capsys.readouterr().out)
    assert list(printed["tasks"]) == ["sst2"]
    saved = json.loads((Path(tmp_path) / "b" / "results.json").read_text())
    assert saved["model"] == str(tiny_model_dir)


def test_readme_table_is_replaced_between_the_markers_only(tmp_path):
    from textclf.benchmark import README_MARKERS, update_readme

    readme = tmp_path / "README.md"
    readme.write_text(f"# title\n\nintro\n{README_MARKERS[0]}\nold table\n{README_MARKERS[1]}\n\nafter\n")
    update_readme(readme, "| new | table |\n")
    assert readme.read_text() == (f"# title\n\nintro\n{README_MARKERS[0]}\n| new | table |\n{README_MARKERS[1]}\n"
                                  "\nafter\n")
    update_readme(readme, "| newer |\n")
    assert "| new | table |" not in readme.read_text() and readme.read_text().count("| newer |") == 1
    (tmp_path / "plain.md").write_text("no markers\n")
    with pytest.raises(ConfigError, match="no place for the table"):
        update_readme(tmp_path / "plain.md", "x")
    with pytest.raises(ConfigError, match="no place for the table"):  # checked before any task runs
        run_benchmark(["sst2"], tmp_path / "out", readme=tmp_path / "plain.md")
    assert not (tmp_path / "out" / "results.json").exists()
