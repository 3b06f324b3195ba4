"""A local API server for tools that need one: health checks, waiting, and ``python -m api.serve`` started for a
run, the one way every tool starts the API (its port check, log configuration and drain are api/serve.py's).

Used by ``make test`` (``posos_client.submit``), ``make bench-api``, ``make bench-load`` and the tests.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import urlsplit

import httpx

from intent_lib.paths import MODEL_PATH, project_root

LOOPBACK = {"localhost", "127.0.0.1", "::1", "0.0.0.0"}
STOP_SECONDS = 60  # a stopped server's time to finish its requests and exit before it is killed
# A line saying why the server failed: api.serve's one-line refusals, or an ERROR record of its text log format.
_ERROR_LINE = re.compile(r"^(?:api: |\S+ \S+ ERROR \S+: )(.*)$")


class ServerError(RuntimeError):
    """The server is not there or not ready; the message says why."""


def health(client: httpx.Client, url: str) -> int | None:
    """The status of ``GET /health``, or None when nothing answers."""
    try:
        return client.get(f"{url}/health", timeout=5.0).status_code
    except httpx.TransportError:
        return None


def wait_healthy(client: httpx.Client, url: str, seconds: float, process: subprocess.Popen | None = None,
                 log: Path | None = None) -> None:
    deadline = time.monotonic() + seconds
    while True:
        status = health(client, url)
        if status == 200:
            return
        if process is not None and process.poll() is not None:
            raise ServerError(f"the API server started for this run exited with code {process.returncode}: "
                              f"{last_error(log)}")
        if time.monotonic() > deadline:
            seen = "nothing answers" if status is None else f"/health answers {status}"
            raise ServerError(f"the API at {url} is not ready after {seconds:.0f} s ({seen}).")
        time.sleep(0.2)


def last_error(log: Path | None) -> str:
    """The server's reason for failing: its last error line other than uvicorn's generic one."""
    lines = log.read_text(encoding="utf-8", errors="replace").splitlines() if log and log.is_file() else []
    errors = [match[1].strip() for match in map(_ERROR_LINE.match, lines)
              if match and "Application startup failed" not in match[1]]
    return errors[-1] if errors else (lines[-1].strip() if lines else "no output")


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on now."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def spawn(env: dict[str, str], **popen: Any) -> subprocess.Popen:
    """``python -m api.serve`` from the project's root, with ``env`` (HOST, PORT, WORKERS, MODEL_PATH, the settings
    of api/settings.py) over this environment; ``popen`` are ``subprocess.Popen``'s options (pipes, files)."""
    return subprocess.Popen([sys.executable, "-m", "api.serve"], cwd=project_root(), env={**os.environ, **env},
                            **popen)


@contextmanager
def api_server(host: str, port: int, start_timeout: float, model_path: str | os.PathLike[str] | None = None,
               workers: int = 1, env: dict[str, str] | None = None, client: httpx.Client | None = None,
               log: Path | None = None) -> Iterator[subprocess.Popen]:
    """``python -m api.serve`` on ``host:port`` serving ``model_path`` (default ``MODEL_PATH``), healthy, until the
    block ends; then stopped (SIGTERM: it drains and exits; killed after ``STOP_SECONDS``). Its log goes to the file
    ``log`` (else a temporary one), read to say why it failed to start; ``env`` adds settings. ``DRAIN_SECONDS`` is
    0 unless ``env`` sets it: nothing balances load to a server started for a run."""
    url = f"http://{f'[{host}]' if ':' in host else host}:{port}"
    settings = {"HOST": host, "PORT": str(port), "WORKERS": str(workers), "LOG_FORMAT": "text", "DRAIN_SECONDS": "0",
                **({"MODEL_PATH": str(model_path)} if model_path else {}), **(env or {})}
    with tempfile.TemporaryDirectory(prefix="posos-api-") as tmp, \
            (httpx.Client() if client is None else nullcontext(client)) as http:
        path = log or Path(tmp) / "server.log"
        with path.open("w", encoding="utf-8") as out:
            process = spawn(settings, stdout=subprocess.DEVNULL, stderr=out)
        try:
            wait_healthy(http, url, start_timeout, process, path)
            yield process
        finally:
            stop(process)


@contextmanager
def local_server(url: str, client: httpx.Client, start_timeout: float, model_path: str | os.PathLike[str] | None = None
                 ) -> Iterator[None]:
    """Serve the model (``MODEL_PATH``) on the URL's port, one worker, until the block ends."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    host = "127.0.0.1" if parts.hostname in ("localhost", "0.0.0.0") else str(parts.hostname)
    model = str(model_path or os.environ.get("MODEL_PATH") or MODEL_PATH)
    print(f"No API answers at {url}: starting one for this run ({model}).", file=sys.stderr)
    started = time.perf_counter()
    with api_server(host, port, start_timeout, model, client=client):
        print(f"API ready in {time.perf_counter() - started:.1f} s.", file=sys.stderr)
        yield


def stop(process: subprocess.Popen) -> None:
    """SIGTERM (the server drains, finishes its requests and exits 0), then a kill after ``STOP_SECONDS``."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=STOP_SECONDS)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
