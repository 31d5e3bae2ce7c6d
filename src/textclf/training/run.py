"""A training run: from a recipe to a self-describing run directory, whatever the method.

:func:`train` runs the stages in order: check the recipe and data (nothing is written before they pass), pick the
method (:func:`choose_method`), fit it (:func:`textclf.training.finetune.fit_finetune`, or
:func:`textclf.training.embedding.fit_embedding_method` for ``head`` / ``setfit``) into ``model/``, judge the saved
checkpoint (:func:`textclf.evaluation.checkpoint.evaluate_run`), write the run's files
(:func:`textclf.reports.rundir.write_run`), build the plots, report and model card
(:func:`textclf.reports.summary.build_report`) and, if asked, push to the Hub.

``DIR/`` after :func:`train`::

    config.yaml         the resolved recipe (written first, so a resumed run knows what it was)
    checkpoints/        method=finetune: the Trainer's per-epoch checkpoints (for resume_from_checkpoint)
    model/              the best checkpoint: safetensors weights, tokenizer, id2label/label2id, problem_type,
                        textclf.method (head / setfit: a sentence-transformers encoder and head.safetensors)
                        (multi-label: the decision threshold, textclf.threshold, tuned on validation), and
                        README.md, its model card (textclf.reports.modelcard)
    metrics.json        final validation metrics (eval_* keys), train speed, the majority-class floor,
                        the threshold and class weights used, the hardware
    predictions.jsonl   one line per validation example: texts, gold, predicted label, score
    errors.csv          the misclassified examples, most confident first (regression: largest errors)
    per_label.csv       precision, recall, F1 and support of every class / label on validation (not regression)
    log_history.json    the Trainer's (or SetFit's) log history (losses, eval metrics per step/epoch)
    plots/, report.md   learning curves, confusion matrix, calibration or regression scatter, and a summary
                        (textclf.reports; ``textclf report DIR`` rebuilds them)
    tensorboard/        TensorBoard event files when report_to names tensorboard (default; textclf.training.tracking)

Every file is written atomically; data and config errors (an uninstalled tracker, push_to_hub without a token
included) are raised before ``DIR`` is touched. With ``push_to_hub=true``, ``model/`` is uploaded at the end.
"""


from __future__ import annotations

import dataclasses
import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from accelerate import PartialState
from transformers import TrainerCallback

from textclf.config import Recipe, save_recipe
from textclf.data.augmentation import augment_texts
from textclf.data.lengths import choose_lengths, model_input_cap
from textclf.data.loading import MIN_HOLDOUT_TRAIN, TaskData, load_recipe_data
from textclf.data.longdoc import check_truncation
from textclf.errors import ConfigError
from textclf.evaluation.checkpoint import evaluate_run
from textclf.files import atomic_path, atomic_write_text, remove_stale_temporaries
from textclf.hardware import describe_machine
from textclf.hub import check_hub_token, push_model
from textclf.inference.predictor import Predictor, rows_to_texts
from textclf.lexical import SPLIT_WORDS_UNKNOWN, split_word_fraction
from textclf.modeling import EMBEDDING_METHODS, load_sentence_model, load_tokenizer
from textclf.reports.modelcard import write_model_card
from textclf.reports.rundir import write_run
from textclf.reports.summary import build_report
from textclf.tasks import MULTI_LABEL, REGRESSION
from textclf.training.distillation import DistillationLoss
from textclf.training.embedding import check_embedding_method, fit_embedding_method
from textclf.training.finetune import fit_finetune, resume_path
from textclf.training.teacher import compare_with_teacher, distillation_data, load_teacher, read_unlabeled
from textclf.training.tracking import check_trackers, tensorboard_dir
from textclf.training.trainer import best_model_metric, class_weights

logger = logging.getLogger(__name__)
METHODS = ("auto", "finetune", "setfit", "head", "distill")
TRAINER_METHODS = ("finetune", "distill")  # the methods that fine-tune with the Trainer
# method=auto: SetFit below this many labelled training examples per class (the rarest class counts), fine-tuning
# from there on. SST-2, seed 42, validation accuracy (docs/results.md, "Few-shot methods"): at 64 per class SetFit
# 0.756, head 0.726, fine-tuning (300 steps) 0.689; at 256 per class fine-tuning 0.807, head 0.771.
SETFIT_BELOW_PER_CLASS = 128


@dataclass
class TrainResult:
    """What a training run produced.

    Attributes:
        output_dir: the run directory; ``model_dir`` the best checkpoint inside it.
        metrics: the contents of metrics.json (eval_* keys, train_runtime in seconds, ...).
    """

    output_dir: Path
    model_dir: Path
    metrics: dict[str, Any]


def examples_per_class(data: TaskData) -> int:
    """Labelled training examples per class as :func:`choose_method` counts them: those of the rarest class for
    single-label tasks; the mean per label for multi-label tasks (a rare label among 43,000 GoEmotions texts
    does not make the data small); the number of training examples for regression."""
    labels = np.asarray(data.splits["train"]["label"])
    if data.problem_type == REGRESSION:
        return len(labels)
    if data.problem_type == MULTI_LABEL:
        return int(labels.sum() // max(1, labels.shape[1]))
    counts = np.bincount(labels.astype(int), minlength=data.num_labels)
    present = counts[counts > 0]
    return int(present.min()) if present.size else 0


def choose_method(recipe: Recipe, data: TaskData) -> tuple[str, str]:
    """The method a run uses and why: ``recipe.method`` unless it is ``auto``, which distils when the recipe names a
    teacher, else picks SetFit for small data
    (fewer than :data:`SETFIT_BELOW_PER_CLASS` examples per class, :func:`examples_per_class`) and fine-tuning
    otherwise; single texts in a language the encoder's vocabulary does not know (its tokenizer splits more than
    :data:`textclf.lexical.SPLIT_WORDS_UNKNOWN` of the training words) get ``head`` at every size, whose TF-IDF
    features (:func:`resolve_lexical`) carry what the embeddings miss (IndoNLU SmSA: 0.650 / 0.728 / 0.801 / 0.821 /
    0.883 at 8 / 16 / 64 / 256 per class and full data, against SetFit's 0.627 / 0.672 / 0.688 below 128 and
    fine-tuning's 0.688 at 256 and 0.812 on full data; docs/results.md); sentence
    pairs, head_tail / chunks truncation and regression always fine-tune (SetFit embeds single texts into classes).

    Returns:
        (``finetune`` | ``setfit`` | ``head`` | ``distill``, a one-line reason for the log and metrics.json).

    Raises:
        ConfigError: ``setfit`` or ``head`` asked for data they cannot take (pairs, long-document truncation); a
            teacher with another method.
    """
    if recipe.method not in METHODS:
        raise ConfigError(f"method={recipe.method!r} is not allowed: use one of {', '.join(METHODS)}")
    if recipe.method == "distill" or (recipe.method == "auto" and recipe.teacher):
        return "distill", (f"distillation from teacher {recipe.teacher} (alpha={recipe.alpha}, "
                           f"temperature={recipe.temperature})")
    if recipe.teacher:
        raise ConfigError(f"teacher={recipe.teacher} is for method=distill, and method is {recipe.method}: "
                          "remove the teacher or set method=distill")
    if recipe.method == "setfit" and data.problem_type == REGRESSION:
        return "head", "method=setfit has no regression head: ridge regression on frozen embeddings (method=head)"
    if recipe.method in EMBEDDING_METHODS:
        check_embedding_method(recipe.method, recipe, data)
        return recipe.method, f"method={recipe.method} as the recipe says"
    if recipe.method == "finetune":
        return "finetune", "method=finetune as the recipe says"
    per_class = examples_per_class(data)
    if len(data.text_columns) > 1:
        return "finetune", "sentence pairs: SetFit embeds single texts"
    if recipe.truncation not in ("head", "auto"):
        return "finetune", f"truncation={recipe.truncation} needs the fine-tuning path"
    if data.problem_type == REGRESSION:
        return "finetune", "regression: SetFit has no regression head"
    unknown, coverage = language_check(load_tokenizer(recipe.model), data, recipe.seed)
    if unknown:
        return "head", (f"{coverage}: a language it does not know, where a frozen-encoder head with TF-IDF of its word "
                        f"pieces and words beat SetFit and fine-tuning ({per_class} training examples per class)")
    if per_class < SETFIT_BELOW_PER_CLASS:
        return "setfit", (f"{per_class} training examples per class (< {SETFIT_BELOW_PER_CLASS}): SetFit learns "
                          "more from few examples than fine-tuning")
    return "finetune", f"{per_class} training examples per class (>= {SETFIT_BELOW_PER_CLASS}): fine-tuning"


def resolve_lexical(recipe: Recipe, data: TaskData, method: str, tokenizer: Any) -> tuple[bool, str]:
    """Whether the head of ``method`` gets TF-IDF features of the encoder's word pieces and words
    (:mod:`textclf.lexical`), and why: ``lexical=true`` / ``false`` as given; ``auto`` when the encoder's tokenizer
    splits more than :data:`textclf.lexical.SPLIT_WORDS_UNKNOWN` of the training words (SmSA: 82%; English tasks:
    3-9%).

    Args:
        tokenizer: the encoder's tokenizer (None for the Trainer methods).

    Raises:
        ConfigError: ``lexical=true`` with a method that fine-tunes (finetune, distill).
    """
    if method not in EMBEDDING_METHODS:
        if recipe.lexical == "true":
            raise ConfigError(f"lexical=true adds TF-IDF features to the head of method=head / setfit, and this run's "
                              f"method is {method}: set method=head (or setfit), or lexical=auto")
        return False, f"method={method} has no linear head on embeddings"
    if recipe.lexical != "auto":
        return recipe.lexical == "true", f"lexical={recipe.lexical} as the recipe says"
    unknown, coverage = language_check(tokenizer, data, recipe.seed)
    return unknown, f"{coverage}: TF-IDF of its word pieces and words next to the embeddings" if unknown else coverage


def language_check(tokenizer: Any, data: TaskData, seed: int) -> tuple[bool, str]:
    """Whether the encoder's vocabulary does not know the language of ``data``'s training texts (its tokenizer splits
    more than :data:`textclf.lexical.SPLIT_WORDS_UNKNOWN` of their words into pieces), and a one-line statement of
    the measured share for the log."""
    split = split_word_fraction(tokenizer, data.splits["train"][data.text_columns[0]], seed=seed)
    unknown = split > SPLIT_WORDS_UNKNOWN
    return unknown, (f"the encoder's vocabulary splits {split:.0%} of the training words into pieces "
                     f"({'>' if unknown else '<='} {SPLIT_WORDS_UNKNOWN:.0%})")


def resolve_lengths(recipe: Recipe, data: TaskData, method: str, body: Any = None) -> tuple[Recipe, str]:
    """The recipe with ``max_seq_length=auto`` and ``truncation=auto`` made concrete from the training texts
    (:func:`textclf.data.lengths.choose_lengths`), and a one-line reason for the log and metrics.json.

    ``max_seq_length=auto`` is capped at the model's input limit (at most 512; for ``head`` / ``setfit`` at the
    sentence encoder's own ``max_seq_length``). ``truncation=auto`` is ``chunks`` only when fine-tuning single texts
    with ``max_seq_length=auto`` and more than 1% of them are longer than the cap; otherwise ``head``.

    Args:
        body: the sentence-transformers encoder for ``head`` / ``setfit`` (its tokenizer and limit are used, and its
            ``max_seq_length`` is set to the choice); None for ``finetune``.

    Raises:
        ConfigError: an explicit ``head_tokens`` / ``stride`` that does not fit the chosen length.
    """
    if recipe.max_seq_length != "auto" and recipe.truncation != "auto":
        return recipe, "as the recipe says"
    tokenizer = body.tokenizer if body is not None else load_tokenizer(recipe.model)
    if recipe.max_seq_length == "auto":
        train = data.splits["train"]
        pairs = train[data.text_columns[1]] if len(data.text_columns) > 1 else None
        cap = model_input_cap(tokenizer, body.max_seq_length if body is not None else None)
        choice = choose_lengths(tokenizer, train[data.text_columns[0]], pairs, cap=cap, seed=recipe.seed,
                                allow_chunks=method in TRAINER_METHODS and pairs is None)
        length, truncation, reason = choice.max_seq_length, choice.truncation, choice.reason
    else:
        length, truncation, reason = recipe.max_seq_length, "head", f"max_seq_length={recipe.max_seq_length} as given"
    truncation = truncation if recipe.truncation == "auto" else recipe.truncation
    check_truncation(truncation, length, recipe.head_tokens, recipe.stride, tokenizer.num_special_tokens_to_add())
    if body is not None:
        body.max_seq_length = length
    reason = f"max_seq_length={length}, truncation={truncation}: {reason}"
    logger.info("%s", reason)
    return dataclasses.replace(recipe, max_seq_length=length, truncation=truncation), reason


def _store_threshold(predictor: Predictor, model_dir: Path, threshold: float) -> None:
    """Write the multi-label decision threshold into the checkpoint's config.json (``textclf.threshold``, which
    :class:`~textclf.inference.predictor.Predictor` reads), atomically."""
    path = model_dir / "config.json"
    config = json.loads(path.read_text(encoding="utf-8"))
    config["textclf"] = {**config.get("textclf", {}), "threshold": float(threshold)}
    atomic_write_text(path, json.dumps(config, indent=2, sort_keys=True) + "\n")  # PretrainedConfig's layout
    predictor.model.config.textclf = {**(getattr(predictor.model.config, "textclf", None) or {}),
                                      "threshold": float(threshold)}


def train(recipe: Recipe, output_dir: str | Path, *, callbacks: list[TrainerCallback] | None = None,
          data: TaskData | None = None) -> TrainResult:
    """Fine-tune ``recipe.model`` on ``recipe``'s data and write the run directory (see module docstring).

    Args:
        recipe: a validated recipe (:func:`textclf.config.load_recipe`).
        output_dir: the run directory; created if needed. An existing run there is overwritten file by file
            (each atomically), or resumed with ``resume_from_checkpoint=last``.
        callbacks: extra ``TrainerCallback``s (a search reports each evaluation to its trial with one); an
            exception raised by one (e.g. ``optuna.TrialPruned``) ends training and propagates.
        data: already loaded data to train on, instead of ``load_recipe_data(recipe)`` (whose sample caps and
            seeded splits it then replaces): textclf.training.search gives every trial the same seeded subset.

    Returns:
        A :class:`TrainResult`; ``metrics["eval_<metric>"]`` holds the best checkpoint's validation scores.

    Raises:
        DataError, ConfigError, ModelError (all ``TextclfError``): bad data, recipe or model, raised before
            anything is written to ``output_dir``.
    """
    output_dir = Path(output_dir)
    if output_dir.exists() and not output_dir.is_dir():
        raise ConfigError(f"output directory {output_dir} is a file, not a directory: give --output-dir a "
                          "directory path (it is created if missing)")
    # Check everything that can fail on the user's input before anything is written.
    data = load_recipe_data(recipe) if data is None else data
    method, reason = choose_method(recipe, data)
    logger.info("method %s: %s", method, reason)
    metric = best_model_metric(recipe, data)
    weights = class_weights(recipe, data) if method in TRAINER_METHODS else None
    resume = resume_path(recipe, output_dir) if method in TRAINER_METHODS else None
    teacher = load_teacher(recipe.teacher, data) if method == "distill" else None
    unlabeled = read_unlabeled(recipe.data.unlabeled_file, data.text_columns) if recipe.data.unlabeled_file else []
    augmented = augment_texts(rows_to_texts(data.splits["train"].to_dict(), data.text_columns), recipe.augment,
                              recipe.augment_copies, recipe.seed, recipe.augment_model) if teacher else []
    check_trackers(recipe.report_to)
    hub_token = check_hub_token() if recipe.push_to_hub else None
    body = load_sentence_model(recipe.model, recipe.max_seq_length) if method not in TRAINER_METHODS else None
    recipe, length_reason = resolve_lengths(recipe, data, method, body)
    lexical, lexical_reason = resolve_lexical(recipe, data, method, body.tokenizer if body is not None else None)
    if lexical:
        logger.info("lexical features: %s", lexical_reason)

    model_dir = output_dir / "model"
    # Under torchrun / accelerate launch every process fine-tunes its shard (the Trainer's DDP), and only the main
    # one writes the run directory: the others wait for it, then read its metrics.json.
    processes = PartialState()
    if not processes.is_main_process and method not in TRAINER_METHODS:  # head / setfit run in one process
        return _result_of_main_process(processes, output_dir)
    if processes.is_main_process:
        for stale in remove_stale_temporaries(output_dir):
            logger.warning("removed %s: a half-written file of an earlier run that was stopped", stale)
    train_data = data
    if teacher is not None:  # every process computes (or reads) the same cached logits
        train_data = distillation_data(teacher, data, [*unlabeled, *augmented], output_dir,
                                       recipe.per_device_eval_batch_size)
    if method in TRAINER_METHODS:
        loss = DistillationLoss(data.problem_type, recipe.alpha, recipe.temperature) if teacher else None
        trainer = fit_finetune(recipe, train_data, output_dir, metric, callbacks=list(callbacks or []), resume=resume,
                               distillation=loss)
        if not processes.is_main_process:
            return _result_of_main_process(processes, output_dir)
        stats = trainer.stats
    else:
        save_recipe(recipe, output_dir / "config.yaml")
        shutil.rmtree(tensorboard_dir(output_dir), ignore_errors=True)  # no event files: no Trainer here
    # model/ appears complete or not at all: written, judged and given its tuned threshold under a temporary name.
    with atomic_path(model_dir) as tmp:
        if method in TRAINER_METHODS:  # weights, config and tokenizer only: no pickled training_args.bin
            trainer.model.save_pretrained(tmp)
            trainer.processing_class.save_pretrained(tmp)
        else:
            stats = fit_embedding_method(method, recipe, data, tmp, body=body, lexical=lexical)
        # Judge the saved checkpoint, not the in-memory model: accelerate wraps the latter's forward in the
        # training autocast, and the numbers here must be the ones `textclf evaluate` reproduces.
        predictor = Predictor.from_pretrained(tmp, batch_size=recipe.per_device_eval_batch_size)
        judged = evaluate_run(predictor, data, recipe.threshold)
        if judged.threshold is not None:
            _store_threshold(predictor, tmp, judged.threshold)
        distilled = compare_with_teacher(teacher, tmp, data, metric, recipe.threshold) if teacher else None
    history = stats.pop("log_history")
    metrics: dict[str, Any] = {
        "task": data.name,
        **judged.metrics,
        "metric_for_best_model": f"eval_{metric}",
        "majority_baseline": judged.majority_baseline,
        "method": method,
        "method_reason": reason,
        "max_seq_length": recipe.max_seq_length,
        "truncation": recipe.truncation,
        "max_seq_length_reason": length_reason,
        "lexical": lexical,
        "lexical_reason": lexical_reason,
        "train_examples": len(data.splits["train"]),
        "eval_examples": len(data.splits["validation"]),
        "validation_is_train": data.validation_is_train,
        **stats,
        "hardware": describe_machine(),
        "threshold": judged.threshold,
        "threshold_tuned": data.problem_type == MULTI_LABEL and recipe.threshold == "auto",
        "class_weights": None if weights is None else dict(zip(data.label_names, weights)),
        "distillation": None if distilled is None else {**distilled, "alpha": recipe.alpha,
                                                        "temperature": recipe.temperature,
                                                        "unlabeled_examples": len(unlabeled),
                                                        "augment": recipe.augment,
                                                        "augmented_examples": len(augmented)},
        "data_sources": data.sources,
    }
    if data.validation_is_train:
        logger.warning("no validation file and %d training examples (< %d): trained on all of them; the scores in "
                       "metrics.json are on the training data (optimistic): evaluate on held-out data",
                       len(data.splits["train"]), MIN_HOLDOUT_TRAIN)
    floor = judged.majority_baseline.get(f"eval_{metric}")
    if floor is not None and metric not in ("loss", "mse") and judged.metrics.get(f"eval_{metric}", floor) < floor:
        logger.warning("eval_%s %.4f is below the majority-class floor %.4f: the model learned less than always "
                       "predicting the most frequent label (too little data or too few steps?)", metric,
                       judged.metrics[f"eval_{metric}"], floor)
    write_run(output_dir, metrics, judged.predictions, judged.errors, judged.per_label, history)
    build_report(output_dir)  # plots/, report.md, model/README.md
    if recipe.push_to_hub:
        push_model(model_dir, recipe.hub_model_id or output_dir.resolve().name, hub_token,
                   prepare=lambda repo_id: write_model_card(output_dir, repo_id=repo_id))
    processes.wait_for_everyone()  # the other processes read metrics.json now
    return TrainResult(output_dir=output_dir, model_dir=model_dir, metrics=metrics)


def _result_of_main_process(processes: Any, output_dir: Path) -> TrainResult:
    """On a process other than the main one: wait until the main one has written the run, and return it.

    Raises:
        RuntimeError: the main process ended without writing metrics.json (its own error is in its log).
    """
    processes.wait_for_everyone()
    metrics_file = output_dir / "metrics.json"
    if not metrics_file.is_file():
        raise RuntimeError(f"process {processes.process_index}: the main process wrote no {metrics_file} (see its "
                           "error above)")
    return TrainResult(output_dir=output_dir, model_dir=output_dir / "model",
                       metrics=json.loads(metrics_file.read_text(encoding="utf-8")))
