"""``textclf serve``'s app through FastAPI's TestClient: every route, status code and error shape, and answers equal
to the Predictor's on every kind of checkpoint (tiny random-init models: answers are compared, labels are not)."""

from __future__ import annotations

import json
import threading
import time

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient

from textclf.errors import ConfigError
from textclf.inference.predictor import MAX_BATCH_TOKENS, Predictor
from textclf.modeling import EmbeddingClassifier, scores_from_logits
from textclf.serving import ServeSettings, create_app, serve_precision
from textclf.serving import settings as settings_module
from textclf.serving.app import warmup_batches
from textclf.tasks import MULTI_LABEL, REGRESSION, SINGLE_LABEL

TEXTS = ["a gripping, beautifully acted film", "dull", "it was fine, I suppose", "terrible acting throughout 42"]


def tiny_predictor(tokenizer, labels, problem_type, meta=None, max_seq_length=32, seed=0) -> Predictor:
    """A random-init 2-layer BERT classifier in memory, its config carrying ``textclf`` metadata ``meta``."""
    from transformers import BertConfig, BertForSequenceClassification

    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, initializer_range=0.2, num_labels=len(labels),
                        id2label=dict(enumerate(labels)), label2id={n: i for i, n in enumerate(labels)},
                        problem_type=problem_type)
    config.textclf = dict(meta or {})
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = BertForSequenceClassification(config)
    return Predictor(model, tokenizer, max_seq_length=max_seq_length)


@pytest.fixture(scope="module")
def predictor(classifier_dir) -> Predictor:
    """The conftest's 3-class checkpoint from disk, as ``textclf serve`` loads it, cut at 32 tokens."""
    return Predictor.from_pretrained(classifier_dir, max_seq_length=32)


@pytest.fixture(scope="module")
def pair_regression(bundled_tokenizer) -> Predictor:
    return tiny_predictor(bundled_tokenizer, ["similarity"], REGRESSION, {"text_columns": ["sentence1", "sentence2"]})


@pytest.fixture(scope="module")
def multi_label(bundled_tokenizer) -> Predictor:
    return tiny_predictor(bundled_tokenizer, ["joy", "anger", "fear", "surprise"], MULTI_LABEL,
                          {"text_columns": ["text"], "threshold": 0.4})


def serve(predictor: Predictor, **settings) -> TestClient:
    """A TestClient whose ``with`` block runs the app's lifespan (worker thread, warm-up)."""
    return TestClient(create_app(predictor, ServeSettings(**settings)))


def expected(predictor: Predictor, texts, raw: bool = False) -> list[list[dict]]:
    """TEI's answer computed from the Predictor directly, text by text (no batching)."""
    out = []
    for text in texts:
        logits = predictor.logits([text])
        scores = logits.astype(np.float64) if raw or predictor.problem_type == REGRESSION \
            else scores_from_logits(logits, predictor.problem_type)
        row = [{"label": predictor.id2label[j], "score": float(scores[0, j])} for j in range(scores.shape[1])]
        out.append(sorted(row, key=lambda d: -d["score"]))
    return out


def assert_same(answer: list[list[dict]], reference: list[list[dict]], atol: float = 1e-5) -> None:
    assert len(answer) == len(reference)
    for got, want in zip(answer, reference):
        assert [p["label"] for p in got] == [p["label"] for p in want]
        np.testing.assert_allclose([p["score"] for p in got], [p["score"] for p in want], atol=atol)


# --- answers --------------------------------------------------------------------------------------------------

def test_a_text_gets_every_label_sorted_by_probability(predictor):
    with serve(predictor) as client:
        answer = client.post("/predict", json={"inputs": TEXTS[0]})
    assert answer.status_code == 200
    body = answer.json()
    assert isinstance(body, list) and isinstance(body[0], dict)  # one text: one list, not a list of lists
    assert sorted(p["label"] for p in body) == ["neg", "neu", "pos"]
    assert [p["score"] for p in body] == sorted((p["score"] for p in body), reverse=True)
    assert sum(p["score"] for p in body) == pytest.approx(1.0, abs=1e-6)
    assert_same([body], expected(predictor, TEXTS[:1]))
    assert body[0]["label"] == predictor.predict(TEXTS[0])["label"]


def test_raw_scores_are_the_logits(predictor):
    with serve(predictor) as client:
        body = client.post("/predict", json={"inputs": TEXTS[1], "raw_scores": True}).json()
    assert_same([body], expected(predictor, TEXTS[1:2], raw=True))
    assert sum(p["score"] for p in body) != pytest.approx(1.0, abs=1e-3)


def test_batches_keep_their_order_in_every_shape(predictor):
    reference = expected(predictor, TEXTS)
    with serve(predictor) as client:
        flat = client.post("/predict", json={"inputs": TEXTS}).json()
        lists = client.post("/predict", json={"inputs": [[t] for t in TEXTS]}).json()
        mixed = client.post("/predict", json={"inputs": [[TEXTS[0]], [TEXTS[1], TEXTS[2]], [TEXTS[3]]]}).json()
    assert_same(flat, reference)
    assert_same(lists, reference)
    assert_same(mixed, [reference[0], *expected(predictor, [(TEXTS[1], TEXTS[2])]), reference[3]])


def test_pair_regression_checkpoint(pair_regression):
    pair = ["A man is playing a guitar.", "Someone plays an instrument."]
    with serve(pair_regression) as client:
        info = client.get("/info").json()
        one = client.post("/predict", json={"inputs": pair}).json()
        batch = client.post("/predict", json={"inputs": [pair, pair[::-1]]}).json()
        three = client.post("/predict", json={"inputs": [*pair, "a third text"]})
    assert info["text_pairs"] is True and info["problem_type"] == REGRESSION
    want = float(pair_regression.logits([tuple(pair)])[0, 0])
    assert one == [{"label": "similarity", "score": pytest.approx(want, abs=1e-5)}]
    assert batch[0][0]["score"] == pytest.approx(want, abs=1e-5)
    assert batch[1][0]["score"] == pytest.approx(float(pair_regression.logits([tuple(pair[::-1])])[0, 0]), abs=1e-5)
    assert three.status_code == 422 and three.json()["error_type"] == "invalid_request"


def test_multi_label_checkpoint_gives_sigmoid_scores_for_every_label(multi_label):
    with serve(multi_label) as client:
        body = client.post("/predict", json={"inputs": TEXTS[:2]}).json()
        info = client.get("/info").json()
    assert_same(body, expected(multi_label, TEXTS[:2]))
    assert len(body[0]) == 4 and all(0 < p["score"] < 1 for p in body[0])
    assert info["threshold"] == 0.4


def test_embedding_head_checkpoint(tiny_model_dir, bundled_tokenizer):
    """method=head / setfit checkpoints: an encoder, mean pooling and a linear head."""
    from transformers import AutoModel

    encoder = AutoModel.from_pretrained(tiny_model_dir)
    encoder.config.id2label, encoder.config.label2id = {0: "neg", 1: "pos"}, {"neg": 0, "pos": 1}
    encoder.config.problem_type, encoder.config.textclf = SINGLE_LABEL, {"method": "head", "text_columns": ["text"]}
    with torch.random.fork_rng():
        torch.manual_seed(1)
        weight, bias = torch.randn(2, encoder.config.hidden_size) * 3, torch.randn(2)
    predictor = Predictor(EmbeddingClassifier(encoder, weight, bias), bundled_tokenizer, max_seq_length=32)
    with serve(predictor) as client:
        body = client.post("/predict", json={"inputs": TEXTS}).json()
        info = client.get("/info").json()
    assert_same(body, expected(predictor, TEXTS))
    assert info["method"] == "head" and info["labels"] == ["neg", "pos"]


def test_chunks_checkpoint_reads_long_texts_whole_and_refuses_pairs(bundled_tokenizer):
    chunks = tiny_predictor(bundled_tokenizer, ["neg", "pos"], SINGLE_LABEL,
                            {"text_columns": ["text"], "truncation": "chunks", "stride": 8})
    long_text = " ".join(f"word{i}" for i in range(120))  # several 32-token windows
    with serve(chunks) as client:
        body = client.post("/predict", json={"inputs": long_text}).json()  # truncate=false: nothing is cut
        pair = client.post("/predict", json={"inputs": [["a", "b"]]})
    assert_same([body], expected(chunks, [long_text]))
    assert pair.status_code == 422 and pair.json()["error_type"] == "tokenizer"


def test_truncate_cuts_long_inputs_and_its_absence_refuses_them(predictor):
    long_text = "a remarkably long review " * 40  # > 32 tokens
    with serve(predictor) as client:
        refused = client.post("/predict", json={"inputs": long_text})
        cut = client.post("/predict", json={"inputs": long_text, "truncate": True})
    assert refused.status_code == 413
    assert refused.json()["error_type"] == "validation" and "32 tokens" in refused.json()["error"]
    assert_same([cut.json()], expected(predictor, [long_text]))
    with serve(predictor, auto_truncate=True) as client:
        assert client.post("/predict", json={"inputs": long_text}).status_code == 200


def test_a_request_cannot_name_a_model_or_a_file(predictor):
    with serve(predictor) as client:
        plain = client.post("/predict", json={"inputs": TEXTS[0]}).json()
        named = client.post("/predict", json={"inputs": TEXTS[0], "model": "/etc/passwd", "model_id": "gpt2",
                                               "path": "../../secrets", "trust_remote_code": True}).json()
        info = client.get("/info").json()
    assert named == plain
    assert info["model_id"] == "textclf"  # the server's own name, whatever the request said


# --- routes ---------------------------------------------------------------------------------------------------

def test_health_info_openapi_and_demo_page(predictor):
    with serve(predictor, max_client_batch_size=8) as client:
        health = client.get("/health")
        info = client.get("/info").json()
        openapi = client.get("/openapi.json").json()
        docs = client.get("/docs")
        page = client.get("/")
    assert health.status_code == 200
    assert info["labels"] == predictor.label_names and info["max_seq_length"] == 32
    assert info["backend"] == "torch" and info["precision"] == "fp32" and info["max_client_batch_size"] == 8
    assert info["max_batch_tokens"] == MAX_BATCH_TOKENS and info["model_type"]["classifier"]["id2label"]["2"] == "pos"
    assert info["max_forward_tokens"] == predictor.max_batch_tokens  # the passes a merged batch is split into
    assert {"/predict", "/health", "/info", "/metrics"} <= set(openapi["paths"])
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in page.headers["content-security-policy"]
    for marker in ('id="text"', 'id="predict"', 'id="results"', "fetch(\"predict\""):
        assert marker in page.text
    assert "http://" not in page.text and "https://" not in page.text  # no external assets


def test_before_warm_up_health_and_predict_answer_503(predictor):
    client = TestClient(create_app(predictor, ServeSettings()))  # no `with`: the lifespan has not run
    health = client.get("/health")
    predict = client.post("/predict", json={"inputs": "x"})
    assert health.status_code == 503 and health.json() == {"error": "unhealthy", "error_type": "unhealthy"}
    assert predict.status_code == 503 and predict.json()["error_type"] == "unhealthy"


def test_metrics_count_requests_batches_and_latency(predictor):
    with serve(predictor) as client:
        for text in TEXTS:
            client.post("/predict", json={"inputs": text})
        client.post("/predict", json={"inputs": ["x"] * 40})  # 413
        text = client.get("/metrics").text
    assert 'textclf_requests_total{route="/predict",status="200"} 4.0' in text
    assert 'textclf_requests_total{route="/predict",status="413"} 1.0' in text
    assert "textclf_request_duration_seconds_count 4.0" in text
    warmup = warmup_batches(ServeSettings().max_batch_tokens, predictor.max_seq_length)
    assert f"textclf_batch_size_count {len(warmup) + 4}.0" in text  # the warm-up batches and 4 requests
    assert f"textclf_predicted_texts_total {sum(map(len, warmup)) + 4}.0" in text
    assert "textclf_queue_size 0.0" in text and "textclf_in_flight_requests 0.0" in text


# --- errors ---------------------------------------------------------------------------------------------------

def test_limits_answer_413(predictor):
    with serve(predictor, max_client_batch_size=4, payload_limit=2000, max_input_chars=50) as client:
        batch = client.post("/predict", json={"inputs": ["x"] * 5})
        declared = client.post("/predict", json={"inputs": "y" * 3000})
        chunked = client.post("/predict", content=(b'{"inputs": "' + b"z" * 500 + b'"}' for _ in range(5)),
                              headers={"content-type": "application/json"})
        chars = client.post("/predict", json={"inputs": "w" * 51})
        cut = client.post("/predict", json={"inputs": "good " * 20, "truncate": True})
        pair_cut = client.post("/predict", json={"inputs": [["good " * 8, "bad " * 10]], "truncate": True})
    for answer, phrase in ((batch, "batch size 5 > maximum allowed batch size 4"), (declared, "2000 bytes"),
                           (chunked, "2000 bytes"), (chars, "51 characters")):
        assert answer.status_code == 413, answer.text
        assert answer.json()["error_type"] == "validation" and phrase in answer.json()["error"]
    assert_same([cut.json()], expected(predictor, [("good " * 20)[:50]]))
    assert_same(pair_cut.json(), expected(predictor, [("good " * 8, ("bad " * 10)[:10])]))


def test_bad_requests_answer_400_404_405_and_422(predictor):
    with serve(predictor) as client:
        answers = {
            "empty": client.post("/predict", json={"inputs": []}),
            "number": client.post("/predict", json={"inputs": 3}),
            "missing": client.post("/predict", json={"text": "x"}),
            "triple": client.post("/predict", json={"inputs": [["a", "b", "c"]]}),
            "mixed": client.post("/predict", json={"inputs": ["a", ["b"]]}),
            "not json": client.post("/predict", content=b"{bad", headers={"content-type": "application/json"}),
            "route": client.get("/nope"),
            "method": client.get("/predict"),
        }
    expected_codes = {"empty": (400, "empty"), "number": (422, "invalid_request"),
                      "missing": (422, "invalid_request"), "triple": (422, "invalid_request"),
                      "mixed": (422, "invalid_request"), "not json": (422, "invalid_request"),
                      "route": (404, "not_found"), "method": (405, "method_not_allowed")}
    for name, (code, kind) in expected_codes.items():
        assert (answers[name].status_code, answers[name].json()["error_type"]) == (code, kind), name
        assert answers[name].json()["error"]
    assert "`inputs` must be a string" in answers["number"].json()["error"]
    assert "inputs" in answers["missing"].json()["error"]


def test_api_key_guards_every_route_but_health(predictor):
    with serve(predictor, api_key="s3cret") as client:
        for method, path in (("get", "/"), ("get", "/info"), ("get", "/metrics"), ("get", "/docs"),
                             ("get", "/openapi.json"), ("post", "/predict")):
            for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret"}):
                answer = getattr(client, method)(path, headers=headers)
                assert answer.status_code == 401, (path, headers)
                assert answer.json()["error_type"] == "unauthorized"
                assert answer.headers["www-authenticate"] == "Bearer"
        assert client.get("/health").status_code == 200
        good = {"Authorization": "Bearer s3cret"}
        assert client.get("/info", headers=good).json()["auth"] is True
        assert client.post("/predict", json={"inputs": "x"}, headers=good).status_code == 200


def test_cors_is_off_unless_an_origin_is_allowed(predictor):
    origin = {"Origin": "https://app.example"}
    with serve(predictor) as client:
        plain = client.post("/predict", json={"inputs": "x"}, headers=origin)
    assert "access-control-allow-origin" not in plain.headers
    with serve(predictor, cors_allow_origins=("https://app.example",), api_key="k") as client:
        preflight = client.options("/predict", headers={**origin, "Access-Control-Request-Method": "POST",
                                                        "Access-Control-Request-Headers": "authorization"})
        allowed = client.post("/predict", json={"inputs": "x"}, headers={**origin, "Authorization": "Bearer k"})
        other = client.post("/predict", json={"inputs": "x"},
                            headers={"Origin": "https://evil.example", "Authorization": "Bearer k"})
    assert preflight.status_code == 200 and preflight.headers["access-control-allow-origin"] == "https://app.example"
    assert allowed.headers["access-control-allow-origin"] == "https://app.example"
    assert "access-control-allow-origin" not in other.headers


def gate_logits(monkeypatch, predictor: Predictor, marker: str) -> threading.Event:
    """Make ``predictor.logits`` wait for the returned event on texts containing ``marker``."""
    release, original = threading.Event(), predictor.logits

    def gated(texts):
        if any(marker in (t if isinstance(t, str) else t[0]) for t in texts):
            assert release.wait(20)
        return original(texts)

    monkeypatch.setattr(predictor, "logits", gated)
    return release


def test_requests_beyond_the_concurrency_limit_get_429_at_once(predictor, monkeypatch):
    release = gate_logits(monkeypatch, predictor, "HOLD")
    with serve(predictor, max_concurrent_requests=2) as client:
        batcher = client.app.state.batcher
        results = {}
        holders = [threading.Thread(target=lambda k=k: results.__setitem__(
            k, client.post("/predict", json={"inputs": f"HOLD {k}"}))) for k in range(2)]
        for thread in holders:
            thread.start()
        deadline = time.monotonic() + 10
        while batcher.in_flight < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        started = time.perf_counter()
        refused = client.post("/predict", json={"inputs": "one too many"})
        waited = time.perf_counter() - started
        release.set()
        for thread in holders:
            thread.join(20)
        after = client.post("/predict", json={"inputs": "one too many"})
    assert refused.status_code == 429 and refused.json()["error_type"] == "overloaded"
    assert waited < 5  # answered while the two others were still held
    assert [results[k].status_code for k in range(2)] == [200, 200]
    assert after.status_code == 200


def test_a_failing_model_answers_424_and_nan_scores_too(predictor, monkeypatch):
    original = predictor.logits

    def failing(texts):
        if any("boom" in t for t in texts):
            raise RuntimeError("kernel exploded\nsecond line")
        if any("nan" in t for t in texts):
            return np.full((len(texts), 3), np.nan, dtype=np.float32)
        return original(texts)

    with serve(predictor) as client:
        monkeypatch.setattr(predictor, "logits", failing)
        boom = client.post("/predict", json={"inputs": "boom"})
        nan = client.post("/predict", json={"inputs": "nan"})
        fine = client.post("/predict", json={"inputs": "fine"})
    assert boom.status_code == 424
    assert boom.json() == {"error": "inference failed: RuntimeError: kernel exploded", "error_type": "backend"}
    assert nan.status_code == 424 and nan.json() == {"error": "score is NaN", "error_type": "backend"}
    assert fine.status_code == 200


def test_settings_are_validated_and_their_token_budget_is_the_predictors():
    assert settings_module.MAX_BATCH_TOKENS == MAX_BATCH_TOKENS == ServeSettings().max_batch_tokens
    for bad in ({"max_batch_tokens": 0}, {"max_forward_tokens": 0}, {"max_concurrent_requests": -1}, {"max_wait_ms": -1}, {"api_key": " "}):
        with pytest.raises(ConfigError, match=next(iter(bad))):
            ServeSettings(**bad)
    assert "s3cret" not in repr(ServeSettings(api_key="s3cret"))


def test_predict_answers_are_json_documents(predictor):
    with serve(predictor) as client:
        answer = client.post("/predict", json={"inputs": TEXTS[:2]})
    assert answer.headers["content-type"] == "application/json"
    assert json.loads(answer.content) == answer.json()


def test_the_warm_up_covers_short_to_long_batches_within_the_token_budget():
    batches = warmup_batches(4096, 128)
    assert batches[0] == ["a warm-up request"] and len(batches) == 5
    assert [len(b) for b in batches[1:]] == [32, 32, 32, 32]  # 62 tokens x 32 rows = 1,984 <= 4,096
    assert [len(b) for b in warmup_batches(256, 128)[1:]] == [32, 18, 8, 4]  # the budget caps the rows
    assert all(len(b) >= 1 for b in warmup_batches(1, 8))


def test_auto_precision_is_bf16_only_where_native_and_never_for_onnx(classifier_dir, tmp_path, monkeypatch):
    import textclf.serving.app as app_module

    monkeypatch.setattr(app_module, "bf16_available", lambda: True)
    assert serve_precision("auto", classifier_dir) == "bf16"
    (tmp_path / "model.onnx").write_bytes(b"")
    assert serve_precision("auto", tmp_path) == "fp32"
    assert serve_precision("fp32", classifier_dir) == "fp32"
    monkeypatch.setattr(app_module, "bf16_available", lambda: False)
    assert serve_precision("auto", classifier_dir) == "fp32"
