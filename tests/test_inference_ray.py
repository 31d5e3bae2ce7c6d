"""textclf predict --engine ray: Ray Data actor pools give the single-process predictions, row by row (by id); bad
input stops with one line naming the file and the column (or the row's id), and leaves no output directory."""

from __future__ import annotations

import json
import os
import sys

import pandas as pd
import pytest
from conftest import read_jsonl, sentiment_rows, write_table

from textclf.cli import main
from textclf.config import DataConfig
from textclf.errors import ConfigError, DataError
from textclf.inference.distributed import MARKER, plan_actors, predict_files_ray, resolve_columns

try:
    import ray
    import ray.data
except ImportError:  # CI installs .[dev], which has ray[data]: there a missing Ray is a failure, not a skip
    if os.environ.get("CI"):
        raise
    pytest.skip("Ray Data is not installed (pip install -e '.[ray]')", allow_module_level=True)

ROWS = 300


def _rows() -> list[dict]:
    """ROWS rows {"id", "text"}: unique texts of many lengths (so scores differ from row to row), some that look like
    numbers or missing values, which both paths must read as texts (a CSV reader's NA parsing would drop them)."""
    rows = [{"id": 1000 + i, "text": f"{r['text']} " + "and then some more words " * (i % 9)}
            for i, r in enumerate(sentiment_rows(ROWS))]
    for i, text in zip((5, 250, 260, 270), ("NA", "1.50", "null", "007")):
        rows[i]["text"] = text
    return rows


@pytest.fixture(scope="module")
def ray_local():
    """One local Ray instance for the module: 2 CPUs, no dashboard, workers' logs kept out of the test output."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def input_files(tmp_path_factory) -> list:
    """The rows over three Parquet files and one CSV file (the last 60 rows; "NA", "null", "1.50", "007" among
    them)."""
    root = tmp_path_factory.mktemp("ray-input")
    rows = _rows()
    cuts = [(0, 100, "part-0.parquet"), (100, 180, "part-1.parquet"), (180, 240, "part-2.parquet"),
            (240, ROWS, "part-3.csv")]
    return [write_table(root / name, rows[start:stop]) for start, stop, name in cuts]


def _single_process(capsys, classifier_dir, files, tmp_path) -> pd.DataFrame:
    """``textclf predict --input FILE --output X.jsonl`` for every file, each line matched with its row's id."""
    frames = []
    for path in files:
        out = tmp_path / f"{path.stem}.jsonl"
        assert main(["predict", str(classifier_dir), "--input", str(path), "--output", str(out)]) == 0
        ids = pd.read_parquet(path)["id"] if path.suffix == ".parquet" else pd.read_csv(path)["id"]
        frames.append(pd.DataFrame(read_jsonl(out)).assign(id=ids.to_numpy()))
    capsys.readouterr()
    return pd.concat(frames, ignore_index=True)


@pytest.mark.slow  # multi-process or trains several runs: CI runs it, -m 'not slow' skips it
def test_two_actors_give_the_single_process_predictions_by_id(ray_local, classifier_dir, input_files, tmp_path,
                                                             capsys):
    out = tmp_path / "preds"
    code = main(["predict", str(classifier_dir), "--input", str(input_files[0].parent / "*"), "--output", str(out),
                 "--engine", "ray", "--num-actors", "2", "--chunk-rows", "40"])
    summary = json.loads(capsys.readouterr().out)
    assert code == 0
    assert summary["rows"] == ROWS and summary["id_column"] == "id" and summary["text_columns"] == ["text"]
    assert (summary["num_actors"], summary["threads_per_actor"]) == (2, 1)

    parts = sorted(out.glob("*.parquet"))
    assert sorted(p.name for p in out.iterdir()) == sorted([p.name for p in parts] + [MARKER])  # and nothing else
    assert json.loads((out / MARKER).read_text())["rows"] == ROWS
    sizes = [len(pd.read_parquet(p)) for p in parts]
    assert len(parts) == summary["parts"] >= ROWS // 40 and max(sizes) <= 40 and sum(sizes) == ROWS  # a part a block
    ours = pd.read_parquet(out)
    assert list(ours.columns) == ["id", "label", "score"] and ours["id"].is_unique

    theirs = _single_process(capsys, classifier_dir, input_files, tmp_path)
    assert len(theirs) == ROWS and theirs["score"].round(5).nunique() > ROWS // 2  # a misplaced row would show
    merged = theirs.merge(ours, on="id", how="outer", suffixes=("_local", "_ray"), validate="one_to_one")
    assert len(merged) == ROWS and merged.notna().all().all()
    assert (merged["label_local"] == merged["label_ray"]).all()
    assert (merged["score_local"] - merged["score_ray"]).abs().max() < 1e-5
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".preds")]  # no temporary left beside it


@pytest.mark.slow  # multi-process or trains several runs: CI runs it, -m 'not slow' skips it
def test_an_empty_text_found_by_an_actor_names_file_and_id_and_writes_nothing(ray_local, classifier_dir, tmp_path):
    rows = _rows()[:50]
    rows[33]["text"] = "  "
    path = write_table(tmp_path / "input" / "bad.parquet", rows)
    out = tmp_path / "new" / "preds"
    with pytest.raises(DataError, match=rf"{path}: the row with id=1033: empty text in column 'text'"):
        predict_files_ray(classifier_dir, path, out, num_actors=1, chunk_rows=20, progress=False)
    assert not (tmp_path / "new").exists()  # neither the output nor the directory made for it


def test_no_matching_file_is_one_error_line(capsys, classifier_dir, tmp_path):
    code = main(["predict", str(classifier_dir), "--input", str(tmp_path / "*.parquet"), "--output",
                 str(tmp_path / "out"), "--engine", "ray"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err[-1].startswith("textclf: error: ")
    assert f"{tmp_path / '*.parquet'}: no input file matches" in err[-1]
    assert not (tmp_path / "out").exists()


def test_a_file_without_the_text_column_is_named(classifier_dir, tmp_path):
    good = write_table(tmp_path / "in" / "a.parquet", [{"id": 1, "review": "fine"}])
    bad = write_table(tmp_path / "in" / "b.csv", [{"id": 2, "body": "fine"}])
    with pytest.raises(DataError, match=rf"{bad}: no column 'review'; columns are \['id', 'body'\]"):
        predict_files_ray(classifier_dir, tmp_path / "in", tmp_path / "out", text_column="review")
    with pytest.raises(DataError, match=rf"{good}: no text column found among \['id', 'review'\]"):
        predict_files_ray(classifier_dir, good, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_column_resolution_across_files():
    cfg = DataConfig()
    assert resolve_columns({"a": ["idx", "text"], "b": ["text", "idx", "label"]}, None, cfg) == (("text",), "idx")
    assert resolve_columns({"a": ["sentence1", "sentence2"]}, None, cfg) == (("sentence1", "sentence2"), None)
    assert resolve_columns({"a": ["review", "key"]}, ["review"], cfg, "key") == (("review",), "key")
    with pytest.raises(DataError, match="do not share their text columns: a has \\['text'\\], b has \\['sentence'\\]"):
        resolve_columns({"a": ["text"], "b": ["sentence"]}, None, cfg)
    with pytest.raises(DataError, match="b: no id column 'id'"):
        resolve_columns({"a": ["id", "text"], "b": ["text"]}, None, cfg)
    with pytest.raises(DataError, match="has the name of an output column"):
        resolve_columns({"a": ["label", "text"]}, None, cfg, "label")


def test_actor_plan_leaves_a_cpu_for_the_reads():
    assert plan_actors(2) == (2, 1, 0.5)  # one actor per CPU, together reserving 1 of 2 CPUs
    assert plan_actors(2, num_actors=1) == (1, 2, 1.0)  # the threads follow the CPUs
    assert plan_actors(8, num_actors=3) == (3, 2, 2.0)
    assert plan_actors(1) == (1, 1, 0.0)
    assert plan_actors(16, threads_per_actor=4) == (4, 4, 3.75)
    with pytest.raises(ConfigError):
        plan_actors(4, num_actors=0)


def test_cli_errors_for_the_ray_engine(capsys, classifier_dir, input_files, tmp_path):
    assert main(["predict", str(classifier_dir), "a text", "--engine", "ray", "--output", str(tmp_path)]) == 2
    assert "--engine ray predicts files: give --input" in capsys.readouterr().err
    assert main(["predict", str(classifier_dir), "--input", str(input_files[0]), "--engine", "ray"]) == 2
    assert "give --output DIR" in capsys.readouterr().err
    assert main(["predict", str(classifier_dir), "--input", str(input_files[0]), "--id-column", "id"]) == 2
    assert "--id-column: only with --engine ray" in capsys.readouterr().err
    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "notes.txt").write_text("keep me")
    assert main(["predict", str(classifier_dir), "--input", str(input_files[0]), "--output", str(occupied),
                 "--engine", "ray"]) == 2
    assert "holds 'notes.txt', and is not an earlier output of predict --engine ray" in capsys.readouterr().err
    assert (occupied / "notes.txt").read_text() == "keep me"
    earlier = tmp_path / "earlier"  # an earlier output (it has the marker) may be replaced, unless it is the input
    write_table(earlier / "part.parquet", [{"id": 1, "text": "a text"}])
    (earlier / MARKER).write_text("{}")
    assert main(["predict", str(classifier_dir), "--input", str(earlier / "*.parquet"), "--output", str(earlier),
                 "--engine", "ray"]) == 2
    assert "an input file is inside --output" in capsys.readouterr().err
    assert (earlier / "part.parquet").is_file()


def test_without_ray_the_error_names_the_extra(classifier_dir, input_files, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` fails even where Ray is installed
    with pytest.raises(ConfigError, match=r"pip install 'textclf\[ray\]'"):
        predict_files_ray(classifier_dir, input_files[0], tmp_path / "out")


def test_input_is_a_file_a_directory_a_glob_or_a_url(tmp_path):
    from textclf.inference.distributed import list_input_files

    root = tmp_path / "data"
    paths = [write_table(root / name, [{"text": "a text"}]) for name in ("b.csv", "a.parquet", "c.jsonl")]
    (root / "README.txt").write_text("not data")
    expected = sorted(str(p) for p in paths)
    assert list_input_files(root)[1:] == (expected, True)  # a directory: its data files
    assert list_input_files(str(root / "*.parquet"))[1] == [str(paths[1])]
    assert list_input_files(f"file://{root}/*.*l")[1:] == ([str(paths[2])], True)  # a URL of the local disk
    assert list_input_files(f"file://{root / 'b.csv'}")[1:] == ([str(paths[0])], True)
    with pytest.raises(DataError, match=r"README.txt: --engine ray reads \.parquet, \.csv, \.tsv, \.jsonl files"):
        list_input_files(str(root / "*"))


def test_headers_of_files_on_another_filesystem():
    """Files at a URL (here fsspec's in-memory filesystem) are read through fsspec, header or schema only."""
    import fsspec

    from textclf.inference.distributed import file_header

    fs = fsspec.filesystem("memory")
    with fs.open("/headers/a.parquet", "wb") as fh:
        pd.DataFrame({"idx": [1], "sentence": ["x"]}).to_parquet(fh)
    fs.pipe("/headers/b.csv", "\ufeffidx,sentence\n1,\"a, quoted\"\n".encode())
    fs.pipe("/headers/c.jsonl", b'\n{"idx": 1, "sentence": "x"}\n')
    for name in ("a.parquet", "b.csv", "c.jsonl"):
        assert file_header(fs, f"/headers/{name}", local=False) == ["idx", "sentence"]
    fs.pipe("/headers/d.parquet", b"not parquet")
    with pytest.raises(DataError, match="/headers/d.parquet: cannot read its header"):
        file_header(fs, "/headers/d.parquet", local=False)
