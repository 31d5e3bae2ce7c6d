"""``textclf serve`` as a real uvicorn process on loopback: start, answer, SIGTERM with a request in flight."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from conftest import free_port

from textclf.inference.predictor import Predictor


@pytest.fixture(scope="module")
def slow_checkpoint(tmp_path_factory, bundled_tokenizer) -> Path:
    """A random-init 4-layer, hidden-256 BERT classifier: a batch of long texts takes a second or so here, long
    enough to be in flight when the signal comes."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    path = tmp_path_factory.mktemp("slow-classifier")
    config = BertConfig(vocab_size=bundled_tokenizer.vocab_size, hidden_size=256, num_hidden_layers=4,
                        num_attention_heads=4, intermediate_size=1024, num_labels=2,
                        id2label={0: "neg", 1: "pos"}, label2id={"neg": 0, "pos": 1},
                        problem_type="single_label_classification")
    config.textclf = {"text_columns": ["text"], "max_seq_length": 512, "truncation": "head"}
    with torch.random.fork_rng():
        torch.manual_seed(0)
        BertForSequenceClassification(config).save_pretrained(path)
    bundled_tokenizer.save_pretrained(path)
    return path


def start(checkpoint: Path, port: int, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false"}
    # fp32: the answers are compared with an fp32 Predictor's (auto would pick bf16 on a CPU that has it)
    return subprocess.Popen([sys.executable, "-m", "textclf", "serve", str(checkpoint), "--port", str(port),
                             "--precision", "fp32", *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)


def wait_healthy(url: str, process: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stderr.read().decode()
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise AssertionError("the server did not become healthy")


def in_flight(url: str) -> float:
    for line in httpx.get(f"{url}/metrics", timeout=5).text.splitlines():
        if line.startswith("textclf_in_flight_requests "):
            return float(line.split()[1])
    return 0.0


@pytest.mark.slow  # multi-process or trains several runs: CI runs it, -m 'not slow' skips it
def test_serve_answers_over_loopback_and_finishes_in_flight_work_on_sigterm(slow_checkpoint):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = start(slow_checkpoint, port)
    try:
        wait_healthy(url, process)
        answer = httpx.post(f"{url}/predict", json={"inputs": "a fine film"}, timeout=30)
        assert answer.status_code == 200
        expected = Predictor.from_pretrained(slow_checkpoint).predict("a fine film")
        assert answer.json()[0]["label"] == expected["label"]
        assert abs(answer.json()[0]["score"] - expected["score"]) < 1e-4
        assert httpx.get(f"{url}/info", timeout=5).json()["labels"] == ["neg", "pos"]

        texts = [f"{i} " + "a long and winding review " * 100 for i in range(32)]  # 32 x 512 tokens
        result = {}
        client = threading.Thread(target=lambda: result.setdefault("r", httpx.post(
            f"{url}/predict", json={"inputs": texts, "truncate": True}, timeout=60)))
        client.start()
        deadline = time.monotonic() + 20
        while in_flight(url) < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert in_flight(url) >= 1
        process.send_signal(signal.SIGTERM)
        client.join(60)
        code = process.wait(60)
    finally:
        if process.poll() is None:
            process.kill()
    assert result["r"].status_code == 200 and len(result["r"].json()) == 32  # the request in flight finished
    assert code == 0, process.stderr.read().decode()[-2000:]
    with pytest.raises(httpx.TransportError):  # and nothing listens any more
        httpx.get(f"{url}/health", timeout=2)


def test_serve_refuses_a_directory_that_is_not_a_checkpoint(tmp_path):
    process = subprocess.run([sys.executable, "-m", "textclf", "serve", str(tmp_path), "--port", str(free_port())],
                             check=False, capture_output=True, text=True, timeout=120)
    assert process.returncode != 0
    last = process.stderr.strip().splitlines()[-1]
    assert last.startswith("textclf: error:") and "not a checkpoint directory" in last
    assert process.stdout == ""


def test_bad_limits_are_one_error_line_before_the_model_loads(capsys, tmp_path):
    from textclf.cli import main

    code = main(["serve", str(tmp_path), "--max-batch-tokens", "0"])
    captured = capsys.readouterr()
    assert code == 2 and captured.out == ""
    assert captured.err.strip().splitlines() == ["textclf: error: max_batch_tokens=0: give a positive number"]
