"""What an attacker or an operator finds: bad input never answers 5xx, big batches do not starve single
questions, logs stay private, security headers, truthful OpenAPI, metrics, refusals and shutdown."""

from __future__ import annotations

import asyncio
import json
import logging
import logging.config
import os
import pickle
import re
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from litestar.testing import TestClient

from api.answers import Prediction, Scored
from api.app import create_app, drain_on_sigterm
from api.batcher import MicroBatcher
from api.errors import Overloaded, ShuttingDown
from api.logs import JsonFormatter, log_config
from api.schemas import NOT_BLANK
from api.security import PAGE_CSP, SWAGGER_CSP
from api.service import ModelService
from api.settings import CHUNK_CHARS, CHUNK_QUESTIONS, MAX_BATCH, MAX_HEADER_BYTES, MAX_QUERY_CHARS, Settings
from intent_lib.files import sha256_of as file_sha256
from posos_client.server import free_port, spawn
from tests.test_api import assert_error, edit_card, model_copy, start_error

ROOT = Path(__file__).resolve().parents[1]
SECRET_QUESTION = "Puis-je prendre du Xanaxsecret pendant ma grossesse ?"


@pytest.fixture(scope="session")
def model_path(trained_model_dir: Path) -> Path:
    return trained_model_dir / "models" / "intent_model.pkl"


@pytest.fixture(scope="module")
def client(model_path: Path):
    with TestClient(create_app(model_path, Settings())) as test_client:
        yield test_client


def post_raw(client: TestClient, body: bytes):
    return client.post("/intent", content=body, headers={"content-type": "application/json"})


# ------------------------------------------------------------------------------------------ bad input: 4xx


def test_invalid_utf8_in_a_json_body_is_400(client: TestClient) -> None:
    body = assert_error(post_raw(client, b'{"queries":["caf\xe9"]}'), 400, "body")
    assert "UTF-8" in body["detail"]


@pytest.mark.parametrize("depth", [100, 1_000, 100_000])
def test_deeply_nested_json_is_400(client: TestClient, depth: int) -> None:
    assert_error(post_raw(client, b'{"queries":' + b"[" * depth + b"]" * depth + b"}"), 400)


@pytest.mark.parametrize("path", ["/static/app.js%00.png", "/static/app.js%0A.png", "/intent%0D%0AX:%20y",
                                  "/%00", "/static/%FF%FE", "/static/a%7Fb"])
def test_control_characters_and_bad_utf8_in_paths_are_400(client: TestClient, path: str) -> None:
    assert_error(client.get(path), 400)


def test_a_newline_in_a_path_cannot_forge_a_log_line(client: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="api"):
        client.get("/nope%0AERROR forged line")
        client.get("/static/x%0AERROR forged line")
    assert caplog.records
    for record in caplog.records:
        assert "\n" not in record.getMessage(), record.getMessage()


def test_request_headers_over_the_limit_are_431(client: TestClient) -> None:
    big = "a" * 1_000_000
    body = assert_error(client.get("/health", headers={"X-Big": big}), 431)
    assert f"{MAX_HEADER_BYTES:,}" in body["detail"]
    assert client.get("/health", headers={"X-Fine": "a" * 1_000}).status_code == 200


def test_405_names_the_allowed_methods_and_options_lists_them_all(client: TestClient) -> None:
    response = client.put("/intent", json={"queries": ["a"]})
    assert_error(response, 405)
    assert {m.strip() for m in response.headers["allow"].split(",")} >= {"GET", "POST"}
    options = client.options("/intent")
    assert options.status_code == 204
    assert {m.strip() for m in options.headers["allow"].split(",")} == {"GET", "HEAD", "OPTIONS", "POST"}


# ------------------------------------------------------------------------------------------ fair serving


class GatedService:
    """A stand-in for ModelService whose calls are recorded and can be held until the test lets them go."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()

    def predict(self, queries: list[str], k: int) -> list[Prediction]:
        self.calls.append(list(queries))
        self.entered.set()
        assert self.gate.wait(10), "the test never released the model"
        return [Prediction(query=q, intent=0, name="x", confidence=1.0, unsure=False, top_k=[Scored(0, "x", 1.0)],
                           candidates=[Scored(0, "x", 1.0)], probability="1.00000000", reason=None,
                           out_of_scope=False)
                for q in queries]


def test_a_big_batch_is_cut_in_chunks_and_single_questions_go_between_them() -> None:
    service = GatedService()
    batch = [f"{i} " + "x" * (MAX_QUERY_CHARS - 6) for i in range(MAX_BATCH)]

    async def run() -> tuple[list[Prediction], Prediction]:
        batcher = MicroBatcher(service)  # type: ignore[arg-type]
        batcher.start()
        try:
            service.gate.clear()
            big = asyncio.ensure_future(batcher.predict_many(batch, 1))
            while not service.entered.is_set():  # the first chunk is being predicted
                await asyncio.sleep(0.001)
            single = asyncio.ensure_future(batcher.predict("une question seule", 1))
            await asyncio.sleep(0.01)
            service.gate.set()
            return await big, await single
        finally:
            await batcher.stop()

    answers, single = asyncio.run(run())
    assert [a.query for a in answers] == batch and single.query == "une question seule"
    assert service.calls[1] == ["une question seule"], "the single question waited for the whole batch"
    chunks = [c for c in service.calls if c != ["une question seule"]]
    assert sum(len(c) for c in chunks) == MAX_BATCH and len(chunks) > 1
    assert all(sum(map(len, c)) <= CHUNK_CHARS and len(c) <= CHUNK_QUESTIONS for c in chunks)


def test_batch_requests_take_turns_and_past_the_cap_answer_overloaded() -> None:
    service = GatedService()

    async def run() -> tuple[list[list[Prediction]], BaseException | None]:
        batcher = MicroBatcher(service, chunk_questions=2, max_batch_requests=2)  # type: ignore[arg-type]
        batcher.start()
        try:
            service.gate.clear()
            first = asyncio.ensure_future(batcher.predict_many(["a1", "a2", "a3", "a4"], 1))
            second = asyncio.ensure_future(batcher.predict_many(["b1", "b2", "b3", "b4"], 1))
            await asyncio.sleep(0.01)
            refused = None
            try:
                await batcher.predict_many(["c1"], 1)
            except Overloaded as exc:
                refused = exc
            service.gate.set()
            return [await first, await second], refused
        finally:
            await batcher.stop()

    results, refused = asyncio.run(run())
    assert isinstance(refused, Overloaded) and refused.status == 429
    assert [[p.query for p in r] for r in results] == [["a1", "a2", "a3", "a4"], ["b1", "b2", "b3", "b4"]]
    assert service.calls == [["a1", "a2"], ["b1", "b2"], ["a3", "a4"], ["b3", "b4"]]


def test_a_request_the_model_cannot_start_within_the_budget_answers_503_with_retry_after(model_path: Path) -> None:
    with TestClient(create_app(model_path, Settings(request_timeout=0.3))) as slow_client:
        service = slow_client.app.registry.current().service
        predict = service.predict
        service.predict = lambda queries, k: (time.sleep(1.0), predict(queries, k))[1]
        with ThreadPoolExecutor(3) as pool:
            first = pool.submit(slow_client.get, "/intent", params={"query": "doliprane"})
            time.sleep(0.1)  # the model is on the first one for a second: the others wait past the budget
            waiting = [pool.submit(slow_client.get, "/intent", params={"query": "levothyrox"}),
                       pool.submit(slow_client.post, "/intent", json={"queries": ["a", "b"]})]
            assert first.result().status_code == 200, "a request the model started runs past the budget"
            for response in (w.result() for w in waiting):
                assert_error(response, 503)
                assert int(response.headers["retry-after"]) > 0
        assert slow_client.get("/intent", params={"query": "doliprane"}).status_code == 200


def test_too_many_batch_requests_answer_429_with_retry_after(client: TestClient, monkeypatch) -> None:
    async def refuse(*_: object) -> None:
        raise Overloaded(4)

    monkeypatch.setattr(client.app.registry.current().batcher, "predict_many", refuse)
    response = client.post("/intent", json={"queries": ["a"]})
    assert_error(response, 429)
    assert int(response.headers["retry-after"]) > 0


def test_shutdown_fails_waiting_and_running_requests_with_503_not_500() -> None:
    service = GatedService()

    async def run() -> list[BaseException | Prediction | list[Prediction]]:
        batcher = MicroBatcher(service)  # type: ignore[arg-type]
        batcher.start()
        service.gate.clear()
        running = asyncio.ensure_future(batcher.predict("running", 1))
        while not service.entered.is_set():
            await asyncio.sleep(0.001)
        waiting = [asyncio.ensure_future(batcher.predict("waiting", 1)),
                   asyncio.ensure_future(batcher.predict_many(["w1", "w2"], 1))]
        await asyncio.sleep(0.01)
        stopping = asyncio.ensure_future(batcher.stop())
        await asyncio.sleep(0.01)
        service.gate.set()
        await stopping
        return await asyncio.gather(running, *waiting, return_exceptions=True)

    outcomes = asyncio.run(run())
    assert all(isinstance(o, ShuttingDown) and o.status == 503 for o in outcomes), outcomes


def test_a_request_after_the_model_is_unloaded_is_503(model_path: Path) -> None:
    service = ModelService(model_path)
    service.load()
    service.unload()
    with pytest.raises(ShuttingDown):
        service.predict(["bonjour"], 1)


# ------------------------------------------------------------------------------------------ private logs


def test_access_log_has_the_request_fields_and_never_the_question(
        client: TestClient, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]) -> None:
    with caplog.at_level(logging.DEBUG):
        get = client.get("/intent", params={"query": SECRET_QUESTION}, headers={"X-Request-ID": "abc-123"})
        post = client.post("/intent", json={"queries": [SECRET_QUESTION]})
    assert get.headers["x-request-id"] == "abc-123"
    assert re.fullmatch(r"[0-9a-f]{32}", post.headers["x-request-id"])
    captured = capfd.readouterr()
    server_side = [line for line in (caplog.text + captured.out + captured.err).splitlines()
                   if "httpx" not in line]  # the test client's own log names the URL it asked for
    assert not [line for line in server_side if "Xanaxsecret" in line]
    access = [r.access for r in caplog.records if hasattr(r, "access")]  # type: ignore[attr-defined]
    assert [(a["method"], a["route"], a["status"], a["request_id"]) for a in access] == [
        ("GET", "/intent", 200, "abc-123"), ("POST", "/intent", 200, post.headers["x-request-id"])]
    assert all(a["duration_ms"] >= 0 and a["bytes"] > 0 for a in access)


@pytest.mark.parametrize("rid", ["a" * 200, "bad id with spaces", "x;rm -rf"])
def test_a_malformed_request_id_is_replaced(client: TestClient, rid: str) -> None:
    response = client.get("/health", headers={"X-Request-ID": rid})
    assert re.fullmatch(r"[0-9a-f]{32}", response.headers["x-request-id"])


@pytest.fixture
def served_logging(capfd: pytest.CaptureFixture[str]) -> Iterator[None]:
    """Logging as ``python -m api.serve`` configures it, undone afterwards (its handler holds captured stderr)."""
    logging.config.dictConfig(log_config("text"))
    yield
    for name in ("api", "uvicorn", "uvicorn.access"):
        logging.getLogger(name).handlers.clear()


def test_question_texts_are_logged_only_when_asked(model_path: Path, capfd: pytest.CaptureFixture[str],
                                                   served_logging: None) -> None:
    with TestClient(create_app(model_path, Settings(log_queries=True))) as verbose:
        capfd.readouterr()
        verbose.get("/intent", params={"query": SECRET_QUESTION + "\nERROR forged"})
    lines = [line for line in capfd.readouterr().err.splitlines() if "httpx" not in line]
    assert len([line for line in lines if "Xanaxsecret" in line]) == 1
    assert not [line for line in lines if line.startswith("ERROR forged")], "a question forged a log line"


def test_json_log_lines_are_one_object_each() -> None:
    record = logging.LogRecord("api.access", logging.INFO, __file__, 1, "method=GET", None, None)
    record.access = {"method": "GET", "route": "/intent", "status": 200, "duration_ms": 1.5, "bytes": 10,
                     "request_id": "r1"}
    line = JsonFormatter().format(record)
    assert "\n" not in line
    assert json.loads(line)["route"] == "/intent" and json.loads(line)["request_id"] == "r1"


def test_log_format_is_checked() -> None:
    os.environ["LOG_FORMAT"] = "xml"
    try:
        with pytest.raises(ValueError, match="LOG_FORMAT"):
            Settings.from_env()
    finally:
        del os.environ["LOG_FORMAT"]


# ------------------------------------------------------------------------------------------ headers


@pytest.mark.parametrize("path", ["/", "/intent?query=a", "/health", "/version", "/metrics", "/static/app.js",
                                  "/schema", "/schema/openapi.json", "/nope"])
def test_security_headers_on_every_route(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"
    csp = response.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in csp
    assert csp == (SWAGGER_CSP if path.startswith("/schema") else PAGE_CSP)
    assert "'unsafe-inline'" not in csp.split("script-src")[1].split(";")[0]


def test_pages_have_no_inline_script_or_style() -> None:
    for name in ("index.html", "swagger.html"):
        html = (ROOT / "api" / "static" / name).read_text(encoding="utf-8")
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), f"{name} has an inline script"
        assert "<style" not in html and " style=" not in html and "onclick" not in html.lower(), name


# ------------------------------------------------------------------------------------------ OpenAPI


def test_openapi_states_every_limit_and_status(client: TestClient) -> None:
    doc = client.get("/schema/openapi.json").json()
    get, post = doc["paths"]["/intent"]["get"], doc["paths"]["/intent"]["post"]
    query = {p["name"]: p["schema"] for p in get["parameters"]}
    assert (query["query"]["minLength"], query["query"]["maxLength"]) == (1, MAX_QUERY_CHARS)
    assert (query["top_k"]["minimum"], query["top_k"]["maximum"]) == (1, 51)
    batch = doc["components"]["schemas"]["BatchRequest"]
    assert batch["additionalProperties"] is False
    queries = batch["properties"]["queries"]
    assert (queries["minItems"], queries["maxItems"]) == (1, MAX_BATCH)
    assert queries["items"]["maxLength"] == MAX_QUERY_CHARS
    assert {"200", "400", "422", "503"} <= set(get["responses"])
    assert {"200", "400", "413", "422", "429", "503"} <= set(post["responses"])
    assert "Retry-After" in post["responses"]["429"]["headers"]
    assert "503" in doc["paths"]["/health"]["get"]["responses"]
    assert "/metrics" in doc["paths"]


# ------------------------------------------------------------------------------------------ operations


def test_metrics_count_requests_by_route_and_status(client: TestClient) -> None:
    client.get("/intent", params={"query": "doliprane"})
    client.get("/intent", params={"query": ""})
    text = client.get("/metrics").text
    assert re.search(r'posos_requests_total\{method="GET",route="/intent",status="200"\} [1-9]', text)
    assert re.search(r'posos_requests_total\{method="GET",route="/intent",status="400"\} [1-9]', text)
    assert "posos_request_duration_seconds_bucket" in text and "posos_model_call_questions_count" in text
    version = client.get("/health").json()["model_version"]
    assert f'posos_model_info{{version="{version}"}} 1.0' in text


def test_sigterm_turns_health_503_then_hands_over_to_the_server(model_path: Path) -> None:
    handed_over = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: handed_over.set())
    try:
        with TestClient(create_app(model_path, Settings())) as draining_client:
            draining = draining_client.app.draining
            drain_on_sigterm(draining)  # as the lifespan does in uvicorn's main thread
            assert draining_client.get("/health").status_code == 200
            os.kill(os.getpid(), signal.SIGTERM)
            assert handed_over.wait(5) and draining.is_set()
            assert draining_client.get("/health").status_code == 503
            assert draining_client.get("/intent", params={"query": "a"}).status_code == 200  # in flight: served
    finally:
        signal.signal(signal.SIGTERM, previous)


# ------------------------------------------------------------------------------------------ refusals


def one_line_refusal(model: Path) -> str:
    message = start_error(model)
    assert "\n" not in message.strip() and "Traceback" not in message
    assert "make train" in message
    return message


def set_pickle(model: Path, payload: bytes) -> None:
    model.write_bytes(payload)
    edit_card(model, model_sha256=file_sha256(model))


@pytest.mark.parametrize("card", [[1, 2], "text", 3, None], ids=["list", "string", "number", "null"])
def test_a_card_that_is_not_an_object_is_refused_in_one_line(model_path: Path, tmp_path: Path, card) -> None:
    model = model_copy(model_path, tmp_path)
    model.with_name("model_card.json").write_text(json.dumps(card), encoding="utf-8")
    assert "not a model card" in one_line_refusal(model)


@pytest.mark.parametrize("changes", [{"model_sha256": 42}, {"libraries": [1]}, {"names": {"x": 1}}],
                         ids=["sha-number", "libraries-list", "names-bad"])
def test_a_card_with_malformed_fields_is_refused_in_one_line(model_path: Path, tmp_path: Path, changes) -> None:
    model = model_copy(model_path, tmp_path)
    edit_card(model, **changes)
    one_line_refusal(model)


@pytest.mark.parametrize("payload, reason", [
    (b"not a pickle at all", "cannot be unpickled"),
    (pickle.dumps({"a": 1}), "not a fitted intent model"),
    (pickle.dumps([1, 2, 3])[:-4], "cannot be unpickled"),
], ids=["garbage", "dict", "truncated"])
def test_a_pickle_whose_hash_matches_but_is_no_model_is_refused_in_one_line(
        model_path: Path, tmp_path: Path, payload: bytes, reason: str) -> None:
    model = model_copy(model_path, tmp_path)
    set_pickle(model, payload)
    assert reason in one_line_refusal(model)


# ------------------------------------------------------------------------------------------ the server process


def serve(env: dict[str, str]) -> subprocess.Popen[str]:
    """``python -m api.serve`` with ``env``, its output piped (for tests of how it refuses to start)."""
    return spawn(env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.slow
def test_a_taken_port_is_refused_in_one_line_before_the_model_loads(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        process = serve({"PORT": str(port), "HOST": "127.0.0.1", "WORKERS": "1",
                         "MODEL_PATH": str(tmp_path / "missing.pkl")})
        out, err = process.communicate(timeout=60)
    assert process.returncode == 1
    assert err.strip().count("\n") == 0 and f"127.0.0.1:{port}" in err and "PORT" in err, err


@pytest.mark.slow
def test_serve_refuses_a_bad_model_in_one_line_before_starting_workers(model_path: Path, tmp_path: Path) -> None:
    model = model_copy(model_path, tmp_path)
    edit_card(model, model_sha256="0" * 64)
    process = serve({"PORT": str(free_port()), "WORKERS": "2", "MODEL_PATH": str(model)})
    _, err = process.communicate(timeout=60)
    assert process.returncode == 3 and err.strip().count("\n") == 0 and "sha256" in err, err


IN_FLIGHT_QUESTIONS = 200


@pytest.mark.slow
def test_sigterm_lets_the_request_in_flight_finish_and_exits_0(model_path: Path) -> None:
    port = free_port()
    process = serve({"PORT": str(port), "WORKERS": "1", "MODEL_PATH": str(model_path), "DRAIN_SECONDS": "0"})
    url = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(timeout=120) as http:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                try:
                    if http.get(f"{url}/health").status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.2)
            # Long enough to be in flight when the signal lands (seconds), short enough to finish within the 30 s
            # graceful timeout on a loaded machine (a full 1,000-question batch took 49 s at load 16).
            batch = {"queries": [f"question {i} " + "doliprane enceinte " * 40 for i in range(IN_FLIGHT_QUESTIONS)]}
            result: dict[str, httpx.Response] = {}
            sender = threading.Thread(target=lambda: result.update(r=http.post(f"{url}/intent", json=batch)))
            sender.start()
            time.sleep(0.3)  # the batch is being predicted
            process.send_signal(signal.SIGTERM)
            sender.join(120)
        assert result["r"].status_code == 200 and len(result["r"].json()["predictions"]) == IN_FLIGHT_QUESTIONS
        assert process.wait(60) == 0
    finally:
        if process.poll() is None:
            process.kill()
        _, err = process.communicate()
    assert "Traceback" not in err, err


def test_the_not_blank_pattern_means_what_str_isspace_means() -> None:
    pattern = re.compile(NOT_BLANK)
    assert [hex(c) for c in range(0x110000) if (pattern.search(chr(c)) is None) != chr(c).isspace()] == []
