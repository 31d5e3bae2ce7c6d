"""The limits and switches of ``textclf serve``: one dataclass, every default with its source.

Where a limit has a counterpart in Hugging Face text-embeddings-inference (TEI, ``router/src/main.rs``), the default
is TEI's, except ``max_batch_tokens``: TEI's 16,384 is tuned for GPUs; 4,096 padded tokens per forward pass was the
fastest budget of :class:`~textclf.inference.predictor.Predictor` on this project's CPUs
(:data:`textclf.inference.predictor.MAX_BATCH_TOKENS`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

from textclf.errors import ConfigError

# textclf.inference.predictor.MAX_BATCH_TOKENS (a test keeps them equal), written out so that this module, which the
# CLI's parser reads for its defaults, imports neither torch nor transformers.
MAX_BATCH_TOKENS = 4096

API_KEY_ENV = "TEXTCLF_API_KEY"  # read by the CLI when --api-key is not given


@dataclass(frozen=True)
class ServeSettings:
    """What ``textclf serve`` accepts and how it batches.

    Attributes:
        max_batch_tokens: padded tokens (rows x longest row) of the requests merged into one batch; requests are
            gathered until the next one would pass it. Default :data:`~textclf.inference.predictor.MAX_BATCH_TOKENS`
            (4,096, the Predictor's measured optimum over a sorted corpus; TEI's default is 16,384, for GPUs).
        max_forward_tokens: padded tokens of one forward pass: a merged batch is sorted by length and run in passes
            of at most this many (the Predictor's ``max_batch_tokens``), so short texts are not padded to the longest
            one of the batch. 512: a batch of 30 SST-2 sentences took 85-91 ms in passes of 512 against 108-137 ms in
            one pass (bf16, bundled model, 2 CPU cores); 16 IMDb reviews 156 ms against 195 ms. GPUs want more.
        max_wait_ms: how long the oldest waiting request may wait for others to join its batch, in milliseconds.
            2 ms: a fraction of one forward pass (about 10 ms for 32 short sentences on 2 CPU cores), enough for
            requests sent together to arrive; the batcher starts at once when no other request is in flight.
        max_concurrent_requests: requests handled at once (waiting or running); one more gets 429 at once, so the
            queue never grows past it. TEI's default, 512.
        max_client_batch_size: texts in one request; more: 413. TEI's default, 32.
        payload_limit: bytes of one request body; more: 413. TEI's default, 2,000,000.
        max_input_chars: characters of one text (of both texts of a pair); longer: 413, or cut to this length when
            the request truncates. 100,000 (no TEI counterpart): 7x IMDb's longest review, and a bound on the work
            one text can ask for when the checkpoint reads long documents in chunks.
        auto_truncate: the default of a request's ``truncate``: false as in TEI (``--auto-truncate``), so an input
            longer than the checkpoint's max_seq_length is refused (413) unless the request asks to truncate it.
        batching: False runs each request in its own forward pass (for comparison; still off the event loop).
        api_key: when set, every route but ``/health`` needs ``Authorization: Bearer <api_key>`` (401 otherwise).
        cors_allow_origins: origins allowed to call the API from a browser; empty: no CORS headers (same-origin
            only), as TEI without ``--cors-allow-origin``.
        model_id: the name ``/info`` reports (the CLI uses the checkpoint's last two path parts, not its full path).

    Raises:
        ConfigError: a limit that is not positive (``max_wait_ms`` may be 0).
    """

    max_batch_tokens: int = MAX_BATCH_TOKENS
    max_forward_tokens: int = 512
    max_wait_ms: float = 2.0
    max_concurrent_requests: int = 512
    max_client_batch_size: int = 32
    payload_limit: int = 2_000_000
    max_input_chars: int = 100_000
    auto_truncate: bool = False
    batching: bool = True
    api_key: str | None = field(default=None, repr=False)
    cors_allow_origins: tuple[str, ...] = ()
    model_id: str = "textclf"

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "max_wait_ms" and (value < 0):
                raise ConfigError(f"max_wait_ms={value}: give 0 or more milliseconds")
            if f.type == "int" and value < 1:
                raise ConfigError(f"{f.name}={value}: give a positive number")
        if self.api_key is not None and not self.api_key.strip():
            raise ConfigError("api_key is empty: give a secret, or no key for an open server")
