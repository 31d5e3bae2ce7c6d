"""Reports of a run: plots, report.md, the model card, TensorBoard event files, push_to_hub, ``textclf report``."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil

import numpy as np
import pytest
import yaml
from huggingface_hub import ModelCard
from PIL import Image
from sklearn.metrics import confusion_matrix

from textclf.training import tracking
from textclf.cli import main
from textclf.config import load_recipe, parse_report_to
from textclf.errors import ConfigError
from textclf.reports.rundir import write_jsonl
from textclf.reports.modelcard import write_model_card
from textclf.reports.plots import confusion_counts, expected_calibration_error, reliability_bins, write_plots
from textclf.training import train
from textclf.training.trainer import training_arguments

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").split("\n") if line]


def assert_png(path):
    """A complete PNG of a size a person can read: 300 to 4000 pixels a side."""
    assert path.read_bytes()[:8] == PNG_SIGNATURE, path
    with Image.open(path) as image:
        image.verify()
    with Image.open(path) as image:
        width, height = image.size
    assert 300 <= width <= 4000 and 300 <= height <= 4000, (path.name, width, height)


def front_matter(text):
    """The YAML block between the first two ``---`` lines of a model card, parsed."""
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n", 2)[1])


@pytest.fixture
def run_copy(trained_run, tmp_path):
    """A copy of the shared tiny run (without its Trainer checkpoints) that a test may change."""
    return shutil.copytree(trained_run["result"].output_dir, tmp_path / "run",
                           ignore=shutil.ignore_patterns("checkpoints"))


# --- plots ------------------------------------------------------------------------------------------------------

def test_a_classification_run_has_its_plots(trained_run):
    plots = trained_run["result"].output_dir / "plots"
    assert sorted(p.name for p in plots.iterdir()) == ["confusion_matrix.png", "learning_curves.png",
                                                         "reliability.png"]
    for path in plots.iterdir():
        assert_png(path)


def test_confusion_counts_equal_the_predictions_file(trained_run):
    out = trained_run["result"].output_dir
    rows = read_jsonl(out / "predictions.jsonl")
    names, counts = confusion_counts(out)
    assert names == ["neg", "pos"]
    expected = confusion_matrix([r["gold"] for r in rows], [r["predicted"] for r in rows], labels=names)
    np.testing.assert_array_equal(counts, expected)
    assert counts.sum() == len(rows) == 16
    assert counts.sum(axis=1).tolist() == [8, 8]  # gold rows: the validation file is 8 neg / 8 pos


def test_expected_calibration_error_by_hand():
    confidence = [0.95, 0.95, 0.85, 0.65, 0.65, 0.55]
    correct = [True, False, True, True, True, False]
    # bins (0.9, 1]: 2 examples, accuracy 0.5 vs 0.95; (0.8, 0.9]: 1, 1.0 vs 0.85; (0.6, 0.7]: 2, 1.0 vs 0.65;
    # (0.5, 0.6]: 1, 0.0 vs 0.55
    by_hand = (2 * 0.45 + 1 * 0.15 + 2 * 0.35 + 1 * 0.55) / 6
    assert expected_calibration_error(confidence, correct) == pytest.approx(by_hand)
    assert expected_calibration_error([0.8] * 5, [True] * 4 + [False]) == pytest.approx(0.0)
    assert expected_calibration_error([], []) == 0.0


def test_reliability_bins_are_right_closed():
    bins = reliability_bins(np.array([0.0, 0.1, 0.3, 0.31, 1.0]), np.array([1, 0, 1, 1, 0]))
    assert bins["count"].tolist() == [2, 0, 1, 1, 0, 0, 0, 0, 0, 1]  # 0 and 0.1 in (0, 0.1]; 0.3 in (0.2, 0.3]
    assert bins["accuracy"][0] == 0.5 and bins["confidence"][3] == pytest.approx(0.31)
    assert np.isnan(bins["accuracy"][1])


def test_regression_run_gets_a_scatter_and_no_confusion_matrix(fast_recipe, make_file, tmp_path):
    table = [{"sentence1": f"first sentence number {i}", "sentence2": f"second {i % 7}", "label": (i % 11) * 0.45}
             for i in range(48)]
    train(fast_recipe(make_file("scores.csv", table), "report_to=none"), tmp_path / "run")
    plots = tmp_path / "run" / "plots"
    assert sorted(p.name for p in plots.iterdir()) == ["learning_curves.png", "regression_scatter.png"]
    for path in plots.iterdir():
        assert_png(path)
    with pytest.raises(ValueError, match="single-label"):
        confusion_counts(tmp_path / "run")
    assert not (tmp_path / "run" / "tensorboard").exists()  # report_to=none
    card = front_matter((tmp_path / "run" / "model" / "README.md").read_text())
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    values = {m["type"]: m["value"] for m in card["model-index"][0]["results"][0]["metrics"]}
    assert values == {k[5:]: v for k, v in metrics.items() if k in ("eval_pearson", "eval_spearmanr", "eval_mse")}


# --- report.md and `textclf report` -----------------------------------------------------------------------------

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


# --- model card -------------------------------------------------------------------------------------------------

def test_model_card_metrics_equal_metrics_json(trained_run):
    out = trained_run["result"].output_dir
    text = (out / "model" / "README.md").read_text()
    card = front_matter(text)
    metrics = json.loads((out / "metrics.json").read_text())
    assert card["library_name"] == "transformers" and card["pipeline_tag"] == "text-classification"
    assert "base_model" not in card  # the tiny model is a local path, not a Hub id
    (index,) = card["model-index"]
    (result,) = index["results"]
    assert result["task"]["type"] == "text-classification"
    assert result["dataset"]["name"] == "train.csv" and result["dataset"]["split"] == "validation"
    values = {m["type"]: m["value"] for m in result["metrics"]}
    assert values == {"accuracy": metrics["eval_accuracy"], "f1": metrics["eval_f1"],
                      "f1_macro": metrics["eval_f1_macro"]}
    assert ModelCard(text).data.eval_results[0].metric_value == metrics["eval_accuracy"]  # the Hub's parser
    assert f"- Training time: {metrics['train_runtime']} s" in text
    assert f"- Hardware: {metrics['hardware']}" in text
    assert "| learning_rate | 0.001 |" in text and "| per_device_train_batch_size | 16 |" in text
    assert f'pipeline("text-classification", model="{out / "model"}")' in text
    assert "## Intended use and limitations" in text and "majority class" in text


@pytest.mark.parametrize("model", ["distilbert-base-uncased", "distilbert/distilbert-base-uncased"])
def test_model_card_cites_hub_ids_with_or_without_an_owner(run_copy, model):
    model_config = json.loads((run_copy / "model" / "config.json").read_text())
    model_config["textclf"]["base_model"] = model
    (run_copy / "model" / "config.json").write_text(json.dumps(model_config))
    text = write_model_card(run_copy).read_text()
    assert front_matter(text)["base_model"] == model
    assert f"(https://huggingface.co/{model})" in text


def test_model_card_of_a_registry_task_names_the_hub_base_model_and_dataset(run_copy):
    config = yaml.safe_load((run_copy / "config.yaml").read_text())
    config.update(task="sst2", model="bundled", hub_model_id="me/sst2-minilm")
    (run_copy / "config.yaml").write_text(yaml.safe_dump(config))
    model_config = json.loads((run_copy / "model" / "config.json").read_text())
    model_config["textclf"]["base_model"] = "sentence-transformers/all-MiniLM-L6-v2"
    (run_copy / "model" / "config.json").write_text(json.dumps(model_config))
    text = write_model_card(run_copy).read_text()
    card = front_matter(text)
    assert card["base_model"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert card["datasets"] == ["nyu-mll/glue"] and card["language"] == "en"
    dataset = card["model-index"][0]["results"][0]["dataset"]
    assert (dataset["type"], dataset["config"], dataset["split"]) == ("nyu-mll/glue", "sst2", "validation")
    assert card["model-index"][0]["name"] == "sst2-minilm"
    assert 'model="me/sst2-minilm"' in text


# --- tracking ---------------------------------------------------------------------------------------------------

def test_tensorboard_event_files_hold_the_logged_scalars(trained_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = trained_run["result"].output_dir
    assert trained_run["recipe"].report_to == "tensorboard"  # the default
    assert list((out / "tensorboard").glob("events.out.tfevents.*"))
    events = EventAccumulator(str(out / "tensorboard"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"train/loss", "train/learning_rate", "eval/loss", "eval/accuracy", "eval/f1"} <= tags
    history = json.loads((out / "log_history.json").read_text())
    for tag, key in (("train/loss", "loss"), ("eval/loss", "eval_loss"), ("eval/accuracy", "eval_accuracy")):
        logged = [(e["step"], e[key]) for e in history if key in e]
        assert [(s.step, pytest.approx(s.value, rel=1e-6)) for s in events.Scalars(tag)] == logged, tag


@pytest.mark.parametrize("value", ["comet", "tensorboard,nope", "none,tensorboard", "mlflow,all", "all"])
def test_unknown_report_to_is_a_config_error(value):
    with pytest.raises(ConfigError, match="report_to=.*use none, or one or more of tensorboard, mlflow, wandb"):
        load_recipe("sst2", [f"report_to={value}"])


def test_report_to_lists_are_parsed_and_tensorboard_is_textclfs_own(tmp_path):
    assert parse_report_to("none") == []
    assert parse_report_to(" TensorBoard, wandb,tensorboard") == ["tensorboard", "wandb"]
    recipe = load_recipe("sst2", ["report_to=tensorboard,mlflow"])
    assert training_arguments(recipe, tmp_path, "accuracy", bf16=False).report_to == ["mlflow"]
    assert training_arguments(load_recipe("sst2", ["report_to=none"]), tmp_path, "accuracy", False).report_to == []


def test_tracker_not_installed_is_a_config_error_before_anything_is_written(fast_recipe, sentiment_files, tmp_path,
                                                                           monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a))
    train_file, _ = sentiment_files
    with pytest.raises(ConfigError, match=r"needs wandb, which is not installed: pip install 'textclf\[tracking\]'"):
        train(fast_recipe(train_file, "report_to=tensorboard,wandb"), tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_wandb_runs_offline_without_credentials(monkeypatch, tmp_path):
    for key in ("WANDB_MODE", "WANDB_DIR", "WANDB_API_KEY"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc
    monkeypatch.delenv("NETRC", raising=False)
    with tracking.tracking_environment("wandb", tmp_path / "run"):
        assert os.environ["WANDB_MODE"] == "offline" and os.environ["WANDB_DIR"] == str(tmp_path / "run")
    assert "WANDB_MODE" not in os.environ and "WANDB_DIR" not in os.environ  # restored
    monkeypatch.setenv("WANDB_API_KEY", "key")
    with tracking.tracking_environment("tensorboard,wandb", tmp_path / "run"):
        assert "WANDB_MODE" not in os.environ
    monkeypatch.setenv("WANDB_MODE", "disabled")
    with tracking.tracking_environment("wandb", tmp_path / "run"):
        assert os.environ["WANDB_MODE"] == "disabled"
    with tracking.tracking_environment("tensorboard", tmp_path / "other"):
        assert "WANDB_DIR" not in os.environ


# --- push_to_hub ------------------------------------------------------------------------------------------------

def test_push_to_hub_without_a_token_is_a_config_error(fast_recipe, sentiment_files, tmp_path, monkeypatch):
    import huggingface_hub

    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setattr(huggingface_hub, "get_token", lambda: None)
    train_file, _ = sentiment_files
    with pytest.raises(ConfigError, match="push_to_hub=true needs a Hugging Face token: run `hf auth login` or "
                                          "set HF_TOKEN"):
        train(fast_recipe(train_file, "push_to_hub=true"), tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_bad_hub_model_id_is_a_config_error():
    with pytest.raises(ConfigError, match="hub_model_id='a/b/c' is not a Hub repository id"):
        load_recipe("sst2", ["hub_model_id=a/b/c"])


def test_push_to_hub_uploads_the_model_with_its_card(fast_recipe, sentiment_files, tmp_path, monkeypatch):
    import huggingface_hub

    calls = []

    class RepoUrl(str):
        repo_id = "me/tiny-sentiment"

    class FakeApi:
        def __init__(self, token=None):
            calls.append(("token", token))

        def create_repo(self, repo_id, **kwargs):
            calls.append(("create_repo", repo_id, kwargs["exist_ok"]))
            return RepoUrl("https://huggingface.co/me/tiny-sentiment")

        def upload_folder(self, repo_id, folder_path, **kwargs):
            with open(os.path.join(folder_path, "README.md"), encoding="utf-8") as fh:
                readme = fh.read()
            calls.append(("upload_folder", repo_id, folder_path, sorted(os.listdir(folder_path)), readme))

    monkeypatch.setattr(huggingface_hub, "get_token", lambda: "hf_test")
    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    train_file, validation_file = sentiment_files
    out = tmp_path / "tiny-sentiment"
    train(fast_recipe(train_file, f"validation_file={validation_file}", "push_to_hub=true", "report_to=none"), out)
    assert calls[0] == ("token", "hf_test")
    assert calls[1] == ("create_repo", "tiny-sentiment", True)  # default: the run directory's name
    kind, repo_id, folder, files, readme = calls[2]
    assert (kind, repo_id, folder) == ("upload_folder", "me/tiny-sentiment", str(out / "model"))
    assert {"README.md", "config.json", "model.safetensors", "tokenizer.json"} <= set(files)
    assert 'model="me/tiny-sentiment"' in readme and front_matter(readme)["model-index"][0]["name"] == "tiny-sentiment"
