"""Dynamic batching: requests that arrive together share one forward pass, run on one worker thread.

The event loop only enqueues a request and awaits its future; the worker thread gathers waiting requests until the
next would pass the padded-token budget (rows x longest row, as :func:`textclf.inference.predictor.length_batches`
counts it) or the oldest has waited ``max_wait_ms``, calls :meth:`Predictor.logits` once on the merged texts, and
hands each request its rows. It stops waiting early when every admitted request is already in the batch (one client
at a time pays no wait). Admission is bounded: :meth:`DynamicBatcher.admit` refuses a request beyond
``max_concurrent_requests`` at once (TEI's ``try_acquire_permit``), so the queue never holds more.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from textclf.data.lengths import token_lengths
from textclf.inference.predictor import Predictor, Text

logger = logging.getLogger(__name__)


class Overloaded(Exception):
    """``max_concurrent_requests`` requests are already in flight (HTTP 429)."""


class InputTooLong(Exception):
    """An input has more tokens than the checkpoint's max_seq_length and the request does not truncate (HTTP 413)."""


class BatcherClosed(Exception):
    """The batcher is not running: not started yet, or shutting down (HTTP 503)."""


@dataclass
class BatchStats:
    """One forward pass: what :class:`DynamicBatcher` reports to its ``on_batch`` callback.

    Attributes:
        requests: requests merged into it.
        texts: texts in it.
        padded_tokens: estimated rows x longest row (the token budget's measure).
        seconds: wall time of the :meth:`Predictor.logits` call.
    """

    requests: int
    texts: int
    padded_tokens: int
    seconds: float


@dataclass
class _Item:
    texts: list[Text]
    truncate: bool
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future
    pairs: bool = False
    enqueued: float = field(default_factory=time.perf_counter)
    rows: int = 0  # model inputs (windows with truncation=chunks)
    longest: int = 0  # tokens of the longest row


class DynamicBatcher:
    """Gathers concurrent :meth:`submit` calls into few :meth:`Predictor.logits` calls on one worker thread.

    Args:
        predictor: the model; only the worker thread calls it (so its tokenizer and model are never shared).
        max_batch_tokens: padded-token budget of one merged batch (a single request above it still runs, alone).
        max_wait_ms: longest wait of the oldest request for others to join, in milliseconds.
        max_concurrent_requests: admitted requests at once (:meth:`admit`).
        batching: False: one request per forward pass.
        on_batch: called on the worker thread after every forward pass with its :class:`BatchStats`, before
            the pass's requests are answered.
    """

    def __init__(self, predictor: Predictor, max_batch_tokens: int, max_wait_ms: float,
                 max_concurrent_requests: int, batching: bool = True,
                 on_batch: Callable[[BatchStats], None] | None = None):
        self.predictor = predictor
        self.max_batch_tokens = max_batch_tokens
        self.max_wait = max_wait_ms / 1000.0
        self.max_concurrent_requests = max_concurrent_requests
        self.batching = batching
        self.on_batch = on_batch
        self.forward_passes = 0
        self._queue: queue.SimpleQueue[_Item | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._admitted = 0
        self._queued_texts = 0
        self._thread: threading.Thread | None = None
        self._closing = False
        tokenizer = predictor.tokenizer
        self._special = tokenizer.num_special_tokens_to_add()
        self._special_pair = tokenizer.num_special_tokens_to_add(pair=True)

    # --- the event loop's side ---------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the worker thread (idempotent)."""
        if self._thread is None or not self._thread.is_alive():
            self._closing = False
            self._thread = threading.Thread(target=self._run, name="textclf-batcher", daemon=True)
            self._thread.start()

    def close(self, timeout: float | None = None) -> None:
        """Finish what is queued, then stop the worker thread; later :meth:`submit` calls raise BatcherClosed."""
        self._closing = True
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout)

    @property
    def running(self) -> bool:
        """True while the worker thread is alive and not shutting down."""
        return self._thread is not None and self._thread.is_alive() and not self._closing

    @property
    def in_flight(self) -> int:
        """Requests admitted and not yet released."""
        return self._admitted

    @property
    def queued_texts(self) -> int:
        """Texts waiting for a forward pass (not yet gathered into one)."""
        return self._queued_texts

    @contextlib.contextmanager
    def admit(self) -> Iterator[None]:
        """Hold one of ``max_concurrent_requests`` places for the duration of a request.

        Raises:
            Overloaded: every place is taken (no waiting: the caller answers 429).
        """
        with self._lock:
            if self._admitted >= self.max_concurrent_requests:
                raise Overloaded(f"model is overloaded: {self.max_concurrent_requests} requests in flight")
            self._admitted += 1
        try:
            yield
        finally:
            with self._lock:
                self._admitted -= 1

    async def submit(self, texts: Sequence[Text], truncate: bool = True) -> np.ndarray:
        """The logits of ``texts`` (all single strings, or all (text, text_pair) tuples), computed in a shared batch.

        Args:
            truncate: False: refuse inputs longer than the checkpoint's max_seq_length tokens (checkpoints that
                read long documents in chunks read every token, so nothing is refused there).

        Returns:
            (len(texts), num_labels) float32, as :meth:`Predictor.logits` returns.

        Raises:
            InputTooLong: ``truncate`` is False and an input is too long.
            BatcherClosed: the batcher is not running.
            Exception: whatever :meth:`Predictor.logits` raised (the caller answers 424).
        """
        if not self.running:
            raise BatcherClosed("the model is not ready (starting or shutting down)")
        if len(texts) == 0:
            return np.zeros((0, len(self.predictor.id2label)), dtype=np.float32)
        loop = asyncio.get_running_loop()
        item = _Item(list(texts), truncate, loop, loop.create_future(), pairs=isinstance(texts[0], (tuple, list)))
        with self._lock:
            self._queued_texts += len(item.texts)
        self._queue.put(item)
        return await item.future

    # --- the worker thread's side ------------------------------------------------------------------------------

    def _run(self) -> None:
        carry: _Item | None = None
        while True:
            item = carry if carry is not None else self._queue.get()
            carry = None
            if item is None:
                return
            batch = [item] if self._measure(item) else []
            if self.batching and batch:
                batch, carry = self._gather(batch)
            if batch:
                self._forward(batch)

    def _gather(self, batch: list[_Item]) -> tuple[list[_Item], _Item | None]:
        """Add waiting requests to ``batch`` while the budget and the oldest request's wait allow; returns the batch
        and a request that did not fit (the first of the next batch), if any."""
        rows, longest = batch[0].rows, batch[0].longest
        deadline = batch[0].enqueued + self.max_wait
        while rows * longest < self.max_batch_tokens:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                remaining = deadline - time.perf_counter()
                if remaining <= 0 or self._admitted <= len(batch):  # nobody else could join in time
                    break
                try:
                    item = self._queue.get(timeout=remaining)
                except queue.Empty:
                    break
            if item is None:
                self._queue.put(None)  # close() was called: run this batch, then stop
                break
            if not self._measure(item):
                continue
            if (item.pairs != batch[0].pairs  # Predictor.logits takes all strings or all pairs
                    or (rows + item.rows) * max(longest, item.longest) > self.max_batch_tokens):
                return batch, item
            batch.append(item)
            rows, longest = rows + item.rows, max(longest, item.longest)
        return batch, None

    def _measure(self, item: _Item) -> bool:
        """Count the rows and the longest row of ``item`` (tokenizing in full); answer at once (and return False)
        when it is cancelled or too long. A request carried over to the next batch is measured once."""
        if item.rows:
            return True
        with self._lock:
            self._queued_texts -= len(item.texts)
        if item.future.cancelled():  # the client went away
            return False
        predictor = self.predictor
        firsts = [t[0] for t in item.texts] if item.pairs else item.texts
        seconds = [t[1] for t in item.texts] if item.pairs else None
        try:
            lengths = token_lengths(predictor.tokenizer, firsts, seconds).tolist()
        except Exception as err:  # noqa: BLE001 - a tokenizer failure belongs to this request alone
            self._resolve(item, error=err)
            return False
        limit = predictor.max_seq_length
        chunks = predictor.truncation == "chunks"
        if not item.truncate and not chunks and max(lengths) > limit:
            self._resolve(item, error=InputTooLong(
                f"`inputs` must have less than {limit} tokens. Given: {max(lengths)} (send truncate=true to cut "
                "longer inputs to the checkpoint's max_seq_length)"))
            return False
        if chunks:  # windows of `limit` tokens overlapping by `stride` (textclf.data.longdoc.encode_texts)
            content, step = limit - self._special, max(1, limit - self._special - predictor.stride)
            item.rows = sum(1 + math.ceil(max(0, n - self._special - content) / step) for n in lengths)
        else:
            item.rows = len(lengths)
        item.longest = min(max(lengths), limit)
        return True

    def _forward(self, batch: list[_Item]) -> None:
        texts = [text for item in batch for text in item.texts]
        started = time.perf_counter()
        try:
            logits = self.predictor.logits(texts)
        except Exception as err:
            if len(batch) > 1:
                logger.warning("a merged batch of %d requests failed (%s): running them one by one", len(batch), err)
                for item in batch:
                    self._forward([item])
                return
            logger.exception("prediction failed")
            self._resolve(batch[0], error=err)
            return
        seconds = time.perf_counter() - started
        self.forward_passes += 1
        try:  # the stats before the answers: a client that got its answer then reads /metrics finds its batch counted
            if self.on_batch is not None:
                self.on_batch(BatchStats(len(batch), len(texts),
                                         sum(i.rows for i in batch) * max(i.longest for i in batch), seconds))
        finally:
            start = 0
            for item in batch:
                self._resolve(item, result=logits[start:start + len(item.texts)])
                start += len(item.texts)

    @staticmethod
    def _resolve(item: _Item, result: Any = None, error: BaseException | None = None) -> None:
        def settle() -> None:
            if item.future.done():  # cancelled meanwhile
                return
            if error is not None:
                item.future.set_exception(error)
            else:
                item.future.set_result(result)

        try:
            item.loop.call_soon_threadsafe(settle)
        except RuntimeError:  # the loop is closed: nobody is waiting any more
            pass
