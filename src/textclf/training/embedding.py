"""Sentence-embedding methods for small data: ``method=head`` (a frozen encoder and a linear head) and
``method=setfit`` (SetFit: contrastive fine-tuning of the encoder, then the head), both written as an
:class:`~textclf.modeling.EmbeddingClassifier` checkpoint.

- ``head``: the encoder is frozen; every training text is embedded once (``sentence_transformers``'
  ``SentenceTransformer.encode``, with the model's own pooling and normalisation) and scikit-learn fits the head:
  logistic regression with its inverse regularisation ``C`` chosen by stratified cross-validation
  (``LogisticRegressionCV``, 10 values from 1e-4 to 1e4) for classes, one such model per label for multi-label
  (one-vs-rest), ridge regression with ``alpha`` chosen by leave-one-out (``RidgeCV``) for scores. It is the frozen
  base of the Hugging Face course exercise done in seconds.
- ``setfit``: the ``setfit`` library (Tunstall et al. 2022, "Efficient Few-Shot Learning Without Prompts")
  fine-tunes the encoder on pairs of training texts (same label or not: cosine-similarity loss) and then fits its
  logistic-regression head, with the library's defaults (batch 16, one epoch over the sampled pairs, body
  learning rate 2e-5), the pairs per text of :func:`setfit_num_iterations` (the paper's 20 iterations or the
  library's own count, fewer for texts longer than :data:`SETFIT_PAIR_TOKENS` but never more than the library's),
  and the pairs capped as its docs advise for larger sets (:data:`SETFIT_MAX_STEPS`).
  Regression is not a SetFit task: it falls back to ``head`` (ridge), said in the log.

Both take single texts (not sentence pairs: SetFit embeds one text at a time) with ``truncation=head``; the head
is stored as safetensors weights (no pickle, joblib included).
"""

from __future__ import annotations

import logging
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from textclf.config import Recipe
from textclf.data.loading import TaskData
from textclf.errors import ConfigError
from textclf.lexical import EMBEDDING_SCALE, fit_lexical_features, lexical_tensors
from textclf.modeling import base_model_id, load_sentence_model, save_embedding_classifier
from textclf.tasks import MULTI_LABEL, REGRESSION

logger = logging.getLogger(__name__)
# Batches of pairs in SetFit's body training at most (16 pairs each). SetFit samples pairs until every text took
# part ("oversampling"), which grows with the square of the data (16 texts: 120 pairs; 128 texts: ~8,000); its docs
# advise capping larger sets. 500 batches are 8,000 pairs: SST-2 at 64 per class trains them in 594-635 s on one
# thread of this project's 2-core CPU.
SETFIT_MAX_STEPS = 500
# Pairs per text and iteration: SetFit's paper trains 20 iterations (Tunstall et al. 2022, section 4); the library's
# default "oversampling" draws more once a class has about 40 texts (binary: (m + 1) / 2 iterations for m per class).
SETFIT_NUM_ITERATIONS = 20
# Tokens per text at which the iterations above are paid in full: 128, the length all-MiniLM-L6-v2 was contrastively
# trained at. Longer texts get proportionally fewer pairs, so a text's pair training costs about the same whatever
# its length (texts of 256 tokens: half the iterations), but never more than the library's own count (IMDb at 8
# and 16 per class: docs/results.md, "Long texts: the library's pair count").
SETFIT_PAIR_TOKENS = 128
LOGISTIC_CS = 10  # LogisticRegressionCV's grid: 10 values of C, log-spaced from 1e-4 to 1e4 (its default)


def check_embedding_method(method: str, recipe: Recipe, data: TaskData) -> None:
    """Raise ConfigError when ``method`` (head or setfit) cannot train on ``data`` with ``recipe``.

    Raises:
        ConfigError: sentence pairs, a truncation other than head, or class weights given as a list.
    """
    if len(data.text_columns) > 1:
        raise ConfigError(f"method={method} embeds single texts, and {data.name} has sentence pairs "
                          f"({', '.join(data.text_columns)}): use method=finetune (or method=auto)")
    if recipe.truncation not in ("head", "auto"):
        raise ConfigError(f"method={method} reads the first max_seq_length tokens of a text: use truncation=head, "
                          "or method=finetune for head_tail / chunks")


def _texts(data: TaskData, split: str) -> list[str]:
    return [str(t) for t in data.splits[split][data.text_columns[0]]]


def _balanced(recipe: Recipe) -> str | None:
    if isinstance(recipe.class_weights, list):
        raise ConfigError("class_weights as a list is for method=finetune: use class_weights=balanced or none")
    return "balanced" if recipe.class_weights == "balanced" else None


def fit_linear_head(embeddings: np.ndarray, labels: np.ndarray, problem_type: str, seed: int,
                    class_weight: str | None = None, tune_c: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Fit the linear head on sentence embeddings and return it as logits' weight and bias.

    Args:
        embeddings: (num_examples, hidden_size) float32, or a scipy sparse matrix (embeddings and TF-IDF columns).
        labels: (num_examples,) int class ids, (num_examples,) float scores, or (num_examples, num_labels) 0/1.
        class_weight: ``"balanced"`` (scikit-learn's n / (k * count)) or None.
        tune_c: choose the logistic regression's C by cross-validation (``head``: a frozen encoder, so the folds
            are held out); False: C=1, the setfit library's head, for ``setfit``, whose encoder was trained on every
            fold. Paired on the same SetFit encoders (SST-2 and SmSA, 8/16/64 per class, 3 seeds), C=1 scored
            0.6843 on the mean of the five 3-seed cells against 0.6828 for the cross-validated C: docs/results.md.

    Returns:
        (weight (num_labels, hidden_size), bias (num_labels,)) float32 such that ``embeddings @ weight.T + bias``
        are the logits: softmax of them is the logistic regression's ``predict_proba`` (two classes: logits
        ``[0, z]``), a sigmoid per label for multi-label, the ridge prediction for regression.
    """
    from scipy.sparse import issparse
    from sklearn.linear_model import LogisticRegression, LogisticRegressionCV, RidgeCV

    x = embeddings.astype(np.float64).tocsr() if issparse(embeddings) else np.asarray(embeddings, dtype=np.float64)
    if problem_type == REGRESSION:
        ridge = RidgeCV(alphas=np.logspace(-3, 3, 13)).fit(x, np.asarray(labels, dtype=np.float64))
        return ridge.coef_.reshape(1, -1).astype(np.float32), np.array([ridge.intercept_], dtype=np.float32)

    def logistic(y: np.ndarray) -> Any:
        counts = np.bincount(y)
        folds = int(min(5, counts[counts > 0].min()))
        if folds >= 2 and tune_c:
            return LogisticRegressionCV(Cs=LOGISTIC_CS, cv=folds, max_iter=2000, class_weight=class_weight,
                                        random_state=seed).fit(x, y)
        return LogisticRegression(max_iter=2000, class_weight=class_weight, random_state=seed).fit(x, y)

    if problem_type == MULTI_LABEL:
        hot = np.asarray(labels).astype(np.int64)
        weight = np.zeros((hot.shape[1], x.shape[1]), dtype=np.float32)
        bias = np.zeros(hot.shape[1], dtype=np.float32)
        for k in range(hot.shape[1]):
            if hot[:, k].min() == hot[:, k].max():  # a label always (never) present in train: a constant logit
                bias[k] = 10.0 if hot[0, k] else -10.0
                continue
            model = logistic(hot[:, k])
            weight[k], bias[k] = model.coef_[0], model.intercept_[0]
        return weight, bias
    y = np.asarray(labels).astype(np.int64)
    model = logistic(y)
    num_labels = int(y.max()) + 1
    weight = np.zeros((num_labels, x.shape[1]), dtype=np.float32)
    bias = np.zeros(num_labels, dtype=np.float32)
    classes = model.classes_.astype(int)
    if len(classes) == 2:  # one decision function z for the second class: logits [0, z]
        weight[classes[1]], bias[classes[1]] = model.coef_[0], model.intercept_[0]
    else:  # multinomial: one row per class
        weight[classes], bias[classes] = model.coef_, model.intercept_
    return weight, bias


def fit_embedding_method(method: str, recipe: Recipe, data: TaskData, model_dir: Path,
                         body: Any = None, lexical: bool = False) -> dict[str, Any]:
    """Train ``method`` (head or setfit) on ``data``'s train split and write the checkpoint into ``model_dir``.

    Args:
        body: the encoder as a ``SentenceTransformer`` (:func:`~textclf.modeling.load_sentence_model`), if the
            caller loaded it already (a run loads it before writing anything, so a bad model fails first).
        lexical: fit the head on the embeddings (scaled by :data:`textclf.lexical.EMBEDDING_SCALE`) next to TF-IDF
            features of the encoder's word pieces and the words they spell (:mod:`textclf.lexical`), in one logistic
            regression (or ridge) at C=1: on SmSA at 8 / 16 / 64 per class (3 seeds, word-piece features) C=1 scored
            0.652 / 0.723 / 0.791 against 0.647 / 0.716 / 0.787 for the cross-validated C (docs/results.md).

    Returns:
        Training facts for metrics.json: ``method``, ``lexical_features`` (TF-IDF columns; 0 without),
        ``train_runtime`` (seconds), ``global_step`` (SetFit's pair steps; 0 for head), ``train_loss`` (SetFit's mean
        cosine-similarity loss over its steps; None for head), ``log_history``.

    Raises:
        ConfigError: see :func:`check_embedding_method`; ModelError: the model cannot be loaded.
    """
    check_embedding_method(method, recipe, data)
    labels = np.asarray(data.splits["train"]["label"])
    texts = _texts(data, "train")
    started = time.perf_counter()
    body = body if body is not None else load_sentence_model(recipe.model, recipe.max_seq_length)
    steps, loss, history = 0, None, []
    if method == "setfit":
        body, steps, loss, history = _setfit_body(body, recipe, texts, labels, data.problem_type)
    embeddings = body.encode(texts, batch_size=recipe.per_device_eval_batch_size, convert_to_numpy=True,
                             show_progress_bar=False)
    features, tensors = embeddings, None
    if lexical:
        from scipy.sparse import csr_matrix, hstack

        module, tfidf = fit_lexical_features(body.tokenizer, texts, int(body.max_seq_length),
                                             recipe.per_device_eval_batch_size)
        features = hstack([csr_matrix(EMBEDDING_SCALE * embeddings.astype(np.float64)), tfidf]).tocsr()
    weight, bias = fit_linear_head(features, labels, data.problem_type, recipe.seed, _balanced(recipe),
                                   tune_c=method != "setfit" and not lexical)
    if lexical:  # split the head: the embedding block (its scale folded in) and the TF-IDF block
        hidden = embeddings.shape[1]
        tensors = lexical_tensors(module, weight[:, hidden:])
        weight = weight[:, :hidden] * EMBEDDING_SCALE
    meta = {"method": method, "task": data.name, "text_columns": list(data.text_columns),
            "max_seq_length": recipe.max_seq_length, "truncation": "head", "base_model": base_model_id(recipe.model),
            "lexical": lexical}
    save_embedding_classifier(body, weight, bias, model_dir, data.label_names, data.problem_type, meta, tensors)
    return {"method": method, "lexical_features": 0 if tensors is None else module.num_features,
            "train_runtime": round(time.perf_counter() - started, 2), "global_step": steps, "train_loss": loss,
            "log_history": history}


def setfit_num_iterations(labels: Any, token_lengths: np.ndarray, multi_label: bool = False) -> int | None:
    """SetFit's ``num_iterations`` (pairs per text = 2 x iterations) for one training set.

    The larger of :data:`SETFIT_NUM_ITERATIONS` and the iterations the setfit library's default sampling
    ("oversampling": as many positive as negative pairs, the larger count of the two) would draw, scaled by
    ``SETFIT_PAIR_TOKENS / mean tokens per text`` when the texts are longer than :data:`SETFIT_PAIR_TOKENS`; where
    that still draws more pairs than the library would, the library's own count (None). Long texts never train more
    pairs than the library's: on IMDb at 8 per class (16 reviews, 206-210 tokens) 12 iterations (384 pairs) scored
    0.674 / 0.524 / 0.630 on seeds 0-2 in 124-196 s, the library's 144 pairs 0.672 / 0.522 / 0.634 in 40-52 s: the
    same mean, 0.609 (docs/results.md, "Long texts: the library's pair count").

    Args:
        labels: (num_texts,) class ids, or (num_texts, num_labels) 0/1 for multi-label (whose pairs the library
            counts differently: the 20 iterations are kept).
        token_lengths: (num_texts,) int tokens of each text as the encoder reads it (after truncation).

    Returns:
        An int >= 1, or None: the library's default sampling (``TrainingArguments(num_iterations=None)``).
    """
    n = len(token_lengths)
    iterations = float(SETFIT_NUM_ITERATIONS)
    library = None
    if not multi_label and n:
        counts = np.bincount(np.asarray(labels, dtype=np.int64))
        positive = float((counts * (counts + 1) // 2).sum())  # same-label pairs, a text with itself included
        negative = float((counts.sum() ** 2 - (counts**2).sum()) // 2)
        library = max(positive, negative) / n
        iterations = max(iterations, library)
    mean_tokens = float(np.mean(token_lengths)) if n else 0.0
    if mean_tokens > SETFIT_PAIR_TOKENS:
        iterations *= SETFIT_PAIR_TOKENS / mean_tokens
        if library is not None and library <= iterations:
            return None
    return max(1, int(iterations))


def _setfit_body(body: Any, recipe: Recipe, texts: list[str], labels: np.ndarray,
                 problem_type: str) -> tuple[Any, int, float | None, list[dict[str, Any]]]:
    """Contrastive fine-tuning of the encoder with the setfit library; returns (the tuned SentenceTransformer,
    steps, the mean cosine-similarity loss over the run, log history). The library's own head is not kept:
    :func:`fit_linear_head` fits it on the tuned embeddings, as SetFit's second stage does."""
    import datasets
    from setfit import SetFitModel, Trainer, TrainingArguments

    strategy = "one-vs-rest" if problem_type == MULTI_LABEL else None
    from sklearn.linear_model import LogisticRegression

    model = SetFitModel(model_body=body, model_head=LogisticRegression(), multi_target_strategy=strategy)
    column = [list(map(int, row)) for row in labels] if problem_type == MULTI_LABEL else labels.tolist()
    train_set = datasets.Dataset.from_dict({"text": texts, "label": column})
    with tempfile.TemporaryDirectory(prefix="textclf-setfit-") as scratch:
        lengths = np.array([len(ids) for ids in body.tokenizer(texts, truncation=True,
                                                                max_length=int(body.max_seq_length))["input_ids"]])
        iterations = setfit_num_iterations(labels, lengths, problem_type == MULTI_LABEL)
        args = TrainingArguments(output_dir=scratch, batch_size=16, num_epochs=1, seed=recipe.seed,
                                 num_iterations=iterations, save_strategy="no", report_to="none", logging_steps=10,
                                 show_progress_bar=False)
        trainer = Trainer(model=model, args=args, train_dataset=train_set)
        # SetFit's first stage (Trainer.train_embeddings) on at most SETFIT_MAX_STEPS batches of pairs: the pairs are
        # capped, not the steps (a max_steps cap would repeat the 120 pairs of 16 texts for 500 steps). The library's
        # max_pairs bounds the distinct pairs drawn, not num_iterations' count: the first `cap` are kept (positive
        # and negative pairs alternate, so the cut keeps them balanced).
        cap = SETFIT_MAX_STEPS * args.embedding_batch_size
        logger.info("SetFit: %s pair iterations per text (%d texts, %.0f tokens on average), at most %d pairs",
                    "the library's default" if iterations is None else iterations, len(texts),
                    float(lengths.mean()), cap)
        pairs, loss = trainer.get_dataset(texts, column, args=args, max_pairs=cap)
        if len(pairs) > cap:
            pairs = pairs.select(range(cap))
        trainer.st_trainer.train_dataset, trainer.st_trainer.loss = pairs, loss
        # The pair batches are sentence-transformers' default random ones, as the library's. Batches grouped by length
        # (the Trainer's megabatch scheme, textclf's until 2026-12-07) halved SST-2's pair training time but gathered
        # the pairs of the same few texts into a batch (6 x 8 TREC questions: 43% of a batch's 32 texts distinct,
        # against 74% in random batches). At 8 per class random batches scored higher on 12 of 14 paired seeds: TREC
        # question types +2.0 points (8 seeds), GoEmotions' six emotions +1.0 (6 seeds), for 18-22% more training
        # time (docs/results.md, "SetFit's pair batches").
        # fp32, whatever the recipe's bf16: under bf16 autocast the cosine-similarity loss stopped falling (16 SST-2
        # texts, 40 steps: 0.36 -> 0.31 against 0.36 -> 0.18 in fp32) and 500 steps on 64 SST-2 sentences per class
        # collapsed the encoder (validation 0.478, fp32 0.75; docs/results.md, "SetFit in fp32").
        output = trainer.st_trainer.train()  # TrainOutput: training_loss is the run's mean, as fine-tuning reports
        state = trainer.st_trainer.state
        history = list(state.log_history)
    return model.model_body, int(state.global_step), float(output.training_loss), history
