"""The dynamic batcher: concurrent requests share forward passes within the token budget, answers unchanged."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from textclf.inference.predictor import Predictor
from textclf.serving.batching import BatcherClosed, DynamicBatcher, InputTooLong

TEXTS = [f"review number {i}: " + "quite good " * (i % 7) for i in range(40)]


@pytest.fixture(scope="module")
def predictor(classifier_dir) -> Predictor:
    return Predictor.from_pretrained(classifier_dir, max_seq_length=32)


def run_concurrently(batcher: DynamicBatcher, requests: list[list[str]], truncate: bool = True) -> list:
    async def main():
        return await asyncio.gather(*(batcher.submit(texts, truncate) for texts in requests), return_exceptions=True)

    batcher.start()
    try:
        return asyncio.run(main())
    finally:
        batcher.close(10)


def test_concurrent_requests_share_forward_passes_and_get_their_own_rows(predictor):
    batcher = DynamicBatcher(predictor, max_batch_tokens=4096, max_wait_ms=50, max_concurrent_requests=100)
    batcher._admitted = 40  # as if 40 requests were admitted by the app (the batcher waits for admitted ones)
    answers = run_concurrently(batcher, [[t] for t in TEXTS])
    reference = predictor.logits(TEXTS)
    np.testing.assert_allclose(np.concatenate(answers), reference, atol=1e-5)
    assert batcher.forward_passes < len(TEXTS) / 4  # 40 requests, a handful of passes


def test_the_token_budget_splits_batches(predictor):
    seen = []
    batcher = DynamicBatcher(predictor, max_batch_tokens=64, max_wait_ms=50, max_concurrent_requests=100,
                             on_batch=seen.append)
    batcher._admitted = 40
    answers = run_concurrently(batcher, [[t] for t in TEXTS])
    np.testing.assert_allclose(np.concatenate(answers), predictor.logits(TEXTS), atol=1e-5)
    assert sum(s.texts for s in seen) == len(TEXTS)
    assert all(s.padded_tokens <= 64 or s.requests == 1 for s in seen)  # one request alone may exceed it
    assert len(seen) > 40 * 8 // 64  # rows of at least 8 tokens: at most 8 per pass


def test_without_batching_every_request_runs_alone(predictor):
    batcher = DynamicBatcher(predictor, 4096, 50, 100, batching=False)
    batcher._admitted = 10
    answers = run_concurrently(batcher, [[t] for t in TEXTS[:10]])
    np.testing.assert_allclose(np.concatenate(answers), predictor.logits(TEXTS[:10]), atol=1e-5)
    assert batcher.forward_passes == 10


def test_pairs_and_single_texts_never_share_a_pass_and_long_inputs_are_refused(predictor):
    batcher = DynamicBatcher(predictor, 4096, 50, 100)
    batcher._admitted = 3
    long_text = "word " * 100
    single, pair, refused = run_concurrently(batcher, [["short"], [("a", "b")], [long_text]], truncate=False)
    np.testing.assert_allclose(single, predictor.logits(["short"]), atol=1e-5)
    np.testing.assert_allclose(pair, predictor.logits([("a", "b")]), atol=1e-5)
    assert isinstance(refused, InputTooLong) and "32 tokens" in str(refused)


def test_a_closed_batcher_refuses_new_work(predictor):
    batcher = DynamicBatcher(predictor, 4096, 1, 10)
    with pytest.raises(BatcherClosed):
        asyncio.run(batcher.submit(["never started"]))
