"""Rollouts and failures of a running ``python -m api.serve``: a reload under load switches every worker at once,
a refused version leaves the old one serving, a dead worker is replaced with the version in service even when the
model file has changed, and SIGTERM drains before it stops."""

from __future__ import annotations

import os
import pickle
import re
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from api.settings import GRACEFUL_SHUTDOWN_SECONDS, STOP_TIMEOUT_SECONDS, Settings
from intent_lib.files import sha256_of
from posos_client.server import free_port, spawn
from tests.test_api import edit_card, model_copy
from tests.test_api_hardening import set_pickle

ROOT = Path(__file__).resolve().parents[1]
START_SECONDS = 180  # imports and model loads on 2 busy cores
REPLACED_WITHIN_SECONDS = 30
QUESTION = "puis-je prendre du doliprane enceinte ?"

@pytest.fixture(scope="module")
def model_path(trained_model_dir: Path) -> Path:
    return trained_model_dir / "models" / "intent_model.pkl"


@pytest.fixture(scope="module")
def second_version(model_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Another version of the model (another pickle, so another sha, and its own card) in its own folder."""
    model = model_copy(model_path, tmp_path_factory.mktemp("second"))
    model.write_bytes(pickle.dumps(pickle.loads(model_path.read_bytes()), protocol=4))  # noqa: S301 - ours
    sha = sha256_of(model)
    assert sha != sha256_of(model_path)
    edit_card(model, model_sha256=sha, model_version=f"second+{sha[:12]}")
    return model


def install(version: Path, live: Path) -> None:
    """What an operator does: the new pickle and card where the server's MODEL_PATH points."""
    for name in (version.name, "model_card.json"):
        shutil.copyfile(version.with_name(name), live.with_name(name))


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    url: str
    log: Path

    def lines(self) -> list[str]:
        return self.log.read_text(encoding="utf-8", errors="replace").splitlines()

    def wait_log(self, pattern: str, seconds: float, after: int = 0) -> re.Match[str]:
        """The first log line from line ``after`` on matching ``pattern``, waited for."""
        deadline = time.monotonic() + seconds
        while True:
            for line in self.lines()[after:]:
                if match := re.search(pattern, line):
                    return match
            assert self.process.poll() is None, "\n".join(self.lines()[-20:])
            assert time.monotonic() < deadline, f"no log line {pattern!r}:\n" + "\n".join(self.lines()[-20:])
            time.sleep(0.1)

    def version(self, client: httpx.Client) -> str:
        response = client.get(f"{self.url}/intent", params={"query": QUESTION})
        assert response.status_code == 200
        return response.headers["x-model-version"]

    def workers(self, client: httpx.Client) -> set[int]:
        text = client.get(f"{self.url}/metrics").text
        return {int(pid) for pid in re.findall(r'posos_process_open_fds\{pid="(\d+)",role="worker"\}', text)}


@pytest.fixture
def start(tmp_path: Path) -> Iterator:
    servers: list[Server] = []

    def run(model: Path, workers: int, **env: str) -> Server:
        port = free_port()
        log = tmp_path / f"server-{port}.log"
        with log.open("wb") as sink:
            process = spawn({"PORT": str(port), "HOST": "127.0.0.1", "WORKERS": str(workers),
                             "MODEL_PATH": str(model), "POSOS_RUNTIME_DIR": str(tmp_path / "runtime"),
                             "DRAIN_SECONDS": "0", **env}, stdout=sink, stderr=subprocess.STDOUT)
        server = Server(process, f"http://127.0.0.1:{port}", log)
        servers.append(server)
        server.wait_log(r"model version \w+ in service on", START_SECONDS)
        return server

    yield run
    for server in servers:
        if server.process.poll() is None:
            server.process.kill()
        server.process.wait()


@dataclass
class Answer:
    sent: float
    received: float
    status: int | str
    version: str


def load(url: str, stop: threading.Event, answers: list[Answer]) -> None:
    """GET questions one after another until ``stop``; every answer (or transport error) recorded."""
    with httpx.Client(timeout=60) as client:
        while not stop.is_set():
            sent = time.monotonic()
            try:
                response = client.get(f"{url}/intent", params={"query": QUESTION})
                status, version = response.status_code, response.headers.get("x-model-version", "")
            except httpx.TransportError as exc:
                status, version = type(exc).__name__, ""
            answers.append(Answer(sent, time.monotonic(), status, version))


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2])
def test_reload_under_load_switches_every_worker_at_once_and_refusals_keep_the_old_version(
        model_path: Path, second_version: Path, tmp_path: Path, start, workers: int) -> None:
    live = model_copy(model_path, tmp_path / "live")
    server = start(live, workers)
    with httpx.Client(timeout=60) as client:
        old = server.version(client)
        # Refused by the checks (the pickle no longer matches its card), then by the workers (it cannot be
        # unpickled, though its card records its hash): one line each, and the old version answers throughout.
        for damage, why in ((lambda: live.write_bytes(live.read_bytes()[:-100]), "sha256"),
                            (lambda: set_pickle(live, b"not a pickle"), "refused by a worker: .*unpickled")):
            mark = len(server.lines())
            damage()
            server.process.send_signal(signal.SIGHUP)
            server.wait_log(f"reload refused, version .* stays in service: .*{why}", 60, after=mark)
            assert sum("reload refused" in line for line in server.lines()[mark:]) == 1
            assert client.get(f"{server.url}/health").status_code == 200
            assert {server.version(client) for _ in range(10)} == {old}

        install(second_version, live)
        stop, answers = threading.Event(), []
        clients = [threading.Thread(target=load, args=(server.url, stop, answers)) for _ in range(4)]
        for thread in clients:
            thread.start()
        time.sleep(1.0)
        mark = len(server.lines())
        server.process.send_signal(signal.SIGHUP)
        server.wait_log(r"model version \w+ in service, replacing", 120, after=mark)
        switched = time.monotonic()
        time.sleep(1.0)
        stop.set()
        for thread in clients:
            thread.join(60)
        new = server.version(client)
        info = re.findall(r"posos_model_info\{.*\}", client.get(f"{server.url}/metrics").text)
        assert info == [f'posos_model_info{{version="{new}"}}']
        assert client.get(f"{server.url}/version").json()["model_version"] == new

    assert [a.status for a in answers if a.status != 200] == [], "requests failed across the switch"
    assert new != old and {a.version for a in answers} == {old, new}
    first_new = min(a.received for a in answers if a.version == new)
    assert [a for a in answers if a.version == old and a.sent > first_new] == [], "old after new"
    assert [a for a in answers if a.version == old and a.received > switched] == [], "old after the switch"
    assert server.process.poll() is None


@pytest.mark.slow
def test_a_killed_worker_is_replaced_with_the_version_in_service_though_the_model_file_is_damaged(
        model_path: Path, tmp_path: Path, start) -> None:
    live = model_copy(model_path, tmp_path / "live")
    server = start(live, 2)
    with httpx.Client(timeout=60) as client:
        in_service = server.version(client)
        workers = server.workers(client)
        assert len(workers) == 2
        live.write_bytes(live.read_bytes()[:-100])  # damaged in place
        victim = min(workers)
        mark = len(server.lines())
        killed = time.monotonic()
        os.kill(victim, signal.SIGKILL)
        match = server.wait_log(r"worker (\d+) serves version (\w+)", 120, after=mark)
        assert time.monotonic() - killed <= REPLACED_WITHIN_SECONDS
        assert int(match[1]) != victim and in_service.endswith(match[2])
        assert server.workers(client) == (workers - {victim}) | {int(match[1])}
        assert {server.version(client) for _ in range(20)} == {in_service}
        assert client.get(f"{server.url}/health").status_code == 200
        info = re.findall(r"posos_model_info\{.*\}", client.get(f"{server.url}/metrics").text)
        assert info == [f'posos_model_info{{version="{in_service}"}}']
    assert server.process.poll() is None


@pytest.mark.slow
def test_sigterm_drains_health_503_while_questions_are_answered_then_exits_0(
        model_path: Path, tmp_path: Path, start) -> None:
    drain = 3.0
    server = start(model_path, 1, DRAIN_SECONDS=str(drain))
    with httpx.Client(timeout=10) as client:
        assert client.get(f"{server.url}/health").status_code == 200
        signalled = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        seen = []
        while time.monotonic() - signalled < drain - 1.0:  # inside the window, with a margin for busy cores
            seen.append((client.get(f"{server.url}/health").status_code,
                         client.get(f"{server.url}/intent", params={"query": QUESTION}).status_code))
            time.sleep(0.1)
    health = [h for h, _ in seen]
    assert 503 in health and set(health[health.index(503):]) == {503}, seen
    assert {answer for _, answer in seen} == {200}, seen
    assert server.process.wait(30) == 0


def test_the_container_stop_timeout_covers_the_default_drain_and_the_graceful_timeout() -> None:
    make = (ROOT / "mk" / "api.mk").read_text(encoding="utf-8")
    assert int(re.search(r"^STOP_TIMEOUT \?= (\d+)$", make, re.M)[1]) == STOP_TIMEOUT_SECONDS
    assert STOP_TIMEOUT_SECONDS > Settings().drain_seconds + GRACEFUL_SHUTDOWN_SECONDS
    assert "--stop-timeout $(STOP_TIMEOUT)" in make
