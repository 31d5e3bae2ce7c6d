"""``textclf search`` on a shared SQL database: two worker processes against a real PostgreSQL server (a throwaway
cluster made with ``initdb`` / ``pg_ctl`` on a loopback port) and against a SQLite file, both workers SIGKILLed
mid-search, then the same command run again: the study resumes, no trial runs twice, n_trials complete."""

from __future__ import annotations

import glob
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna
import pytest
from conftest import REPO_ROOT, fast_overrides, free_port

from textclf.training.checkpointing import checkpoint_dirs, is_complete
from textclf.training.study import open_storage

pytestmark = pytest.mark.slow  # starts a database server and several processes; CI runs it

N_TRIALS = 4


def _pg_binary(name: str) -> str | None:
    """A PostgreSQL server program: on PATH, else Debian's /usr/lib/postgresql/<version>/bin."""
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return candidates[-1] if candidates else None


@pytest.fixture(scope="module")
def postgres_url():
    """``postgresql://textclf@127.0.0.1:PORT/textclf`` on a cluster made for this module, stopped after it.

    initdb refuses to run as root: as root the cluster belongs to the ``postgres`` user that Debian's package
    creates. Without PostgreSQL the test is skipped, except under CI (``CI`` set), where .ci/run installs it."""
    initdb, pg_ctl = _pg_binary("initdb"), _pg_binary("pg_ctl")
    try:
        import psycopg  # SQLAlchemy 2.1's default driver for postgresql:// URLs (psycopg 3)
    except ImportError:
        psycopg = None
    if not (initdb and pg_ctl and psycopg):
        missing = "psycopg (pip install 'textclf[postgres]')" if initdb and pg_ctl else "PostgreSQL's initdb"
        if os.environ.get("CI"):
            pytest.fail(f"{missing} not found: .ci/run installs Debian's postgresql and textclf[dev]")
        pytest.skip(f"{missing} not found (Debian: apt-get install postgresql)")
    # Not under pytest's temporary root: that is private to its owner, and the server runs as another user.
    root = Path(tempfile.mkdtemp(prefix="textclf-postgres-"))
    data, sockets = root / "data", root / "sockets"
    sockets.mkdir()
    as_user: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
        shutil.chown(sockets, "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]

    def run(*cmd: str) -> None:
        done = subprocess.run([*as_user, *cmd], capture_output=True, text=True, check=False)
        assert done.returncode == 0, f"{' '.join(cmd)} failed: {done.stdout}{done.stderr}"

    run(initdb, "-D", str(data), "-U", "textclf", "-A", "trust", "--no-sync")
    port = free_port()
    run(pg_ctl, "-D", str(data), "-l", str(root / "server.log"), "-w", "-t", "60", "start",
        "-o", f"-p {port} -k {sockets} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200")
    try:
        with psycopg.connect(host="127.0.0.1", port=port, user="textclf", dbname="postgres",
                             autocommit=True) as connection:
            connection.execute("CREATE DATABASE textclf")
        yield f"postgresql://textclf@127.0.0.1:{port}/textclf"
    finally:
        run(pg_ctl, "-D", str(data), "-m", "immediate", "stop")
        shutil.rmtree(root, ignore_errors=True)


def _search_command(tiny_model_dir: Path, sentiment_files, out: Path, storage: str) -> list[str]:
    train_file, validation_file = sentiment_files
    return [sys.executable, "-m", "textclf", "search", str(train_file), *fast_overrides(tiny_model_dir),
            f"validation_file={validation_file}", "num_train_epochs=2", "eval_strategy=steps", "eval_steps=1",
            "save_minutes=0.00001",
            "search.space={learning_rate: {low: 1e-4, high: 1e-2, log: true}, seed: {low: 1, high: 1000}}",
            "search.fraction=0.5", "search.pruner=none", "--n-trials", str(N_TRIALS), "--workers", "2",
            "--no-retrain", "--storage", storage, "--study-name", "shared", "--output-dir", str(out)]


def _trials(storage) -> list:
    try:
        return optuna.load_study(study_name="shared", storage=storage).get_trials(deepcopy=False)
    except KeyError:  # the study is not created yet
        return []


def _states(trials) -> dict[int, str]:
    return {trial.number: trial.state.name for trial in trials}


@pytest.fixture
def storage_url(postgres_url):
    # PostgreSQL only: an sqlite:/// URL goes through the same optuna RDBStorage code (heartbeats, failed-trial
    # retries), and the default local storage (a journal file) has its own worker tests in test_training_search;
    # the SQLite variant of this test took another 36 s.
    return postgres_url


def test_both_workers_killed_then_the_study_resumes_without_running_a_trial_twice(
        storage_url, tiny_model_dir, sentiment_files, tmp_path):
    out = tmp_path / "search"
    command = _search_command(tiny_model_dir, sentiment_files, out, storage_url)
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT / "src")}
    storage = open_storage(storage_url)  # one engine (one connection pool) for all the polling below
    # Its own process group: the parent and its two spawned workers are SIGKILLed together, as a lost machine is.
    first = subprocess.Popen(command, env=env, start_new_session=True, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    while True:
        states = _states(_trials(storage))
        done = sum(state == "COMPLETE" for state in states.values())
        running = [n for n, state in states.items() if state == "RUNNING"]
        if done >= 1 and any(is_complete(path) for n in running  # a trial mid-run with a checkpoint to continue from
                             for path in checkpoint_dirs(out / "trials" / str(n) / "checkpoints")):
            break
        if first.poll() is not None or time.monotonic() > deadline:
            first.kill()
            pytest.fail(f"the first search ended (rc {first.returncode}) or hung before it could be killed; "
                        f"trials {states}; its log:\n{first.stderr.read()[-4000:]}")
        time.sleep(0.05)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    before = {trial.number: trial for trial in _trials(storage)}
    killed = sorted(n for n, trial in before.items() if trial.state.name == "RUNNING")
    finished = sorted(n for n, trial in before.items() if trial.state.name == "COMPLETE")
    assert killed and finished and len(finished) < N_TRIALS

    second = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert second.returncode == 0, second.stderr[-4000:]
    after = {trial.number: trial for trial in _trials(storage)}
    states = _states(after.values())
    print(f"\n{storage_url.split(':')[0]}: killed while trials {finished} were COMPLETE and {killed} RUNNING; "
          f"after the rerun: {states}; resumed: "
          f"{ {n: t.user_attrs.get('resumes_trial') for n, t in after.items() if 'resumes_trial' in t.user_attrs} }")

    assert sum(state == "COMPLETE" for state in states.values()) == N_TRIALS
    for number in finished:  # finished before the kill: kept as they were, not run again
        assert after[number].state.name == "COMPLETE"
        assert after[number].datetime_complete == before[number].datetime_complete
        assert after[number].value == before[number].value
    for number in killed:  # left RUNNING by the dead workers: marked FAIL, continued at most once
        assert states[number] == "FAIL"
    continued = [t.user_attrs["resumes_trial"] for t in after.values() if "resumes_trial" in t.user_attrs]
    assert continued and len(continued) == len(set(continued)) and set(continued) <= set(killed)
    for number in continued:  # trained on in its own directory from its checkpoint, to the end
        resumed = next(t for t in after.values() if t.user_attrs.get("resumes_trial") == number)
        assert resumed.state.name == "COMPLETE" and resumed.params == after[number].params
    new = [n for n in after if n not in before]
    assert all(after[n].datetime_start > max(t.datetime_start for t in before.values()) for n in new)
    assert len(new) == N_TRIALS - len(finished)  # only the missing trials were started: nothing ran twice
