"""Prediction throughput over a set of files: ``textclf predict --engine ray`` with 1 and 2 actors against the
single-process ``textclf predict --input`` path, in one run.

The texts are SST-2's validation sentences (872) and a seeded slice of its training sentences, from the dataset
mirror (``$TEXTCLF_DATA_DIR``, or ``--data-dir``), written as ``--files`` Parquet files with an ``idx`` column. The
checkpoint is ``--checkpoint DIR``, else the bundled encoder (all-MiniLM-L6-v2) with a new 2-class head, saved
untrained: throughput depends on the architecture and the texts, not on the weights.

Paths, each on the same files:

- ``single``: :func:`textclf.inference.streaming.predict_file` on each file in turn (what ``textclf predict --input
  FILE --output OUT`` runs), torch's default threads (one per core); the Predictor is loaded once, and its loading is
  timed too;
- ``ray_1``: :func:`textclf.inference.distributed.predict_files_ray` with 1 actor (all the cores' threads);
- ``ray_2``: the same with 2 actors (cores / 2 threads each).

Ray is started once (``ray.init``, timed apart) and each Ray path runs twice: on one small block (start-up: actors
spawned, model loaded, one block read, predicted and written) and on everything. Reported per path: end-to-end
seconds and texts/s, the start-up (Ray: the small run; single: loading the Predictor) and the steady texts/s
without it (Ray: (all rows - small rows) / (time - start-up time)). The Ray outputs are checked against the
single-process predictions by id (same labels, largest score difference printed).

    python benchmarks/ray_predict.py --quick                   # 872 + 2,000 sentences, a few minutes on 2 cores
    python benchmarks/ray_predict.py --checkpoint runs/sst2/model --train-sentences 20000

Ends with one JSON line: texts/s of every path (end to end and steady), ratios to single, start-up seconds, the
agreement check, and the machine.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from textclf.data.loading import load_task_split
from textclf.hardware import describe_machine
from textclf.inference.distributed import predict_files_ray
from textclf.inference.predictor import Predictor
from textclf.inference.streaming import predict_file
from textclf.modeling import load_model, load_tokenizer, resolve_model_path
from textclf.tasks import SINGLE_LABEL, get_task


def write_inputs(data_dir: str | None, train_sentences: int, files: int, seed: int, root: Path) -> list[Path]:
    """SST-2 validation plus ``train_sentences`` seeded training sentences, as ``files`` Parquet files
    (``idx``, ``sentence``)."""
    spec = get_task("sst2")
    validation = load_task_split(spec, "validation", data_dir).to_pandas()["sentence"]
    train = load_task_split(spec, "train", data_dir).to_pandas()["sentence"]
    picks = np.random.default_rng(seed).choice(len(train), size=min(train_sentences, len(train)), replace=False)
    texts = pd.concat([validation, train.iloc[np.sort(picks)]], ignore_index=True)
    frame = pd.DataFrame({"idx": np.arange(len(texts)), "sentence": texts})
    root.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, rows in enumerate(np.array_split(np.arange(len(frame)), files)):
        paths.append(root / f"part-{i:02d}.parquet")
        frame.iloc[rows].to_parquet(paths[-1], index=False)
    return paths


def untrained_checkpoint(model: str, path: Path) -> Path:
    """``model`` with a new 2-class head, saved as a checkpoint (for timing only)."""
    load_model(model, ["negative", "positive"], SINGLE_LABEL).save_pretrained(path)
    load_tokenizer(resolve_model_path(model)).save_pretrained(path)
    return path


def run_single(checkpoint: Path, files: list[Path], out: Path, args: argparse.Namespace) -> tuple[dict, pd.DataFrame]:
    """The single-process path on every file; returns (row, predictions with idx)."""
    started = time.perf_counter()
    predictor = Predictor.from_pretrained(checkpoint, batch_size=args.batch_size, precision=args.precision)
    loaded = time.perf_counter()
    frames = []
    for path in files:
        target = out / f"{path.stem}.jsonl"
        predict_file(predictor, path, target, progress=False)  # its CLI default: chunks of 4,096 rows
        lines = [json.loads(line) for line in target.read_text(encoding="utf-8").splitlines()]
        frames.append(pd.DataFrame(lines).assign(idx=pd.read_parquet(path, columns=["idx"])["idx"].to_numpy()))
    predicted = time.perf_counter()
    seconds = predicted - started
    rows = sum(len(f) for f in frames)
    return ({"path": "single", "actors": 0, "threads": torch.get_num_threads(), "rows": rows,
             "seconds": round(seconds, 2), "load_seconds": round(loaded - started, 2),
             "texts_per_s": round(rows / seconds, 1), "steady_texts_per_s": round(rows / (predicted - loaded), 1)},
            pd.concat(frames, ignore_index=True))


def run_ray(checkpoint: Path, files: list[Path], small: Path, out: Path, actors: int,
            args: argparse.Namespace) -> tuple[dict, pd.DataFrame]:
    """predict_files_ray with ``actors`` actors on one small block, then on every file."""
    common = {"num_actors": actors, "batch_size": args.batch_size, "precision": args.precision,
              "chunk_rows": args.chunk_rows, "progress": False}
    started = time.perf_counter()
    tiny = predict_files_ray(checkpoint, small, out / f"ray-{actors}-small", **common)
    startup = time.perf_counter() - started
    started = time.perf_counter()
    result = predict_files_ray(checkpoint, files[0].parent / "*.parquet", out / f"ray-{actors}", **common)
    seconds = time.perf_counter() - started
    steady = (result.rows - tiny.rows) / max(seconds - startup, 1e-9)
    return ({"path": f"ray_{actors}", "actors": actors, "threads": result.threads_per_actor, "rows": result.rows,
             "parts": len(result.files), "seconds": round(seconds, 2), "startup_seconds": round(startup, 2),
             "texts_per_s": round(result.rows / seconds, 1), "steady_texts_per_s": round(steady, 1)},
            pd.read_parquet(result.output_dir))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="872 + 2,000 sentences (default 872 + 20,000)")
    parser.add_argument("--train-sentences", type=int, help="training sentences added to validation")
    parser.add_argument("--files", type=int, default=4, help="Parquet files the texts are split into")
    parser.add_argument("--checkpoint", help="checkpoint directory (default: the bundled encoder, untrained head)")
    parser.add_argument("--model", default="bundled", help="encoder of the untrained checkpoint")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--chunk-rows", type=int, default=256,
                        help="Ray: rows per block (256: each actor gets several blocks of the quick run's 2,872 "
                        "texts); single keeps its default chunks of 4,096")
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-dir", help="dataset mirror (default $TEXTCLF_DATA_DIR)")
    parser.add_argument("--work-dir", help="where inputs and outputs go (default: a temporary directory)")
    args = parser.parse_args()
    train_sentences = args.train_sentences if args.train_sentences is not None else 2000 if args.quick else 20000
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    import ray

    cpus = os.cpu_count() or 1
    with tempfile.TemporaryDirectory(prefix="textclf-ray-bench-") as tmp:
        work = Path(args.work_dir or tmp)
        files = write_inputs(args.data_dir, train_sentences, args.files, args.seed, work / "input")
        small = work / "small" / "small.parquet"
        small.parent.mkdir(parents=True, exist_ok=True)
        pd.read_parquet(files[0]).head(args.chunk_rows // 4).to_parquet(small, index=False)
        checkpoint = Path(args.checkpoint) if args.checkpoint else untrained_checkpoint(args.model, work / "ckpt")
        print(f"{describe_machine()}; {sum(len(pd.read_parquet(p)) for p in files)} texts in {len(files)} files; "
              f"checkpoint {checkpoint}", file=sys.stderr)
        out = work / "out"
        out.mkdir(parents=True, exist_ok=True)
        single, reference = run_single(checkpoint, files, out, args)
        print(json.dumps(single), file=sys.stderr, flush=True)
        started = time.perf_counter()
        with contextlib.redirect_stdout(sys.stderr):
            ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False)
        init_seconds = time.perf_counter() - started
        runs = [single]
        agreement = {}
        try:
            for actors in (1, 2):
                row, predicted = run_ray(checkpoint, files, small, out, actors, args)
                merged = reference.merge(predicted, on="idx", suffixes=("_single", "_ray"), validate="one_to_one")
                row["same_labels"] = bool(len(merged) == single["rows"]
                                          and (merged["label_single"] == merged["label_ray"]).all())
                row["max_score_diff"] = float((merged["score_single"] - merged["score_ray"]).abs().max())
                agreement[row["path"]] = {"same_labels": row["same_labels"], "max_score_diff": row["max_score_diff"]}
                runs.append(row)
                print(json.dumps(row), file=sys.stderr, flush=True)
        finally:
            ray.shutdown()

    print(f"ray.init: {init_seconds:.1f} s (not counted below)")
    print("| path | actors x threads | texts | seconds | texts/s | x single | start-up s | steady texts/s | x single |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in runs:
        pool = f"{r['actors']} x {r['threads']}" if r["actors"] else f"1 process x {r['threads']}"
        startup = r.get("startup_seconds", r.get("load_seconds"))
        print(f"| {r['path']} | {pool} | {r['rows']} | {r['seconds']} | {r['texts_per_s']} | "
              f"{r['texts_per_s'] / single['texts_per_s']:.2f} | {startup} | {r['steady_texts_per_s']} | "
              f"{r['steady_texts_per_s'] / single['steady_texts_per_s']:.2f} |")
    by_path = {r["path"]: r for r in runs}
    summary = {"single_texts_per_s": single["texts_per_s"], "single_steady_texts_per_s": single["steady_texts_per_s"],
               **{f"{p}_texts_per_s": by_path[p]["texts_per_s"] for p in ("ray_1", "ray_2")},
               **{f"{p}_steady_texts_per_s": by_path[p]["steady_texts_per_s"] for p in ("ray_1", "ray_2")},
               **{f"{p}_ratio": round(by_path[p]["texts_per_s"] / single["texts_per_s"], 3) for p in ("ray_1", "ray_2")},
               **{f"{p}_steady_ratio": round(by_path[p]["steady_texts_per_s"] / single["steady_texts_per_s"], 3)
                  for p in ("ray_1", "ray_2")},
               "ray_init_seconds": round(init_seconds, 2), "agreement": agreement, "texts": single["rows"],
               "files": len(files), "precision": args.precision, "machine": describe_machine(), "runs": runs}
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
