"""Experiment tracking through the Trainer's ``report_to``.

``report_to`` is ``none`` or a comma list of :data:`textclf.config.schema.TRACKERS`
(:func:`textclf.config.parse_report_to`):

- ``tensorboard`` (the default): event files in ``DIR/tensorboard/``, written locally with no network. Read them
  with ``tensorboard --logdir DIR/tensorboard``; scalars are named as the Trainer's TensorBoardCallback names them
  (``train/loss``, ``eval/loss``, ``eval/accuracy``, ...).
- ``mlflow``: the Trainer's MLflowCallback, to the tracking server in ``MLFLOW_TRACKING_URI`` (MLflow's own
  default when unset: a local store in the working directory).
- ``wandb``: the Trainer's WandbCallback. Weights & Biases runs in offline mode (``WANDB_MODE=offline``, files in
  ``DIR/wandb``; upload later with ``wandb sync``) unless the user set ``WANDB_MODE`` or has W&B credentials
  (``WANDB_API_KEY``, or an ``api.wandb.ai`` entry in ``~/.netrc`` from ``wandb login``): credentials are the
  cheap sign that the user expects to reach W&B, and no network probe is made.

mlflow and wandb are the optional extra ``pip install textclf[tracking]``.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import netrc
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from textclf.config import parse_report_to
from textclf.errors import ConfigError

logger = logging.getLogger(__name__)

_INSTALL = {"tensorboard": "pip install tensorboard (a textclf dependency)",
            "mlflow": "pip install 'textclf[tracking]'", "wandb": "pip install 'textclf[tracking]'"}


def check_trackers(report_to: str) -> list[str]:
    """The trackers of ``report_to``, each checked to be installed.

    Raises:
        ConfigError: a tracker's package is missing; the message names the pip command.
    """
    trackers = parse_report_to(report_to)
    for name in trackers:
        if importlib.util.find_spec(name) is None:
            raise ConfigError(f"report_to={report_to} needs {name}, which is not installed: {_INSTALL[name]}, "
                              "or leave it out of report_to")
    return trackers


def trainer_report_to(report_to: str) -> list[str]:
    """``TrainingArguments.report_to`` for a recipe's ``report_to``: the trackers the Trainer sets up itself.
    TensorBoard is left out: :func:`tracking_callbacks` adds its callback with textclf's log directory."""
    return [name for name in parse_report_to(report_to) if name != "tensorboard"]


def tensorboard_dir(output_dir: Path) -> Path:
    """Where a run's TensorBoard event files go: ``DIR/tensorboard``."""
    return Path(output_dir) / "tensorboard"


def tracking_callbacks(report_to: str, output_dir: Path) -> list[Any]:
    """Trainer callbacks that :func:`trainer_report_to` leaves out: a TensorBoardCallback writing to
    :func:`tensorboard_dir` when ``report_to`` names tensorboard (its event file is created here)."""
    if "tensorboard" not in parse_report_to(report_to):
        return []
    from torch.utils.tensorboard import SummaryWriter
    from transformers.integrations import TensorBoardCallback

    return [TensorBoardCallback(tb_writer=SummaryWriter(log_dir=str(tensorboard_dir(output_dir))))]


def _wandb_credentials() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc().authenticators("api.wandb.ai") is not None
    except (OSError, netrc.NetrcParseError):
        return False


@contextlib.contextmanager
def tracking_environment(report_to: str, output_dir: Path) -> Iterator[None]:
    """Within the block, W&B (when asked) runs offline with its files in ``DIR/wandb`` unless the user set
    ``WANDB_MODE`` / ``WANDB_DIR`` or has W&B credentials (see the module docstring); the environment is restored
    afterwards."""
    changes: dict[str, str] = {}
    if "wandb" in parse_report_to(report_to):
        if "WANDB_MODE" not in os.environ and not _wandb_credentials():
            changes["WANDB_MODE"] = "offline"
            logger.info("report_to=wandb with no W&B credentials: offline mode (upload later with `wandb sync`)")
        if "WANDB_DIR" not in os.environ:
            Path(output_dir).mkdir(parents=True, exist_ok=True)
            changes["WANDB_DIR"] = str(output_dir)
    os.environ.update(changes)
    try:
        yield
    finally:
        for key in changes:
            os.environ.pop(key, None)
