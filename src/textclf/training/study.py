"""The Optuna side of ``textclf search``: storages, samplers and pruners, the claim lock that lets several processes
share one study, failing the trials of dead workers, and the trial table and plots.

:mod:`textclf.training.search` runs trials on top of these; nothing here trains.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from textclf.config import ParamSpec, Recipe
from textclf.errors import ConfigError
from textclf.files import atomic_path, atomic_write_text

logger = logging.getLogger(__name__)
HEARTBEAT_S = 60  # database studies: a running trial's heartbeat; silent for GRACE_S, it counts as failed
GRACE_S = 180


def open_storage(storage: str) -> Any:
    """An Optuna storage: a SQLAlchemy URL (``sqlite:///x.db``, ``postgresql://user@host/db``) gives an RDBStorage
    with heartbeats (a trial silent for GRACE_S seconds is failed, so a killed machine's trial is not waited for);
    anything else is a JournalStorage file path, which processes on one machine (or one NFS) can share.

    A database study is what several machines share: every worker runs the same ``textclf search`` command with the
    same ``--storage`` and ``--study-name`` (tests/test_search_storage.py runs two workers against a real PostgreSQL
    server, kills both, and resumes). ``postgresql://`` needs the driver: ``textclf[postgres]``.

    Raises:
        ConfigError: the database cannot be opened (bad URL, driver not installed, unreachable).
    """
    import optuna
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    if "://" in storage:
        import sqlalchemy.exc

        try:
            return optuna.storages.RDBStorage(storage, heartbeat_interval=HEARTBEAT_S, grace_period=GRACE_S)
        except (ImportError, sqlalchemy.exc.SQLAlchemyError) as err:  # a bad URL, no driver, a refused connection
            message = f"storage {storage!r} cannot be opened: {err}".splitlines()[0]
            if "import DB access module" in message and storage.startswith("postgresql"):
                message += " (for postgresql://: pip install 'textclf[postgres]', psycopg 3)"
            raise ConfigError(message) from None
    Path(storage).parent.mkdir(parents=True, exist_ok=True)
    return JournalStorage(JournalFileBackend(str(storage)))


def make_pruner(name: str) -> Any:
    """Optuna pruner for ``search.pruner``, with Optuna's defaults (MedianPruner: no pruning before 5 finished trials,
    then a trial whose value at a step is worse than the median of earlier trials' at that step;
    SuccessiveHalvingPruner: reduction factor 4, minimum resource estimated from the first trials)."""
    import optuna

    return {"median": optuna.pruners.MedianPruner, "successive_halving": optuna.pruners.SuccessiveHalvingPruner,
            "none": optuna.pruners.NopPruner}[name]()


def make_sampler(recipe: Recipe, seed: int) -> Any:
    """TPE sampler (Bergstra et al. 2011) with ``search.startup_trials`` random trials first (default half of
    n_trials, at most 10: Optuna's default of 10 would leave a 10-trial search entirely random)."""
    import optuna

    startup = recipe.search.startup_trials
    if startup is None:
        startup = min(10, max(1, recipe.search.n_trials // 2))
    return optuna.samplers.TPESampler(n_startup_trials=startup, seed=seed)


def suggest(trial: Any, specs: list[ParamSpec]) -> dict[str, Any]:
    """Ask an Optuna trial for a value of every searched key (``float`` and ``int`` ranges include both ends)."""
    params = {}
    for spec in specs:
        if spec.kind == "categorical":
            params[spec.name] = trial.suggest_categorical(spec.name, list(spec.choices))
        elif spec.kind == "int":
            params[spec.name] = trial.suggest_int(spec.name, int(spec.low), int(spec.high),
                                                  step=int(spec.step or 1), log=spec.log)
        else:
            params[spec.name] = trial.suggest_float(spec.name, spec.low, spec.high, step=spec.step, log=spec.log)
    return params


class ClaimLock:
    """Serialises "count the open slots, create a trial" among this machine's processes on one study, so that two
    workers finishing together do not both start the last trial. ``fcntl.flock`` on a file in the temporary
    directory keyed by storage and study; the kernel releases it if its holder dies. Where there is no fcntl
    (Windows) or the file cannot be opened, claims are not serialised (at most workers - 1 extra trials)."""

    def __init__(self, storage: str, study_name: str) -> None:
        key = f"{storage if '://' in storage else Path(storage).resolve()}\0{study_name}"
        self.path = Path(tempfile.gettempdir()) / f"textclf-search-{hashlib.sha256(key.encode()).hexdigest()[:16]}"
        self._handle: Any = None

    def acquire(self) -> None:
        try:
            import fcntl

            handle = open(self.path, "a")  # noqa: SIM115 (held open across calls until release)
        except (ImportError, OSError):
            return
        fcntl.flock(handle, fcntl.LOCK_EX)
        self._handle = handle

    def release(self) -> None:
        if self._handle is not None:
            import fcntl

            fcntl.flock(self._handle, fcntl.LOCK_UN)
            self._handle.close()
            self._handle = None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def fail_dead_local_trials(study: Any) -> list[int]:
    """Mark FAIL the running trials whose worker process, on this machine, no longer exists (a killed worker),
    and those of database studies whose heartbeat stopped; return their numbers. They free their place in the
    ``n_trials`` budget: a resumed search runs new trials instead."""
    import optuna
    from optuna.trial import TrialState

    host, failed = socket.gethostname(), []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        worker_host, _, pid = str(trial.user_attrs.get("worker", "")).rpartition(":")
        if worker_host == host and pid.isdigit() and not _pid_alive(int(pid)):
            study.tell(trial.number, state=TrialState.FAIL, skip_if_finished=True)
            failed.append(trial.number)
    with warnings.catch_warnings():  # heartbeats of database studies: experimental since Optuna 2.9, still there
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)
    if failed:
        logger.info("trials %s were left running by a worker that is gone: marked FAIL", failed)
    return failed


def open_slots(study: Any, n_trials: int) -> int:
    """Trials still to start so that the study holds ``n_trials`` finished (completed or pruned) trials, counting
    the ones running now; failed trials do not count."""
    from optuna.trial import TrialState

    fail_dead_local_trials(study)
    states = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)
    return n_trials - len(study.get_trials(deepcopy=False, states=states))


def load_study(recipe: Recipe, storage: str, study_name: str, direction: str, worker: int, pruner: Any) -> Any:
    import optuna

    study = optuna.create_study(storage=open_storage(storage), study_name=study_name, direction=direction,
                                load_if_exists=True, pruner=pruner or make_pruner(recipe.search.pruner))
    # Each process (and each resumption) gets its own sampler seed: one seed everywhere would make every worker
    # and every resumed run draw the same random startup trials again.
    seed_seq = np.random.SeedSequence([recipe.search.seed, worker, len(study.trials)])
    study.sampler = make_sampler(recipe, int(seed_seq.generate_state(1)[0]))
    return study


def trial_rows(study: Any) -> list[dict[str, Any]]:
    """One row per trial: number, state, value, params_<key>, start/end (ISO 8601), duration_s, worker,
    pruned_at_step."""
    trials = study.get_trials(deepcopy=False)
    names = list(dict.fromkeys(name for trial in trials for name in trial.params))
    rows = []
    for trial in trials:
        start, end = trial.datetime_start, trial.datetime_complete
        rows.append({
            "number": trial.number, "state": trial.state.name, "value": trial.value,
            **{f"params_{name}": trial.params.get(name) for name in names},
            "datetime_start": start.isoformat() if start else None,
            "datetime_complete": end.isoformat() if end else None,
            "duration_s": round((end - start).total_seconds(), 2) if start and end else None,
            "worker": trial.user_attrs.get("worker"), "pruned_at_step": trial.user_attrs.get("pruned_at_step"),
        })
    return rows


def write_trials(rows: list[dict[str, Any]], output_dir: Path) -> None:
    """Write trials.csv and trials.json (atomically)."""
    with atomic_path(output_dir / "trials.csv") as tmp:
        pd.DataFrame(rows).to_csv(tmp, index=False)
    atomic_write_text(output_dir / "trials.json", json.dumps(rows, indent=1, default=str) + "\n")


def write_plots(study: Any, output_dir: Path) -> list[Path]:
    """Optimisation history and parameter importance (Optuna's default evaluator: PED-ANOVA in Optuna 5, fANOVA
    before) as PNG. Importance needs two completed trials whose parameters differ; otherwise it is skipped with a
    logged note. Optuna draws with pyplot, whose backend is the process's (``textclf`` sets ``MPLBACKEND=Agg``: files
    only, no display); each figure is closed once saved."""
    import matplotlib.pyplot as plt
    import optuna
    from optuna.trial import TrialState
    from optuna.visualization import matplotlib as optuna_plots

    completed = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not completed:
        logger.info("no completed trial: no plots")
        return []
    plots = [("optimization_history.png", optuna_plots.plot_optimization_history)]
    varying = [n for n in completed[0].params if len({repr(t.params.get(n)) for t in completed}) > 1]
    if len(completed) >= 2 and varying:
        plots.append(("param_importances.png", optuna_plots.plot_param_importances))
    else:
        logger.info("parameter importance needs 2+ completed trials with different values: skipped")
    written = []
    for name, plot in plots:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                axes = plot(study)
        except (ValueError, RuntimeError) as err:  # e.g. importance of parameters that hardly vary
            logger.info("%s skipped: %s", name, err)
            continue
        with atomic_path(output_dir / name) as tmp:
            axes.figure.savefig(tmp, format="png", dpi=120, bbox_inches="tight")
        plt.close(axes.figure)
        written.append(output_dir / name)
    return written
