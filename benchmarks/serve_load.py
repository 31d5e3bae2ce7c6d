"""Load benchmark of ``textclf serve`` against a hand-written FastAPI + ``transformers.pipeline`` server.

Starts each server as its own process on loopback and drives it with a bounded async HTTP client (aiohttp, one text
per request, at most ``concurrency`` requests outstanding) with SST-2 validation sentences and IMDb test reviews
from the data mirror (``$TEXTCLF_DATA_DIR`` or ../shared/data). Servers:

- ``textclf``: ``textclf serve CHECKPOINT`` as a user starts it (dynamic batching, ``--precision auto``: bf16 where
  the CPU has it natively, else fp32); ``textclf_fp32``: the same with ``--precision fp32`` (where auto is bf16);
- ``unbatched``: ``textclf`` with ``--no-batching``;
- ``naive``: what a user writes by hand: FastAPI, one ``transformers.pipeline("text-classification")`` call per
  request in FastAPI's thread pool (this file, ``--naive-server``).

Every answer is checked against :class:`textclf.inference.predictor.Predictor` on the same text (same top label,
score within 1e-3; bf16 against a bf16 Predictor, score within 2e-2); ``mismatched_answers`` counts textclf's
servers, the naive server's own count (its pipeline cuts at the model's 512 tokens, not the checkpoint's
max_seq_length) is apart. Each server is warmed up first with 256 SST-2 *training* sentences at concurrency 32 (not
measured: every server's first requests pay for allocations and kernel caches). Then, with
``--max-concurrent-requests 64``, 128 concurrent clients: only 200s and 429s may come back, and the server's
resident memory before and after is printed.

    python benchmarks/serve_load.py --quick                       # trains a small SST-2 checkpoint once if needed
    python benchmarks/serve_load.py --checkpoint runs/sst2/model  # any textclf checkpoint

Ends with one JSON line: ``rps_c32_textclf``, ``rps_c32_naive``, ``p99_ms_c32`` (textclf's), ``failed_requests``,
``mismatched_answers``, ``precision_textclf``, the fp32 and unbatched numbers, and the overload check.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
CACHE = Path(os.environ.get("TEXTCLF_BENCH_CACHE", Path(tempfile.gettempdir()) / "textclf-bench"))


def mirror() -> Path:
    return Path(os.environ.get("TEXTCLF_DATA_DIR") or REPO.parent / "shared" / "data")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def naive_server(checkpoint: str, port: int) -> None:
    """The hand-written baseline: FastAPI + pipeline, one call per request (sync endpoint: FastAPI's thread pool)."""
    import uvicorn
    from fastapi import Body, FastAPI
    from transformers import pipeline

    classifier = pipeline("text-classification", model=checkpoint, tokenizer=checkpoint, device="cpu", top_k=None)
    app = FastAPI()

    @app.get("/health")
    def health() -> dict:
        return {}

    @app.post("/predict")
    def predict(body: dict = Body(...)) -> list:  # noqa: B008 - FastAPI's way to take the JSON body
        return classifier(body["inputs"], truncation=True)

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


def default_checkpoint() -> Path:
    """A small SST-2 checkpoint trained once (2,000 sentences, one epoch) and cached."""
    path = CACHE / "serve-sst2" / "model"
    if not (path / "config.json").is_file():
        from textclf.config import load_recipe
        from textclf.training import train

        print(f"training a benchmark checkpoint into {path.parent} ...", file=sys.stderr)
        train(load_recipe("sst2", ["max_train_samples=2000", "method=finetune", "min_train_steps=0",
                                   "report_to=none"]), path.parent)
    return path


def start(command: list[str], port: int) -> subprocess.Popen:
    import httpx

    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               env={**os.environ, "TOKENIZERS_PARALLELISM": "false"})
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited: {process.stderr.read().decode()[-2000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                return process
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    process.kill()
    raise RuntimeError("server did not become healthy")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def drive(port: int, texts: list[str], concurrency: int) -> dict:
    """Send every text as one request, ``concurrency`` at a time: status codes, latencies (s), answers, seconds.

    The client is aiohttp: on the same 2 cores as the server, a client that costs less CPU per request (httpx's
    async client costs several times more) leaves the server more of the machine.
    """
    import aiohttp

    semaphore = asyncio.Semaphore(concurrency)
    latencies, statuses, answers = [0.0] * len(texts), [0] * len(texts), [None] * len(texts)
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(f"http://127.0.0.1:{port}", connector=connector,
                                     timeout=aiohttp.ClientTimeout(total=120)) as client:
        async def one(i: int) -> None:
            async with semaphore:
                started = time.perf_counter()
                try:
                    async with client.post("/predict", json={"inputs": texts[i], "truncate": True}) as response:
                        statuses[i] = response.status
                        if response.status == 200:
                            answers[i] = await response.json()
                except (aiohttp.ClientError, asyncio.TimeoutError):
                    statuses[i] = -1
                latencies[i] = time.perf_counter() - started

        started = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(len(texts))))
        seconds = time.perf_counter() - started
    return {"statuses": statuses, "latencies": latencies, "answers": answers, "seconds": seconds}


def top(answer) -> dict:
    """The top label of an answer: TEI's sorted list (textclf) or the pipeline's top_k=None list."""
    rows = answer[0] if answer and isinstance(answer[0], list) else answer
    return max(rows, key=lambda d: d["score"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", help="a textclf checkpoint (default: a small SST-2 one, trained once)")
    parser.add_argument("--quick", action="store_true", help="fewer requests per level (a few minutes)")
    parser.add_argument("--concurrency", nargs="+", type=int, default=[1, 8, 32, 128])
    parser.add_argument("--naive-server", nargs=2, metavar=("CHECKPOINT", "PORT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.naive_server:
        naive_server(args.naive_server[0], int(args.naive_server[1]))
        return 0
    from textclf.hardware import bf16_available
    from textclf.inference.predictor import Predictor

    checkpoint = Path(args.checkpoint) if args.checkpoint else default_checkpoint()
    n_sst2, n_imdb = (256, 32) if args.quick else (872, 200)
    corpora = {"sst2": pd.read_parquet(mirror() / "glue-sst2" / "validation.parquet")["sentence"].tolist()[:n_sst2],
               "imdb": pd.read_parquet(mirror() / "imdb" / "test.parquet")["text"].sample(
                   n_imdb, random_state=0).tolist()}
    precisions = ["fp32"] + (["bf16"] if bf16_available() else [])
    references = {p: {name: Predictor.from_pretrained(checkpoint, precision=p).predict(texts)
                      for name, texts in corpora.items()} for p in precisions}
    warmup = pd.read_parquet(mirror() / "glue-sst2" / "train.parquet")["sentence"].sample(
        256, random_state=0).tolist()
    serve = [sys.executable, "-m", "textclf", "serve", str(checkpoint)]
    auto = precisions[-1]  # what --precision auto picks (a PyTorch checkpoint)
    servers = {"textclf": (serve, auto), "unbatched": (serve + ["--no-batching"], auto),
               "naive": ([sys.executable, __file__, "--naive-server", str(checkpoint)], "fp32")}
    if auto == "bf16":
        servers["textclf_fp32"] = (serve + ["--precision", "fp32"], "fp32")
    rows, failed, mismatched = [], 0, 0
    for name, (command, precision) in servers.items():
        port = free_port()
        process = start(command + (["--port", str(port)] if name != "naive" else [str(port)]), port)
        try:
            asyncio.run(drive(port, warmup, 32))
            for corpus, texts in corpora.items():
                levels = args.concurrency if corpus == "sst2" else [c for c in args.concurrency if c in (8, 32)]
                for concurrency in levels:
                    if name == "unbatched" and corpus == "imdb" and args.quick:
                        continue
                    result = asyncio.run(drive(port, texts, concurrency))
                    bad = sum(s != 200 for s in result["statuses"])
                    wrong = 0
                    for answer, want in zip(result["answers"], references[precision][corpus]):
                        if answer is None:
                            continue
                        got = top(answer)
                        tolerance = 1e-3 if precision == "fp32" else 2e-2
                        wrong += got["label"] != want["label"] or abs(got["score"] - want["score"]) > tolerance
                    failed = failed + bad
                    if name != "naive":  # the pipeline cuts at the model's 512 tokens, not the checkpoint's length
                        mismatched += wrong
                    ms = np.percentile(np.asarray(result["latencies"]) * 1000, [50, 95, 99])
                    row = {"server": name, "corpus": corpus, "concurrency": concurrency,
                           "rps": len(texts) / result["seconds"], "p50_ms": ms[0], "p95_ms": ms[1], "p99_ms": ms[2],
                           "failed": bad, "mismatched": wrong}
                    rows.append(row)
                    print(json.dumps({k: round(v, 1) if isinstance(v, float) else v for k, v in row.items()}),
                          file=sys.stderr, flush=True)
        finally:
            process.terminate()
            process.wait(60)
    # Overload: 128 clients against a limit of 64, three rounds after the warm-up: memory is flat when the later
    # rounds add nothing to what the first one (and the warm-up) allocated.
    port = free_port()
    process = start(serve + ["--port", str(port), "--max-concurrent-requests", "64"], port)
    statuses, rss = [], []
    try:
        asyncio.run(drive(port, warmup, 32))
        rss.append(rss_mb(process.pid))
        texts = corpora["sst2"] * (2 if args.quick else 4)
        for _ in range(3):
            statuses += asyncio.run(drive(port, texts, 128))["statuses"]
            rss.append(rss_mb(process.pid))
    finally:
        process.terminate()
        process.wait(60)
    codes = pd.Series(statuses).value_counts().to_dict()
    overload = {"statuses": {str(k): int(v) for k, v in codes.items()}, "rss_mb_after_warmup": round(rss[0], 1),
                "rss_mb_after_rounds": [round(r, 1) for r in rss[1:]],
                "rss_growth_mb_rounds_2_3": round(rss[-1] - rss[1], 1)}
    table = pd.DataFrame(rows)
    print("| server | texts | concurrency | requests/s | p50 ms | p95 ms | p99 ms | failed | mismatched |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['server']} | {r['corpus']} | {r['concurrency']} | {r['rps']:.1f} | {r['p50_ms']:.0f} | "
              f"{r['p95_ms']:.0f} | {r['p99_ms']:.0f} | {r['failed']} | {r['mismatched']} |")
    print(f"overload (limit 64, 128 clients, 3 rounds): {overload}")

    def pick(server: str, key: str) -> float | None:
        hit = table[(table.server == server) & (table.corpus == "sst2") & (table.concurrency == 32)]
        return round(float(hit[key].iloc[0]), 1) if len(hit) else None

    summary = {"rps_c32_textclf": pick("textclf", "rps"), "precision_textclf": auto,
               "rps_c32_textclf_fp32": pick("textclf_fp32" if auto == "bf16" else "textclf", "rps"),
               "p99_ms_c32_textclf_fp32": pick("textclf_fp32" if auto == "bf16" else "textclf", "p99_ms"),
               "rps_c32_unbatched": pick("unbatched", "rps"), "rps_c32_naive": pick("naive", "rps"),
               "p99_ms_c32": pick("textclf", "p99_ms"), "failed_requests": failed, "mismatched_answers": mismatched,
               "mismatched_naive": int(table[table.server == "naive"]["mismatched"].sum()),
               "overload_only_200_429": set(overload["statuses"]) <= {"200", "429"}, **overload}
    if summary["rps_c32_textclf"] and summary["rps_c32_naive"]:
        summary["speedup_c32"] = round(summary["rps_c32_textclf"] / summary["rps_c32_naive"], 2)
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
