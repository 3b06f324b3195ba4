"""The micro-batcher's budgets and stops: a character budget per call of single questions, a batch whose client
has gone away stopped at its next chunk, each request's model time told once."""

from __future__ import annotations

import asyncio
import json
import math
import socket
import time
from pathlib import Path

import httpx
import pytest
from litestar.testing import TestClient

from api.batcher import ClientGone, MicroBatcher
from api.settings import CHUNK_QUESTIONS, MAX_BATCH, MAX_QUERY_CHARS, SINGLES_CHARS
from posos_client.server import api_server, free_port
from tests.test_api import client, model_path  # noqa: F401 - fixtures
from tests.test_api_hardening import GatedService


def test_a_long_single_question_never_shares_a_call_with_many_short_ones() -> None:
    service = GatedService()
    short = [f"question courte {i}" for i in range(30)]
    long = "l" * MAX_QUERY_CHARS

    async def run() -> None:
        batcher = MicroBatcher(service)  # type: ignore[arg-type]
        batcher.start()
        try:
            service.gate.clear()
            first = asyncio.ensure_future(batcher.predict("occupe le modèle", 1))
            while not service.entered.is_set():
                await asyncio.sleep(0.001)
            waiting = [asyncio.ensure_future(batcher.predict(q, 1)) for q in [*short[:15], long, *short[15:]]]
            await asyncio.sleep(0.01)
            service.gate.set()
            await asyncio.gather(first, *waiting)
        finally:
            await batcher.stop()

    asyncio.run(run())
    assert service.calls == [["occupe le modèle"], short[:15], [long], short[15:]]
    assert all(len(call) == 1 or sum(map(len, call)) <= SINGLES_CHARS for call in service.calls)


def test_a_batch_whose_client_is_gone_stops_at_the_next_chunk() -> None:
    service = GatedService()
    queries = [f"q{i}" for i in range(20)]

    async def run() -> BaseException | None:
        batcher = MicroBatcher(service, chunk_questions=2)  # type: ignore[arg-type]
        batcher.start()
        gone = asyncio.Event()
        try:
            service.gate.clear()
            batch = asyncio.ensure_future(batcher.predict_many(queries, 1, gone))
            while not service.entered.is_set():
                await asyncio.sleep(0.001)
            gone.set()  # the client leaves during the first chunk
            service.gate.set()
            try:
                await batch
            except ClientGone as exc:
                return exc
            return None
        finally:
            await batcher.stop()

    stopped = asyncio.run(run())
    assert isinstance(stopped, ClientGone) and stopped.retry_after is None
    assert service.calls == [queries[:2]], "chunks ran after the client had gone"


def test_each_request_tells_its_model_time_once() -> None:
    service = GatedService()
    times: list[float] = []

    async def run() -> None:
        batcher = MicroBatcher(service, chunk_questions=2)  # type: ignore[arg-type]
        batcher.on_model_time = times.append
        batcher.start()
        try:
            await batcher.predict("une question", 1)
            await batcher.predict_many(["a", "b", "c", "d", "e"], 1)
        finally:
            await batcher.stop()

    asyncio.run(run())
    assert len(service.calls) == 4 and len(times) == 2 and all(t > 0 for t in times)


def test_metrics_have_the_model_time_per_request(client: TestClient) -> None:  # noqa: F811
    def count() -> float:
        lines = client.get("/metrics").text.splitlines()
        return next((float(line.split()[-1]) for line in lines if line.startswith("posos_request_model_seconds_count")),
                    0.0)

    before = count()
    assert client.get("/intent", params={"query": "doliprane enfant"}).status_code == 200
    assert client.post("/intent", json={"queries": ["a", "b", "c"]}).status_code == 200
    assert count() == pytest.approx(before + 2)


def metric(port: int, name: str) -> float:
    """A sample of the server's /metrics, 0 when absent."""
    lines = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text.splitlines()
    return next((float(line.split()[-1]) for line in lines if line.startswith(name + " ")), 0.0)


@pytest.mark.slow
def test_a_batch_stops_on_a_real_server_when_its_client_hangs_up(model_path: Path) -> None:  # noqa: F811
    port = free_port()
    queries = [f"question {i} sur le doliprane pendant la grossesse" for i in range(MAX_BATCH)]  # new to the cache
    body = json.dumps({"queries": queries}).encode()
    head = (f"POST /intent HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode()
    calls = "posos_model_call_questions_count"
    with api_server("127.0.0.1", port, 120, model_path):
        before = metric(port, calls)
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.sendall(head + body)
            deadline = time.monotonic() + 60
            while metric(port, calls) == before:  # the batch's first chunk has gone to the model
                assert time.monotonic() < deadline, "the batch never started"
                time.sleep(0.05)
        # The request ends (499, its access line counted) only once its batch has stopped: no chunk runs after that.
        # Waiting for it, not for the chunk count to hold still, which a slow chunk on a loaded machine also does.
        deadline = time.monotonic() + 120
        while metric(port, 'posos_requests_total{method="POST",route="/intent",status="499"}') != 1:
            assert time.monotonic() < deadline, "the request never ended as 499"
            time.sleep(0.1)
        assert metric(port, calls) - before < math.ceil(MAX_BATCH / CHUNK_QUESTIONS), "the batch ran to its end"
