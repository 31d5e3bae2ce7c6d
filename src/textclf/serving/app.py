"""The FastAPI app of ``textclf serve``: TEI's ``/predict``, ``/health``, ``/info``, Prometheus ``/metrics``, the demo
page at ``/`` and OpenAPI at ``/docs``, with TEI's limits and error shapes.

One pure-ASGI middleware (cheaper than Starlette's ``BaseHTTPMiddleware`` at thousands of requests per second) does,
in this order: the payload limit (413 before the body is read), the API key (401 on every route but ``/health``) and
the request counter and latency histogram. CORS headers come only with ``cors_allow_origins``.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import time
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from textclf import __version__
from textclf.hardware import bf16_available
from textclf.inference.onnx_backend import is_onnx_export
from textclf.inference.predictor import Predictor
from textclf.serving.batching import BatcherClosed, DynamicBatcher, InputTooLong, Overloaded
from textclf.serving.metrics import ServeMetrics
from textclf.serving.protocol import (
    ApiError,
    ErrorResponse,
    Prediction,
    PredictRequest,
    clip_chars,
    format_predictions,
    is_pair_task,
    num_chars,
    parse_inputs,
)
from textclf.serving.settings import ServeSettings
from textclf.tasks import MULTI_LABEL

logger = logging.getLogger(__name__)

ROUTES = ("/", "/health", "/info", "/predict", "/metrics", "/docs", "/docs/oauth2-redirect", "/openapi.json")
PUBLIC_ROUTES = ("/health",)  # the one route an API key does not guard (load balancers probe it)
# The demo page loads nothing from elsewhere; this header makes the browser hold it to that.
DEMO_CSP = ("default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; "
            "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
WARMUP_TEXT = "a warm-up request"
INPUTS_SHAPE = ("`inputs` must be a string, a pair of strings [string, string] or a batch of mixed strings and pairs "
                "[[string], [string, string], ...]")
BODY_SHAPE = 'send a JSON object such as {"inputs": "a text"}'
ERRORS = {status: {"model": ErrorResponse} for status in (401, 413, 422, 424, 429, 503)}


def serve_precision(requested: str, checkpoint: str | Path) -> str:
    """``--precision auto``: ``bf16`` where the machine has native bf16 (:func:`textclf.hardware.bf16_available`) and
    the checkpoint is a PyTorch one, else ``fp32`` (an ONNX export runs as exported); other values unchanged.

    bf16 answers differ from fp32 ones by about 1e-2 in score (benchmarks/serve_load.py checks each against a bf16
    Predictor), for about twice the requests/s on an AVX512-BF16 CPU.
    """
    if requested != "auto":
        return requested
    return "bf16" if bf16_available() and not is_onnx_export(checkpoint) else "fp32"


def warmup_batches(max_batch_tokens: int, max_seq_length: int) -> list[list[str]]:
    """What the server answers before ``/health`` says 200: one text, then batches of 4, 12, 28 and 60 words, as many
    rows as the token budget takes (at most 32): the first forward pass of a shape is 15-25% slower than the next
    (allocator and oneDNN caches, measured on the bundled model in bf16), and the warm-up pays that, not the first
    users."""
    batches = [[WARMUP_TEXT]]
    for words in (4, 12, 28, 60):
        tokens = min(max_seq_length, words + 2)
        rows = max(1, min(32, max_batch_tokens // max(1, tokens)))
        batches.append([" ".join(["warm"] * words)] * rows)
    return batches


def create_app(predictor: Predictor, settings: ServeSettings | None = None) -> FastAPI:
    """A FastAPI app serving ``predictor``.

    The batcher's worker thread starts, and answers a warm-up request, when the app starts (its lifespan); until
    then ``/health`` and ``/predict`` answer 503. It stops, after finishing what is queued, when the app stops.

    Args:
        predictor: any checkpoint :meth:`Predictor.from_pretrained` loads (PyTorch or ONNX, every method and task).
        settings: limits and switches (default :class:`ServeSettings`).
    """
    settings = settings or ServeSettings()
    pair_task = is_pair_task(predictor)
    batcher = DynamicBatcher(predictor, settings.max_batch_tokens, settings.max_wait_ms,
                             settings.max_concurrent_requests, batching=settings.batching)
    metrics = ServeMetrics(queue_size=lambda: batcher.queued_texts, in_flight=lambda: batcher.in_flight)
    batcher.on_batch = metrics.observe_batch
    status = {"ready": False}

    @asynccontextmanager
    async def lifespan(_: FastAPI):
        batcher.start()
        pair_ok = pair_task and predictor.truncation == "head"
        for texts in warmup_batches(settings.max_batch_tokens, predictor.max_seq_length):
            await batcher.submit([(t, t) for t in texts] if pair_ok else texts)
        status["ready"] = True
        logger.info("textclf serve: %s ready (%s, %s, %s)", settings.model_id, predictor.problem_type,
                    predictor.backend, predictor.precision)
        try:
            yield
        finally:
            status["ready"] = False
            await asyncio.to_thread(batcher.close, 60.0)

    app = FastAPI(title="textclf serve", version=__version__, lifespan=lifespan,
                  description="A text classifier behind Hugging Face text-embeddings-inference's `/predict` API.")
    app.state.batcher, app.state.predictor, app.state.settings, app.state.metrics = (batcher, predictor, settings,
                                                                                      metrics)
    demo_page = resources.files("textclf.serving").joinpath("demo.html").read_text(encoding="utf-8")

    @app.exception_handler(ApiError)
    async def api_error(_: Request, err: ApiError) -> JSONResponse:
        return JSONResponse(err.body(), status_code=err.status_code)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_: Request, err: RequestValidationError) -> JSONResponse:
        return JSONResponse(ApiError("invalid_request", request_error(err.errors())).body(), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, err: StarletteHTTPException) -> JSONResponse:
        if err.status_code == 400:  # FastAPI's "error parsing the body": not UTF-8, or JSON nested too deeply
            return JSONResponse(ApiError("invalid_request", f"the body cannot be read as JSON (UTF-8): {BODY_SHAPE}"
                                         ).body(), status_code=422)
        kind = {404: "not_found", 405: "method_not_allowed"}.get(err.status_code, "invalid_request")
        return JSONResponse({"error": str(err.detail), "error_type": kind}, status_code=err.status_code,
                            headers=getattr(err, "headers", None))

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def demo() -> HTMLResponse:
        return HTMLResponse(demo_page, headers={"Content-Security-Policy": DEMO_CSP})

    @app.get("/health", responses={200: {"description": "the model is loaded and answered a warm-up request"},
                                   503: {"model": ErrorResponse}})
    async def health() -> Response:
        """200 once the model is loaded and has answered a warm-up request (and its worker thread runs)."""
        if not (status["ready"] and batcher.running):
            raise ApiError("unhealthy", "unhealthy")
        return Response(status_code=200)

    info = model_info(predictor, settings, pair_task)

    @app.get("/info", responses=ERRORS)
    async def get_info() -> dict[str, Any]:
        """The served model and the server's limits."""
        return info

    @app.get("/metrics", response_class=Response, responses=ERRORS)
    async def get_metrics() -> Response:
        """Prometheus metrics (text exposition format)."""
        body, content_type = metrics.render()
        return Response(body, media_type=content_type)

    @app.post("/predict", response_model=list[Prediction] | list[list[Prediction]], responses=ERRORS)
    async def predict(body: PredictRequest) -> Response:
        """Labels and scores, highest first, for a text, a pair, or a batch (then a list of lists)."""
        if not status["ready"]:
            raise ApiError("unhealthy", "the model is not ready (starting or shutting down)")
        truncate = settings.auto_truncate if body.truncate is None else body.truncate
        texts, batch = parse_inputs(body.inputs, pair_task)
        if len(texts) > settings.max_client_batch_size:
            raise ApiError("validation", f"batch size {len(texts)} > maximum allowed batch size "
                           f"{settings.max_client_batch_size}")
        for i, text in enumerate(texts):
            if num_chars(text) > settings.max_input_chars:
                if not truncate:
                    raise ApiError("validation", f"input {i} has {num_chars(text)} characters > maximum allowed "
                                   f"{settings.max_input_chars} (send truncate=true to cut it)")
                texts[i] = clip_chars(text, settings.max_input_chars)
        pairs = [i for i, t in enumerate(texts) if isinstance(t, tuple)]
        if pairs and predictor.truncation != "head":
            raise ApiError("tokenizer", f"this checkpoint cuts long texts with truncation={predictor.truncation}, "
                           "which reads single texts, not [text, text_pair] pairs: send strings")
        try:
            with batcher.admit():
                logits = await _logits(batcher, texts, pairs, truncate, len(predictor.id2label))
        except Overloaded as err:
            raise ApiError("overloaded", str(err)) from None
        except InputTooLong as err:
            raise ApiError("validation", str(err)) from None
        except BatcherClosed as err:
            raise ApiError("unhealthy", str(err)) from None
        except ApiError:
            raise
        except Exception as err:  # noqa: BLE001 - the model failed: TEI's 424
            detail = str(err).splitlines()[0][:200] if str(err) else ""
            raise ApiError("backend", f"inference failed: {type(err).__name__}" + (f": {detail}" if detail else "")
                           ) from None
        answers = format_predictions(predictor, logits, body.raw_scores)
        return Response(json.dumps(answers if batch else answers[0]), media_type="application/json")

    app.add_middleware(GuardMiddleware, settings=settings, metrics=metrics)
    if settings.cors_allow_origins:  # added last, so outermost: preflight requests carry no API key
        app.add_middleware(CORSMiddleware, allow_origins=list(settings.cors_allow_origins),
                           allow_methods=["GET", "POST"], allow_headers=["Authorization", "Content-Type"])
    return app


def request_error(errors: list[dict[str, Any]]) -> str:
    """One line for a body FastAPI could not read into :class:`PredictRequest` (its first error, in TEI's words)."""
    first = errors[0] if errors else {}
    kind = first.get("type")
    loc = [str(p) for p in first.get("loc", ()) if p != "body"]
    if kind == "json_invalid":
        reason = (first.get("ctx") or {}).get("error") or "JSON decode error"
        return f"the body is not valid JSON ({reason} at character {loc[0] if loc else '?'}): {BODY_SHAPE}"
    if not loc:  # the body as a whole
        if kind == "missing":
            return f"the body is empty: {BODY_SHAPE}"
        if isinstance(first.get("input"), bytes):  # not read as JSON at all
            return f"the body is not read as JSON: send it with the header Content-Type: application/json ({BODY_SHAPE})"
        return f"the body is not a JSON object: {BODY_SHAPE}"
    if loc[:1] == ["inputs"]:  # a union: pydantic's first reason misleads
        return f"`inputs` is missing: {BODY_SHAPE}" if kind == "missing" else INPUTS_SHAPE
    return f"{'.'.join(loc)}: {first.get('msg', 'invalid request')}"


async def _logits(batcher: DynamicBatcher, texts: list, pairs: list[int], truncate: bool,
                  num_labels: int) -> np.ndarray:
    """(len(texts), num_labels) float32 logits: single texts and pairs go to the batcher separately (a forward pass
    takes one kind), concurrently."""
    if not pairs or len(pairs) == len(texts):
        return await batcher.submit(texts, truncate)
    singles = [i for i, t in enumerate(texts) if not isinstance(t, tuple)]
    out = np.empty((len(texts), num_labels), dtype=np.float32)
    parts = await asyncio.gather(batcher.submit([texts[i] for i in singles], truncate),
                                 batcher.submit([texts[i] for i in pairs], truncate))
    out[singles], out[pairs] = parts
    return out


def model_info(predictor: Predictor, settings: ServeSettings, pair_task: bool) -> dict[str, Any]:
    """``GET /info``: TEI's fields (``model_id``, ``model_type``, ``max_input_length``, the limits) and textclf's
    (task, problem type, labels, truncation, backend, precision, batching)."""
    meta = getattr(predictor.model.config, "textclf", None) or {}
    labels = predictor.label_names
    info = {
        "model_id": settings.model_id,
        "model_type": {"classifier": {"id2label": {str(i): n for i, n in enumerate(labels)},
                                      "label2id": {n: i for i, n in enumerate(labels)}}},
        "task": meta.get("task"), "method": meta.get("method"), "problem_type": predictor.problem_type,
        "labels": labels, "text_pairs": pair_task, "max_seq_length": predictor.max_seq_length,
        "max_input_length": predictor.max_seq_length, "truncation": predictor.truncation,
        "backend": predictor.backend, "precision": predictor.precision,
        "batching": settings.batching, "max_batch_tokens": settings.max_batch_tokens,
        "max_forward_tokens": predictor.max_batch_tokens,
        "max_wait_ms": settings.max_wait_ms, "max_concurrent_requests": settings.max_concurrent_requests,
        "max_client_batch_size": settings.max_client_batch_size, "payload_limit": settings.payload_limit,
        "max_input_chars": settings.max_input_chars, "auto_truncate": settings.auto_truncate,
        "auth": settings.api_key is not None, "version": __version__,
    }
    if predictor.problem_type == MULTI_LABEL:
        info["threshold"] = predictor.threshold
    return info


class GuardMiddleware:
    """Payload limit, API key, and request metrics for every HTTP request (pure ASGI).

    Args:
        app: the ASGI app it wraps.
        settings: ``payload_limit`` (bytes) and ``api_key``.
        metrics: where requests are counted and ``/predict`` latencies recorded.
    """

    def __init__(self, app: Any, settings: ServeSettings, metrics: ServeMetrics):
        self.app = app
        self.payload_limit = settings.payload_limit
        self.expected = f"Bearer {settings.api_key}".encode() if settings.api_key is not None else None
        self.metrics = metrics

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        path = scope["path"]
        route = path if path in ROUTES else "other"
        answered = {"status": 500}

        async def counting_send(message: dict) -> None:
            if message["type"] == "http.response.start":
                answered["status"] = message["status"]
            await send(message)

        try:
            refusal = self._refusal(scope, path)
            if refusal is None and self._has_body(scope):
                refusal, receive = await self._limit_body(scope, receive)
            if refusal is not None:
                await _send_error(counting_send, *refusal)
            else:
                await self.app(scope, receive, counting_send)
        finally:
            self.metrics.requests.labels(route, str(answered["status"])).inc()
            if route == "/predict" and answered["status"] == 200:
                self.metrics.latency.observe(time.perf_counter() - started)

    def _refusal(self, scope: dict, path: str) -> tuple[ApiError, dict[str, str]] | None:
        """An error to answer before reading the body: a wrong key (401) or a declared body too large (413)."""
        headers = dict(scope["headers"])
        if self.expected is not None and path not in PUBLIC_ROUTES:
            given = headers.get(b"authorization", b"")
            if not hmac.compare_digest(given, self.expected):
                return (ApiError("unauthorized", "missing or wrong API key: send the header "
                                 "'Authorization: Bearer <key>'"), {"www-authenticate": "Bearer"})
        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.payload_limit:
            return ApiError("validation", f"payload of {int(length)} bytes > maximum allowed "
                            f"{self.payload_limit} bytes"), {}
        return None

    @staticmethod
    def _has_body(scope: dict) -> bool:
        return scope["method"] in ("POST", "PUT", "PATCH") and not any(
            name == b"content-length" for name, _ in scope["headers"])

    async def _limit_body(self, scope: dict, receive: Any) -> tuple[tuple[ApiError, dict] | None, Any]:
        """Read a body of undeclared length (chunked) up to the limit; give back a ``receive`` that replays it."""
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.payload_limit:
                return (ApiError("validation", f"payload > maximum allowed {self.payload_limit} bytes"), {}), receive
            if not message.get("more_body", False):
                break
        replay = {"type": "http.request", "body": b"".join(chunks), "more_body": False}
        done = False

        async def replaying_receive() -> dict:
            nonlocal done
            if not done:
                done = True
                return replay
            return await receive()

        return None, replaying_receive


async def _send_error(send: Any, err: ApiError, headers: dict[str, str]) -> None:
    body = json.dumps(err.body()).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.encode(), v.encode()) for k, v in headers.items()]
    await send({"type": "http.response.start", "status": err.status_code, "headers": raw})
    await send({"type": "http.response.body", "body": body})
