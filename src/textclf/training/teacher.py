"""The teacher of a distillation run (``method=distill``): which checkpoint it is, its logits on the training texts
computed once and cached, and how it compares with its student.

``teacher`` in a recipe is a run directory of ``textclf train`` (its ``model/`` is used, and its ``metrics.json``
named in the report), a checkpoint directory, or a Hub id (downloaded with ``huggingface_hub``, for users with
internet). Its labels must be the task's, in any order (its logits are reordered to the task's label ids).

The logits (``DIR/teacher/logits.safetensors``: ``train`` (n_train, num_labels) and ``unlabeled`` (n_unlabeled,
num_labels) float32) carry in their metadata the sha256 of the teacher's files and of the texts (and the
precision); a run with the same teacher and texts reads them back, any change recomputes them. They are computed in
bf16 where the machine has native bf16 (:class:`~textclf.inference.predictor.Predictor`, 3.8x faster than fp32 on
this project's CPU; logits within about 1e-2), else fp32.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import datasets
import numpy as np

from textclf.data.loading import TaskData, check_has_rows
from textclf.data.tables import read_table
from textclf.data.validation import check_texts
from textclf.errors import ConfigError, ModelError
from textclf.files import atomic_path
from textclf.hardware import bf16_available
from textclf.inference.predictor import Predictor, Text, rows_to_texts
from textclf.tasks import MULTI_LABEL, REGRESSION
from textclf.training.distillation import HAS_LABEL, TEACHER_LOGITS

logger = logging.getLogger(__name__)
LOGITS_FILE = "logits.safetensors"
# Texts timed per model for texts/s (teacher and student, the same texts, the same precision and batching).
SPEED_TEXTS = 256


@dataclass
class Teacher:
    """A teacher checkpoint, checked against a task.

    Attributes:
        source: the recipe's ``teacher`` as given.
        checkpoint: the checkpoint directory (a run's ``model/``, or the Hub snapshot).
        run_metrics: the teacher run's metrics.json when ``source`` is a run directory, else None.
        order: (num_labels,) int: column ``order[i]`` of the teacher's logits is the task's label id ``i``.
    """

    source: str
    checkpoint: Path
    run_metrics: dict[str, Any] | None
    order: np.ndarray

    def predictor(self, precision: str | None = None, batch_size: int = 64) -> Predictor:
        """The teacher loaded for prediction (``precision`` None: bf16 where native, else fp32)."""
        precision = precision or ("bf16" if bf16_available() else "fp32")
        return Predictor.from_pretrained(self.checkpoint, precision=precision, batch_size=batch_size)


def _local_checkpoint(source: str) -> tuple[Path, dict[str, Any] | None]:
    """(checkpoint directory, run metrics or None) for a run directory, a checkpoint or a Hub id."""
    path = Path(source).expanduser()
    if path.is_dir() and (path / "model").is_dir() and not (path / "config.json").is_file():  # a run directory
        metrics_file = path / "metrics.json"
        metrics = json.loads(metrics_file.read_text(encoding="utf-8")) if metrics_file.is_file() else None
        return path / "model", metrics
    if path.exists():
        return path, None
    if source.count("/") > 1 or source.startswith((".", "/", "~")):
        raise ModelError(f"teacher={source!r}: no such directory: give a run directory of textclf train, its "
                         "model/ checkpoint, or a Hub id (owner/name)")
    from huggingface_hub import snapshot_download  # a Hub id: users with internet

    try:
        return Path(snapshot_download(repo_id=source)), None
    except (OSError, ValueError) as err:  # offline, unknown repo, gated, bad id: one line, not a traceback
        raise ModelError(f"teacher={source!r} is not a local directory and could not be downloaded from the Hub "
                         f"({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}): give a run "
                         "directory or checkpoint of a fine-tuned teacher") from None


def load_teacher(source: str, data: TaskData) -> Teacher:
    """Find the teacher and check that it predicts this task's labels (config.json only; no weights are loaded).

    Raises:
        ModelError: not a checkpoint (:func:`textclf.checkpoints.validate_checkpoint`), e.g. a base encoder without a
            classification head, which must be fine-tuned first (``textclf train TASK model=...``).
        ConfigError: the teacher's problem type or labels are not the task's (the message lists both).
    """
    from textclf.checkpoints import validate_checkpoint  # file headers only

    checkpoint, metrics = _local_checkpoint(source)
    try:
        validate_checkpoint(checkpoint)
    except ModelError as err:
        raise ModelError(f"teacher: {err}. A teacher is a fine-tuned classifier: train one first, e.g. textclf "
                         f"train {data.name} model=PATH_OR_HUB_ID --output-dir runs/teacher") from None
    config = json.loads((checkpoint / "config.json").read_text(encoding="utf-8"))
    id2label = {int(k): v for k, v in config.get("id2label", {}).items()}
    teacher_labels = [id2label[i] for i in range(len(id2label))]
    problem_type = config.get("problem_type")
    if data.problem_type == REGRESSION:
        if len(teacher_labels) != 1 or problem_type not in (None, REGRESSION):
            raise ConfigError(f"teacher {checkpoint} is a {problem_type or 'classification'} model with "
                              f"{len(teacher_labels)} outputs; {data.name} is regression: give a regression teacher")
        return Teacher(source, checkpoint, metrics, np.zeros(1, dtype=np.int64))
    if (problem_type or data.problem_type) != data.problem_type or sorted(teacher_labels) != sorted(data.label_names):
        raise ConfigError(f"teacher {checkpoint} predicts {problem_type} labels {teacher_labels}; {data.name} has "
                          f"{data.problem_type} labels {data.label_names}: give a teacher trained on this task's "
                          "labels")
    order = np.array([teacher_labels.index(name) for name in data.label_names], dtype=np.int64)
    return Teacher(source, checkpoint, metrics, order)


def _sha256_files(directory: Path) -> str:
    """sha256 over the names and bytes of the files in ``directory`` (recursively; README.md, the model card
    that a report rebuild rewrites, left out)."""
    digest = hashlib.sha256()
    for path in sorted(p for p in directory.rglob("*") if p.is_file() and p.name != "README.md"):
        digest.update(str(path.relative_to(directory)).encode())
        with path.open("rb") as f:
            while block := f.read(1 << 22):
                digest.update(block)
    return digest.hexdigest()


def _sha256_texts(texts: Sequence[Text]) -> str:
    return hashlib.sha256(json.dumps(list(texts), ensure_ascii=False).encode("utf-8")).hexdigest()


def read_unlabeled(path: str, text_columns: tuple[str, ...]) -> list[Text]:
    """The texts of ``data.unlabeled_file`` (CSV / TSV / JSON Lines / Parquet with the training file's text
    columns; any label column is ignored).

    Raises:
        DataError: the file cannot be read, lacks a text column, or has an empty text (naming the file and row).
    """
    frame = read_table(path, text_columns)
    check_has_rows(frame, str(path))
    ds = datasets.Dataset.from_pandas(frame[[c for c in text_columns if c in frame.columns]], preserve_index=False)
    check_texts(ds, text_columns, str(path))
    return rows_to_texts(ds.to_dict(), text_columns)


def teacher_logits(teacher: Teacher, texts: dict[str, Sequence[Text]], cache_dir: Path,
                   batch_size: int = 64) -> dict[str, np.ndarray]:
    """The teacher's logits on each group of ``texts`` (``train``, ``unlabeled``), in the task's label order.

    Read from ``cache_dir/logits.safetensors`` when its metadata names the same teacher files, texts and
    precision; otherwise computed (bf16 where native) and written there atomically.

    Returns:
        ``{name: (len(texts[name]), num_labels) float32}``.
    """
    from safetensors.numpy import load_file, save_file

    precision = "bf16" if bf16_available() else "fp32"
    key = {"teacher_sha256": _sha256_files(teacher.checkpoint), "precision": precision,
           **{f"{name}_sha256": _sha256_texts(group) for name, group in texts.items()}}
    path = cache_dir / LOGITS_FILE
    if path.is_file():
        from safetensors import safe_open

        with safe_open(str(path), framework="numpy") as f:
            stored = f.metadata() or {}
        if stored == key:
            logger.info("teacher logits read from %s (same teacher and texts)", path)
            return load_file(str(path))
        logger.info("teacher logits in %s are for another teacher or other texts: recomputing", path)
    predictor = teacher.predictor(precision, batch_size)
    started = time.perf_counter()
    logits = {name: np.ascontiguousarray(predictor.logits(list(group))[:, teacher.order], dtype=np.float32)
              for name, group in texts.items()}
    logger.info("teacher logits on %d texts in %.1f s (%s)", sum(map(len, texts.values())),
                time.perf_counter() - started, precision)
    with atomic_path(path) as tmp:
        save_file(logits, str(tmp), metadata=key)
    return logits


def with_teacher_columns(data: TaskData, logits: dict[str, np.ndarray],
                         unlabeled: Sequence[Text] = ()) -> TaskData:
    """``data`` with :data:`TEACHER_LOGITS` and :data:`HAS_LABEL` on its training split, and the unlabelled texts
    appended to it (each with the teacher's prediction as a placeholder label, which ``has_label=0`` keeps out of
    the gold term). Validation and test are unchanged."""
    train = data.splits["train"]
    train = train.add_column(TEACHER_LOGITS, [row.tolist() for row in logits["train"]])
    train = train.add_column(HAS_LABEL, [1] * len(train))
    if len(unlabeled):
        extra = logits["unlabeled"]
        if data.problem_type == REGRESSION:
            labels: list[Any] = [float(v) for v in extra[:, 0]]
        elif data.problem_type == MULTI_LABEL:
            labels = (extra > 0).astype(np.float32).tolist()
        else:
            labels = extra.argmax(axis=-1).tolist()
        pairs = len(data.text_columns) > 1
        rows = {column: [t[i] if pairs else t for t in unlabeled] for i, column in enumerate(data.text_columns)}
        rows.update({"label": labels, TEACHER_LOGITS: extra.tolist(), HAS_LABEL: [0] * len(unlabeled)})
        keep = [c for c in train.column_names if c in rows]
        train = datasets.concatenate_datasets([train.select_columns(keep),
                                               datasets.Dataset.from_dict(rows).cast(train.select_columns(keep)
                                                                                     .features)])
    splits = {**data.splits, "train": train}
    return dataclasses.replace(data, splits=splits)


def texts_per_second(predictor: Predictor, texts: Sequence[Text], repeats: int = 2) -> float:
    """Inference speed of ``predictor`` on ``texts`` (at most :data:`SPEED_TEXTS` of them): the best of ``repeats``
    timed passes (the first also warms up oneDNN's kernels and the allocator, as ``timeit`` advises taking the
    minimum).

    Returns:
        Texts per second (wall clock, this process's threads).
    """
    texts = list(texts)[:SPEED_TEXTS]
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        predictor.logits(texts)
        best = min(best, time.perf_counter() - started)
    return len(texts) / max(best, 1e-9)


def distillation_data(teacher: Teacher, data: TaskData, unlabeled: Sequence[Text], output_dir: Path,
                      batch_size: int = 64) -> TaskData:
    """``data`` ready for :class:`~textclf.training.distillation.DistillationTrainer`: the teacher's logits
    (cached in ``output_dir/teacher``, :func:`teacher_logits`) on the training texts and on ``unlabeled``, as
    columns of the training split (:func:`with_teacher_columns`)."""
    texts: dict[str, Sequence[Text]] = {"train": rows_to_texts(data.splits["train"].to_dict(), data.text_columns)}
    if len(unlabeled):
        texts["unlabeled"] = list(unlabeled)
    logits = teacher_logits(teacher, texts, output_dir / "teacher", batch_size)
    return with_teacher_columns(data, logits, unlabeled)


def compare_with_teacher(teacher: Teacher, student_dir: Path, data: TaskData, metric: str,
                         threshold: float | str = "auto") -> dict[str, Any]:
    """The teacher's score on the run's validation split, and the inference speed of teacher and student measured
    here, now, on the same validation texts in the same precision (bf16 where native, as the logits were computed).

    Returns:
        ``{"teacher", "teacher_checkpoint", "teacher_metrics" (eval_* on this validation split),
        "teacher_run_metric" (the teacher run's own eval_<metric>, if it was a run), "precision",
        "teacher_texts_per_second", "student_texts_per_second", "speedup", "teacher_parameters",
        "student_parameters"}``.
    """
    from textclf.evaluation.checkpoint import evaluate_run  # judging a checkpoint, as run.py does

    teacher_predictor = teacher.predictor()
    judged = evaluate_run(teacher_predictor, data, threshold)
    student = Predictor.from_pretrained(student_dir, precision=teacher_predictor.precision)
    texts = rows_to_texts(data.splits["validation"].to_dict(), data.text_columns)
    teacher_speed, student_speed = texts_per_second(teacher_predictor, texts), texts_per_second(student, texts)
    own = (teacher.run_metrics or {}).get(f"eval_{metric}")
    return {
        "teacher": teacher.source,
        "teacher_checkpoint": str(teacher.checkpoint),
        "teacher_metrics": judged.metrics,
        "teacher_run_metric": None if own is None else {f"eval_{metric}": own},
        "precision": teacher_predictor.precision,
        "speed_texts": min(len(texts), SPEED_TEXTS),
        "teacher_texts_per_second": round(teacher_speed, 1),
        "student_texts_per_second": round(student_speed, 1),
        "speedup": round(student_speed / teacher_speed, 2),
        "teacher_parameters": _parameters(teacher_predictor.model),
        "student_parameters": _parameters(student.model),
    }


def _parameters(model: Any) -> int | None:
    """Parameters of a PyTorch model (None for an ONNX one)."""
    return int(sum(p.numel() for p in model.parameters())) if hasattr(model, "parameters") else None
