"""The model card: ``DIR/model/README.md`` in the Hugging Face Hub's format, from what the run wrote.

The YAML metadata follows the Hub model card spec (huggingface_hub ``ModelCardData``; https://huggingface.co/docs/hub/
model-cards): library_name, pipeline_tag, base_model (when it is a Hub id, not a local path), datasets and language
(registry tasks only: a user's data file has no Hub id or recorded language), tags, and a ``model-index`` whose
results are the validation metrics of metrics.json, exactly. The body says what the model is, how to use it, the
hyperparameters (config.yaml), training time and hardware (metrics.json), the evaluation table against the
majority-class floor, and the intended use and limits. No license is written: it depends on the data and base
model, which the user must check.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from textclf.errors import DataError
from textclf.evaluation.metrics import METRICS
from textclf.files import atomic_write_text
from textclf.hub import is_hub_id
from textclf.modeling import EMBEDDING_METHODS, base_model_id
from textclf.reports.markdown import distillation_section, markdown_table, metrics_rows
from textclf.reports.rundir import RunFiles, as_run
from textclf.tasks import MULTI_LABEL, REGRESSION, get_task

# The recipe keys shown as hyperparameters (config.yaml), in this order, when set.
HYPERPARAMETERS = ("learning_rate", "num_train_epochs", "max_steps", "per_device_train_batch_size",
                   "gradient_accumulation_steps", "weight_decay", "warmup_ratio", "lr_scheduler_type", "optim",
                   "layerwise_lr_decay", "class_weights", "max_seq_length", "truncation", "freeze_base",
                   "early_stopping_patience", "seed")
METRIC_NAMES = {"accuracy": "Accuracy", "f1": "F1 (positive class)", "f1_macro": "F1 (macro)",
                "f1_micro": "F1 (micro)", "matthews_correlation": "Matthews correlation", "pearson": "Pearson r",
                "spearmanr": "Spearman rho", "mse": "Mean squared error"}


def _base_model(run: RunFiles) -> str:
    meta = (run.model_config or {}).get("textclf") or {}
    return meta.get("base_model") or base_model_id(str(run.config.get("model", "unknown")))


def _dataset(run: RunFiles) -> dict[str, Any]:
    """Hub dataset id, config, split and a readable name for the model-index, from the task or the data file."""
    task = run.config.get("task") or run.metrics.get("task")
    spec = None
    if task:
        try:
            spec = get_task(task)
        except ValueError:
            spec = None
    if spec is not None:
        return {"id": spec.hub_path, "config": spec.hub_config, "name": spec.name,
                "split": spec.validation_split or spec.train_split, "language": spec.language}
    data = run.config.get("data") or {}
    train_file = Path(data.get("train_file") or run.run_dir.name)
    return {"id": None, "config": None, "name": train_file.name, "language": None,
            "split": "validation" if data.get("validation_file") else "train"}


def card_data(run: RunFiles, model_name: str) -> Any:
    """The card's YAML metadata, a ``huggingface_hub.ModelCardData`` (``.to_dict()``, ``.to_yaml()``); the
    model-index results hold metrics.json's ``eval_<metric>`` values unrounded, ``<metric>`` as their type."""
    from huggingface_hub import EvalResult, ModelCardData

    dataset, base = _dataset(run), _base_model(run)
    results = [EvalResult(task_type="text-classification", task_name="Text Classification",
                          dataset_type=dataset["id"] or dataset["name"], dataset_name=dataset["name"],
                          dataset_config=dataset["config"], dataset_split=dataset["split"], metric_type=m,
                          metric_name=METRIC_NAMES.get(m, m), metric_value=run.metrics[f"eval_{m}"])
               for m in METRICS if f"eval_{m}" in run.metrics]
    return ModelCardData(library_name="transformers", pipeline_tag="text-classification",
                         base_model=base if is_hub_id(base) else None,
                         datasets=[dataset["id"]] if dataset["id"] else None, language=dataset["language"],
                         tags=["textclf", "text-classification", run.problem_type.replace("_", "-"),
                               *([dataset["name"]] if dataset["id"] else [])],
                         metrics=[r.metric_type for r in results] or None, model_name=model_name,
                         eval_results=results or None)


def _usage(run: RunFiles, reference: str) -> str:
    meta = (run.model_config or {}).get("textclf") or {}
    if meta.get("method") in EMBEDDING_METHODS:  # an encoder and a linear head: not a transformers pipeline model
        lexical = " and TF-IDF features of its word pieces and words (`lexical`)" if meta.get("lexical") else ""
        return (f"A sentence encoder with a linear head (`method={meta['method']}`){lexical}, loaded with textclf:\n\n"
                f'```python\nfrom textclf.inference import Predictor\n\nclassifier = Predictor.from_pretrained('
                f'"{reference}")\nclassifier.predict("a text to classify")\n```\n')
    columns = meta.get("text_columns") or ["text"]
    extra = {MULTI_LABEL: ", top_k=None", REGRESSION: ", function_to_apply=\"none\""}.get(run.problem_type, "")
    call = ('classifier({"text": "the first sentence", "text_pair": "the second sentence"})' if len(columns) == 2
            else 'classifier("a text to classify")')
    return (f'```python\nfrom transformers import pipeline\n\nclassifier = pipeline("text-classification", '
            f'model="{reference}"{extra})\n{call}\n```\n')


def _limits(run: RunFiles, dataset: dict[str, Any]) -> str:
    m, meta = run.metrics, (run.model_config or {}).get("textclf") or {}
    main = m.get("metric_for_best_model", "")
    floor = (m.get("majority_baseline") or {}).get(main)
    language = {"en": "English", "id": "Indonesian"}.get(dataset["language"] or "", "")
    lines = [f"- Intended for {run.problem_type.replace('_', ' ')} of {language + ' ' if language else ''}texts "
             f"like those of {dataset['name']}"
             + (f" into {', '.join(run.label_names)}" if run.label_names else "") + "; other domains, languages "
             "or label definitions need their own evaluation."
             + ("" if language else " The language of the training data was not recorded (a user's data file).")]
    if floor is not None and main in m:
        constant = {REGRESSION: "the mean score", MULTI_LABEL: "the labels that most examples carry"}.get(
            run.problem_type, "the majority class")
        lines.append(f"- Always predicting {constant} gives {main[5:]} {floor:.4f} on the same validation data; "
                     f"this model gives {m[main]:.4f}.")
    lines.append("- The validation split also chose the best checkpoint"
                 + (" and the decision threshold" if run.problem_type == MULTI_LABEL else "")
                 + ", so its scores are slightly optimistic: evaluate on held-out test data before relying on them.")
    if meta.get("max_seq_length"):
        lines.append(f"- Inputs longer than {meta['max_seq_length']} tokens are cut "
                     f"({meta.get('truncation', 'head')} truncation).")
    lines.append(f"- Trained on {m.get('train_examples', '?')} examples (source: "
                 f"{(m.get('data_sources') or {}).get('train', dataset['name'])}): the model carries that data's "
                 "biases and those of its base model. Not for decisions about people without human review.")
    return "\n".join(lines) + "\n"


def card_text(run: RunFiles, repo_id: str | None = None) -> str:
    """The full README.md: ``---``-fenced YAML metadata, then the Markdown body.

    Args:
        repo_id: the Hub repository the model is (or will be) in, for the title and usage example; default the
            recipe's ``hub_model_id``, else the local checkpoint directory.
    """
    from huggingface_hub import ModelCard

    repo_id = repo_id or run.config.get("hub_model_id")
    reference = repo_id or str(run.model_dir)
    name = (repo_id or run.run_dir.resolve().name).split("/")[-1]
    dataset, base, m = _dataset(run), _base_model(run), run.metrics
    metadata = card_data(run, name).to_yaml()
    threshold = f" Labels are predicted when their probability reaches {m['threshold']}." if m.get("threshold") else ""
    hyper = [[key, str(run.config[key])] for key in HYPERPARAMETERS  # as in config.yaml, unrounded
             if run.config.get(key) not in (None, "none") and not (key == "max_steps" and run.config[key] < 1)]
    hyper.append(["bf16", str(m.get("bf16", "?"))])
    body = [f"# {name}\n",
            f"A {run.problem_type.replace('_', ' ')} model fine-tuned from "
            + (f"[{base}](https://huggingface.co/{base})" if is_hub_id(base) else f"`{base}`")
            + f" on {dataset['name']} with textclf. "
            + (f"Labels: {', '.join(run.label_names)}." if run.label_names else "It predicts one score.")
            + threshold + "\n",
            "## How to use\n", _usage(run, reference),
            "## Evaluation\n",
            (f"On {m.get('eval_examples', '?')} validation examples "
             f"({(m.get('data_sources') or {}).get('validation', dataset['split'])}):\n"),
            markdown_table(["metric", "value", "majority-class floor"], metrics_rows(m)),
            *([distillation_section(m)] if m.get("distillation") else []),
            "## Training\n",
            (f"- Data: {m.get('train_examples', '?')} training examples "
             f"({(m.get('data_sources') or {}).get('train', dataset['name'])})"),
            (f"- Training time: {m.get('train_runtime', '?')} s ({m.get('global_step', '?')} steps, "
             f"{m.get('epoch', '?')} epochs)"),
            f"- Hardware: {m.get('hardware', 'not recorded')}",
            f"- Best checkpoint chosen by `{m.get('metric_for_best_model', '?')}`\n",
            markdown_table(["hyperparameter", "value"], hyper),
            "## Intended use and limitations\n", _limits(run, dataset)]
    return str(ModelCard(f"---\n{metadata}\n---\n\n" + "\n".join(body)))


def write_model_card(run_dir: str | Path | RunFiles, repo_id: str | None = None) -> Path:
    """Write ``DIR/model/README.md`` (see :func:`card_text`) atomically.

    Returns:
        The card's path.

    Raises:
        DataError: ``run_dir`` is not a finished run, or has no checkpoint (search trials drop theirs).
    """
    run = as_run(run_dir)
    if run.model_config is None:
        raise DataError(f"{run.run_dir} has no checkpoint (model/config.json) to describe: search trials keep "
                        "none; give a run directory from `textclf train`")
    path = run.model_dir / "README.md"
    atomic_write_text(path, card_text(run, repo_id))
    return path
