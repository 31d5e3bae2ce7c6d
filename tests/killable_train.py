"""A training process for tests/test_training_resume.py: ``textclf train`` that SIGKILLs itself at a chosen point.

    python tests/killable_train.py OUTPUT_DIR KILL_AT key=value ...

KILL_AT is ``none`` (run to the end), ``mid_epoch`` (at the end of optimizer step 7, with at least one complete
checkpoint saved before), ``mid_evaluation`` (the second batch of the second evaluation), ``mid_save`` (the third
checkpoint, after its weights and optimizer state, before its RNG state and trainer_state.json), or ``mid_final_write``
(model/ written to its temporary name, not yet renamed). SIGKILL is what a preempted machine or the OOM killer sends:
no handler, no cleanup, no flush.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from pathlib import Path

from transformers import Trainer, TrainerCallback

import textclf.training.run as run_module
from textclf.config import load_recipe
from textclf.training.run import train


def die() -> None:
    """SIGKILL this process (nothing after this line runs)."""
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)


class KillCallback(TrainerCallback):
    """SIGKILL at a step or during an evaluation."""

    def __init__(self, kill_at: str) -> None:
        self.kill_at = kill_at
        self.evaluations = 0
        self.prediction_steps = 0

    def on_step_end(self, args, state, control, **kwargs):
        if self.kill_at == "mid_epoch" and state.global_step == 7:
            die()

    def on_evaluate(self, args, state, control, **kwargs):
        self.evaluations += 1
        self.prediction_steps = 0

    def on_prediction_step(self, args, state, control, **kwargs):
        self.prediction_steps += 1
        if self.kill_at == "mid_evaluation" and self.evaluations == 1 and self.prediction_steps == 2:
            die()


def main() -> None:
    output_dir, kill_at, *overrides = sys.argv[1:]
    callbacks = [KillCallback(kill_at)]
    if kill_at == "mid_save":
        saves = []
        save_rng_state = Trainer._save_rng_state

        def dying_save_rng_state(self, checkpoint_dir):
            saves.append(checkpoint_dir)
            if len(saves) == 3:
                die()
            return save_rng_state(self, checkpoint_dir)

        Trainer._save_rng_state = dying_save_rng_state
    if kill_at == "mid_final_write":
        atomic_path = run_module.atomic_path

        @contextlib.contextmanager
        def dying_atomic_path(path: Path):
            with atomic_path(path) as tmp:
                yield tmp
                if Path(path).name == "model":
                    die()

        run_module.atomic_path = dying_atomic_path
    recipe = load_recipe(overrides[0], overrides[1:])
    train(recipe, output_dir, callbacks=callbacks)


if __name__ == "__main__":
    main()
