"""The model card (model/README.md): the Hub's metadata format, metrics equal to metrics.json."""

from __future__ import annotations

import json

import pytest
import yaml
from conftest import front_matter
from huggingface_hub import ModelCard

from textclf.reports.modelcard import write_model_card


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
