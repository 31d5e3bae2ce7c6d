"""Overhead of the time-based resumable checkpoints (``save_minutes``) on fine-tuning, measured in one process.

The same SST-2 slice is fine-tuned twice with the bundled model and the sst2 recipe, one epoch, no evaluation
during training: once with ``save_minutes=0`` (no checkpoint at all) and once saving every fifth of the plain run's
train time (``--save-minutes`` to fix it), so the slice holds four saves, many times the default rate.
Each save is timed (from the end of its step to the Trainer's ``on_save``: weights, AdamW state, scheduler, RNG
states, trainer_state.json, manifest). Reported:

- ``measured_overhead``: extra train time of the saving run over the plain one, as a fraction;
- ``save_seconds``: mean time of one save;
- ``steady_overhead_default``: save_seconds / 600, the overhead of the default ``save_minutes=10`` on any run
  longer than 10 minutes;
- ``projected_overhead_default``: the overhead of the default on a full SST-2 epoch (67,349 examples at the plain
  run's examples/s): saves per epoch x save_seconds / epoch seconds (0 when an epoch takes under 10 minutes).
  Target < 3%.

    python benchmarks/checkpoint_overhead.py                  # 4,000 examples (a few minutes on 2 cores)
    python benchmarks/checkpoint_overhead.py --samples 1000   # quicker

Ends with one JSON line holding these numbers.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import sys
import tempfile
import time

from transformers import TrainerCallback

from textclf.config import load_recipe
from textclf.training import train

SST2_TRAIN_EXAMPLES = 67_349
DEFAULT_SAVE_MINUTES = 10.0


class SaveTimer(TrainerCallback):
    """Seconds from the end of each step that saves to the Trainer's ``on_save`` (the save itself)."""

    def __init__(self) -> None:
        self.step_end = 0.0
        self.saves: list[float] = []

    def on_step_end(self, args, state, control, **kwargs):
        self.step_end = time.perf_counter()

    def on_save(self, args, state, control, **kwargs):
        self.saves.append(time.perf_counter() - self.step_end)


def run(samples: int, save_minutes: float) -> dict:
    recipe = load_recipe("sst2", [f"max_train_samples={samples}", "num_train_epochs=1", "min_train_steps=0", "eval_strategy=no",
                                  f"save_minutes={save_minutes}", "report_to=none", "max_eval_samples=64"])
    timer = SaveTimer()
    with tempfile.TemporaryDirectory() as out, contextlib.redirect_stdout(sys.stderr):
        metrics = train(recipe, out, callbacks=[timer]).metrics
    return {"save_minutes": save_minutes, "train_runtime_s": metrics["train_runtime"],
            "examples_per_s": round(metrics["train_examples"] / metrics["train_runtime"], 2),
            "saves": len(timer.saves), "save_seconds": [round(s, 3) for s in timer.saves]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=4000, help="SST-2 training examples")
    parser.add_argument("--save-minutes", type=float, help="default: a fifth of the plain run's train time")
    parser.add_argument("--repeats", type=int, default=2, help="plain/saving pairs, alternated (machine noise)")
    args = parser.parse_args()
    runs = [run(args.samples, 0)]
    save_minutes = args.save_minutes or runs[0]["train_runtime_s"] / 5 / 60
    runs.append(run(args.samples, save_minutes))
    for _ in range(args.repeats - 1):
        runs += [run(args.samples, 0), run(args.samples, save_minutes)]
    plains, savings = runs[0::2], runs[1::2]
    plain = {"train_runtime_s": round(sum(r["train_runtime_s"] for r in plains) / len(plains), 2),
             "examples_per_s": sum(r["examples_per_s"] for r in plains) / len(plains)}
    saving = {"train_runtime_s": round(sum(r["train_runtime_s"] for r in savings) / len(savings), 2),
              "saves": sum(r["saves"] for r in savings) / len(savings)}
    times = [t for r in savings for t in r["save_seconds"]]
    save_seconds = sum(times) / max(1, len(times))
    epoch_seconds = SST2_TRAIN_EXAMPLES / plain["examples_per_s"]
    saves_per_epoch = math.floor(epoch_seconds / (60 * DEFAULT_SAVE_MINUTES))
    summary = {
        "samples": args.samples,
        "measured_overhead": round(saving["train_runtime_s"] / plain["train_runtime_s"] - 1, 4),
        "save_seconds": round(save_seconds, 3),
        "steady_overhead_default": round(save_seconds / (60 * DEFAULT_SAVE_MINUTES), 5),
        "sst2_epoch_seconds": round(epoch_seconds, 1),
        "saves_per_sst2_epoch_default": saves_per_epoch,
        "projected_overhead_default": round(saves_per_epoch * save_seconds / epoch_seconds, 4),
        "runs": runs,
    }
    print(f"plain (mean of {len(plains)}): {plain['train_runtime_s']} s; saving every {save_minutes:.3f} min: "
          f"{saving['train_runtime_s']} s with {saving['saves']} saves of {save_seconds:.2f} s on average")
    print(f"SST-2 epoch here: {epoch_seconds:.0f} s, {saves_per_epoch} saves at save_minutes={DEFAULT_SAVE_MINUTES}: "
          f"projected overhead {summary['projected_overhead_default']:.2%}; on any run over 10 minutes "
          f"{summary['steady_overhead_default']:.2%}")
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
