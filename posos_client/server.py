"""A local API server for tools that need one: health checks, waiting, and a uvicorn started for a run.

Used by ``make test`` (``posos_client.submit``), ``make bench-api`` and the tests.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator
from urllib.parse import urlsplit

import httpx

from intent_lib.paths import MODEL_PATH, project_root

LOOPBACK = {"localhost", "127.0.0.1", "::1", "0.0.0.0"}


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
    """The server's reason for failing: its last ERROR line other than uvicorn's generic one."""
    lines = log.read_text(encoding="utf-8", errors="replace").splitlines() if log and log.is_file() else []
    errors = [line.split(":", 1)[1].strip() for line in lines
              if line.startswith("ERROR:") and "Application startup failed" not in line]
    return errors[-1] if errors else (lines[-1].strip() if lines else "no output")


@contextmanager
def local_server(url: str, client: httpx.Client, start_timeout: float, model_path: str | os.PathLike[str] | None = None
                 ) -> Iterator[None]:
    """Run uvicorn serving ``api.app:app`` on the URL's port until the block ends (model: ``MODEL_PATH``)."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    host = "127.0.0.1" if parts.hostname in ("localhost", "0.0.0.0") else parts.hostname
    command = [sys.executable, "-m", "uvicorn", "api.app:app", "--host", str(host), "--port", str(port),
               "--no-access-log"]
    model = str(model_path or os.environ.get("MODEL_PATH") or MODEL_PATH)
    print(f"No API answers at {url}: starting one for this run ({model}).", file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="posos-api-") as tmp:
        log = Path(tmp) / "server.log"
        with log.open("w", encoding="utf-8") as out:
            process = subprocess.Popen(command, cwd=project_root(), stdout=out, stderr=subprocess.STDOUT,
                                       env={**os.environ, "MODEL_PATH": model})
        started = time.perf_counter()
        try:
            wait_healthy(client, url, start_timeout, process, log)
            print(f"API ready in {time.perf_counter() - started:.1f} s.", file=sys.stderr)
            yield
        finally:
            stop(process)


def stop(process: subprocess.Popen) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
