"""Resumable checkpoints: saves every ``save_minutes`` mid-epoch, a manifest written last, and resume from the newest
complete one.

The Trainer writes ``checkpoint-N`` file by file (weights, optimizer, scheduler, RNG states, ``trainer_state.json``)
and rotates old ones (``save_total_limit``, never the best). A process killed during that leaves a directory that
looks like a checkpoint and is not. :class:`CheckpointCallback` therefore writes :data:`MANIFEST` (each file's name
and size) after the Trainer's save has finished (``on_save``), atomically; :func:`is_complete` trusts only
directories whose manifest matches the files on disk. What a checkpoint holds is what ``Trainer.train(
resume_from_checkpoint=...)`` needs to continue exactly: model, optimizer and scheduler states, the Python, NumPy and
torch RNG states, and the step, so the sampler replays the same order (``skip_first_batches``) and the learning-rate
schedule continues where it stopped.
"""

from __future__ import annotations

import logging
import re
import shutil
import time
from pathlib import Path

import torch
from transformers import Trainer, TrainerCallback
from transformers.trainer_pt_utils import LengthGroupedSampler, get_length_grouped_indices

from textclf.checkpoints import MANIFEST, manifest_mismatches, read_manifest, write_manifest
from textclf.errors import ConfigError

logger = logging.getLogger(__name__)

_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")


def is_complete(checkpoint: Path) -> bool:
    """True when ``checkpoint`` has a manifest listing trainer_state.json and every file it lists is there with the
    recorded size (:func:`textclf.checkpoints.read_manifest`)."""
    try:
        files = read_manifest(checkpoint)
    except ValueError:
        return False
    return files is not None and "trainer_state.json" in files and not manifest_mismatches(checkpoint, files)


def checkpoint_dirs(checkpoints: Path) -> list[Path]:
    """``checkpoint-N`` directories under ``checkpoints``, by step (oldest first); [] when there is none."""
    if not checkpoints.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in checkpoints.iterdir() if p.is_dir() and (m := _CHECKPOINT.match(p.name))]
    return [p for _, p in sorted(found)]


def last_complete_checkpoint(checkpoints: Path, *, remove_incomplete: bool = True) -> Path | None:
    """The newest complete checkpoint under ``checkpoints`` (None when there is none).

    Incomplete ones (a run killed while saving) are skipped with a warning and, with ``remove_incomplete``, deleted:
    left in place, the Trainer's rotation could keep one of them and delete a complete checkpoint instead.
    """
    newest = None
    for path in checkpoint_dirs(checkpoints):
        if is_complete(path):
            newest = path
            continue
        logger.warning("%s is incomplete (no %s matching its files: the run was stopped while saving it): "
                       "skipped%s", path, MANIFEST, ", removed" if remove_incomplete else "")
        if remove_incomplete:
            shutil.rmtree(path, ignore_errors=True)
    return newest


def resume_checkpoint(setting: str | None, checkpoints: Path) -> str | None:
    """Where ``resume_from_checkpoint`` points: None (a fresh run), the newest complete checkpoint under
    ``checkpoints`` (``last``), or a checkpoint directory that must be complete.

    Raises:
        ConfigError: ``last`` with no complete checkpoint, or a directory that is missing or incomplete.
    """
    if setting in (None, "", "false"):
        return None
    if setting in ("last", "true"):
        found = last_complete_checkpoint(checkpoints)
        if found is None:
            raise ConfigError(f"resume_from_checkpoint=last: no complete checkpoint in {checkpoints}: run without "
                              "--resume first (it saves one every save_minutes), or give a checkpoint directory")
        return str(found)
    path = Path(setting)
    if not path.is_dir():
        raise ConfigError(f"resume_from_checkpoint={setting}: no such checkpoint directory")
    if not is_complete(path):
        raise ConfigError(f"resume_from_checkpoint={setting}: the checkpoint is incomplete (no {MANIFEST} matching "
                          "its files: the run was stopped while saving it): give an earlier one, or use last")
    return str(path)


class EpochSeededLengthGroupedSampler(LengthGroupedSampler):
    """``LengthGroupedSampler`` whose order is a function of ``(seed, epoch)`` alone, so a resumed run replays it.

    The Trainer's own ``LengthGroupedSampler`` draws each epoch's order from the global torch RNG as it stands when
    the epoch starts; a run resumed mid-epoch re-seeds that RNG and so draws a different order for the epoch it
    resumes in (the divergence of transformers#11323). Here each epoch draws from ``torch.Generator`` seeded with
    ``seed + epoch``, the scheme of accelerate's ``SeedableRandomSampler`` (which the Trainer already uses for
    ``train_sampling_strategy=random``); the Trainer calls :meth:`set_epoch` before every epoch.
    """

    def __init__(self, batch_size: int, lengths: list[int], seed: int) -> None:
        super().__init__(batch_size, lengths=lengths)
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the order of epoch ``epoch`` (0-based)."""
        self.epoch = epoch

    def __iter__(self):
        generator = torch.Generator()
        generator.manual_seed(self.seed + self.epoch)
        return iter(get_length_grouped_indices(self.lengths, self.batch_size, generator=generator))


class ResumableTrainer(Trainer):
    """``Trainer`` with :class:`EpochSeededLengthGroupedSampler` for ``train_sampling_strategy=group_by_length``:
    a run killed and resumed trains on the same batches in the same order as one that was never stopped."""

    def _get_train_sampler(self, train_dataset=None):
        sampler = super()._get_train_sampler(train_dataset)
        if type(sampler) is LengthGroupedSampler:
            seed = self.args.data_seed if self.args.data_seed is not None else self.args.seed
            return EpochSeededLengthGroupedSampler(sampler.batch_size, sampler.lengths, seed)
        return sampler


def main_process_says(flag: bool) -> bool:
    """The main process's ``flag``, on every process of a torchrun / accelerate launch (a broadcast of one integer,
    on the device of this process's group: CPU for gloo, the GPU for NCCL)."""
    from accelerate import PartialState

    value = torch.tensor([int(flag)], device=PartialState().device)
    torch.distributed.broadcast(value, src=0)
    return bool(value.item())


class CheckpointCallback(TrainerCallback):
    """Asks the Trainer for a checkpoint every ``save_minutes`` of training (on top of its evaluation-time saves),
    and writes each checkpoint's manifest once the Trainer has finished writing it.

    A time-based save goes through the Trainer's own ``_save_checkpoint`` (so ``save_total_limit`` rotation applies
    and the best checkpoint is never deleted); ``control.should_save`` at the end of a step is the documented way
    to ask for one (``TrainerControl``). Under torchrun the main process's clock decides for all (a save is
    collective); only the main process writes manifests (``state.is_world_process_zero``).

    Args:
        save_minutes: minutes of wall-clock training between saves; 0 or None: only the evaluation-time saves.
    """

    def __init__(self, save_minutes: float | None) -> None:
        self.save_seconds = 60.0 * save_minutes if save_minutes else None
        self._last = time.monotonic()
        self.timed_saves = 0

    def on_train_begin(self, args, state, control, **kwargs):
        self._last = time.monotonic()

    def on_step_end(self, args, state, control, **kwargs):
        if self.save_seconds is None or control.should_save:
            return control
        due = time.monotonic() - self._last >= self.save_seconds
        if args.world_size > 1:  # every process must save at the same step (the save has barriers): rank 0 decides
            due = main_process_says(due)
        if due:
            control.should_save = True
            self.timed_saves += 1
        return control

    def on_save(self, args, state, control, **kwargs):
        self._last = time.monotonic()
        if state.is_world_process_zero:
            checkpoint = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            if checkpoint.is_dir():
                write_manifest(checkpoint, state.global_step)
        return control
