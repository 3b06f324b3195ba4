"""The edges of the API: the protocol layer's limits and timeouts on a real server (api/protocol.py), HEAD, strict
request bodies, and the Posos spec's ``probability``."""

from __future__ import annotations

import json
import re
import select
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from litestar.testing import TestClient

from api.app import create_app
from api.settings import MAX_HEAD_BYTES, MAX_URL_BYTES, Settings
from posos_client.server import api_server, free_port

HEAD_TIMEOUT = 1.0
BODY_TIMEOUT = 2.0
SPEC_QUERY = "risques poisson cru pendant la grossesse ?"


@pytest.fixture(scope="module")
def client(trained_model_dir: Path) -> Iterator[TestClient]:
    with TestClient(create_app(trained_model_dir / "models" / "intent_model.pkl", Settings())) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def server(trained_model_dir: Path) -> Iterator[tuple[int, int]]:
    """(port, pid of its worker) of ``python -m api.serve`` with one worker and short read timeouts."""
    port = free_port()
    with api_server("127.0.0.1", port, 120, trained_model_dir / "models" / "intent_model.pkl",
                    env={"HEAD_TIMEOUT": str(HEAD_TIMEOUT), "BODY_TIMEOUT": str(BODY_TIMEOUT)}) as process:
        [worker] = Path(f"/proc/{process.pid}/task/{process.pid}/children").read_text().split()
        yield port, int(worker)


def read_all(sock: socket.socket) -> bytes:
    """What the server sends until it closes (or resets) the connection."""
    out = b""
    try:
        while chunk := sock.recv(65_536):
            out += chunk
    except ConnectionResetError:
        pass
    return out


def exchange(port: int, data: bytes, timeout: float = 10) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        return read_all(sock)


def assert_json_error(response: bytes, status: int) -> dict:
    head, _, body = response.partition(b"\r\n\r\n")
    assert head.startswith(f"HTTP/1.1 {status} ".encode()), response[:300]
    assert b"content-type: application/json" in head.lower(), head
    error = json.loads(body)
    assert error["status_code"] == status and error["detail"], error
    return error


def peak_rss_kib(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmHWM:\s+(\d+) kB", status)[1])


# ------------------------------------------------------------------------------------------ the protocol layer


@pytest.mark.slow
def test_a_50_mb_header_is_refused_before_it_has_been_read(server: tuple[int, int]) -> None:
    port, pid = server
    peak_before = peak_rss_kib(pid)
    chunk, total, sent, response = b"a" * 65_536, 50_000_000, 0, b""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: ")
        try:
            while sent < total:
                sock.sendall(chunk)
                sent += len(chunk)
                if select.select([sock], [], [], 0)[0]:  # the server answered: a client stops sending
                    break
            else:
                sock.sendall(b"\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass
        response = read_all(sock)
    assert_json_error(response, 431)
    assert sent < total / 10, f"the server answered after {sent:,} bytes of a {total:,}-byte header"
    assert peak_rss_kib(pid) - peak_before < 10_000, "the header was buffered"


@pytest.mark.slow
def test_a_slow_client_is_timed_out_with_a_408(server: tuple[int, int]) -> None:
    port, _ = server
    head = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 1_000 + b"\r\n\r\n"
    stop = threading.Event()
    with socket.create_connection(("127.0.0.1", port), timeout=10 * HEAD_TIMEOUT) as sock:

        def trickle() -> None:  # one byte at a time, far slower than the timeout allows for the whole head
            for byte in head:
                if stop.wait(HEAD_TIMEOUT / 4):
                    return
                try:
                    sock.send(bytes([byte]))
                except OSError:
                    return

        sender = threading.Thread(target=trickle)
        start = time.monotonic()
        sender.start()
        try:
            response = read_all(sock)
        finally:
            stop.set()
            sender.join()
    assert_json_error(response, 408)
    assert time.monotonic() - start < 3 * HEAD_TIMEOUT


@pytest.mark.slow
def test_an_idle_connection_and_a_stalled_body_are_closed_and_the_body_counted_408(server: tuple[int, int]) -> None:
    port, _ = server
    with socket.create_connection(("127.0.0.1", port), timeout=10 * BODY_TIMEOUT) as idle, \
            socket.create_connection(("127.0.0.1", port), timeout=10 * BODY_TIMEOUT) as stalled:
        stalled.sendall(b"POST /intent HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                        b"Content-Length: 1000\r\n\r\n{\"queries\"")
        start = time.monotonic()
        assert read_all(idle) == b""
        assert read_all(stalled) == b""
    assert time.monotonic() - start < 3 * BODY_TIMEOUT
    metrics = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    assert re.search(r'posos_requests_total\{method="POST",route="/intent",status="408"\} 1\.0', metrics), \
        "the stalled body is counted as a 408, not a server error"


@pytest.mark.slow
@pytest.mark.parametrize(("request_bytes", "status"), [
    (b"GET /intent?query=a\x00b HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    (b"GET /health HTTP/1.1\r\nHost: x\r\nX-Nul: a\x00b\r\n\r\n", 400),
    (b"NOT HTTP AT ALL\r\n\r\n", 400),
    (b"GET /intent?query=" + b"a" * (MAX_URL_BYTES + 10_000) + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
    (b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (MAX_HEAD_BYTES + 10_000) + b"\r\n\r\n", 431),
    (b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n", 431),
], ids=["nul-in-url", "nul-in-header", "bad-request-line", "long-url", "huge-header", "header-over-64k"])
def test_protocol_errors_have_the_json_error_shape(server: tuple[int, int], request_bytes: bytes,
                                                   status: int) -> None:
    assert_json_error(exchange(server[0], request_bytes), status)


@pytest.mark.slow
def test_the_longest_question_fits_in_a_get_url(server: tuple[int, int]) -> None:
    response = httpx.get(f"http://127.0.0.1:{server[0]}/intent", params={"query": "💊" * 5_000}, timeout=60)
    assert response.status_code == 200, response.text


# ------------------------------------------------------------------------------------------ the app


def test_a_string_top_k_in_a_body_is_400(client: TestClient) -> None:
    response = client.post("/intent", json={"queries": ["doliprane"], "top_k": "3"})
    assert response.status_code == 400 and response.json()["field"] == "top_k", response.text


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
def test_a_body_not_sent_as_json_is_415(client: TestClient, content_type: str | None) -> None:
    headers = {"content-type": content_type} if content_type else {}
    response = client.post("/intent", content=b'{"queries": ["doliprane"]}', headers=headers)
    assert response.status_code == 415 and response.json()["status_code"] == 415, response.text


@pytest.mark.parametrize("path", ["/intent?query=doliprane", "/health", "/version", "/metrics", "/"])
def test_head_answers_where_get_does_without_a_body(client: TestClient, path: str) -> None:
    got = client.get(path)
    head = client.head(path)
    assert head.status_code == got.status_code == 200
    assert head.content == b"" and head.headers["content-type"] == got.headers["content-type"]


def test_the_spec_query_gets_intent_and_a_string_probability(client: TestClient) -> None:
    answer = client.get("/intent", params={"query": SPEC_QUERY}).json()
    assert isinstance(answer["intent"], int)
    assert re.fullmatch(r"[01]\.\d{8}", answer["probability"]), answer["probability"]
    assert float(answer["probability"]) == pytest.approx(answer["confidence"], abs=1e-8)
    batch = client.post("/intent", json={"queries": [SPEC_QUERY]}).json()["predictions"][0]
    assert batch["probability"] == answer["probability"]
