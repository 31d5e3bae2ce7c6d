"""``textclf VERB ...``: parse, call one library function, print.

Results that programs read go to stdout (JSON); logs and progress go to stderr. Exit 0 on success, 2 with
one line on a user error (no traceback), a traceback only for real bugs.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

from textclf.errors import ConfigError, DataError, TextclfError

EPILOG = """examples:
  textclf train sst2 --output-dir runs/sst2 max_train_samples=2000 num_train_epochs=1
  textclf train reviews.csv data.text_column=review data.label_column=stars
  textclf distill sst2 --teacher runs/sst2-mpnet         # a small student towards a fine-tuned teacher
  textclf evaluate runs/sst2/model sst2
  textclf predict runs/sst2/model "a gripping, beautifully acted film"
  textclf data cola --n 5
  textclf benchmark sst2 cola --output-dir runs/benchmark
  textclf predict runs/rte/model --glue rte --output submission/
  textclf export runs/sst2/model --quantize int8          # ONNX int8 in runs/sst2/model-onnx-int8, with a parity check
  textclf search cola --output-dir runs/search-cola --n-trials 8 --workers 2
  textclf report runs/sst2                               # rebuild plots/, report.md and model/README.md
  textclf serve runs/sst2/model --port 8000               # HTTP API + demo page on http://127.0.0.1:8000
"""


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, ensure_ascii=False), flush=True)


def _set_threads(torch_num_threads: int | None) -> None:
    """The recipe's ``torch_num_threads``, for this process (a library call leaves torch's own setting)."""
    if torch_num_threads:
        import torch

        torch.set_num_threads(torch_num_threads)


def cmd_train(args: argparse.Namespace, extra: tuple[str, ...] = (), suffix: str = "") -> int:
    from textclf.config import load_recipe
    from textclf.training.run import train

    overrides = [*args.overrides, *extra]
    if args.data_dir:
        overrides.append(f"data.data_dir={args.data_dir}")
    if args.resume:
        overrides.append("resume_from_checkpoint=last")
    recipe = load_recipe(args.task_or_recipe, overrides)
    output_dir = Path(args.output_dir or Path("runs") / ((recipe.task or Path(recipe.data.train_file or "run").stem)
                                                         + suffix))
    _set_threads(recipe.torch_num_threads)
    with contextlib.redirect_stdout(sys.stderr):  # the Trainer prints its log dicts to stdout
        result = train(recipe, output_dir)
    if os.environ.get("RANK", "0") == "0":  # under torchrun, one answer (the main process's)
        _print_json({"output_dir": str(result.output_dir), "model_dir": str(result.model_dir), **result.metrics})
    return 0


def cmd_distill(args: argparse.Namespace) -> int:
    """``textclf distill``: ``textclf train`` with method=distill, the teacher and (if given) the student model."""
    student = (f"model={args.student}",) if args.student else ()
    return cmd_train(args, ("method=distill", f"teacher={args.teacher}", *student), "-distilled")


def cmd_evaluate(args: argparse.Namespace) -> int:
    from textclf.evaluation.checkpoint import evaluate_checkpoint

    _print_json(evaluate_checkpoint(args.model_dir, args.task_or_file, split=args.split, data_dir=args.data_dir,
                                    max_samples=args.max_samples, batch_size=args.batch_size,
                                    label_column=args.label_column, precision=args.precision,
                                    parity=args.parity))
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from textclf.inference.predictor import Predictor
    from textclf.inference.streaming import predict_file

    if args.glue:
        from textclf.inference.glue import write_glue_submission

        if args.engine == "ray":
            raise ConfigError("--glue writes the leaderboard files in input order, in one process: leave out --engine ray")
        if args.texts or not args.output:
            raise DataError("--glue TASK writes leaderboard files: give --output DIR (and --input FILE, or nothing "
                            "for the task's test split), no texts")
        written = write_glue_submission(args.model_dir, args.glue, args.output, input_file=args.input,
                                        data_dir=args.data_dir, batch_size=args.batch_size,
                                        precision=args.precision)
        _print_json({"written": [str(p) for p in written]})
        return 0
    if args.engine == "ray":
        return _predict_ray(args)
    ray_only = [flag for flag, value in (("--num-actors", args.num_actors), ("--threads-per-actor",
                args.threads_per_actor), ("--id-column", args.id_column)) if value is not None]
    if ray_only:
        raise ConfigError(f"{', '.join(ray_only)}: only with --engine ray (one process writes every row in input "
                          "order, so it needs no id)")
    if bool(args.texts) == bool(args.input):
        raise DataError("give either texts to classify or --input FILE (not both, not neither)")
    predictor = Predictor.from_pretrained(args.model_dir, batch_size=args.batch_size, precision=args.precision,
                                          truncation=args.truncation, max_seq_length=args.max_seq_length)
    if args.texts:
        _print_json(predictor.predict(list(args.texts)))
        return 0
    written = predict_file(predictor, args.input, args.output, text_column=args.text_column,
                           text_pair_column=args.text_pair_column, chunk_rows=args.chunk_rows)
    if args.output:
        print(f"wrote {written} predictions to {args.output}", file=sys.stderr)
    return 0


def _predict_ray(args: argparse.Namespace) -> int:
    """``textclf predict --engine ray``: files in, a directory of Parquet parts out (a JSON summary on stdout)."""
    from textclf.inference.distributed import predict_files_ray

    if args.texts or not args.input:
        raise DataError("--engine ray predicts files: give --input FILES (a file, a directory, or a glob such as "
                        "'DIR/*.parquet', in quotes) and --output DIR, no texts")
    if not args.output:
        raise DataError("--engine ray writes a directory of Parquet parts: give --output DIR")
    result = predict_files_ray(args.model_dir, args.input, args.output, text_column=args.text_column,
                               text_pair_column=args.text_pair_column, id_column=args.id_column,
                               num_actors=args.num_actors, threads_per_actor=args.threads_per_actor,
                               batch_size=args.batch_size, precision=args.precision, truncation=args.truncation,
                               max_seq_length=args.max_seq_length, chunk_rows=args.chunk_rows,
                               allow_pickle=args.allow_pickle, trust_remote_code=args.trust_remote_code)
    print(f"wrote {result.rows} predictions in {len(result.files)} Parquet parts to {result.output_dir}",
          file=sys.stderr)
    _print_json({"output_dir": str(result.output_dir), "rows": result.rows, "parts": len(result.files),
                 "text_columns": list(result.text_columns), "id_column": result.id_column,
                 "num_actors": result.num_actors, "threads_per_actor": result.threads_per_actor})
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from textclf.inference.export import export_checkpoint

    # The exporter (onnxscript), ONNX Runtime's optimizer and its quantizer (on the root logger) log every pass at
    # INFO, and the quantizer warns about a pre-processing step that does not apply to fused graphs: only errors are
    # shown unless -v.
    quiet = {name: logging.getLogger(name) for name in ("", "onnxscript", "onnx_ir", "torch.onnx")}
    levels = {name: logger.level for name, logger in quiet.items()}
    if not args.verbose:
        for logger in quiet.values():
            logger.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(sys.stderr):  # the ONNX exporter and optimizer print progress to stdout
            report = export_checkpoint(args.model_dir, args.output, format=args.format, quantize=args.quantize,
                                       optimize=not args.no_optimize, parity=not args.no_parity, data=args.data,
                                       split=args.split, data_dir=args.data_dir,
                                       max_samples=args.max_samples or None, label_column=args.label_column,
                                       batch_size=args.batch_size)
    finally:
        for name, logger in quiet.items():
            logger.setLevel(levels[name])
    parity = report["parity"]
    if parity is not None:
        before, after = parity["metrics_before"][parity["metric"]], parity["metrics_after"][parity["metric"]]
        print(f"parity on {parity['examples']} examples of {parity['data']}: max |logit diff| "
              f"{parity['max_abs_logit_diff']:.3g}, {parity['metric']} {before:.4f} -> {after:.4f}",
              file=sys.stderr)
    _print_json(report)
    return 0


def cmd_benchmark(args: argparse.Namespace) -> int:
    from textclf.benchmark import DEFAULT_TASKS, run_benchmark

    checkpoints = {}
    for item in args.checkpoint or []:
        task, sep, path = item.partition("=")
        if not sep:
            raise DataError(f"--checkpoint {item!r} is not TASK=DIR (e.g. --checkpoint mnli=runs/mnli/model)")
        checkpoints[task] = path
    tasks = [t for t in args.tasks if "=" not in t]  # key=value items given among the task names are overrides
    overrides = [*args.overrides, *(t for t in args.tasks if "=" in t)]
    with contextlib.redirect_stdout(sys.stderr):  # the Trainer prints its log dicts to stdout
        results = run_benchmark(tasks or DEFAULT_TASKS, args.output_dir, budget=args.budget, overrides=overrides,
                                data_dir=args.data_dir, checkpoints=checkpoints, test_precision=args.test_precision,
                                readme=args.readme)
    print(f"wrote {Path(args.output_dir) / 'results.json'} and results.md", file=sys.stderr)
    _print_json(results["glue"])
    return 0


def cmd_search(args: argparse.Namespace) -> int:
    from textclf.config import load_recipe
    from textclf.training.search import WorkerError, search

    flags = {"n_trials": args.n_trials, "fraction": args.fraction, "pruner": args.pruner, "backend": args.backend,
             "retrain": False if args.no_retrain else None}
    overrides = [*args.overrides, *(f"search.{key}={value}" for key, value in flags.items() if value is not None)]
    if args.data_dir:
        overrides.append(f"data.data_dir={args.data_dir}")
    recipe = load_recipe(args.task_or_recipe, overrides)
    _set_threads(recipe.torch_num_threads)
    name = recipe.task or Path(recipe.data.train_file or "run").stem
    output_dir = Path(args.output_dir or Path("runs") / f"search-{name}")
    try:
        with contextlib.redirect_stdout(sys.stderr):  # the Trainer prints its log dicts to stdout
            result = search(recipe, output_dir, storage=args.storage, study_name=args.study_name,
                            workers=args.workers)
    except KeyboardInterrupt:
        print("textclf: interrupted: finished trials are kept in the study; run the same command to resume",
              file=sys.stderr)
        return 130
    except WorkerError as err:
        print(f"textclf: error: {err}", file=sys.stderr)
        return 1
    best = result.best_metrics or {}
    _print_json({"output_dir": str(result.output_dir), "study_name": result.study_name, "storage": result.storage,
                 "metric": f"eval_{result.metric}", "direction": result.direction,
                 "trials": {state: sum(row["state"] == state for row in result.trials)
                            for state in dict.fromkeys(row["state"] for row in result.trials)},
                 "best_value": result.best_value, "best_params": result.best_params,
                 "best_recipe": str(result.best_recipe) if result.best_recipe else None,
                 "best_validation": {k: v for k, v in best.items() if k.startswith("eval_")} or None})
    return 0


def _exit_cleanly(signum: int, frame: Any) -> None:
    """SIGTERM / SIGINT handler of ``textclf serve``: exit 0. uvicorn replaces it while serving (on the signal it
    stops accepting and finishes in-flight requests), then restores it and raises the signal again, which lands
    here: a graceful shutdown exits 0, not -15."""
    raise SystemExit(0)


def cmd_serve(args: argparse.Namespace) -> int:
    import gc
    import signal

    import uvicorn

    from textclf.inference.predictor import Predictor
    from textclf.serving import API_KEY_ENV, ServeSettings, create_app, serve_precision

    api_key = args.api_key or os.environ.get(API_KEY_ENV) or None
    checkpoint = Path(args.checkpoint)
    settings = ServeSettings(max_batch_tokens=args.max_batch_tokens, max_forward_tokens=args.max_forward_tokens,
                             max_wait_ms=args.max_wait_ms,
                             max_concurrent_requests=args.max_concurrent_requests,
                             max_client_batch_size=args.max_client_batch_size, payload_limit=args.payload_limit,
                             max_input_chars=args.max_input_chars, auto_truncate=args.auto_truncate,
                             batching=not args.no_batching, api_key=api_key,
                             cors_allow_origins=tuple(args.cors_allow_origin or ()),
                             model_id="/".join(checkpoint.resolve().parts[-2:]))
    if args.torch_threads:
        _set_threads(args.torch_threads)
    # batch_size = the token budget: the budget alone decides how many rows a forward pass takes.
    predictor = Predictor.from_pretrained(checkpoint, precision=serve_precision(args.precision, checkpoint),
                                          truncation=args.truncation, max_seq_length=args.max_seq_length,
                                          max_batch_tokens=settings.max_forward_tokens,
                                          batch_size=settings.max_batch_tokens)
    if args.host not in ("127.0.0.1", "localhost", "::1") and api_key is None:
        print(f"textclf: warning: serving on {args.host} without an API key: anyone who reaches port {args.port} "
              f"can use the model (give --api-key or ${API_KEY_ENV})", file=sys.stderr)
    app = create_app(predictor, settings)
    # The model, tokenizer and libraries are millions of long-lived objects: frozen out of the garbage collector's
    # view, a full collection no longer stalls every request in flight (one such stall put ~5% of requests at c=32
    # at 3x the median latency in benchmarks/serve_load.py). Python docs, gc.freeze.
    gc.collect()
    gc.freeze()
    signal.signal(signal.SIGTERM, _exit_cleanly)
    signal.signal(signal.SIGINT, _exit_cleanly)
    uvicorn.run(app, host=args.host, port=args.port, access_log=args.access_log,
                timeout_graceful_shutdown=args.graceful_timeout, log_level="debug" if args.verbose else "info")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from textclf.reports.summary import build_report

    _print_json({"written": [str(p) for p in build_report(args.run_dir)]})
    return 0


def cmd_data(args: argparse.Namespace) -> int:
    from textclf.config import load_recipe
    from textclf.data.loading import load_recipe_data, random_examples

    overrides = list(args.overrides) + ([f"data.data_dir={args.data_dir}"] if args.data_dir else [])
    data = load_recipe_data(load_recipe(args.task_or_file, overrides), with_test=args.split == "test")
    if args.split not in data.splits:
        raise DataError(f"{data.name} has no {args.split!r} split here: use one of {', '.join(data.splits)}")
    summary = {"task": data.name, "problem_type": data.problem_type, "label_names": data.label_names,
               "text_columns": list(data.text_columns), "metrics": list(data.metrics),
               "splits": {k: len(v) for k, v in data.splits.items()}, "sources": data.sources}
    _print_json({**summary, "examples": random_examples(data, args.n, args.split, args.seed)})
    return 0


@contextlib.contextmanager
def _opt_ins(args: argparse.Namespace):
    """--allow-pickle / --trust-remote-code for this command, as the environment variables textclf.checkpoints reads
    (so every loader sees them, and so do the processes a search or server spawns); restored afterwards."""
    from textclf.checkpoints import ALLOW_PICKLE_ENV, TRUST_REMOTE_CODE_ENV

    wanted = {ALLOW_PICKLE_ENV: getattr(args, "allow_pickle", False),
              TRUST_REMOTE_CODE_ENV: getattr(args, "trust_remote_code", False)}
    saved = {name: os.environ.get(name) for name in wanted}
    os.environ.update({name: "1" for name, on in wanted.items() if on})
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _add_loading_flags(p: argparse.ArgumentParser) -> None:
    """The opt-ins of a verb that loads a model or checkpoint (textclf.checkpoints: refused without them)."""
    p.add_argument("--allow-pickle", action="store_true",
                   help="load pickle weights (pytorch_model.bin) when there are no safetensors; unpickling can run "
                        "code: only for files you trust (also TEXTCLF_ALLOW_PICKLE=1)")
    p.add_argument("--trust-remote-code", action="store_true",
                   help="run a model's own Python code (auto_map in its config); only for code you have read "
                        "(also TEXTCLF_TRUST_REMOTE_CODE=1)")


def _add_training_arguments(p: argparse.ArgumentParser, example: str, default_dir: str) -> None:
    """The arguments of a verb that trains (train, distill): the task or recipe, key=value overrides, the run
    directory, --resume, --data-dir and the loading opt-ins."""
    p.add_argument("task_or_recipe", help="task name (sst2, cola, imdb, ...), recipe .yaml, or data file")
    p.add_argument("overrides", nargs="*", metavar="key=value", help=f"recipe overrides, e.g. {example}")
    p.add_argument("--output-dir", help=f"run directory (default {default_dir})")
    p.add_argument("--resume", action="store_true",
                   help="continue from the newest complete checkpoint in OUTPUT_DIR/checkpoints (same command)")
    p.add_argument("--data-dir", help=f"local dataset mirror (default ${'TEXTCLF_DATA_DIR'})")
    _add_loading_flags(p)


def build_parser() -> argparse.ArgumentParser:
    """The ``textclf`` argument parser (one sub-command per verb)."""
    parser = argparse.ArgumentParser(prog="textclf", description="Fine-tune, evaluate and use text classifiers.",
                                     epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging on stderr")
    sub = parser.add_subparsers(dest="verb", required=True)

    from textclf.config.recipes import keys_help

    p = sub.add_parser("train", help="fine-tune a model on a task, recipe or data file", epilog=keys_help(),
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_training_arguments(p, "model=DIR max_train_samples=2000 learning_rate=3e-5", "runs/<task>")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("distill", help="train a small student towards a larger fine-tuned teacher (Hinton et al. "
                       "2015)", epilog=keys_help(), formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_training_arguments(p, "alpha=0.5 temperature=2 data.unlabeled_file=texts.csv augment=eda",
                            "runs/<task>-distilled")
    p.add_argument("--teacher", required=True,
                   help="the teacher: a run directory of textclf train, its model/ checkpoint, or a Hub id")
    p.add_argument("--student", help="the student's base model, a Hub id or directory (default: the recipe's model, "
                                     "bundled all-MiniLM-L6-v2)")
    p.set_defaults(func=cmd_distill)

    p = sub.add_parser("evaluate", help="evaluate a checkpoint on a task split or labelled file")
    p.add_argument("model_dir")
    p.add_argument("task_or_file")
    p.add_argument("--split", help="task split (default: the task's validation split)")
    p.add_argument("--data-dir")
    p.add_argument("--max-samples", type=int)
    p.add_argument("--label-column", help="label column of a data file (default label)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--precision", choices=("fp32", "bf16"), default="fp32",
                   help="bf16: run the model in bfloat16 (CPUs with AVX512-BF16/AMX; much faster on long texts)")
    p.add_argument("--parity", action="store_true",
                   help="also run the fp32 PyTorch model (for --precision bf16, or an ONNX export) and report the "
                   "max logit difference and the metrics of both")
    _add_loading_flags(p)
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("predict", help="predict texts or a file with a checkpoint")
    p.add_argument("model_dir")
    p.add_argument("texts", nargs="*", help="texts to classify (output: a JSON list, pipeline shape)")
    p.add_argument("--input", help="CSV / TSV / JSONL / Parquet file to classify (streamed in chunks); with --engine "
                   "ray: a file, a directory or a glob ('DIR/*.parquet', in quotes), local or an fsspec URL")
    p.add_argument("--output", help="output file: .csv / .tsv (label, score columns), else JSON Lines "
                   "(default: JSON Lines on stdout); with --engine ray: a directory of Parquet parts (id, label, score)")
    p.add_argument("--chunk-rows", type=int, default=4096,
                   help="rows of --input read, predicted and written at a time (memory stays bounded by a chunk); "
                   "with --engine ray: rows per block, the unit the actors share out")
    p.add_argument("--text-column")
    p.add_argument("--text-pair-column")
    p.add_argument("--engine", choices=("local", "ray"), default="local",
                   help="local (default): this process, streaming, output in input order; ray: Ray Data actor pools "
                   "over many files, on this machine or the cluster at $RAY_ADDRESS (pip install 'textclf[ray]')")
    p.add_argument("--num-actors", type=int,
                   help="--engine ray: actors, each holding the model (default: one per CPU of the Ray cluster)")
    p.add_argument("--threads-per-actor", type=int,
                   help="--engine ray: torch threads per actor (default: the cluster's CPUs / --num-actors, or 1)")
    p.add_argument("--id-column", help="--engine ray: the input column copied to the output to identify each row "
                   "(default: idx or id when the files have it; none: the text columns are copied)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--glue", metavar="TASK",
                   help="write GLUE leaderboard file(s) <Task>.tsv into --output DIR from --input or the test split")
    p.add_argument("--data-dir", help="local dataset mirror, for --glue without --input")
    p.add_argument("--precision", choices=("fp32", "bf16"), default="fp32",
                   help="bf16: run the model in bfloat16 (CPUs with AVX512-BF16/AMX; much faster on long texts)")
    p.add_argument("--truncation", choices=("head", "head_tail", "chunks"),
                   help="how longer texts are cut (default: the checkpoint's own); head on a chunks checkpoint "
                   "reads one window per text, as the pipeline does: faster, slightly less accurate on long texts")
    p.add_argument("--max-seq-length", type=int, help="tokens per model input (default: the checkpoint's own)")
    _add_loading_flags(p)
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("export", help="export a checkpoint to ONNX (optionally int8) for fast CPU inference")
    p.add_argument("model_dir", help="PyTorch checkpoint directory")
    p.add_argument("--output", help="export directory (default: <model_dir>-onnx[-int8] beside the checkpoint)")
    p.add_argument("--format", choices=("onnx",), default="onnx")
    p.add_argument("--quantize", choices=("int8",), help="int8: dynamic int8 weights (default: fp32)")
    p.add_argument("--no-optimize", action="store_true", help="skip ONNX Runtime's graph fusions")
    p.add_argument("--data", help="task or labelled file for the parity check (default: the checkpoint's task)")
    p.add_argument("--split", help="task split for the parity check (default: validation, or test for a task "
                   "without one, e.g. IMDb)")
    p.add_argument("--data-dir")
    p.add_argument("--max-samples", type=int, default=1000,
                   help="parity on a seeded random slice of this many examples (0: all)")
    p.add_argument("--label-column", help="label column of a data file (default label)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--no-parity", action="store_true", help="skip the parity check (no labelled data needed)")
    _add_loading_flags(p)
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("benchmark", help="train and score a list of tasks; write results.json and results.md")
    p.add_argument("tasks", nargs="*", help="tasks (default: all reference tasks), then key=value recipe overrides "
                   "applied to every task")
    p.add_argument("--output-dir", default="runs/benchmark")
    p.add_argument("--budget", default="full", help="full (the shipped recipes) or tiny (CI slices)")
    p.add_argument("--checkpoint", action="append", metavar="TASK=DIR",
                   help="evaluate this checkpoint instead of training (tasks with no train split)")
    p.add_argument("--data-dir")
    p.add_argument("--test-precision", choices=("fp32", "bf16"), default="fp32",
                   help="precision for scoring the extra splits (IMDb's 25,000 test reviews: bf16 is ~4x faster)")
    p.add_argument("--readme", help="also write the table into this Markdown file, between the lines "
                   "'<!-- textclf benchmark: start -->' and '<!-- textclf benchmark: end -->'")
    _add_loading_flags(p)
    p.set_defaults(func=cmd_benchmark, overrides=[])

    p = sub.add_parser("search", help="search hyperparameters (Optuna; resumable, parallel), retrain the best")
    p.add_argument("task_or_recipe", help="task name, recipe .yaml (its search: section sets the space), or data file")
    p.add_argument("overrides", nargs="*", metavar="key=value",
                   help="recipe overrides, e.g. max_train_samples=2000 search.seed=1")
    p.add_argument("--output-dir", help="search directory (default runs/search-<task>); rerun to resume")
    p.add_argument("--n-trials", type=int, help="finished trials the study should hold (search.n_trials, default 10)")
    p.add_argument("--fraction", type=float, help="fraction of train searched on (search.fraction, default 0.1)")
    p.add_argument("--workers", type=int, default=1, help="processes on this machine sharing the study")
    p.add_argument("--storage", help="SQLAlchemy URL (postgresql://..., sqlite:///x.db) or journal file shared by "
                   "several commands (default OUTPUT_DIR/study.log)")
    p.add_argument("--study-name", help="default: the task and a digest of the recipe")
    p.add_argument("--pruner", choices=("median", "successive_halving", "none"), help="search.pruner (median)")
    p.add_argument("--backend", choices=("optuna", "ray"), help="search.backend (optuna; ray needs textclf[ray])")
    p.add_argument("--no-retrain", action="store_true", help="skip retraining the best configuration on full data")
    p.add_argument("--data-dir")
    _add_loading_flags(p)
    p.set_defaults(func=cmd_search)

    from textclf.serving.settings import API_KEY_ENV, ServeSettings  # light: no torch, no web framework

    defaults = ServeSettings()
    p = sub.add_parser("serve", help="serve a checkpoint over HTTP: TEI's /predict API, dynamic batching, a demo "
                       "page at /, /health, /info, /metrics, OpenAPI at /docs")
    p.add_argument("checkpoint", help="checkpoint directory (textclf train's model/, or a textclf export)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only; "
                   "0.0.0.0 for every interface, with --api-key)")
    p.add_argument("--port", type=int, default=8000, help="TCP port (default 8000)")
    p.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto",
                   help="auto (default): bf16 where the CPU/GPU has it natively (AVX512-BF16/AMX: ~2x the requests/s "
                        "of fp32), else fp32; an ONNX export runs as exported")
    p.add_argument("--truncation", choices=("head", "head_tail", "chunks"),
                   help="how longer texts are cut (default: the checkpoint's own)")
    p.add_argument("--max-seq-length", type=int, help="tokens per model input (default: the checkpoint's own)")
    p.add_argument("--max-batch-tokens", type=int, default=defaults.max_batch_tokens,
                   help="padded tokens that the requests merged into one batch may fill (default %(default)s)")
    p.add_argument("--max-forward-tokens", type=int, default=defaults.max_forward_tokens,
                   help="padded tokens per forward pass: a merged batch runs sorted by length in passes of at most "
                   "this many (default %(default)s, measured on CPU; GPUs want more, e.g. 16384)")
    p.add_argument("--max-wait-ms", type=float, default=defaults.max_wait_ms,
                   help="longest wait of a request for others to share its forward pass, in ms (default "
                   "%(default)s; none when it is the only request in flight)")
    p.add_argument("--no-batching", action="store_true", help="one forward pass per request (for comparison)")
    p.add_argument("--max-concurrent-requests", type=int, default=defaults.max_concurrent_requests,
                   help="requests handled at once; beyond: 429 at once (default %(default)s, TEI's)")
    p.add_argument("--max-client-batch-size", type=int, default=defaults.max_client_batch_size,
                   help="texts in one request; more: 413 (default %(default)s, TEI's)")
    p.add_argument("--payload-limit", type=int, default=defaults.payload_limit,
                   help="bytes of one request body; more: 413 (default %(default)s, TEI's)")
    p.add_argument("--max-input-chars", type=int, default=defaults.max_input_chars,
                   help="characters of one text (both texts of a pair); longer: 413, or cut when the request "
                   "sets truncate (default %(default)s)")
    p.add_argument("--auto-truncate", action="store_true",
                   help="truncate inputs longer than max_seq_length when a request does not say (default: 413, "
                   "as TEI)")
    p.add_argument("--api-key", help=f"require 'Authorization: Bearer KEY' on every route but /health (default "
                   f"${API_KEY_ENV}; none: an open server)")
    p.add_argument("--cors-allow-origin", action="append", metavar="ORIGIN",
                   help="let web pages from ORIGIN call the API (repeatable; default: no CORS)")
    p.add_argument("--graceful-timeout", type=float, default=30.0,
                   help="on SIGTERM, seconds to let in-flight requests finish before closing (default %(default)s)")
    p.add_argument("--torch-threads", type=int, help="torch intra-op threads (default: torch's, one per core)")
    p.add_argument("--access-log", action="store_true", help="log every request on stderr (uvicorn's access log)")
    _add_loading_flags(p)
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("report", help="rebuild a run's plots, report.md and model card from its files")
    p.add_argument("run_dir", help="a `textclf train` output directory")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("data", help="show a few random labelled examples")
    p.add_argument("task_or_file")
    p.add_argument("overrides", nargs="*", metavar="key=value")
    p.add_argument("--n", type=int, default=10)
    p.add_argument("--split", default="train")
    p.add_argument("--seed", type=int)
    p.add_argument("--data-dir")
    p.set_defaults(func=cmd_data)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``textclf`` console script; returns the exit code."""
    parser = build_parser()
    # argparse cannot take a positional list after an option (train sst2 --output-dir D a=1 b=2), so the
    # key=value items it leaves over are collected here.
    args, extra = parser.parse_known_args(argv)
    stray = [item for item in extra if item.startswith("-") or "=" not in item or not hasattr(args, "overrides")]
    if stray:
        parser.error(f"unrecognized arguments: {' '.join(stray)}")
    if extra:
        args.overrides = [*args.overrides, *extra]
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # no fork warnings from the Rust tokenizer
    os.environ.setdefault("MPLBACKEND", "Agg")  # plots are files: no display needed (search's pyplot plots)
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_warning() if args.verbose else hf_logging.set_verbosity_error()
    try:
        with _opt_ins(args):
            return args.func(args)
    except TextclfError as err:
        print(f"textclf: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
