"""Training throughput across processes: ``textclf train`` in 1 process against ``torchrun --nproc_per_node N``
(DistributedDataParallel, gloo on CPUs), the same global batch and the same examples, measured in one run.

On a machine with C cores, 1 process gets C torch threads and each of N processes C / N, so the comparison is
"the same cores, split into processes": on a 2-core CPU expect little gain (the point of the multi-process path is
correctness, tests/test_training_distributed.py; the gain comes from GPUs or more machines). examples/s is
``train_examples x epochs / train_runtime`` from each run's metrics.json (the Trainer's own clock, data loading
included, model loading and evaluation not).

    TEXTCLF_DATA_DIR=../shared/data python benchmarks/distributed_train.py            # SST-2, 4,000 sentences
    TEXTCLF_DATA_DIR=../shared/data python benchmarks/distributed_train.py --quick    # 1,000 sentences

Ends with one JSON line: examples_per_s per process count, the ratio to 1 process, and each run's accuracy.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
from pathlib import Path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run(processes: int, examples: int, global_batch: int, model: str, out: Path) -> dict:
    """Train SST-2 on ``examples`` sentences for one epoch in ``processes`` processes; return its row."""
    cores = os.cpu_count() or 1
    threads = max(1, cores // processes)
    overrides = [f"model={model}", "method=finetune", "num_train_epochs=1", "min_train_steps=0",
                 f"max_train_samples={examples}", f"per_device_train_batch_size={global_batch // processes}",
                 "eval_strategy=no", "report_to=none", "logging_steps=1000000", f"torch_num_threads={threads}"]
    command = [sys.executable, "-m", "textclf", "train", "sst2", "--output-dir", str(out), *overrides]
    if processes > 1:
        command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(processes),
                   "--master_port", str(_free_port()), *command[1:]]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "TOKENIZERS_PARALLELISM": "false"}
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr[-4000:]}")
    metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    return {"processes": processes, "threads_per_process": threads, "train_examples": metrics["train_examples"],
            "global_batch": global_batch, "bf16": metrics["bf16"], "train_runtime_s": metrics["train_runtime"],
            "examples_per_s": round(metrics["train_examples"] * metrics["epoch"] / metrics["train_runtime"], 2),
            "eval_accuracy": round(metrics["eval_accuracy"], 4), "eval_examples": metrics["eval_examples"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1,000 sentences")
    parser.add_argument("--examples", type=int)
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--global-batch", type=int, default=32)
    parser.add_argument("--model", default="bundled")
    args = parser.parse_args()
    examples = args.examples or (1000 if args.quick else 4000)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for processes in args.processes:
            rows.append(run(processes, examples, args.global_batch, args.model, Path(tmp) / f"p{processes}"))
            print(json.dumps(rows[-1]), file=sys.stderr)
    base = rows[0]["examples_per_s"]
    print("| processes | threads each | examples | global batch | bf16 | train s | examples/s | vs 1 | accuracy |")
    print("|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['processes']} | {row['threads_per_process']} | {row['train_examples']} | {row['global_batch']} "
              f"| {row['bf16']} | {row['train_runtime_s']:.1f} | {row['examples_per_s']} | "
              f"{row['examples_per_s'] / base:.2f}x | {row['eval_accuracy']:.4f} (n={row['eval_examples']}) |")
    print(json.dumps({"examples_per_s": {row["processes"]: row["examples_per_s"] for row in rows},
                      "ratio_to_first": {row["processes"]: round(row["examples_per_s"] / base, 3) for row in rows},
                      "eval_accuracy": {row["processes"]: row["eval_accuracy"] for row in rows}, "runs": rows}))


if __name__ == "__main__":
    main()
