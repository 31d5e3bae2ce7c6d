"""The dynamic batcher: concurrent requests share forward passes within the token budget, answers equal the
unbatched ones, admission is bounded, and closing finishes what is queued."""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np
import pytest

from textclf.inference.predictor import Predictor
from textclf.serving.batching import BatcherClosed, DynamicBatcher, InputTooLong, Overloaded

TEXTS = [f"review number {i}: " + "quite good " * (i % 7) for i in range(24)]


@pytest.fixture(scope="module")
def predictor(classifier_dir) -> Predictor:
    return Predictor.from_pretrained(classifier_dir, max_seq_length=64, batch_size=4096, max_batch_tokens=4096)


class Recorder:
    """Wraps ``predictor.logits`` to record each call's texts, optionally holding the first call until released."""

    def __init__(self, predictor: Predictor, hold_first: bool = False):
        self.original, self.calls = predictor.logits, []
        self.release = threading.Event()
        self.entered = threading.Event()
        if not hold_first:
            self.release.set()

    def __call__(self, texts):
        self.calls.append(list(texts))
        self.entered.set()
        assert self.release.wait(20)
        return self.original(texts)


async def run_requests(batcher: DynamicBatcher, groups, recorder: Recorder, truncate: bool = True):
    """Submit every group concurrently, each holding an admission as the app does, while the worker is held on a
    first request; release it once all are queued. Returns the results (exceptions included)."""

    async def one(texts):
        with batcher.admit():
            return await batcher.submit(texts, truncate)

    blocker = asyncio.ensure_future(one(["hold the worker"]))
    await asyncio.to_thread(recorder.entered.wait, 10)
    tasks = [asyncio.ensure_future(one(texts)) for texts in groups]
    while batcher.queued_texts < sum(len(g) for g in groups):
        await asyncio.sleep(0.005)
    recorder.release.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    await blocker
    return results


def make_batcher(predictor, monkeypatch, hold_first=True, **kwargs) -> tuple[DynamicBatcher, Recorder]:
    recorder = Recorder(predictor, hold_first)
    monkeypatch.setattr(predictor, "logits", recorder)
    options = {"max_batch_tokens": 4096, "max_wait_ms": 50, "max_concurrent_requests": 64, **kwargs}
    batcher = DynamicBatcher(predictor, **options)
    batcher.start()
    return batcher, recorder


def test_concurrent_requests_share_a_forward_pass_and_get_their_own_rows(predictor, monkeypatch):
    unbatched = [predictor.logits([t]) for t in TEXTS]
    batcher, recorder = make_batcher(predictor, monkeypatch)
    try:
        results = asyncio.run(run_requests(batcher, [[t] for t in TEXTS], recorder))
    finally:
        batcher.close(10)
    assert len(recorder.calls) == 2  # the held first request, then all 24 together
    assert sorted(recorder.calls[1]) == sorted(TEXTS)
    for got, want in zip(results, unbatched):
        assert got.shape == (1, 3) and got.dtype == np.float32
        np.testing.assert_allclose(got, want, atol=1e-5)
    assert batcher.forward_passes == 2


def test_the_token_budget_splits_batches(predictor, monkeypatch):
    """Rows x longest row stays within the budget: 24 texts of at most 64 tokens, budget 128 -> several passes."""
    lengths = [len(ids) for ids in predictor.tokenizer(TEXTS)["input_ids"]]
    batcher, recorder = make_batcher(predictor, monkeypatch, max_batch_tokens=128)
    try:
        results = asyncio.run(run_requests(batcher, [[t] for t in TEXTS], recorder))
    finally:
        batcher.close(10)
    merged = recorder.calls[1:]
    assert 3 <= len(merged) < len(TEXTS)
    assert sorted(t for call in merged for t in call) == sorted(TEXTS)
    by_text = dict(zip(TEXTS, lengths))
    for call in merged:
        assert len(call) == 1 or len(call) * max(by_text[t] for t in call) <= 128
    for got, text in zip(results, TEXTS):
        np.testing.assert_allclose(got, predictor.logits.original([text]), atol=1e-5)


def test_without_batching_every_request_runs_alone(predictor, monkeypatch):
    batcher, recorder = make_batcher(predictor, monkeypatch, batching=False)
    try:
        asyncio.run(run_requests(batcher, [[t] for t in TEXTS[:6]], recorder))
    finally:
        batcher.close(10)
    assert [len(c) for c in recorder.calls] == [1] * 7


def test_pairs_and_single_texts_never_share_a_pass(predictor, monkeypatch):
    groups = [["one text"], [("a first", "a second")], ["another text"], [("x", "y"), ("p", "q")]]
    batcher, recorder = make_batcher(predictor, monkeypatch)
    try:
        results = asyncio.run(run_requests(batcher, groups, recorder))
    finally:
        batcher.close(10)
    for call in recorder.calls[1:]:
        assert len({isinstance(t, tuple) for t in call}) == 1
    for got, texts in zip(results, groups):
        np.testing.assert_allclose(got, predictor.logits.original(texts), atol=1e-5)


def test_a_too_long_input_fails_alone(predictor, monkeypatch):
    groups = [["short"], ["word " * 100], ["also short"]]
    batcher, recorder = make_batcher(predictor, monkeypatch)
    try:
        results = asyncio.run(run_requests(batcher, groups, recorder, truncate=False))
    finally:
        batcher.close(10)
    assert isinstance(results[1], InputTooLong) and "64 tokens" in str(results[1])
    assert results[0].shape == (1, 3) and results[2].shape == (1, 3)
    assert sorted(recorder.calls[1]) == ["also short", "short"]


def test_a_failing_batch_is_retried_request_by_request(predictor, monkeypatch):
    original = predictor.logits

    def failing(texts):
        if "poison" in texts:
            raise RuntimeError("bad input")
        return original(texts)

    recorder = Recorder(predictor, hold_first=True)
    recorder.original = failing
    monkeypatch.setattr(predictor, "logits", recorder)
    batcher = DynamicBatcher(predictor, 4096, 50, 64)
    batcher.start()
    try:
        results = asyncio.run(run_requests(batcher, [["fine"], ["poison"], ["also fine"]], recorder))
    finally:
        batcher.close(10)
    assert isinstance(results[1], RuntimeError)
    np.testing.assert_allclose(results[0], original(["fine"]), atol=1e-5)
    np.testing.assert_allclose(results[2], original(["also fine"]), atol=1e-5)


def test_admission_is_bounded_and_released(predictor):
    batcher = DynamicBatcher(predictor, 4096, 0, max_concurrent_requests=2)
    with batcher.admit(), batcher.admit():
        assert batcher.in_flight == 2
        with pytest.raises(Overloaded), batcher.admit():
            pass
    assert batcher.in_flight == 0
    with batcher.admit():
        assert batcher.in_flight == 1


def test_closing_finishes_the_queue_and_later_requests_are_refused(predictor):
    batcher = DynamicBatcher(predictor, 4096, 0, 8)

    async def scenario():
        with pytest.raises(BatcherClosed):
            await batcher.submit(["not started"])
        batcher.start()
        pending = [asyncio.ensure_future(batcher.submit([t])) for t in TEXTS[:5]]
        await asyncio.sleep(0)
        await asyncio.to_thread(batcher.close, 20)
        done = await asyncio.gather(*pending)
        with pytest.raises(BatcherClosed):
            await batcher.submit(["too late"])
        return done

    done = asyncio.run(scenario())
    assert [d.shape for d in done] == [(1, 3)] * 5
    assert not batcher.running


def test_a_pass_is_reported_before_its_requests_are_answered(predictor):
    """A client that got its answer and then reads /metrics finds its forward pass counted (CI once read 8 of 9
    passes under load): ``on_batch`` runs before the answers, even when it is slow."""
    seen = []

    def slow_report(stats):
        time.sleep(0.2)
        seen.append(stats.texts)

    batcher = DynamicBatcher(predictor, 4096, 0, 8, on_batch=slow_report)
    batcher.start()

    async def one_at_a_time():
        counted = []
        for texts in (TEXTS[:1], TEXTS[1:4]):
            await batcher.submit(texts)
            counted.append(list(seen))
        return counted

    try:
        counted = asyncio.run(one_at_a_time())
    finally:
        batcher.close(10)
    assert counted == [[1], [1, 3]]
