"""Prometheus metrics of one app (``GET /metrics``), in a registry of its own so that apps never share counters.

Named after TEI's (``te_request_count``, ``te_request_duration``, ``te_batch_next_size``, ``te_queue_size``) with
Prometheus' conventions (a ``_total`` counter, seconds, base units).
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from textclf.serving.batching import BatchStats

# Latency buckets in seconds: from one short sentence alone (a few ms) to a long document under load.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
BATCH_TOKEN_BUCKETS = (64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384)


class ServeMetrics:
    """The app's counters, histograms and gauges.

    Args:
        queue_size: texts waiting for a forward pass, read at each scrape.
        in_flight: requests admitted and not yet answered, read at each scrape.
    """

    def __init__(self, queue_size: Callable[[], float], in_flight: Callable[[], float]):
        self.registry = CollectorRegistry()
        self.requests = Counter("textclf_requests", "HTTP requests answered, by route and status code",
                                ["route", "status"], registry=self.registry)
        self.latency = Histogram("textclf_request_duration_seconds", "time to answer POST /predict, in seconds",
                                 buckets=LATENCY_BUCKETS, registry=self.registry)
        self.texts = Counter("textclf_predicted_texts", "texts classified", registry=self.registry)
        self.batch_size = Histogram("textclf_batch_size", "texts per forward pass", buckets=BATCH_SIZE_BUCKETS,
                                    registry=self.registry)
        self.batch_requests = Histogram("textclf_batch_requests", "requests merged into one forward pass",
                                        buckets=BATCH_SIZE_BUCKETS, registry=self.registry)
        self.batch_tokens = Histogram("textclf_batch_padded_tokens", "padded tokens (rows x longest row) per "
                                      "forward pass", buckets=BATCH_TOKEN_BUCKETS, registry=self.registry)
        self.forward_seconds = Histogram("textclf_forward_duration_seconds", "time of one forward pass, in seconds",
                                         buckets=LATENCY_BUCKETS, registry=self.registry)
        Gauge("textclf_queue_size", "texts waiting for a forward pass",
              registry=self.registry).set_function(queue_size)
        Gauge("textclf_in_flight_requests", "requests admitted and not yet answered",
              registry=self.registry).set_function(in_flight)

    def observe_batch(self, stats: BatchStats) -> None:
        """Record one forward pass (called on the batcher's worker thread; prometheus_client is thread-safe)."""
        self.batch_size.observe(stats.texts)
        self.batch_requests.observe(stats.requests)
        self.batch_tokens.observe(stats.padded_tokens)
        self.forward_seconds.observe(stats.seconds)
        self.texts.inc(stats.texts)

    def render(self) -> tuple[bytes, str]:
        """The text exposition format and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
